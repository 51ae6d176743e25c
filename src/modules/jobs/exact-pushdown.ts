/**
 * Runs the bulk of a job's first pass inside PostgreSQL when it is an exact-key pass whose key holds the amount and
 * the currency. Such a pass (every comparator a required exact equality: currency, exact amount, exact text) is
 * "group and zip" in the engine: both
 * sides grouped by the key and merged in (booked_date, id) order within the rules' date span. For a key held by
 * exactly one record on each side — nearly every key of real data, where references are unique — that is simply
 * "pair them if their dates are within the span": a hash join PostgreSQL does where the records are, so most
 * records of a typical job never travel to Node. Every other record (keys repeated on a side, keys of one side
 * only, records the pass cannot key) is streamed to the engine, which runs the pass on them exactly as it would
 * have on everything: the records it no longer sees are ones it would have paired with each other. A test checks
 * a job's groups against the engine run over every record. One difference is accepted: the duplicate stage no
 * longer sees the pushed records, so a record repeating one of them by external id (or by a reference equal only
 * after normalization) is reported UNMATCHED rather than DUPLICATE. Records repeating one by reference, amount and
 * currency are never split this way: their key is not one-to-one, so they all stay with the engine.
 *
 * The pairs go to an UNLOGGED scratch table (committed at once, so the record streams of other connections can
 * leave its records out); the job's transaction copies them into match_groups; the table is dropped when the job
 * ends (or, after a crash, when the job is recovered).
 */
import type pg from "pg";
import { isId } from "../../graphql/validate.js";
import type { Comparator, Pass, RuleSet } from "../../reconcile/rules.js";
import { dropRejectedPushedPairs } from "../exceptions/rejected-pairs.js";

const TEXT_COLUMNS: Record<string, string> = {
  reference: "reference",
  description: "description",
  counterparty: "counterparty",
  externalId: "external_id",
};

/** The record columns a comparator compares for equality in SQL, or null when SQL cannot judge it like the engine. */
function keyColumn(comparator: Comparator): string | null {
  if (!comparator.required) return null;
  if (comparator.field === "currency" && comparator.type === "equal") return "currency";
  if (comparator.field === "amount" && comparator.type === "exact") return "amount";
  // Raw text equality only: the engine's "normalized" (NFKC, case folding) has no exact SQL twin.
  if (comparator.type === "exact" && comparator.field in TEXT_COLUMNS) return TEXT_COLUMNS[comparator.field]!;
  return null;
}

/**
 * The key columns of a pass SQL can run, or null. The key must hold the exact amount and the currency: the pairs
 * are stored as equal (a difference of 0, one currency: `insertPushedGroups`, `pushedAmounts`), which only such a key
 * guarantees. A pass keyed on the reference and currency alone pairs different amounts, which the engine does.
 */
function pushableKey(pass: Pass): { columns: string[]; text: string[] } | null {
  if (pass.kind !== "ONE_TO_ONE" || pass.mode !== "AUTO") return null;
  const columns: string[] = [];
  for (const comparator of pass.comparators) {
    const column = keyColumn(comparator);
    if (!column) return null;
    if (!columns.includes(column)) columns.push(column);
  }
  if (!columns.includes("amount") || !columns.includes("currency")) return null;
  const text = columns.filter((column) => column !== "currency" && column !== "amount");
  return { columns, text };
}

/** Whether the first pass of `rules` can be pushed into SQL. */
export function canPushDown(rules: RuleSet): boolean {
  return rules.passes.length > 0 && pushableKey(rules.passes[0]!) !== null;
}

/** The scratch table of a job (its name is derived from the job id, which is a validated uuid). */
export function pairsTable(jobId: string): string {
  return `recon_pairs_${jobId.replace(/-/g, "")}`;
}

export interface PushdownResult {
  table: string;
  /** Pairs made, as pass hits (index 0: the first pass). */
  hits: number[];
}

/** Sums of pushed-down pairs' amounts in one currency (both sides are equal: exact amounts). */
export interface PushedAmount {
  currency: string;
  amount: string;
  pairs: number;
}

/**
 * Creates the scratch table with the first pass's pairs of one-to-one keys. Runs on its own pooled connection in
 * autocommit: the record streams, on other connections, must see the table.
 */
