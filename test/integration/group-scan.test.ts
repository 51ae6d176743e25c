/**
 * group-scan.ts against PostgreSQL's planner: in a table of many jobs' groups, numbered as jobs number them (pushed
 * pairs …-0000-…, outside the (job_id, outcome, id) index; the engine's …-0001-…; manual ones …-4000-…), a job's
 * pages, counts and export statements read it through index scans only — never a scan of the table or a sort of a
 * whole job — and keyset pages walk every group once in (outcome, id) order. (Small jobs in a large table: where
 * the planner's estimates are least like the job's real size.)
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { raw } from "../../src/db/sql.js";
import { EXPORT_SETTINGS, exportSelects } from "../../src/modules/exports/export-repository.js";
import { groupCountSql, groupPageSql, OUTCOME_ORDER, type GroupSelection } from "../../src/modules/jobs/group-scan.js";
import type { MatchOutcomeName } from "../../src/graphql/models.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";

const JOBS = 12;
const GROUPS = 20_000;

let db: TestDatabase;
let pool: pg.Pool;
let jobId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 2 });
  // Per job: 70% pushed pairs, 25% engine groups of every outcome, 5% manual matches.
  await pool.query(
    `INSERT INTO match_groups (id, job_id, project_id, left_record_ids, right_record_ids, kind, outcome, status, confidence, rule, pass, amount_delta)
     SELECT (left(replace(j.id::text, '-', ''), 16) || CASE WHEN n % 20 < 14 THEN '0000' WHEN n % 20 < 19 THEN '0001' ELSE '4000' END
             || lpad(to_hex(n), 12, '0'))::uuid,
       j.id, j.id, '{}', '{}', 'ONE_TO_ONE',
       CASE WHEN n % 20 < 14 OR n % 20 = 19 THEN 'MATCHED' ELSE (enum_range(NULL::"MatchOutcome"))[1 + n % 9] END::"MatchOutcome",
       'CONFIRMED', 1, 'r', 1, 0
     FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, ${JOBS})) j, generate_series(1, ${GROUPS}) n`,
  );
  await pool.query("VACUUM ANALYZE match_groups");
  jobId = (await pool.query<{ id: string }>("SELECT job_id::text AS id FROM match_groups LIMIT 1")).rows[0]!.id;
});
afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

/** Prisma's Sql as pg's text and values ($1, $2 …). */
function toQuery(statement: { strings: readonly string[]; values: readonly unknown[] }): { text: string; values: unknown[] } {
  return { text: statement.strings.reduce((text, piece, i) => `${text}$${i}${piece}`), values: [...statement.values] };
}

/** Node types of the plan, and the relations its sequential scans read. */
async function plan(text: string, values: unknown[] = [], client: pg.Pool | pg.PoolClient = pool): Promise<{ nodes: string[]; seqScans: string[] }> {
  const { rows } = await client.query(`EXPLAIN (FORMAT JSON) ${text}`, values);
  const nodes: string[] = [];
  const seqScans: string[] = [];
  const walk = (node: any) => {
    nodes.push(node["Node Type"]);
    if (node["Node Type"] === "Seq Scan") seqScans.push(node["Relation Name"]);
    for (const child of node.Plans ?? []) walk(child);
  };
  walk(rows[0]["QUERY PLAN"][0].Plan);
  return { nodes, seqScans };
}

/** Sorts in a plan that are not a Merge Append's input of at most a page (LIMIT below them). */
const wholeSorts = (nodes: string[]) => nodes.filter((node, i) => node === "Sort" && nodes[i + 2] !== "Limit" && nodes[i + 1] !== "Limit");

async function stored(outcomes: readonly MatchOutcomeName[]): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    "SELECT id::text FROM match_groups WHERE job_id = $1 AND outcome::text = ANY($2) ORDER BY outcome, id",
    [jobId, outcomes],
  );
  return rows.map((row) => row.id);
}

async function page(selection: GroupSelection, limit: number): Promise<{ id: string; outcome: MatchOutcomeName }[]> {
  const { text, values } = toQuery(groupPageSql(raw("g.id::text, g.outcome::text AS outcome"), jobId, selection, limit));
  return (await pool.query(text, values)).rows;
}

