/**
 * `npm run bench:ingest`: CSV ingest end to end (HTTP upload → committed records) against `psql \copy` of the
 * same file into a plain table of the same shape, on the same database, in one run; then a larger file for
 * memory. Prints rows/s, the ratio to \copy and the server's memory: the server runs in its own process, as
 * in production (`npm run build`, then `node dist/src/main.js`, configured by environment), so its RSS is its
 * own, not the bench client's. Peak RSS is the kernel's high-water mark (VmHWM), reset before each upload. The database is
 * migrated before the server starts, by a separate `db:migrate` process.
 *
 *   BENCH_INGEST_ROWS (default 1,000,000)        rows of the timed file (~95 bytes a row)
 *   BENCH_INGEST_LARGE_ROWS (default 10,000,000) rows of the memory file (0 skips it)
 *   DATABASE_URL                                 server to create the bench database on (default local)
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createReadStream, createWriteStream, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import http from "node:http";
import { createInterface } from "node:readline";
import pg from "pg";
import { withDatabaseName } from "../src/db/database-url.js";

const ROWS = Number(process.env.BENCH_INGEST_ROWS ?? 1_000_000);
const LARGE_ROWS = Number(process.env.BENCH_INGEST_LARGE_ROWS ?? 10_000_000);
const serverUrl = withDatabaseName(process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres", "postgres");
const database = `bench_ingest_${Date.now()}`;
const databaseUrl = withDatabaseName(serverUrl, database);
const PASSWORD = "bench-admin-password";

/** Writes `rows` rows of `txn_id,account,amount,currency,booked_at,reference` to a temp file. */
async function generate(rows: number): Promise<string> {
  const path = join(tmpdir(), `recon-bench-${rows}.csv`);
  const out = createWriteStream(path);
  out.write("txn_id,account,amount,currency,booked_at,reference\n");
  const currencies = ["EUR", "USD", "GBP", "CHF"];
  for (let start = 0; start < rows; start += 10_000) {
    let chunk = "";
    for (let i = start; i < Math.min(rows, start + 10_000); i++) {
      const cents = (i * 7919) % 10_000_000;
      const day = 1 + (i % 28);
      chunk += `TXN-${String(i).padStart(9, "0")},ACC-${1000 + (i % 500)},${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, "0")},${currencies[i % 4]},2026-10-${String(day).padStart(2, "0")},INV-${100000 + (i % 900000)} payment ${i % 97}\n`;
    }
    if (!out.write(chunk)) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
  return path;
}

/** A field of /proc/<pid>/status in bytes (VmRSS: now, VmHWM: peak since the last reset). */
const procStatus = (pid: number, field: "VmRSS" | "VmHWM") =>
  Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;

/** The server's peak RSS while `run` runs: its high-water mark is reset first (Linux clear_refs 5). */
async function withPeakRss<T>(pid: number, run: () => Promise<T>): Promise<{ result: T; peakRss: number }> {
  writeFileSync(`/proc/${pid}/clear_refs`, "5");
  const result = await run();
  return { result, peakRss: procStatus(pid, "VmHWM") };
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

/** Starts recon as its own process, configured by environment; resolves with its pid and GraphQL URL. */
async function startServer() {
  const child = spawn(process.execPath, ["--enable-source-maps", "dist/src/main.js"], {
    env: {
      ...process.env, DATABASE_URL: databaseUrl, PORT: "0", LOG_LEVEL: "info", NODE_ENV: "development",
      RECON_ADMIN_PASSWORD: PASSWORD, RECON_JWT_SECRET: "bench-secret-bench-secret-bench-secret!", RECON_MAX_UPLOAD_BYTES: String(8 * 1024 ** 3),
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = once(child, "exit").then(([code]) => {
    throw new Error(`the server exited (${code}) before it was ready`);
  });
  const ready = (async () => {
    for await (const line of createInterface({ input: child.stdout! })) {
      const entry = JSON.parse(line) as { url?: string; level?: number; msg?: string };
      if (entry.url) return entry.url;
      if ((entry.level ?? 0) >= 40) console.error(entry.msg);
    }
    throw new Error("the server closed its output before it was ready");
  })();
  const url = await Promise.race([ready, exited]);
  child.stdout!.resume();
  return {
    pid: child.pid!,
    url,
    async stop() {
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}

const admin = new pg.Client({ connectionString: serverUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${database}`);
// Migrations first, by `npm run db:migrate` in a process of its own (as a deployment runs them), so that the
// server's memory is its steady state: it loads the migration engine only when something is pending.
// The server as production runs it: compiled to dist/ first.
execFileSync(process.execPath, ["scripts/build.mjs"], { stdio: "ignore" });
execFileSync(process.execPath, ["dist/src/cli/migrate.js"], { env: { ...process.env, DATABASE_URL: databaseUrl }, stdio: "ignore" });
const app = await startServer();
const db = new pg.Client({ connectionString: databaseUrl });
await db.connect();
const files: string[] = [];
try {
  const gql = async (query: string, variables: Record<string, unknown> = {}, token?: string) => {
    const response = await fetch(app.url, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data?: any; errors?: unknown };
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data;
  };
  const token = (await gql(`mutation { login(email: "admin@recon.local", password: "${PASSWORD}") { token } }`)).login.token;
  const project = (await gql(`mutation { createProject(input: { name: "Bench" }) { id } }`, {}, token)).createProject.id;
  const mapping = { externalId: "txn_id", amount: "amount", currency: "currency", bookedDate: "booked_at", reference: "reference" };
  const newSource = async (name: string) =>
    (await gql("mutation($p: ID!, $n: String!, $m: JSON) { createDataSource(input: { projectId: $p, name: $n, columnMapping: $m }) { id } }", { p: project, n: name, m: mapping }, token)).createDataSource.id;

  /**
   * Uploads `path` with the streaming PUT route and returns the finished upload. node:http, not fetch: fetch gives
   * up after 5 minutes without response headers, and a 10M-row ingest answers only when it has committed.
   */
  const ingest = (path: string, source: string) =>
    new Promise<any>((resolve, reject) => {
      const target = new URL(`/data-sources/${source}/file?name=bench.csv`, app.url);
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

  console.log(`generating ${ROWS.toLocaleString("en")} rows…`);
  const path = await generate(ROWS);
  files.push(path);
  const size = statSync(path).size;

  // Baseline: psql \copy of the same file into a plain table of the same shape.
  await db.query(
    "CREATE TABLE bench_copy (txn_id text, account text, amount numeric(20,4), currency char(3), booked_at date, reference text)",
  );
  const hasPsql = spawnSync("psql", ["--version"]).status === 0;
  let copySeconds: number;
  const copyStart = performance.now();
  if (hasPsql) {
    execFileSync("psql", [databaseUrl, "-q", "-c", `\\copy bench_copy FROM '${path}' WITH (FORMAT csv, HEADER)`], { stdio: "inherit" });
  } else {
    throw new Error("psql is needed for the baseline (apt-get install -y postgresql-client)");
  }
  copySeconds = (performance.now() - copyStart) / 1000;

  const source = await newSource("Timed");
  const idleRss = procStatus(app.pid, "VmRSS");
  const started = performance.now();
  const { result: upload, peakRss } = await withPeakRss(app.pid, () => ingest(path, source));
  const seconds = (performance.now() - started) / 1000;

  console.log(`\nfile: ${ROWS.toLocaleString("en")} rows, ${mb(size)}`);
  console.log("                                  seconds     rows/s   peak RSS");
  console.log(`psql \\copy (plain table)        ${copySeconds.toFixed(2).padStart(9)} ${Math.round(ROWS / copySeconds).toLocaleString("en").padStart(10)}          -`);
  console.log(`recon ingest (HTTP → records)   ${seconds.toFixed(2).padStart(9)} ${Math.round(ROWS / seconds).toLocaleString("en").padStart(10)} ${mb(peakRss).padStart(10)}`);
  console.log(`ingested ${upload.rowsIngested.toLocaleString("en")} rows, rejected ${upload.rowsRejected}; server RSS idle before the upload ${mb(idleRss)}, peak during it ${mb(peakRss)}`);
  console.log(`ratio recon / \\copy: ${(seconds / copySeconds).toFixed(2)}x (target <= 2.5x)`);

  if (LARGE_ROWS > 0) {
    console.log(`\ngenerating ${LARGE_ROWS.toLocaleString("en")} rows for the memory run…`);
    const large = await generate(LARGE_ROWS);
    files.push(large);
    const largeSource = await newSource("Large");
    const largeStart = performance.now();
    const { result: largeUpload, peakRss: largePeak } = await withPeakRss(app.pid, () => ingest(large, largeSource));
    const largeSeconds = (performance.now() - largeStart) / 1000;
    console.log(`file: ${LARGE_ROWS.toLocaleString("en")} rows, ${mb(statSync(large).size)}: ${largeSeconds.toFixed(1)} s, ${Math.round(LARGE_ROWS / largeSeconds).toLocaleString("en")} rows/s, server peak RSS ${mb(largePeak)} (target < 256 MB); ingested ${largeUpload.rowsIngested.toLocaleString("en")}`);
  }
} finally {
  await db.end();
  await app.stop();
  for (const file of files) unlinkSync(file);
  await admin.query(`DROP DATABASE IF EXISTS ${database}`);
  await admin.end();
}
