/**
 * The response cache of several instances without Redis (no REDIS_URL: each has only its in-process layer): their
 * writes reach each other over PostgreSQL NOTIFY (queue/job-events.ts), so no instance serves an answer another
 * instance's write made stale. Two cached instances and an uncached one (`RESPONSE_CACHE=off`, the truth) share
 * one database; the game of random steps (helpers/cache-coherence.ts) compares them after every write.
 */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { COLUMN_MAPPING } from "../../bench/reconcile-data.js";
import { ok, startTestApp, type TestApp } from "../helpers/app.js";
import { comparable, playCoherenceGame } from "../helpers/cache-coherence.js";
import { startWorkerProcess } from "../helpers/jobs.js";

let a: TestApp;
let b: TestApp;
let truth: TestApp;
let worker: ChildProcess | undefined;

beforeAll(async () => {
  a = await startTestApp();
  b = await startTestApp({}, { database: a.db });
  truth = await startTestApp({ RESPONSE_CACHE: "off" }, { database: a.db });
}, 60_000);

afterAll(async () => {
  if (worker && worker.exitCode === null) worker.kill("SIGKILL");
  await truth?.close();
  await b?.close();
  await a?.close();
});

/** Resolves once `app` has heard (and so applied) another process's change carrying `tag`. */
function hears(app: TestApp, tag: string): Promise<void> {
  return new Promise((resolve) => {
    const stop = app.app.container.jobEvents.onPeerChange((change) => {
      if ("tags" in change && change.tags.includes(tag)) {
        stop();
        resolve();
      }
    });
  });
}

let barriers = 0;
/**
 * Waits until each cached instance has applied every write the others made so far: each instance announces a
 * marker write, and PostgreSQL delivers notifications in commit order, so a marker heard means every earlier
 * write of its sender was heard before it.
 */
async function settled(): Promise<void> {
  barriers += 1;
  const heard: Promise<void>[] = [];
  for (const [name, from] of [["a", a], ["b", b], ["truth", truth]] as const) {
    const tag = `Barrier:${barriers}:${name}`;
    for (const to of [a, b]) if (to !== from) heard.push(hears(to, tag));
    await from.app.container.database.changes.wrote([tag], "test");
  }
  await Promise.all(heard);
}

const PROJECT = "query Project($id: ID!) { project(id: $id) { id name } }";

it("after every step, every cached answer equals a fresh uncached execution (1,000 steps)", async () => {
  const { differences, compared } = await playCoherenceGame({ a, b, truth, seed: 20261124, steps: 1000, settled });
  expect(differences).toEqual([]);
  // The run must have exercised the cache, not bypassed it.
  const stats = ok(await a.graphql<{ cacheStats: { hitRate: number; redis: string } }>("{ cacheStats { hitRate redis } }", {}, a.admin.token));
  expect(stats.cacheStats.redis).toBe("NOT_CONFIGURED");
  expect(stats.cacheStats.hitRate).toBeGreaterThan(0.3);
  expect(compared).toBeGreaterThan(1000);
}, 600_000);

it("drops on B what a write on A changed, and what an ADMIN's flush on A emptied", async () => {
  const analyst = await a.createUser("ANALYST");
  const id = ok(await a.graphql<{ createProject: { id: string } }>(`mutation { createProject(input: { name: "Before" }) { id } }`, {}, analyst.token)).createProject.id;
  await settled();
  await b.graphql(PROJECT, { id }, analyst.token);
  expect((await b.graphql(PROJECT, { id }, analyst.token)).headers.get("x-cache")).toBe("HIT");

  ok(await a.graphql(`mutation($id: ID!) { updateProject(id: $id, input: { name: "After" }) { id } }`, { id }, analyst.token));
  await settled();
  const renamed = await b.graphql<{ project: { name: string } }>(PROJECT, { id }, analyst.token);
  expect(renamed.headers.get("x-cache")).toBe("MISS");
  expect(ok(renamed).project.name).toBe("After");
  expect((await b.graphql(PROJECT, { id }, analyst.token)).headers.get("x-cache")).toBe("HIT");

  ok(await a.graphql("mutation { flushResponseCache }", {}, a.admin.token));
  await settled();
  expect((await b.graphql(PROJECT, { id }, analyst.token)).headers.get("x-cache")).toBe("MISS");
});

