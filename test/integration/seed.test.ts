/**
 * `npm run seed`: the demo loads into a database as a user runs it (its own process), once, and what it loads reads
 * back through the API like the data of a real job — because a real job made it: its summary, its matches with their
 * score breakdowns, its unmatched records and the exceptions they opened.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ok, startTestApp, type TestApp } from "../helpers/app.js";
import { DEFAULT_RULE_SET } from "../../src/reconcile/rules.js";

const ROOT = join(import.meta.dirname, "../..");

let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({ LOG_LEVEL: "error" });
});
afterAll(async () => {
  await t?.close();
});

/** Runs the seed against the test database; resolves with its exit code and output. */
function seed(): Promise<{ code: number; output: string }> {
  const child = spawn(join(ROOT, "node_modules/.bin/tsx"), [join(ROOT, "src/cli/seed.ts")], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: t.db.url, LOG_LEVEL: "error" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, output }));
  });
}

describe("npm run seed", () => {
  it("loads the demo once, and its job reads back as a job the engine ran: summary, matches, unmatched records, exceptions", async () => {
    const first = await seed();
    expect(first.code, first.output).toBe(0);
    const again = await seed();
    expect(again.code, again.output).toBe(0);
    expect(again.output).toContain("Already seeded");

    const projects = ok(await t.graphql("{ projects(first: 100) { edges { node { id name } } } }", {}, t.admin.token)).projects.edges;
    const demo = projects.map((edge: { node: { id: string; name: string } }) => edge.node).filter((p: { name: string }) => p.name === "Demo: Bank vs Ledger");
    expect(demo).toHaveLength(1);
    const jobs = ok(await t.graphql("query($p: ID!) { reconciliationJobs(projectId: $p) { edges { node { id status } } } }", { p: demo[0].id }, t.admin.token))
      .reconciliationJobs.edges;
    expect(jobs.map((edge: { node: { status: string } }) => edge.node.status)).toEqual(["COMPLETED"]);
    const jobId = jobs[0].node.id as string;
    const job = ok(
      await t.graphql(
        `query($id: ID!) { reconciliationJob(id: $id) {
           matchedCount suggestedCount discrepancyCount unmatchedLeftCount unmatchedRightCount
           summary { leftRecords rightRecords autoMatchRate passes { pass name groups } phaseMillis
             outcomes { outcome groups leftRecords rightRecords amounts { currency left right } } }
           matches(first: 100) { edges { node { confidence scoreBreakdown { comparator similarity weight passed detail } } } }
           left: unmatched(side: LEFT, first: 100) { edges { node { outcome leftRecords { externalId } rightRecords { externalId } } } }
           right: unmatched(side: RIGHT, first: 100) { edges { node { outcome leftRecords { externalId } rightRecords { externalId } } } } } }`,
        { id: jobId },
        t.admin.token,
      ),
    ).reconciliationJob;

    // The summary a job stores, agreeing with the job's counts.
    const { summary } = job;
    expect(summary).toMatchObject({ leftRecords: 40, rightRecords: 40 });
    const groupsOf = (outcome: string) => summary.outcomes.find((total: { outcome: string }) => total.outcome === outcome)?.groups ?? 0;
    expect(groupsOf("MATCHED")).toBe(job.matchedCount);
    expect(groupsOf("UNMATCHED_LEFT")).toBe(job.unmatchedLeftCount);
    expect(groupsOf("UNMATCHED_RIGHT")).toBe(job.unmatchedRightCount);
    expect(summary.autoMatchRate).toBeCloseTo((2 * job.matchedCount) / 80);
    expect(summary.passes.map((hits: { name: string }) => hits.name)).toEqual(DEFAULT_RULE_SET.passes.map((pass) => pass.name));
    expect(Object.keys(summary.phaseMillis)).toContain("match");

    // 34 exact pairs; the 3 references whose amounts differ are discrepancies; fees, interest and 3 ledger entries stay unmatched.
    expect(job).toMatchObject({ matchedCount: 34, suggestedCount: 0, discrepancyCount: 3, unmatchedLeftCount: 3, unmatchedRightCount: 3 });
    const externalIds = (connection: { edges: { node: { leftRecords: { externalId: string }[]; rightRecords: { externalId: string }[] } }[] }) =>
      connection.edges.flatMap(({ node }) => [...node.leftRecords, ...node.rightRecords].map((record) => record.externalId)).sort();
    expect(externalIds(job.left)).toEqual(["BS-2026-10-0022", "BS-2026-10-0039", "BS-2026-10-0040"]);
    expect(externalIds(job.right)).toEqual(["JE-58038", "JE-58039", "JE-58040"]);

    const matches = job.matches.edges;
    expect(matches).toHaveLength(34);
    const firstPass = DEFAULT_RULE_SET.passes[0]!.comparators.map((comparator) => `${comparator.field}:${comparator.type}`);
    for (const { node } of matches) {
      expect(node.scoreBreakdown.map((score: { comparator: string }) => score.comparator)).toEqual(firstPass);
      expect(node.scoreBreakdown.every((score: { passed: boolean }) => score.passed)).toBe(true);
    }

    // Every discrepancy and unmatched record opened an exception, as a job's do.
    const exceptions = ok(
      await t.graphql(
        `query($p: ID!, $job: ID!) { exceptions(projectId: $p, filter: { jobId: $job }, first: 100) { totalCount edges { node { type status } } } }`,
        { p: demo[0].id, job: jobId },
        t.admin.token,
      ),
    ).exceptions;
    expect(exceptions.totalCount).toBe(9);
    const types = exceptions.edges.map(({ node }: { node: { type: string; status: string } }) => `${node.type} ${node.status}`).sort();
    expect(types).toEqual([...Array(3).fill("AMOUNT_MISMATCH OPEN"), ...Array(3).fill("UNMATCHED_LEFT OPEN"), ...Array(3).fill("UNMATCHED_RIGHT OPEN")]);
  });

  it("runs the demo's job when an earlier seed stopped before it could", async () => {
    const db = new pg.Pool({ connectionString: t.db.url, max: 1 });
    try {
      // What a seed stopped between its transaction and its job leaves: the demo's job QUEUED, without results.
      const { rows: [{ id: jobId }] } = await db.query<{ id: string }>(
        `SELECT j.id FROM reconciliation_jobs j JOIN projects p ON p.id = j.project_id WHERE p.name = 'Demo: Bank vs Ledger'`,
      );
      await db.query("DELETE FROM exceptions WHERE job_id = $1", [jobId]);
      await db.query("DELETE FROM match_groups WHERE job_id = $1", [jobId]);
      await db.query(`UPDATE reconciliation_jobs SET status = 'QUEUED', phase = 'queued', summary = '{}', started_at = NULL, finished_at = NULL WHERE id = $1`, [jobId]);

      const resumed = await seed();
      expect(resumed.code, resumed.output).toBe(0);
      expect(resumed.output).toContain("ran its job");
      const { rows: [job] } = await db.query(
        `SELECT status::text, summary ? 'outcomes' AS "hasOutcomes", (SELECT count(*)::int FROM match_groups WHERE job_id = $1) AS groups,
           (SELECT count(*)::int FROM exceptions WHERE job_id = $1) AS exceptions
         FROM reconciliation_jobs WHERE id = $1`,
        [jobId],
      );
      expect(job).toEqual({ status: "COMPLETED", hasOutcomes: true, groups: 43, exceptions: 9 });
    } finally {
      await db.end();
    }
  });
});
