/**
 * Shutdown is bounded. SIGTERM reaches a worker process (`npm run worker`) or a server process (`npm start`) while
 * its job cannot finish: the job's writes wait on a lock the test holds in PostgreSQL, as they would behind any
 * statement that does not end. The process stops taking work, interrupts the job and, when the job cannot let go
 * in time, exits anyway; the job is left RUNNING (not FAILED) and another worker's recovery runs it again once its
 * connections are gone, as after a crash. The API instance runs no worker (RECON_WORKERS=0).
 */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { generateFiles } from "../../bench/reconcile-data.js";
import { ok, type TestApp, type TestUser } from "../helpers/app.js";
import { followJob, spawnWorker, startJobsFixture, startServerProcess, startWorkerProcess } from "../helpers/jobs.js";
import { freePort } from "../helpers/ports.js";

let t: TestApp;
let db: pg.Pool;
let analyst: TestUser;
let projectId: string;
let ledgerId: string;
let bankId: string;
const children: ChildProcess[] = [];

async function startJob(): Promise<string> {
  return ok(
    await t.graphql(
      `mutation($input: StartReconciliationInput!) { startReconciliation(input: $input) { id } }`,
      { input: { projectId, leftSourceId: ledgerId, rightSourceId: bankId } },
      analyst.token,
    ),
  ).startReconciliation.id;
}

async function jobStatus(jobId: string): Promise<string> {
  return (await db.query(`SELECT status::text FROM reconciliation_jobs WHERE id = $1`, [jobId])).rows[0].status;
}

/** Stops `child` with SIGTERM; resolves with its exit code. */
async function terminate(child: ChildProcess): Promise<number | null> {
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  return (await exited)[0] as number | null;
}

beforeAll(async () => {
  ({ t, db, analyst, projectId, ledgerId, bankId } = await startJobsFixture("Shutdown", generateFiles(200, 5)));
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await db?.end();
  await t?.close();
});

it.each([
  ["a worker process", startWorkerProcess],
  ["a server process", startServerProcess],
])(
  "SIGTERM ends %s whose job cannot finish; the job is run again elsewhere",
  async (_, start) => {
    const child = await start(t.db.url, { RECON_WORKERS: "1" });
    children.push(child);
    const lock = new pg.Client({ connectionString: t.db.url });
    await lock.connect();
    let jobId: string;
    try {
      await lock.query("BEGIN");
      await lock.query("LOCK TABLE match_groups IN SHARE MODE");
      jobId = await startJob();
      // Matching is done; its groups wait for the lock: the job stays in its last phase.
      await followJob(t, analyst.token, jobId, (job) => job.phase === "persist");
      // The job could not let go of its connections in time: the process exits anyway (and says so with code 1).
      expect(await terminate(child)).toBe(1);
      expect(await jobStatus(jobId)).toBe("RUNNING");
    } finally {
      await lock.query("COMMIT");
      await lock.end();
    }
    // The exited process's sessions end once PostgreSQL notices (the waiting one after the lock): its transaction
    // rolls back, its lock frees, and another worker's recovery queues the job again.
    const rescuer = await startWorkerProcess(t.db.url, { RECON_JOB_RECOVERY_SECONDS: "1" });
    children.push(rescuer);
    expect((await followJob(t, analyst.token, jobId)).at(-1)).toMatchObject({ status: "COMPLETED", attempts: 2 });
    // With nothing running, a worker stops cleanly.
    expect(await terminate(rescuer)).toBe(0);
  },
  120_000,
);

it("a worker process that cannot reach PostgreSQL says so and exits 1 (no stack trace)", async () => {
  const port = await freePort(); // nothing listens there
  const child = spawnWorker({ DATABASE_URL: `postgresql://postgres@127.0.0.1:${port}/recon` });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, "exit")) as [number];
  expect(code).toBe(1);
  expect(stderr).toBe(`recon worker: cannot reach PostgreSQL at DATABASE_URL (127.0.0.1:${port}): The database cannot be reached; retry shortly. Set DATABASE_URL, or start the server first.\n`);
});
