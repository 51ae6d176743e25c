/**
 * SQL shared by the job runner and manual work: opening the exceptions of match groups, and the ids of the groups
 * manual work adds to a finished job. Plain text with positional parameters, so it runs on the job runner's pg
 * connection as well as in a Prisma transaction.
 */
import type { MatchOutcomeName } from "../../graphql/models.js";
import { OUTCOME_ORDER } from "../jobs/job-repository.js";
import { severityRankSql, slaIntervalSql } from "./severity.js";

/** The outcomes that make a group an exception: the discrepancies and the unmatched records. */
export type ExceptionType = Exclude<MatchOutcomeName, "MATCHED" | "SUGGESTED">;
export const EXCEPTION_TYPES = OUTCOME_ORDER.filter((outcome): outcome is ExceptionType => outcome !== "MATCHED" && outcome !== "SUGGESTED");

const OUTCOMES = `ARRAY[${EXCEPTION_TYPES.map((type) => `'${type}'`).join(", ")}]::"MatchOutcome"[]`;

/**
 * Inserts one OPEN exception per exception group of job `$1` (all of them, or only the ids in `$2`). One statement:
 * each group's records are summed through the records' primary key. The exposure is |amountDelta| for an
 * AMOUNT_MISMATCH and the larger side's |sum| otherwise; the currency is the left side's when there is one.
 */
export function openExceptionsSql(onlyGroups: boolean): string {
  const rank = severityRankSql("x.amount", "x.currency", "x.booked");
  return `
    INSERT INTO exceptions (id, job_id, project_id, type, left_record_ids, right_record_ids, amount, currency, booked_date, sla_due_at)
    SELECT g.id, g.job_id, g.project_id, g.outcome, g.left_record_ids, g.right_record_ids, x.amount, x.currency, x.booked,
      now() + ${slaIntervalSql(rank)}
    FROM match_groups g
    CROSS JOIN LATERAL (
      SELECT CASE WHEN g.outcome = 'AMOUNT_MISMATCH' THEN abs(g.amount_delta)
               ELSE greatest(abs(coalesce(sum(r.amount) FILTER (WHERE r.id = ANY(g.left_record_ids)), 0)),
                             abs(coalesce(sum(r.amount) FILTER (WHERE r.id = ANY(g.right_record_ids)), 0))) END AS amount,
        (array_agg(r.currency ORDER BY (r.id = ANY(g.left_record_ids)) DESC, r.id))[1] AS currency,
        min(r.booked_date) AS booked
      FROM records r WHERE r.id = ANY(g.left_record_ids || g.right_record_ids)
    ) x
    WHERE g.job_id = $1::uuid AND g.outcome = ANY(${OUTCOMES}) AND x.currency IS NOT NULL
      ${onlyGroups ? "AND g.id = ANY($2::uuid[])" : ""}`;
}

/** A new group id of job `jobParam`: the job's prefix, then 2^62 + the next manual_match_group_seq number. */
export function manualGroupIdSql(jobParam: string): string {
  return `(left(replace(${jobParam}::text, '-', ''), 16) || lpad(to_hex(4611686018427387904::bigint + nextval('manual_match_group_seq')), 16, '0'))::uuid`;
}

/**
 * Opens the exceptions of a job whose groups were just written, on the job's own transaction (the call the job
 * runner makes before marking the job COMPLETED; dry runs keep no groups and make none).
 */
export async function openJobExceptions(client: { query(text: string, values: unknown[]): Promise<unknown> }, jobId: string): Promise<void> {
  await client.query(openExceptionsSql(false), [jobId]);
}