export async function pushDownFirstPass(
  pool: pg.Pool,
  job: { id: string; leftSourceId: string; rightSourceId: string },
  rules: RuleSet,
): Promise<PushdownResult> {
  // CREATE TABLE AS takes no bind parameters: what is inlined must be uuids and an integer, nothing else.
  if (![job.id, job.leftSourceId, job.rightSourceId].every(isId) || !Number.isInteger(rules.maxDateSpanDays)) {
    throw new Error("invalid job for the exact pushdown");
  }
  const table = pairsTable(job.id);
  const key = pushableKey(rules.passes[0]!)!;
  const side = (parameter: string) => `
    SELECT id, booked_date, amount, currency${key.text.map((c) => `, "${c}"`).join("")}
    FROM records WHERE data_source_id = ${parameter}::uuid ${key.text.map((c) => `AND "${c}" <> ''`).join(" ")}`;
  const sameKey = (a: string, b: string) => key.columns.map((c) => `${a}."${c}" = ${b}."${c}"`).join(" AND ");
  // No other record of the same source holds the key (a far one too: it still makes the key repeated).
  const alone = (alias: string, parameter: string) =>
    `NOT EXISTS (SELECT 1 FROM records o WHERE o.data_source_id = ${parameter}::uuid AND ${sameKey("o", alias)} AND o.id <> ${alias}.id)`;
  const client = await pool.connect();
  try {
    await client.query("SET statement_timeout = 0");
    await client.query("SET work_mem = '256MB'");
    // Bulk joins only: right after an upload the planner may believe a source is nearly empty and pick a nested
    // loop over two aggregates, which at 30,000 records takes minutes instead of milliseconds.
    await client.query("SET enable_nestloop = off");
    await client.query("SET jit = off");
    await client.query(`DROP TABLE IF EXISTS ${table}`);
    const { rowCount: made } = await client.query(
      // A key held by exactly one record on each side: the join on the key, less the records whose key another
      // record of their own source repeats. Three hash joins that PostgreSQL runs in parallel (a GROUP BY over the
      // joined rows, which this replaced, sorted and aggregated them on one core: 0.8 s more at 1M x 1M).
      `CREATE UNLOGGED TABLE ${table} AS
       SELECT row_number() OVER () AS seq, l.id AS left_id, r.id AS right_id, r.booked_date - l.booked_date AS lag,
         l.amount, l.currency
       FROM (${side("$1")}) l JOIN (${side("$2")}) r ON ${sameKey("l", "r")}
       WHERE abs(r.booked_date - l.booked_date) <= $3::int AND ${alone("l", "$1")} AND ${alone("r", "$2")}`.replace(/\$(\d)/g, (_, n: string) => [`'${job.leftSourceId}'`, `'${job.rightSourceId}'`, String(rules.maxDateSpanDays)][Number(n) - 1]!),
    );
    // Pairs a reviewer rejected are left to the engine, which will not pair them (exceptions/rejected-pairs.ts).
    const rejected = await dropRejectedPushedPairs(pool, table, job);
    // Not analyzed (0.14 s at 882,000 pairs): the record streams that anti-join on it rule out the plans that would
    // need its statistics to be avoided (record-stream.ts).
    return { table, hits: [(made ?? 0) - rejected] };
  } catch (error) {
    await client.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
    throw error;
  } finally {
    await client.query("RESET statement_timeout; RESET work_mem; RESET enable_nestloop; RESET jit").catch(() => {});
    client.release();
  }
}

/**
 * Copies the pushed-down pairs into match_groups on the job's transaction. Read in the table's order, which is
 * seq order (ids ascending: appended to the primary key) unless a synchronized scan starts midway; not sorted, which
 * cost 0.5 s at 882,000 pairs.
 */
export function insertPushedGroups(
  writer: pg.PoolClient,
  table: string,
  job: { id: string; projectId: string },
  rules: RuleSet,
): Promise<unknown> {
  return writer.query(
    `INSERT INTO match_groups (id, job_id, project_id, left_record_ids, right_record_ids, kind, outcome, status, confidence,
       ambiguous, rule, pass, amount_delta, date_delta_days, duplicate_of, score_breakdown)
     SELECT ($4::text || lpad(to_hex(p.seq), 16, '0'))::uuid, $1::uuid, $2::uuid,
       ARRAY[p.left_id], ARRAY[p.right_id], 'ONE_TO_ONE', 'MATCHED', 'CONFIRMED', 1, false, $3::text, 1,
       0, p.lag, NULL, NULL
     FROM ${table} p`,
    // $4: the job id's first 64 bits as hex, the ids' prefix (job-results.ts groupIdFactory), computed once here
    // rather than for each of the pairs. The fourth group of their ids, 0000, keeps them out of the (job_id,
    // outcome, id) index: the API finds them by this range of ids (group-scan.ts).
    [job.id, job.projectId, rules.passes[0]!.name, job.id.replace(/-/g, "").slice(0, 16)],
  );
}

/**
 * The pushed-down pairs' amounts per currency, for the job summary. Not on the job's critical path: the runner asks
 * for them while the engine matches (about 0.1 s of PostgreSQL's time at 882,000 pairs).
 */
export async function pushedAmounts(pool: pg.Pool, table: string): Promise<PushedAmount[]> {
  if (!/^recon_pairs_[0-9a-f]{32}$/.test(table)) throw new Error(`not a pairs table: ${table}`);
  const { rows } = await pool.query<PushedAmount>(
    `SELECT currency, sum(amount)::text AS amount, count(*)::int AS pairs FROM ${table} GROUP BY currency ORDER BY currency`,
  );
  return rows;
}

export async function dropPairsTable(pool: pg.Pool, jobId: string): Promise<void> {
  await pool.query(`DROP TABLE IF EXISTS ${pairsTable(jobId)}`);
}
