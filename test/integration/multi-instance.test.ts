/**
 * The production layout in small: two API instances (no job workers) and one worker process, sharing one
 * PostgreSQL and one Redis. A user signs in on A and is recognized on B; an answer cached on both is invalidated
 * on both by a write on A; a job started on A is run by the worker process — woken by A's queue, as the worker
 * polls the queue only hourly here — and followed to the end by a subscription on B. (That a worker process's job
 * events invalidate an API instance's cache is tested in reconcile-crash.test.ts, where it is deterministic:
 * without Redis the invalidation is applied before the subscription re-reads the job.)
 */
import type { ChildProcess } from "node:child_process";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { afterAll, beforeAll, expect, it } from "vitest";
import { COLUMN_MAPPING, generateFiles } from "../../bench/reconcile-data.js";
import { ok, startTestApp, type TestApp, type TestUser } from "../helpers/app.js";
import { startWorkerProcess, uploadCsv } from "../helpers/jobs.js";
import { startTestRedis, type TestRedis } from "../helpers/redis.js";

let redis: TestRedis;
let a: TestApp;
let b: TestApp;
let worker: ChildProcess | undefined;
let analyst: TestUser;

beforeAll(async () => {
  redis = await startTestRedis();
  const env = { REDIS_URL: redis.url, RESPONSE_CACHE_NAMESPACE: `multi-${process.pid}`, RECON_WORKERS: "0" };
  a = await startTestApp(env);
  b = await startTestApp(env, { database: a.db });
  // An hour between polls: the job below reaches the worker only if A's queueing wakes it (queue.ts).
  worker = await startWorkerProcess(a.db.url, { RECON_QUEUE_POLL_SECONDS: "3600" });
  analyst = await a.createUser("ANALYST");
});

afterAll(async () => {
  if (worker && worker.exitCode === null) worker.kill("SIGKILL");
  await b?.close();
  await a?.close();
  await redis?.kill();
});

it("signs in on one instance and is known on the other; a write on one invalidates what both cached", async () => {
  expect(ok(await b.graphql("{ me { id } }", {}, analyst.token)).me.id).toBe(analyst.id);
  const projectId = ok(await a.graphql(`mutation { createProject(input: { name: "Shared" }) { id } }`, {}, analyst.token)).createProject.id;
  const query = `query($id: ID!) { project(id: $id) { name } }`;
  for (const app of [a, b]) await app.graphql(query, { id: projectId }, analyst.token);
  expect((await b.graphql(query, { id: projectId }, analyst.token)).headers.get("x-cache")).toBe("HIT");
  ok(await a.graphql(`mutation($id: ID!) { updateProject(id: $id, input: { name: "Renamed" }) { id } }`, { id: projectId }, analyst.token));
  // Pub/sub delivery to B is an event: wait until both instances have applied every invalidation either made.
  const target = Math.max(a.app.container.cache.sequence, b.app.container.cache.sequence);
  await Promise.all([a.app.container.cache.whenSeen(target), b.app.container.cache.whenSeen(target)]);
  for (const app of [a, b]) expect(ok(await app.graphql(query, { id: projectId }, analyst.token)).project.name).toBe("Renamed");
});

it("runs a job started on A in the worker process at once (woken, not polled), followed to the end by a subscription on B", async () => {
  const projectId = ok(await a.graphql(`mutation { createProject(input: { name: "Jobs" }) { id } }`, {}, analyst.token)).createProject.id;
  const source = async (name: string) =>
    ok(await a.graphql("mutation($p: ID!, $n: String!, $m: JSON) { createDataSource(input: { projectId: $p, name: $n, columnMapping: $m }) { id } }", { p: projectId, n: name, m: COLUMN_MAPPING }, analyst.token))
      .createDataSource.id as string;
  const [ledger, bank] = [await source("Ledger"), await source("Bank")];
  const files = generateFiles(2000, 3);
  await uploadCsv(a, analyst.token, ledger, files.ledger);
  await uploadCsv(b, analyst.token, bank, files.bank);

  const jobQuery = `query($id: ID!) { reconciliationJob(id: $id) { status matchedCount } }`;
  const jobId = ok(
    await a.graphql(`mutation($i: StartReconciliationInput!) { startReconciliation(input: $i) { id } }`, { i: { projectId, leftSourceId: ledger, rightSourceId: bank } }, analyst.token),
  ).startReconciliation.id;
  const client = createClient({ url: b.url.replace(/^http/, "ws"), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${analyst.token}` }, retryAttempts: 0 });
  const statuses: string[] = [];
  try {
    for await (const result of client.iterate<{ jobProgress: { status: string } }>({ query: `subscription($id: ID!) { jobProgress(jobId: $id) { status } }`, variables: { id: jobId } })) {
      statuses.push(result.data!.jobProgress.status);
    }
  } finally {
    await client.dispose();
  }
  expect(statuses.at(-1)).toBe("COMPLETED");
  for (const app of [a, b]) {
    const job = ok(await app.graphql(jobQuery, { id: jobId }, analyst.token)).reconciliationJob;
    expect(job.status).toBe("COMPLETED");
    expect(job.matchedCount).toBeGreaterThan(1500);
  }
});
