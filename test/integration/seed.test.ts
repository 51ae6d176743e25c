/**
 * `npm run seed`: the demo loads into a database as a user runs it (its own process), once, and what it loads reads
 * back through the API like the data of a real job — its finished job's matches with their score breakdowns too.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ok, startTestApp, type TestApp } from "../helpers/app.js";

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
  it("loads the demo once, and its job's matches read back with their score breakdowns", async () => {
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
    const matches = ok(
      await t.graphql(
        `query($id: ID!) { reconciliationJob(id: $id) { matches(first: 100) { edges { node {
           confidence scoreBreakdown { comparator similarity weight passed detail } } } } } }`,
        { id: jobs[0].node.id },
        t.admin.token,
      ),
    ).reconciliationJob.matches.edges;
    expect(matches.length).toBeGreaterThan(0);
    for (const { node } of matches) {
      expect(node.scoreBreakdown.map((score: { comparator: string }) => score.comparator)).toEqual(["reference:exact", "currency:equal", "amount:exact"]);
      expect(node.scoreBreakdown.every((score: { passed: boolean }) => score.passed)).toBe(true);
    }
  });
});