it("hears a worker process's writes: a scheduled run's schedule is not served as it was cached", async () => {
  const analyst = await a.createUser("ANALYST");
  const projectId = ok(await a.graphql<{ createProject: { id: string } }>(`mutation { createProject(input: { name: "Scheduled" }) { id } }`, {}, analyst.token)).createProject.id;
  const source = async (name: string) =>
    ok(await a.graphql<{ createDataSource: { id: string } }>("mutation($p: ID!, $n: String!, $m: JSON) { createDataSource(input: { projectId: $p, name: $n, columnMapping: $m }) { id } }", { p: projectId, n: name, m: COLUMN_MAPPING }, analyst.token)).createDataSource.id;
  const [left, right] = [await source("Ledger"), await source("Bank")];
  ok(await a.graphql("mutation($p: ID!, $l: ID!, $r: ID!) { setReconciliationSchedule(projectId: $p, input: { leftSourceId: $l, rightSourceId: $r, cron: \"0 3 * * *\" }) { cron } }", { p: projectId, l: left, r: right }, analyst.token));
  // Time passes (the clock is the outside world): the schedule is due.
  const db = new pg.Client({ connectionString: a.db.url });
  await db.connect();
  await db.query("UPDATE reconciliation_schedules SET next_run_at = now() - interval '1 minute' WHERE project_id = $1", [projectId]);
  await db.end();
  const schedule = "query($p: ID!) { project(id: $p) { reconciliationSchedule { nextRunAt lastRunAt lastJob { id } lastSkipReason } } }";
  await a.graphql(schedule, { p: projectId }, analyst.token);
  expect((await a.graphql(schedule, { p: projectId }, analyst.token)).headers.get("x-cache")).toBe("HIT");

  // The instances run no jobs (RECON_WORKERS=0): the scheduler's tick is worked by a worker process, which has no
  // response cache and no Redis, and tells the instances what it wrote.
  worker = await startWorkerProcess(a.db.url);
  const heard = hears(a, `Project:${projectId}:schedule`);
  await a.app.container.queue.send(a.app.container.scheduleTickTask, {});
  await heard;
  const after = await a.graphql(schedule, { p: projectId }, analyst.token);
  expect(after.headers.get("x-cache")).toBe("MISS");
  expect(comparable(after)).toEqual(comparable(await truth.graphql(schedule, { p: projectId }, analyst.token)));
  expect(new Date(ok(after).project.reconciliationSchedule.nextRunAt).getTime()).toBeGreaterThan(Date.now());
  worker.kill("SIGTERM");
  await once(worker, "exit");
}, 60_000);

it("bypasses itself while it cannot hear the others, and starts afresh once it can", async () => {
  const analyst = await b.createUser("ANALYST");
  const id = ok(await b.graphql<{ createProject: { id: string } }>(`mutation { createProject(input: { name: "Heard" }) { id } }`, {}, analyst.token)).createProject.id;
  await b.graphql(PROJECT, { id }, analyst.token);
  expect((await b.graphql(PROJECT, { id }, analyst.token)).headers.get("x-cache")).toBe("HIT");

  // Every instance's listening connection is cut (as a PostgreSQL restart or a network fault would): each reconnects.
  const cache = b.app.container.cache;
  const deaf = cache.whenDegraded(true);
  const admin = new pg.Client({ connectionString: a.db.url });
  await admin.connect();
  try {
    const { rowCount } = await admin.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'recon-job-events' AND datname = current_database()",
    );
    expect(rowCount).toBeGreaterThanOrEqual(3);
  } finally {
    await admin.end();
  }
  await deaf; // a write another instance made meanwhile would go unheard: nothing is served from the cache
  expect(cache.stats().entries).toBe(0);
  await cache.whenDegraded(false);
  await Promise.all([a, truth].map((app) => app.app.container.jobEvents.ready()));
  // Listening again: what it cached before is gone (an invalidation may have been missed), and it caches anew.
  expect((await b.graphql(PROJECT, { id }, analyst.token)).headers.get("x-cache")).toBe("MISS");
  expect((await b.graphql(PROJECT, { id }, analyst.token)).headers.get("x-cache")).toBe("HIT");
  await settled();
});
