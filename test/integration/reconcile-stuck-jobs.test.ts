/**
 * A job must never hold its worker forever. A regex comparator that backtracks catastrophically once hung a job in
 * its engine thread (cancelling it left the thread spinning and the worker taken): patterns now run in linear
 * time, a stopped engine thread that does not answer is terminated, and a shutdown interrupts running jobs, which
 * recovery queues again. This file's jobs run on one worker of the test's own (the app runs none), whose engine
 * threads spin without end for jobs whose first pass is named "stuck" (engine-thread.ts `spinForTests`).
 */
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startEngineThread } from "../../src/modules/jobs/engine-thread.js";
import { createReconcileTask, recoverLostJobs, type ReconcileTask, type ReconcileTaskData } from "../../src/modules/jobs/reconcile-task.js";
import { errorCode, ok, type TestApp, type TestUser } from "../helpers/app.js";
import { followJob, startJobsFixture } from "../helpers/jobs.js";

let t: TestApp;
let db: pg.Pool;
let analyst: TestUser;
let projectId: string;
let ledgerId: string;
let bankId: string;
let task: ReconcileTask;

/** The auditor's rule set: a pattern that took 8 s on 80 characters on a backtracking engine. */
const AUDITOR_RULES = {
  passes: [{ name: "re", mode: "AUTO", comparators: [{ field: "currency", type: "equal" }, { field: "reference", type: "regex", pattern: "(a*a*a*a*a*a*b)", required: false }] }],
};
/** A rule set whose jobs' engine threads spin (see above). */
const STUCK_RULES = { passes: [{ name: "stuck", mode: "AUTO", comparators: [{ field: "currency", type: "equal" }] }] };

/** Five records whose references are 120 `a`s, as in the auditor's report. */
function csv(prefix: string): string {
  const rows = Array.from({ length: 5 }, (_, i) => `${prefix}${i},${100 + i}.00,EUR,2026-03-0${i + 1},${"a".repeat(120)}`);
  return ["txn_id,amount,currency,booked_at,reference", ...rows].join("\n") + "\n";
}

async function startJob(rules: object) {
  return t.graphql(
    `mutation($input: StartReconciliationInput!) { startReconciliation(input: $input) { id } }`,
    { input: { projectId, leftSourceId: ledgerId, rightSourceId: bankId, rules } },
    analyst.token,
  );
}

const jobIdOf = async (rules: object): Promise<string> => ok(await startJob(rules)).startReconciliation.id;

/** Follows the job until its engine is matching (where a stuck one stays). */
const untilMatching = (jobId: string) => followJob(t, analyst.token, jobId, (job) => job.status === "RUNNING" && job.phase === "match");

async function jobStatus(jobId: string): Promise<string> {
  return (await db.query(`SELECT status::text FROM reconciliation_jobs WHERE id = $1`, [jobId])).rows[0].status;
}

async function groupCount(jobId: string): Promise<number> {
  return (await db.query(`SELECT count(*)::int AS n FROM match_groups WHERE job_id = $1`, [jobId])).rows[0].n;
}

/** Sessions of the test database left inside a transaction (a stuck job held three). */
async function idleInTransaction(): Promise<number> {
  return (await db.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`)).rows[0].n;
}

beforeAll(async () => {
  ({ t, db, analyst, projectId, ledgerId, bankId } = await startJobsFixture("Stuck jobs", { ledger: csv("L"), bank: csv("B") }));
  const { database, jobEvents, metrics, logger, queue } = t.app.container;
  task = createReconcileTask({
    pool: database.pool,
    changes: database.changes,
    events: jobEvents,
    metrics,
    logger,
    blockRecords: 1000,
    startEngine: (data, options) => startEngineThread({ ...data, spinForTests: data.rules.passes[0]!.name === "stuck" }, options),
  });
  await queue.work(task, 1);
});

afterAll(async () => {
  await db?.end();
  await t?.close();
});

it("runs the auditor's pattern on 120-character references to completion", async () => {
  const jobId = await jobIdOf(AUDITOR_RULES);
  const final = (await followJob(t, analyst.token, jobId)).at(-1)!;
  expect(final).toMatchObject({ status: "COMPLETED", processed: 10 });
});

it("refuses a pattern the linear-time engine cannot run, naming the rule", async () => {
  const lookahead = { passes: [{ ...AUDITOR_RULES.passes[0]!, comparators: [AUDITOR_RULES.passes[0]!.comparators[0]!, { field: "reference", type: "regex", pattern: "(?=INV)(\\w+)" }] }] };
  const response = await startJob(lookahead);
  expect(errorCode(response)).toBe("BAD_USER_INPUT");
  expect(response.errors![0]!.message).toMatch(/^input\.rules: passes\[0\]\.comparators\[1\]\.pattern: cannot run in linear time: backreferences, lookahead/);
});

it("cancels a job whose engine never yields: its thread is terminated, nothing is kept, and the worker runs the next job", async () => {
  const stuck = await jobIdOf(STUCK_RULES);
  await untilMatching(stuck);
  expect(ok(await t.graphql(`mutation($id: ID!) { cancelReconciliation(jobId: $id) { status } }`, { id: stuck }, analyst.token)).cancelReconciliation.status).toBe("CANCELLED");
  // One worker: the next job runs only once the stuck one has let go of it (its thread spun on before).
  const next = await jobIdOf(AUDITOR_RULES);
  expect((await followJob(t, analyst.token, next)).at(-1)!.status).toBe("COMPLETED");
  expect(await jobStatus(stuck)).toBe("CANCELLED");
  expect(await groupCount(stuck)).toBe(0);
  expect(await idleInTransaction()).toBe(0);
});

// Last: the task stays interrupted (as in a process shutting down).
it("a shutdown interrupts a job whose engine never yields: rolled back and left RUNNING with its lock free, so recovery queues it again", async () => {
  const stuck = await jobIdOf(STUCK_RULES);
  await untilMatching(stuck);
  expect(await task.interrupt()).toBe(true);
  expect(await jobStatus(stuck)).toBe("RUNNING");
  expect(await groupCount(stuck)).toBe(0);
  expect(await idleInTransaction()).toBe(0);
  const { database, jobEvents, logger } = t.app.container;
  const sent: string[] = [];
  const queue = { send: async <Data extends object>(_: unknown, data: Data) => void sent.push((data as unknown as ReconcileTaskData).jobId) };
  expect(await recoverLostJobs({ pool: database.pool, queue, task, changes: database.changes, events: jobEvents, logger })).toEqual([stuck]);
  expect(sent).toEqual([stuck]);
  expect(await jobStatus(stuck)).toBe("QUEUED");
});
