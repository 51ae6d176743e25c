/**
 * No N+1, measured: list operations run a fixed number of SQL statements whatever the page size, and the
 * batched counts agree with a direct count of every row.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedBulk } from "../../bench/seed-bulk.js";
import { ok, startTestApp, type TestApp, type TestUser } from "../helpers/app.js";

let t: TestApp;
let pool: pg.Pool;
let analyst: TestUser;

beforeAll(async () => {
  // Statements of executions, not of cache hits.
  t = await startTestApp({ RESPONSE_CACHE: "off" });
  pool = new pg.Pool({ connectionString: t.db.url, max: 2 });
  await seedBulk(pool, { users: 300, projects: 600, jobs: 3000, dataSources: 1800 });
  // A non-admin who owns some projects and belongs to others.
  analyst = await t.createUser("ANALYST");
  await pool.query("UPDATE projects SET owner_id = $1 WHERE id IN (SELECT id FROM projects ORDER BY created_at DESC LIMIT 30)", [analyst.id]);
  await pool.query(
    `INSERT INTO project_members (project_id, user_id, role)
     SELECT id, $1, 'ANALYST' FROM projects ORDER BY created_at DESC OFFSET 30 LIMIT 120`,
    [analyst.id],
  );
});
afterAll(async () => {
  await pool?.end();
  await t?.close();
});

const projectList = `query ProjectList($first: Int!) {
  projects(first: $first) { edges { node { id owner { name } jobCount dataSourceCount } } }
}`;

async function statements(query: string, variables: Record<string, unknown>, token: string) {
  const response = await t.graphql(query, variables, token);
  ok(response);
  return { data: response.data as any, statements: response.extensions?.sqlStatements as number };
}

describe("statements per operation", () => {
  it.each([
    ["admin", () => t.admin.token],
    ["analyst", () => analyst.token],
  ])("projects(first: 10 | 100) with owner and counts as %s: at most 4, the same for both sizes", async (_, token) => {
    const ten = await statements(projectList, { first: 10 }, token());
    const hundred = await statements(projectList, { first: 100 }, token());
    expect(ten.data.projects.edges).toHaveLength(10);
    expect(hundred.data.projects.edges).toHaveLength(100);
    expect(hundred.statements).toBeLessThanOrEqual(4);
    expect(hundred.statements).toBe(ten.statements);
  });

  it("selecting totalCount on the first page costs no extra statement", async () => {
    const query = projectList.replace("projects(first: $first) {", "projects(first: $first) { totalCount");
    const result = await statements(query, { first: 100 }, t.admin.token);
    expect(result.statements).toBeLessThanOrEqual(4);
    expect(result.data.projects.totalCount).toBe(600);
  });

  it("users(first: 10 | 100) with projectCount: constant", async () => {
    const query = "query($first: Int!) { users(first: $first) { edges { node { id projectCount } } } }";
    const ten = await statements(query, { first: 10 }, t.admin.token);
    const hundred = await statements(query, { first: 100 }, t.admin.token);
    expect(hundred.data.users.edges).toHaveLength(100);
    expect(hundred.statements).toBeLessThanOrEqual(4);
    expect(hundred.statements).toBe(ten.statements);
  });

  it("searchProjects with owner and counts: constant", async () => {
    const query = "query($first: Int!) { searchProjects(query: \"Bank\", first: $first) { id owner { name } jobCount dataSourceCount } }";
    const ten = await statements(query, { first: 10 }, t.admin.token);
    const hundred = await statements(query, { first: 100 }, t.admin.token);
    expect(hundred.data.searchProjects.length).toBeGreaterThan(10);
    expect(hundred.statements).toBeLessThanOrEqual(4);
    expect(hundred.statements).toBe(ten.statements);
  });

  it("a page of projects with their sources, latest job, members, stats and a page of jobs each: constant", async () => {
    const query = `query($first: Int!) { projects(first: $first) { edges { node {
      dataSources { name } latestJob { id leftSource { name } createdBy { name } } members { user { name } role }
      stats { recordCount matchRate lastJob { id } } viewerRole
      jobs(first: 3) { totalCount edges { node { id status } } } } } } }`;
    const ten = await statements(query, { first: 10 }, analyst.token);
    const hundred = await statements(query, { first: 100 }, analyst.token);
    expect(hundred.data.projects.edges).toHaveLength(100);
    expect(hundred.statements).toBe(ten.statements);
  });

  it("a page of projects with their summary, schedule and reconciliation statistics: constant", async () => {
    const query = `query($first: Int!) { projects(first: $first) { edges { node {
      summary { latestAutoMatchRate openExceptions latestCompletedJob { id } }
      reconciliationSchedule { cron leftSource { name } lastJob { id } }
      stats { autoMatchRate openExceptions ruleHits { rule } exceptionsByAge { groups } autoMatchRateHistory(last: 5) { autoMatchRate job { id } }
        pairs { leftSource { name } job { id } outcomes { outcome } } } } } } }`;
    const ten = await statements(query, { first: 10 }, analyst.token);
    const hundred = await statements(query, { first: 100 }, analyst.token);
    expect(hundred.data.projects.edges).toHaveLength(100);
    expect(hundred.statements).toBe(ten.statements);
  });
});

describe("batched answers equal row-by-row truth", () => {
  it("jobCount, dataSourceCount, owner and projectCount for a whole page", async () => {
    // The newest project has no jobs and no sources: its counts must be zeros, not missing.
    ok(await t.graphql("mutation { createProject(input: { name: \"Empty\" }) { id } }", {}, t.admin.token));
    const { data } = await statements(projectList, { first: 100 }, t.admin.token);
    const ids = data.projects.edges.map((edge: any) => edge.node.id);
    const { rows } = await pool.query(
      `SELECT p.id, u.name AS owner,
              (SELECT count(*) FROM reconciliation_jobs j WHERE j.project_id = p.id)::int AS jobs,
              (SELECT count(*) FROM data_sources d WHERE d.project_id = p.id)::int AS sources
       FROM projects p JOIN users u ON u.id = p.owner_id WHERE p.id = ANY($1)`,
      [ids],
    );
    const truth = new Map(rows.map((row) => [row.id, row]));
    expect(data.projects.edges.some((edge: any) => edge.node.jobCount === 0)).toBe(true);
    expect(data.projects.edges.some((edge: any) => edge.node.jobCount > 1)).toBe(true);
    for (const { node } of data.projects.edges) {
      const expected = truth.get(node.id);
      expect({ owner: node.owner.name, jobs: node.jobCount, sources: node.dataSourceCount }).toEqual({
        owner: expected.owner,
        jobs: expected.jobs,
        sources: expected.sources,
      });
    }
    const me = ok(await t.graphql("{ me { projectCount } }", {}, analyst.token));
    expect(me.me.projectCount).toBe(150);
  });
});
