/**
 * Where a job's match groups are found, for pages, counts and exports in (outcome, id) order. Two places:
 * - the (job_id, outcome, id) index, which holds every group except the pairs PostgreSQL made in an exact first
 *   pass (exact-pushdown.ts) — typically most of a job's groups, each an index entry its job would write for nothing;
 * - those pairs themselves, by a range of the primary key: their ids are the job's first 64 bits, then 0000, then
 *   a counter (nothing else has 0000 there: the engine's groups have 0001, manual ones 4000, random uuids 8–b).
 * A job's groups are both, in (outcome, id) order; the pairs are all MATCHED. The index's predicate is
 * `INDEXED` below, written as in the migration that made the index, so that the planner can prove a query may use
 * it.
 */
import { type Sql, and, raw, sql } from "../../db/sql.js";
import { isId } from "../../graphql/validate.js";
import type { MatchOutcomeName } from "../../graphql/models.js";
import { groupIdPrefix } from "./job-results.js";

/** Outcomes in the order PostgreSQL sorts the enum (its declaration order): pages walk the index in this order. */
export const OUTCOME_ORDER: readonly MatchOutcomeName[] = [
  "MATCHED",
  "SUGGESTED",
  "AMOUNT_MISMATCH",
  "DATE_LAG",
  "REFERENCE_MISMATCH",
  "CURRENCY_MISMATCH",
  "DUPLICATE",
  "UNMATCHED_LEFT",
  "UNMATCHED_RIGHT",
];

/** The (job_id, outcome, id) index's predicate, for alias `g`: the rows it holds. */
const INDEXED = raw(`(g.outcome <> 'MATCHED' OR substring(uuid_send(g.id) from 9 for 2) <> '\\x0000'::bytea)`);

/** The first and last possible ids of a job's pushed-down pairs (exact-pushdown.ts `insertPushedGroups`). */
export function pushedIdRange(jobId: string): { low: string; high: string } {
  if (!isId(jobId)) throw new Error(`not a job id: ${jobId}`);
  const prefix = groupIdPrefix(jobId);
  return { low: `${prefix}0000-000000000000`, high: `${prefix}0000-ffffffffffff` };
}

/** Where a page of match groups starts: after this (outcome, id). */
export interface GroupPosition {
  outcome: MatchOutcomeName;
  id: string;
}

/** Which groups of a job to read. `outcomes` must be non-empty. */
export interface GroupSelection {
  outcomes: readonly MatchOutcomeName[];
  /** Only groups of at least this confidence. */
  minConfidence?: number | null;
  after?: GroupPosition | null;
}

/** The two parts of a selection, as WHERE conditions on `match_groups g`; `pushed` is null when none can match. */
function parts(jobId: string, selection: GroupSelection): { indexed: Sql; pushed: Sql | null } {
  const ordered = OUTCOME_ORDER.filter((outcome) => selection.outcomes.includes(outcome));
  if (ordered.length === 0) throw new Error("a group selection needs outcomes");
  const { after, minConfidence = null } = selection;
  const confident = minConfidence !== null && sql`g.confidence >= ${minConfidence}`;
  const indexed = and([
    sql`g.job_id = ${jobId}::uuid`,
    INDEXED,
    after ? sql`(g.outcome, g.id) > (${after.outcome}::"MatchOutcome", ${after.id}::uuid)` : sql`g.outcome >= ${ordered[0]!}::"MatchOutcome"`,
    sql`g.outcome <= ${ordered.at(-1)!}::"MatchOutcome"`,
    ordered.length > 1 && sql`g.outcome = ANY(${ordered}::"MatchOutcome"[])`,
    confident,
  ]);
  // The pairs are MATCHED, the first outcome: a page that starts after them, or a selection without MATCHED,
  // has none of them.
  if (!ordered.includes("MATCHED") || (after && after.outcome !== "MATCHED")) return { indexed, pushed: null };
  const { low, high } = pushedIdRange(jobId);
  const pushed = and([
    after && after.id.toLowerCase() >= low ? sql`g.id > ${after.id}::uuid` : sql`g.id >= ${low}::uuid`,
    sql`g.id <= ${high}::uuid`,
    sql`g.job_id = ${jobId}::uuid`,
    sql`g.outcome = 'MATCHED'`,
    confident,
  ]);
  return { indexed, pushed };
}

/**
 * A page of a job's groups in (outcome, id) order, as `SELECT <columns> …` of alias `g`: each part walks its index
 * for at most `limit` rows, and the two are merged.
 */
export function groupPageSql(columns: Sql, jobId: string, selection: GroupSelection, limit: number): Sql {
  const { indexed, pushed } = parts(jobId, selection);
  const first = sql`(SELECT g.* FROM match_groups g WHERE ${indexed} ORDER BY g.outcome, g.id LIMIT ${limit})`;
  const from = pushed
    ? sql`(${first} UNION ALL (SELECT g.* FROM match_groups g WHERE ${pushed} ORDER BY g.id LIMIT ${limit}))`
    : first;
  return sql`SELECT ${columns} FROM ${from} g ORDER BY g.outcome, g.id LIMIT ${limit}`;
}

/** The number of a job's groups in a selection (its `after` ignored), as `SELECT … AS n`. */
export function groupCountSql(jobId: string, selection: GroupSelection): Sql {
  const { indexed, pushed } = parts(jobId, { ...selection, after: null });
  const first = sql`(SELECT count(*) FROM match_groups g WHERE ${indexed})`;
  return pushed
    ? sql`SELECT (${first} + (SELECT count(*) FROM match_groups g WHERE ${pushed}))::int AS n`
    : sql`SELECT ${first}::int AS n`;
}

/**
 * All of a job's groups with these outcomes, as the FROM items `(…) g` of statements to run one after the other,
 * each read in (g.outcome, g.id) order (a walk of its index): the pushed pairs first, then the index's groups. Their
 * concatenation is in (outcome, id) order, as the pushed pairs' ids come before the job's other ids (0000 before
 * the engine's 0001 and manual groups' 4000; only groups with random ids, as an old demo seed wrote, fall elsewhere).
 * One statement merging both would be planned as a sort of the whole job. SQL text with the values inlined (COPY
 * takes no bind parameters): the job id is checked to be a uuid, outcomes come from OUTCOME_ORDER.
 */
export function jobGroupsTexts(jobId: string, outcomes: readonly MatchOutcomeName[]): string[] {
  const { indexed, pushed } = parts(jobId, { outcomes });
  const inline = (part: Sql) => part.strings.reduce((text, piece, i) => text + literal(part.values[i - 1]) + piece);
  const from = (part: Sql) => `(SELECT g.* FROM match_groups g WHERE ${inline(part)}) g`;
  return pushed ? [from(pushed), from(indexed)] : [from(indexed)];
}

/** A checked value as a SQL literal: uuids, outcome names and arrays of them only. */
function literal(value: unknown): string {
  if (Array.isArray(value)) return `'{${value.map((item) => checked(item)).join(",")}}'`;
  return `'${checked(value)}'`;
}

function checked(value: unknown): string {
  if (typeof value === "string" && (isId(value) || (OUTCOME_ORDER as readonly string[]).includes(value))) return value;
  throw new Error(`not a value to inline: ${String(value)}`);
}