describe("a job's groups", () => {
  it("page through every group once in (outcome, id) order, whatever the outcomes asked for", async () => {
    for (const outcomes of [OUTCOME_ORDER, ["MATCHED"], ["MATCHED", "UNMATCHED_RIGHT"], ["SUGGESTED", "DUPLICATE"]] as MatchOutcomeName[][]) {
      const seen: string[] = [];
      let after: { outcome: MatchOutcomeName; id: string } | null = null;
      for (;;) {
        const rows = await page({ outcomes, after }, 97);
        seen.push(...rows.map((row) => row.id));
        if (rows.length < 97) break;
        after = rows.at(-1)!;
      }
      expect(seen).toEqual(await stored(outcomes));
      const { text, values } = toQuery(groupCountSql(jobId, { outcomes }));
      expect((await pool.query(text, values)).rows[0].n).toBe(seen.length);
    }
  });

  it("are read through indexes only: pages merge two index walks of a page each, counts and exports sort nothing", async () => {
    const afterPushed = { outcome: "MATCHED" as const, id: `${jobId.slice(0, 19)}0000-000000000500` };
    for (const selection of [{ outcomes: OUTCOME_ORDER }, { outcomes: OUTCOME_ORDER, after: afterPushed }, { outcomes: ["UNMATCHED_LEFT"] as MatchOutcomeName[] }]) {
      const { text, values } = toQuery(groupPageSql(raw("g.id"), jobId, selection, 51));
      const { nodes, seqScans } = await plan(text, values);
      expect({ seqScans, wholeSorts: wholeSorts(nodes) }).toEqual({ seqScans: [], wholeSorts: [] });
    }
    const count = toQuery(groupCountSql(jobId, { outcomes: OUTCOME_ORDER }));
    expect((await plan(count.text, count.values)).seqScans).toEqual([]);
    // The export's statements, as its transaction runs them.
    const client = await pool.connect();
    try {
      await client.query("BEGIN READ ONLY");
      for (const setting of EXPORT_SETTINGS) await client.query(setting);
      const selects = exportSelects(jobId, OUTCOME_ORDER);
      expect(selects).toHaveLength(2);
      for (const select of selects) {
        const { nodes, seqScans } = await plan(select, [], client);
        expect({ seqScans, sorts: nodes.filter((node) => node === "Sort") }).toEqual({ seqScans: [], sorts: [] });
      }
    } finally {
      await client.query("ROLLBACK");
      client.release();
    }
  });

  it("are deleted with their job, the pushed pairs too, and no other job's", async () => {
    const ids = await pool.query<{ user: string; project: string; source: string }>(
      "SELECT gen_random_uuid() AS user, gen_random_uuid() AS project, gen_random_uuid() AS source",
    );
    const { user, project, source } = ids.rows[0]!;
    await pool.query("INSERT INTO users (id, email, name, password_hash, updated_at) VALUES ($1, 'gs@recon.test', 'gs', 'x', now())", [user]);
    await pool.query("INSERT INTO projects (id, name, owner_id, updated_at) VALUES ($1, 'gs', $2, now())", [project, user]);
    await pool.query("INSERT INTO data_sources (id, project_id, name, updated_at) VALUES ($1, $2, 'gs', now())", [source, project]);
    await pool.query(
      "INSERT INTO reconciliation_jobs (id, project_id, left_source_id, right_source_id, created_by) VALUES ($1, $2, $3, $3, $4)",
      [jobId, project, source, user],
    );
    const before = (await pool.query("SELECT count(*)::int AS n FROM match_groups")).rows[0].n;
    await pool.query("DELETE FROM reconciliation_jobs WHERE id = $1", [jobId]);
    const left = await pool.query("SELECT count(*)::int AS n, count(*) FILTER (WHERE job_id = $1)::int AS mine FROM match_groups", [jobId]);
    expect(left.rows[0]).toEqual({ n: before - GROUPS, mine: 0 });
  });
});
