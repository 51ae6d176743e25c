/**
 * Durable jobs: a worker process (`npm run worker`) is killed with SIGKILL in the middle of a job; another worker
 * finds the job's lock free, queues it again and runs it. The final results must equal an uninterrupted run's —
 * nothing duplicated, nothing half-written — and the job must say it took two attempts. The API instance runs
 * no worker (RECON_WORKERS=0): it only queues, as an API-only instance would.
 */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import pg from "pg";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { afterAll, beforeAll, expect, it } from "vitest";
import { generateFiles } from "../../bench/reconcile-data.js";
import { DEFAULT_RULE_SET } from "../../src/reconcile/rules.js";
import { errorCode, ok, type TestApp, type TestUser } from "../helpers/app.js";
import { startJobsFixture, startWorkerProcess } from "../helpers/jobs.js";

let t: TestApp;
let db: pg.Pool;
let analyst: TestUser;
let projectId: string;
let ledgerId: string;
let bankId: string;
const workers: ChildProcess[] = [];

/** A worker process on the test database, small blocks, quick recovery. */
async function startWorker(): Promise<ChildProcess> {
  const child = await startWorkerProcess(t.db.url, { RECON_JOB_BLOCK_RECORDS: "1000", RECON_JOB_RECOVERY_SECONDS: "1" });
  workers.push(child);
  return child;
}

/**
 * The default rules with a first pass PostgreSQL cannot run (normalized references): every record goes through the
 * engine in blocks of 1,000, so the job checkpoints many times and a kill or a cancellation lands mid-run.
 */
const ENGINE_ONLY_RULES = {
  ...DEFAULT_RULE_SET,
  passes: DEFAULT_RULE_SET.passes.map((pass, index) =>
    index === 0 ? { ...pass, comparators: pass.comparators.map((c) => (c.field === "reference" ? { ...c, type: "normalized" } : c)) } : pass,
  ),
};

async function startJob(): Promise<string> {
  return ok(
    await t.graphql(
      `mutation($input: StartReconciliationInput!) { startReconciliation(input: $input) { id } }`,
      { input: { projectId, leftSourceId: ledgerId, rightSourceId: bankId, rules: ENGINE_ONLY_RULES } },
      analyst.token,
    ),
  ).startReconciliation.id;
}

