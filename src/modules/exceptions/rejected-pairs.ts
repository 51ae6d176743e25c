/**
 * Rejected pairs as the job runner uses them: the pairs a job must not propose (for the engine's `excludePair`), and
 * the removal of such pairs from the exact-key pairs PostgreSQL made (exact-pushdown.ts), whose records then go to
 * the engine like any other. A pair is named by the two records' external ids within their data sources, in either
 * orientation of a job.
 */
import type pg from "pg";

/** Separates the two external ids of a pair key. */
const SEPARATOR = "\u0000";

/** The key `excludedPairKeys` and `excludePairPredicate` agree on. */
export function pairKey(leftExternalId: string, rightExternalId: string): string {
  return leftExternalId + SEPARATOR + rightExternalId;
}

/** Keys of the rejected pairs between a job's sources, oriented as the job sees them (left first). */
export async function excludedPairKeys(pool: pg.Pool, job: { leftSourceId: string; rightSourceId: string }): Promise<string[]> {
  const { rows } = await pool.query<{ l: string; r: string }>(
    `SELECT left_external_id AS l, right_external_id AS r FROM rejected_pairs WHERE left_source_id = $1 AND right_source_id = $2
     UNION ALL
     SELECT right_external_id, left_external_id FROM rejected_pairs WHERE left_source_id = $2 AND right_source_id = $1`,
    [job.leftSourceId, job.rightSourceId],
  );
  return rows.map((row) => pairKey(row.l, row.r));
}

/** The engine's `excludePair` for these keys (undefined when there are none: the engine then checks nothing). */
export function excludePairPredicate(keys: readonly string[] | undefined): ((left: { externalId: string }, right: { externalId: string }) => boolean) | undefined {
  if (!keys?.length) return undefined;
  const set = new Set(keys);
  return (left, right) => set.has(pairKey(left.externalId, right.externalId));
}

/**
 * Deletes rejected pairs from a job's scratch table of pushed-down pairs (`table` is a name the runner made), on a
 * connection of its own with the planner's defaults: from the few rejected pairs through the (data_source_id,
 * external_id) index to the scratch table. Nothing runs beyond one index probe when the sources have none.
 * Returns how many pairs it deleted.
 */
export async function dropRejectedPushedPairs(pool: pg.Pool, table: string, job: { leftSourceId: string; rightSourceId: string }): Promise<number> {
  const { rows } = await pool.query(
    `SELECT 1 FROM rejected_pairs WHERE (left_source_id = $1 AND right_source_id = $2) OR (left_source_id = $2 AND right_source_id = $1) LIMIT 1`,
    [job.leftSourceId, job.rightSourceId],
  );
  if (rows.length === 0) return 0;
  const oriented = (from: string, to: string, swap: boolean) => `
    SELECT ${swap ? "r.id, l.id" : "l.id, r.id"} FROM rejected_pairs x
    JOIN records l ON l.data_source_id = x.left_source_id AND l.external_id = x.left_external_id
    JOIN records r ON r.data_source_id = x.right_source_id AND r.external_id = x.right_external_id
    WHERE x.left_source_id = ${from} AND x.right_source_id = ${to}`;
  const { rowCount } = await pool.query(
    `DELETE FROM ${table} p USING (${oriented("$1::uuid", "$2::uuid", false)} UNION ALL ${oriented("$2::uuid", "$1::uuid", true)}) AS k(left_id, right_id)
     WHERE p.left_id = k.left_id AND p.right_id = k.right_id`,
    [job.leftSourceId, job.rightSourceId],
  );
  return rowCount ?? 0;
}
