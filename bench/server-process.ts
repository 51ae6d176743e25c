/**
 * What the benchmarks that run recon as production does share: a fresh database migrated by a separate
 * `db:migrate` process, the compiled server in a child process configured by environment, its memory read from
 * /proc, and a GraphQL client and the streaming upload route talking to it as the admin.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createReadStream, readFileSync, statSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import http from "node:http";
import { createInterface } from "node:readline";
import pg from "pg";
import { withDatabaseName } from "../src/db/database-url.js";

/**
 * How `npm run start:prod` and `npm run worker:prod` run the server and a worker process (package.json): their
 * node flags (README "Configuration" says why each), and the environment they add — glibc's allocator with two
 * arenas instead of up to eight per core (threads that allocate and free each other's buffers otherwise leave tens
 * of MB in per-thread arenas).
 */
export const PROD_NODE_ARGS = ["--enable-source-maps", "--max-semi-space-size=32", "--no-concurrent-recompilation"];
export const PROD_ENV = { MALLOC_ARENA_MAX: "2" };

export const ADMIN_EMAIL = "admin@recon.local";
export const ADMIN_PASSWORD = "bench-admin-password";

/** A field of /proc/<pid>/status in bytes (VmRSS: now, VmHWM: peak since the last reset). */
export const procStatus = (pid: number, field: "VmRSS" | "VmHWM") =>
  Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux this runs on). */
const TICKS = 100;

/** The CPU seconds process `pid` has used (all its threads, user + system), from /proc/<pid>/stat. */
export function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces, hence from the last ")"): utime and stime are 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

/** The machine's busy and total CPU seconds so far (all cores, from /proc/stat; idle and iowait are not busy). */
export function machineCpuSeconds(): { busy: number; total: number } {
  const [, ...times] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/);
  const ticks = times.slice(0, 8).map(Number);
  const total = ticks.reduce((sum, t) => sum + t, 0);
  return { busy: (total - ticks[3]! - ticks[4]!) / TICKS, total: total / TICKS };
}

/** The server's peak RSS while `run` runs: its high-water mark is reset first (Linux clear_refs 5). */
export async function withPeakRss<T>(pid: number, run: () => Promise<T>): Promise<{ result: T; peakRss: number }> {
  writeFileSync(`/proc/${pid}/clear_refs`, "5");
  const result = await run();
  return { result, peakRss: procStatus(pid, "VmHWM") };
}

export const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

/**
 * Creates database `name` on the server of DATABASE_URL (default local), builds dist/ and migrates it with
 * `db:migrate` in a process of its own (as a deployment runs them), so that the server's memory is its steady
 * state: it loads the migration engine only when something is pending. `drop()` removes the database. With
 * `reuse`, an existing database of that name is kept and only migrated (`existed` says which happened).
 */
export async function createBenchDatabase(name: string, options: { reuse?: boolean } = {}) {
  const serverUrl = withDatabaseName(process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres", "postgres");
  const url = withDatabaseName(serverUrl, name);
  // A connection per statement: bench:load restarts the server between creating and dropping.
  const onServer = async (sql: string) => {
    const admin = new pg.Client({ connectionString: serverUrl });
    await admin.connect();
    try {
      await admin.query(sql);
    } finally {
      await admin.end();
    }
  };
  // Reused (bench:reconcile's BENCH_RECONCILE_DATABASE): created on first use, migrated every time.
  let existed = false;
  if (options.reuse) {
    const admin = new pg.Client({ connectionString: serverUrl });
    await admin.connect();
    existed = (await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [name])).rowCount === 1;
    await admin.end();
  }
  if (!existed) await onServer(`CREATE DATABASE ${name}`);
  execFileSync(process.execPath, ["scripts/build.mjs"], { stdio: "ignore" });
  execFileSync(process.execPath, ["dist/src/cli/migrate.js"], { env: { ...process.env, DATABASE_URL: url }, stdio: "ignore" });
  return {
    url,
    /** Whether the database was there before (only when reused). */
    existed,
    async drop() {
      await onServer(`DROP DATABASE IF EXISTS ${name}`);
    },
  };
}

