/**
 * SQL shared by the job runner and manual work: opening the exceptions of match groups, and the ids of the groups
 * manual work adds to a finished job. Plain text with positional parameters, so it runs on the job runner's pg
 * connection as well as in a Prisma transaction.
 */
import type { MatchOutcomeName } from "../../graphql/models.js";
import { OUTCOME_ORDER } from "../jobs/group-scan.js";
import { severityRankSql, slaIntervalSql } from "./severity.js";

/** The outcomes that make a group an exception: the discrepancies and the unmatched records. */
export type ExceptionType = Exclude<MatchOutcomeName, "MATCHED" | "SUGGESTED">;
export const EXCEPTION_TYPES = OUTCOME_ORDER.filter((outcome): outcome is ExceptionType => outcome !== "MATCHED" && outcome !== "SUGGESTED");

const OUTCOMES = `ARRAY[${EXCEPTION_TYPES.map((type) => `'${type}'`).join(", ")}]::"MatchOutcome"[]`;

/**
 * Inserts one OPEN exception per exception group of job `$1` among the groups `$2` (manual work's new groups; a
 * job's own exceptions come from the engine, see EXCEPTION_FACTS_TABLE). One statement: each group's records are
 * summed through the records' primary key. The exposure is |amountDelta| for an AMOUNT_MISMATCH and the larger
 * side's |sum| otherwise; the currency is the left side's when there is one (the record with the smallest id).
 */
