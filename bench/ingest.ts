/**
 * `npm run bench:ingest`: CSV ingest end to end (HTTP upload → committed records) against `psql \copy` of the
 * same file into a plain table of the same shape, on the same database, in one run; then a larger file for
 * memory. Prints rows/s, the ratio to \copy and the server's memory: the server runs in its own process, as
 * in production (`npm run build`, then `node dist/src/main.js` with `npm run start:prod`'s flags, configured by
 * environment), so its RSS is its own, not the bench client's. Peak RSS is the kernel's high-water mark (VmHWM),
 * reset before each upload. The database is migrated before the server starts, by a separate `db:migrate` process.
 *
 *   BENCH_INGEST_ROWS (default 1,000,000)        rows of the timed file (~95 bytes a row)
 *   BENCH_INGEST_LARGE_ROWS (default 10,000,000) rows of the memory file (0 skips it)
 *   DATABASE_URL                                 server to create the bench database on (default local)
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createWriteStream, statSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import pg from "pg";
import { COLUMN_MAPPING } from "./reconcile-data.js";
import { createBenchDatabase, graphqlClient, mb, procStatus, PROD_ENV, PROD_NODE_ARGS, startServer, uploadFile, withPeakRss } from "./server-process.js";

const ROWS = Number(process.env.BENCH_INGEST_ROWS ?? 1_000_000);
const LARGE_ROWS = Number(process.env.BENCH_INGEST_LARGE_ROWS ?? 10_000_000);

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

// Migrations run before the server starts, by `db:migrate` in a process of its own; the server as production runs
// it: compiled to dist/ first, with `npm run start:prod`'s flags and environment.
const database = await createBenchDatabase(`bench_ingest_${Date.now()}`);
const databaseUrl = database.url;
const app = await startServer({ databaseUrl, nodeArgs: PROD_NODE_ARGS, env: PROD_ENV });
const db = new pg.Client({ connectionString: databaseUrl });
await db.connect();
const files: string[] = [];
try {
  const { gql, login } = graphqlClient(app.url);
  const token = await login();
  const project = (await gql(`mutation { createProject(input: { name: "Bench" }) { id } }`, {}, token)).createProject.id;
  const newSource = async (name: string) =>
    (await gql("mutation($p: ID!, $n: String!, $m: JSON) { createDataSource(input: { projectId: $p, name: $n, columnMapping: $m }) { id } }", { p: project, n: name, m: COLUMN_MAPPING }, token)).createDataSource.id;

  const ingest = (path: string, source: string) => uploadFile(app.url, token, source, path);

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
  await database.drop();
}