/** A benchmark that ends, however it ends (a thrown error included), takes the processes it started with it. */
function killOnExit(child: ChildProcess): void {
  const kill = () => child.kill("SIGKILL");
  process.once("exit", kill);
  child.once("exit", () => process.off("exit", kill));
}

/**
 * Starts recon (dist/src/main.js) as its own process on `databaseUrl`, configured by environment (`env` added
 * last); resolves with its pid and GraphQL URL. Every line it logs goes to `onLog` (warnings and errors are
 * printed when there is none).
 */
export async function startServer(options: {
  databaseUrl: string;
  nodeArgs?: string[];
  env?: Record<string, string>;
  onLog?: (line: string) => void;
}) {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? ["--enable-source-maps"]), "dist/src/main.js"], {
    env: {
      ...process.env, DATABASE_URL: options.databaseUrl, PORT: "0", LOG_LEVEL: "info", NODE_ENV: "development",
      RECON_ADMIN_PASSWORD: ADMIN_PASSWORD, RECON_JWT_SECRET: "bench-secret-bench-secret-bench-secret!", RECON_MAX_UPLOAD_BYTES: String(8 * 1024 ** 3), RECON_RATE_LIMIT_PER_SECOND: "0",
      ...options.env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  killOnExit(child);
  const exited = once(child, "exit").then(([code]) => {
    throw new Error(`the server exited (${code}) before it was ready`);
  });
  const ready = new Promise<string>((resolve, reject) => {
    let url: string | undefined;
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      options.onLog?.(line);
      // Lines that are not the server's JSON log (node's own tracing, --trace-gc) are only passed on.
      if (url || !line.startsWith("{")) return;
      const entry = JSON.parse(line) as { url?: string; level?: number; msg?: string };
      if (entry.url && !url) resolve((url = entry.url));
      else if ((entry.level ?? 0) >= 40 && !options.onLog) console.error(entry.msg);
    });
    lines.on("close", () => reject(new Error("the server closed its output before it was ready")));
  });
  const url = await Promise.race([ready, exited]);
  return {
    pid: child.pid!,
    url,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}

/** Starts `npm run worker`'s compiled entry (jobs only, no HTTP); resolves once it takes jobs. */
export async function startWorkerProcess(options: { databaseUrl: string; nodeArgs?: string[]; env?: Record<string, string>; onLog?: (line: string) => void }) {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? ["--enable-source-maps"]), "dist/src/cli/worker.js"], {
    env: { ...process.env, DATABASE_URL: options.databaseUrl, LOG_LEVEL: "info", NODE_ENV: "development", ...options.env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  killOnExit(child);
  const exited = once(child, "exit").then(([code]) => {
    throw new Error(`the worker exited (${code}) before it was ready`);
  });
  const ready = new Promise<void>((resolve) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      options.onLog?.(line);
      if (line.includes("taking reconciliation jobs")) resolve();
    });
  });
  await Promise.race([ready, exited]);
  return {
    pid: child.pid!,
    async stop() {
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}

/** A GraphQL client for `url` that throws on errors; `login()` returns the admin's token. */
export function graphqlClient(url: string) {
  const gql = async (query: string, variables: Record<string, unknown> = {}, token?: string) => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data?: any; errors?: unknown };
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data;
  };
  const login = async (): Promise<string> =>
    (await gql(`mutation { login(email: "${ADMIN_EMAIL}", password: "${ADMIN_PASSWORD}") { token } }`)).login.token;
  return { gql, login };
}

/**
 * Uploads `path` into data source `source` with the streaming PUT route and returns the finished upload.
 * node:http, not fetch: fetch gives up after 5 minutes without response headers, and a 10M-row ingest answers
 * only when it has committed.
 */
export function uploadFile(serverUrl: string, token: string, source: string, path: string) {
  return new Promise<any>((resolve, reject) => {
    const target = new URL(`/data-sources/${source}/file?name=bench.csv`, serverUrl);
    const request = http.request(target, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-length": String(statSync(path).size) },
    });
    request.on("response", (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { upload?: any; errors?: unknown };
        if (body.upload?.status === "COMPLETED") resolve(body.upload);
        else reject(new Error(`ingest failed: ${JSON.stringify(body)}`));
      });
    });
    request.on("error", reject);
    createReadStream(path).pipe(request);
  });
}