export function openExceptionsSql(): string {
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
    WHERE g.id = ANY($2::uuid[]) AND g.job_id = $1::uuid AND g.outcome = ANY(${OUTCOMES}) AND x.currency IS NOT NULL`;
}

/**
 * The job runner's scratch table for a block's exceptions, computed by the engine from the records it holds
 * (job-results.ts `exceptionCopyLine`) and copied in after the block's groups: opening them from it spares the
 * records' primary-key probes of `openExceptionsSql`. Temporary, dropped with the job's transaction.
 */
export const EXCEPTION_FACTS_TABLE = "job_exception_facts";
export const CREATE_EXCEPTION_FACTS_SQL = `
  CREATE TEMP TABLE ${EXCEPTION_FACTS_TABLE} (id uuid, job_id uuid, project_id uuid, type "MatchOutcome", left_record_ids uuid[],
    right_record_ids uuid[], amount numeric(24,4), currency char(3), booked_date date) ON COMMIT DROP`;

/** Opens the exceptions copied into EXCEPTION_FACTS_TABLE (severity and SLA as `openExceptionsSql`), and empties it. */
export async function openExceptionsFromFacts(client: Querier): Promise<void> {
  const rank = severityRankSql("f.amount", "f.currency", "f.booked_date");
  await client.query(
    `INSERT INTO exceptions (id, job_id, project_id, type, left_record_ids, right_record_ids, amount, currency, booked_date, sla_due_at)
     SELECT f.id, f.job_id, f.project_id, f.type, f.left_record_ids, f.right_record_ids, f.amount, f.currency, f.booked_date,
       now() + ${slaIntervalSql(rank)}
     FROM ${EXCEPTION_FACTS_TABLE} f`,
    [],
  );
  await client.query(`TRUNCATE ${EXCEPTION_FACTS_TABLE}`, []);
}

/** A new group id of job `jobParam`: the job's prefix, then 2^62 + the next manual_match_group_seq number. */
export function manualGroupIdSql(jobParam: string): string {
  return `(left(replace(${jobParam}::text, '-', ''), 16) || lpad(to_hex(4611686018427387904::bigint + nextval('manual_match_group_seq')), 16, '0'))::uuid`;
}

/** The earlier jobs' exceptions still open for the same project and pair of sources (either way round) as job `$1`. */
const EARLIER_OPEN = `
  SELECT o.* FROM exceptions o
  JOIN reconciliation_jobs j ON j.id = o.job_id
  JOIN reconciliation_jobs job ON job.id = $1::uuid
  WHERE o.project_id = job.project_id AND o.job_id <> job.id AND o.status <> 'RESOLVED'
    AND least(j.left_source_id, j.right_source_id) = least(job.left_source_id, job.right_source_id)
    AND greatest(j.left_source_id, j.right_source_id) = greatest(job.left_source_id, job.right_source_id)`;

/** An exception's records as one sorted set, whichever side they are on (a later job may swap the sources). */
const RECORD_SET = (alias: string) =>
  `ARRAY(SELECT unnest(coalesce(${alias}.left_record_ids, '{}') || coalesce(${alias}.right_record_ids, '{}')) ORDER BY 1)`;

/**
 * Carry-forward, part 1: a new exception whose records are exactly those of an earlier job's open exception (the
 * same pair of sources) continues it — status, assignee, labels, SLA due date, first opening and comments move
 * over, and the earlier one is RESOLVED as SUPERSEDED (`carried_from_id` links them). Returns the count.
 */
const CARRY_SQL = `
  WITH earlier AS (SELECT e.*, ${RECORD_SET("e")} AS recs FROM (${EARLIER_OPEN}) e),
  fresh AS (SELECT n.id, ${RECORD_SET("n")} AS recs FROM exceptions n WHERE n.job_id = $1::uuid),
  pairs AS (
    SELECT DISTINCT ON (f.id) f.id AS new_id, e.id AS old_id, e.status, e.assignee_id, e.labels, e.sla_due_at, e.first_opened_at
    FROM fresh f JOIN earlier e ON e.recs = f.recs
    ORDER BY f.id, e.first_opened_at, e.id
  ),
  carried AS (
    UPDATE exceptions n SET status = p.status, assignee_id = p.assignee_id, labels = p.labels, sla_due_at = p.sla_due_at,
      first_opened_at = p.first_opened_at, carried_from_id = p.old_id, updated_at = now()
    FROM pairs p WHERE n.id = p.new_id
    RETURNING p.old_id, n.id AS new_id
  ),
  moved AS (UPDATE exception_comments c SET exception_id = carried.new_id FROM carried WHERE c.exception_id = carried.old_id RETURNING 1)
  UPDATE exceptions o SET status = 'RESOLVED', resolution = 'SUPERSEDED', resolved_at = now(), updated_at = now()
  FROM carried WHERE o.id = carried.old_id`;

/**
 * Carry-forward, part 2: the earlier open exceptions not continued are settled by the new job — RESOLVED as MATCHED
 * when none of their records is in an exception or a suggestion of the new job (the job matched them all: late
 * data arrived), else as SUPERSEDED (their records are in the new job's exceptions under another grouping).
 */
const SETTLE_SQL = `
  WITH unsettled AS (
    SELECT unnest(coalesce(n.left_record_ids, '{}') || coalesce(n.right_record_ids, '{}')) AS id FROM exceptions n WHERE n.job_id = $1::uuid
    UNION
    SELECT unnest(g.left_record_ids || g.right_record_ids) FROM match_groups g WHERE g.job_id = $1::uuid AND g.outcome = 'SUGGESTED'
  )
  UPDATE exceptions o SET status = 'RESOLVED', resolved_at = now(), updated_at = now(),
    resolution = CASE WHEN EXISTS (
      SELECT 1 FROM unsettled u WHERE u.id = ANY(coalesce(o.left_record_ids, '{}') || coalesce(o.right_record_ids, '{}'))
    ) THEN 'SUPERSEDED'::"ExceptionResolution" ELSE 'MATCHED'::"ExceptionResolution" END
  FROM (${EARLIER_OPEN}) e WHERE o.id = e.id`;

/** One audit event for what a job's completion did to earlier exceptions (the chain records system changes too). */
const AUDIT_SQL = `
  INSERT INTO audit_events (id, project_id, action, resource_type, resource_id, after, reason)
  SELECT gen_random_uuid(), job.project_id, 'exceptions.carryForward', 'ReconciliationJob', job.id::text,
    jsonb_build_object('carried', $2::int, 'settled', $3::int), 'carry-forward when the job completed'
  FROM reconciliation_jobs job WHERE job.id = $1::uuid`;

type Querier = { query(text: string, values: unknown[]): Promise<{ rowCount?: number | null; rows?: unknown[] }> };

/**
 * Carries forward, once all of a job's exceptions are open and on its transaction (before it is marked COMPLETED),
 * the open exceptions of earlier jobs of the same pair of sources: continued by this job's exception for the same
 * records, or settled (matched by this job, or superseded). All of it commits with the job's results or not at all.
 */
export async function carryForwardExceptions(client: Querier, jobId: string): Promise<{ carried: number; settled: number }> {
  // Most jobs have no earlier open exceptions to carry: one index probe spares both statements' scan of this job's.
  const { rows } = await client.query(`SELECT EXISTS (${EARLIER_OPEN}) AS "any"`, [jobId]);
  if (!(rows?.[0] as { any?: boolean } | undefined)?.any) return { carried: 0, settled: 0 };
  const carried = (await client.query(CARRY_SQL, [jobId])).rowCount ?? 0;
  const settled = (await client.query(SETTLE_SQL, [jobId])).rowCount ?? 0;
  if (carried + settled > 0) await client.query(AUDIT_SQL, [jobId, carried, settled]);
  return { carried, settled };
}