/** Follows the job over graphql-ws until it finishes, calling `onEvent` with each state. */
async function follow(jobId: string, onEvent: (job: { status: string; processed: number; attempts: number }) => void = () => {}) {
  const client = createClient({ url: t.url.replace(/^http/, "ws"), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${analyst.token}` }, retryAttempts: 0 });
  const states: { status: string; processed: number; attempts: number }[] = [];
  try {
    for await (const result of client.iterate<{ jobProgress: { status: string; processed: number; attempts: number } }>({
      query: `subscription($id: ID!) { jobProgress(jobId: $id) { status processed attempts } }`,
      variables: { id: jobId },
    })) {
      states.push(result.data!.jobProgress);
      onEvent(result.data!.jobProgress);
    }
  } finally {
    await client.dispose();
  }
  return states;
}

async function groupsOf(jobId: string): Promise<string[]> {
  const { rows } = await db.query<{ key: string }>(
    `SELECT g.outcome::text || '|' || coalesce((SELECT string_agg(r.external_id, ',' ORDER BY r.external_id) FROM records r WHERE r.id = ANY(g.left_record_ids)), '')
       || '|' || coalesce((SELECT string_agg(r.external_id, ',' ORDER BY r.external_id) FROM records r WHERE r.id = ANY(g.right_record_ids)), '') AS key
     FROM match_groups g WHERE g.job_id = $1`,
    [jobId],
  );
  return rows.map((row) => row.key).sort();
}

beforeAll(async () => {
  ({ t, db, analyst, projectId, ledgerId, bankId } = await startJobsFixture("Crash", generateFiles(30_000, 11)));
});

afterAll(async () => {
  for (const worker of workers) if (worker.exitCode === null && worker.signalCode === null) worker.kill("SIGKILL");
  await db?.end();
  await t?.close();
});

async function cancel(jobId: string) {
  return t.graphql(`mutation($id: ID!) { cancelReconciliation(jobId: $id) { status } }`, { id: jobId }, analyst.token);
}

async function groupCount(jobId: string): Promise<number> {
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM match_groups WHERE job_id = $1`, [jobId]);
  return rows[0].n;
}

it("cancels a queued job (no worker runs yet): it never runs", async () => {
  const jobId = await startJob();
  expect(ok(await cancel(jobId)).cancelReconciliation.status).toBe("CANCELLED");
  expect((await follow(jobId)).map((state) => state.status)).toEqual(["CANCELLED"]);
  expect(errorCode(await cancel(jobId))).toBe("BAD_USER_INPUT");
});

it("a job whose worker is killed mid-run is run again by another worker, with the results of an uninterrupted run", async () => {
  const doomed = await startWorker();
  const crashed = await startJob();
  // Cached by the API instance now; the job's later changes are written by worker processes, which have no cache.
  const jobQuery = `query($id: ID!) { reconciliationJob(id: $id) { status attempts matchedCount } }`;
  const early = await t.graphql(jobQuery, { id: crashed }, analyst.token);
  expect(early.data!.reconciliationJob.matchedCount).toBe(0);
  let killed = false;
  const states = await follow(crashed, (job) => {
    if (!killed && job.status === "RUNNING" && job.processed > 0) {
      killed = true;
      doomed.kill("SIGKILL");
      // The replacement finds the job's lock free once the killed worker's connections are gone.
      void once(doomed, "exit").then(() => startWorker());
    }
  });
  expect(killed).toBe(true);
  const final = states.at(-1)!;
  expect(final.status).toBe("COMPLETED");
  expect(final.attempts).toBe(2);
  // It was seen running, then (after the kill) queued again or restarted from the beginning.
  const restarted = states.findIndex((state, i) => i > 0 && state.processed < states[i - 1]!.processed);
  expect(restarted).toBeGreaterThan(0);

  // The API instance's cache heard the workers' job events: it answers the finished job, not what it cached.
  const late = await t.graphql(jobQuery, { id: crashed }, analyst.token);
  expect(late.data!.reconciliationJob).toMatchObject({ status: "COMPLETED", attempts: 2 });
  expect(late.data!.reconciliationJob.matchedCount).toBeGreaterThan(0);

  const reference = await startJob();
  expect((await follow(reference)).at(-1)!.status).toBe("COMPLETED");
  const [afterCrash, uninterrupted] = [await groupsOf(crashed), await groupsOf(reference)];
  expect(afterCrash.length).toBeGreaterThan(30_000);
  expect(afterCrash).toEqual(uninterrupted);
  const { rows } = await db.query(
    `SELECT count(*)::int AS slots, count(DISTINCT id)::int AS ids FROM (SELECT unnest(left_record_ids || right_record_ids) AS id FROM match_groups WHERE job_id = $1) x`,
    [crashed],
  );
  expect(rows[0].slots).toBe(rows[0].ids);
});

it("stops a running job when cancelled and keeps nothing it computed", async () => {
  // 60,000 records in blocks of 1,000: the worker checkpoints (and notices cancellation) many times before it
  // could finish, so the cancellation lands while it runs.
  const jobId = await startJob();
  let cancelled = false;
  const states = await follow(jobId, (job) => {
    if (!cancelled && job.status === "RUNNING" && job.processed > 0) {
      cancelled = true;
      void cancel(jobId);
    }
  });
  expect(cancelled).toBe(true);
  expect(states.at(-1)!.status).toBe("CANCELLED");
  expect(states.at(-1)!.processed).toBeLessThan(60_000);
  expect(await groupCount(jobId)).toBe(0);
  // The worker let go of the cancelled job (its COPY aborted, its transaction rolled back, its lock freed): it runs
  // the next one. (A ROLLBACK queued behind the open COPY used to leave it stuck for good.)
  const next = await startJob();
  expect((await follow(next)).at(-1)!.status).toBe("COMPLETED");
  expect(await groupCount(next)).toBeGreaterThan(30_000);
});
