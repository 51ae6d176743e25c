/**
 * Helpers of the reconciliation tests: an app with a project of two uploaded sources, a CSV uploaded through the
 * real multipart protocol, a job followed over graphql-ws, and a worker process (`npm run worker`'s entry) or server process (`npm start`'s) started on a test
 * database.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { createClient } from "graphql-ws";
import pg from "pg";
import { expect } from "vitest";
import WebSocket from "ws";
import { COLUMN_MAPPING } from "../../bench/reconcile-data.js";
import { ok, startTestApp, type GraphQLResponse, type TestApp, type TestUser } from "./app.js";

/** Uploads `csv` into data source `source` of `app` (GraphQL multipart request) and expects it COMPLETED. */
export async function uploadCsv(app: TestApp, token: string, source: string, csv: string, name = "file.csv"): Promise<void> {
  const form = new FormData();
  form.append("operations", JSON.stringify({ query: `mutation($s: ID!, $f: Upload!) { uploadDataSourceFile(dataSourceId: $s, file: $f) { status } }`, variables: { s: source, f: null } }));
  form.append("map", JSON.stringify({ 0: ["variables.f"] }));
  form.append("0", new Blob([csv], { type: "text/csv" }), name);
  const response = await fetch(app.url, { method: "POST", headers: { authorization: `Bearer ${token}`, "apollo-require-preflight": "true" }, body: form });
  const body = (await response.json()) as GraphQLResponse;
  expect(body.errors).toBeUndefined();
  expect(body.data!.uploadDataSourceFile.status).toBe("COMPLETED");
}

/** A job as `jobProgress` delivers it. */
export interface JobState {
  status: string;
  phase: string;
  processed: number;
  attempts: number;
}

/**
 * Follows job `jobId` over graphql-ws, as `token`'s viewer, until it finishes or `until` holds for a state; resolves
 * with every state delivered.
 */
export async function followJob(app: TestApp, token: string, jobId: string, until: (job: JobState) => boolean = () => false): Promise<JobState[]> {
  const client = createClient({ url: app.url.replace(/^http/, "ws"), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  const states: JobState[] = [];
  try {
    for await (const result of client.iterate<{ jobProgress: JobState }>({
      query: `subscription($id: ID!) { jobProgress(jobId: $id) { status phase processed attempts } }`,
      variables: { id: jobId },
    })) {
      states.push(result.data!.jobProgress);
      if (until(result.data!.jobProgress)) break;
    }
  } finally {
    await client.dispose();
  }
  return states;
}

/** Spawns `entry` (a process of recon's) with `env`, its stdout and stderr piped (`stderr`) or passed on. */
function spawnProcess(entry: string, env: Record<string, string>, stderr: "pipe" | "inherit" = "inherit"): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", entry], {
    cwd: resolve(import.meta.dirname, "../.."),
    env: { ...process.env, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", stderr],
  });
}

/** A worker process (`npm run worker`'s entry) with `env`, its stderr piped: for tests of how it fails to start. */
export function spawnWorker(env: Record<string, string>): ChildProcess {
  return spawnProcess("src/cli/worker.ts", env, "pipe");
}

/** Starts `entry` with `env`; resolves once a line of its output includes `ready`. */
async function startProcess(entry: string, env: Record<string, string>, ready: string): Promise<ChildProcess> {
  const child = spawnProcess(entry, env);
  for await (const line of createInterface({ input: child.stdout! })) if (line.includes(ready)) break;
  // Keep reading its output, or its writes would block once the pipe is full.
  child.stdout!.resume();
  return child;
}

/** Starts a worker process on `databaseUrl`; resolves once it says it is taking jobs. */
export function startWorkerProcess(databaseUrl: string, env: Record<string, string> = {}): Promise<ChildProcess> {
  return startProcess("src/cli/worker.ts", { DATABASE_URL: databaseUrl, ...env }, "taking reconciliation jobs");
}

/** Starts a server process on `databaseUrl` (any port, no Redis); resolves once it is ready. */
export function startServerProcess(databaseUrl: string, env: Record<string, string> = {}): Promise<ChildProcess> {
  return startProcess("src/main.ts", { DATABASE_URL: databaseUrl, PORT: "0", REDIS_URL: "", RECON_JWT_SECRET: "a-test-secret-that-is-long-enough-123456", ...env }, "recon is ready");
}

/** An app that runs no job itself, and an analyst's project whose two data sources hold a ledger and a bank file. */
export interface JobsFixture {
  t: TestApp;
  /** A small pool on the app's database, for the tests' own looks at it. */
  db: pg.Pool;
  analyst: TestUser;
  projectId: string;
  ledgerId: string;
  bankId: string;
}

/**
 * Starts the app (RECON_WORKERS=0: jobs run only where a test runs them), creates project `name` with data
 * sources "Ledger" and "Bank" (the bench's column mapping) and uploads `files` into them.
 */
export async function startJobsFixture(name: string, files: { ledger: string; bank: string }): Promise<JobsFixture> {
  const t = await startTestApp({ RECON_WORKERS: "0", LOG_LEVEL: "error" });
  const db = new pg.Pool({ connectionString: t.db.url, max: 2 });
  const analyst = await t.createUser("ANALYST");
  const projectId = ok(await t.graphql("mutation($n: String!) { createProject(input: { name: $n }) { id } }", { n: name }, analyst.token)).createProject.id as string;
  const source = async (source: string) =>
    ok(await t.graphql("mutation($p: ID!, $n: String!, $m: JSON) { createDataSource(input: { projectId: $p, name: $n, columnMapping: $m }) { id } }", { p: projectId, n: source, m: COLUMN_MAPPING }, analyst.token))
      .createDataSource.id as string;
  const [ledgerId, bankId] = [await source("Ledger"), await source("Bank")];
  await uploadCsv(t, analyst.token, ledgerId, files.ledger);
  await uploadCsv(t, analyst.token, bankId, files.bank);
  return { t, db, analyst, projectId, ledgerId, bankId };
}
