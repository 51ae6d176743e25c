/**
 * `npm run bench:reconcile`: one reconciliation job end to end (startReconciliation → COMPLETED with its groups
 * committed) over a generated ledger and bank statement with known truth (bench/reconcile-data.ts), against a
 * floor on the same database: one hand-written SQL FULL JOIN on the exact key (reference, amount, currency) that
 * classifies matched / unmatched left / unmatched right into a new table (the best of two runs). Then the
 * quality of the job's groups against the truth, and the server's memory.
 *
 * The server runs as production runs it (bench/server-process.ts): compiled, in its own process, configured by
 * environment. The data is loaded untimed through the real upload route (PUT /data-sources/<id>/file), then the
 * server is restarted, so that its idle RSS and the peak during the job (VmHWM, reset before the job) are the job's
 * alone. The job is followed with the `jobProgress` subscription; its server log is kept in a file.
 *
 *   BENCH_RECONCILE_RECORDS (default 1,000,000)  ledger lines (the bank has about as many)
 *   BENCH_RECONCILE_LOG                          server log file (default <tmpdir>/recon-bench-reconcile.log)
 *   DATABASE_URL                                 server to create `bench_reconcile_<timestamp>` on (default local)
 *   RECON_WORKERS, RECON_JOB_BLOCK_RECORDS       passed on to the server
 *   BENCH_RECONCILE_WORKER=process               run the job in a worker process (`npm run worker`, the server
 *                                                with RECON_WORKERS=0) and report that process's memory
 *   BENCH_RECONCILE_NODE_ARGS                    more flags for the server's (and worker process's) node, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
 *   BENCH_RECONCILE_DATABASE=<name>              keep the loaded data in database <name> and reuse it on the next run
 *                                                (same BENCH_RECONCILE_RECORDS): the load is skipped and the earlier
 *                                                runs' jobs are deleted first (their exceptions would be carried forward)
 */
import { createWriteStream, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createClient } from "graphql-ws";
import pg from "pg";
import { to as copyTo } from "pg-copy-streams";
import WebSocket from "ws";
import { COLUMN_MAPPING, CSV_HEADER, generate, type Category, type Truth } from "./reconcile-data.js";
import { createBenchDatabase, graphqlClient, machineCpuSeconds, mb, procCpuSeconds, procStatus, PROD_ENV, PROD_NODE_ARGS, startServer, startWorkerProcess, uploadFile, withPeakRss } from "./server-process.js";
import { positive, runAsScript } from "./support.js";

const RECORDS = positive("BENCH_RECONCILE_RECORDS", 1_000_000);
const LOG = process.env.BENCH_RECONCILE_LOG ?? join(tmpdir(), "recon-bench-reconcile.log");
// BENCH_RECONCILE_NODE_ARGS adds flags to the server's and the worker process's node (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
const EXTRA_NODE_ARGS = process.env.BENCH_RECONCILE_NODE_ARGS?.split(" ").filter(Boolean) ?? [];
const NODE_ARGS = [...PROD_NODE_ARGS, ...EXTRA_NODE_ARGS];
// PROD_ENV: as `npm run start:prod` and `npm run worker:prod` (the job's threads allocate and free each other's
// buffers: two malloc arenas took about 45 MB off its peak).
const JOB_FIELDS = "id status phase processed total attempts error createdAt startedAt finishedAt summary { leftRecords rightRecords autoMatchRate phaseMillis outcomes { outcome groups leftRecords rightRecords } passes { pass name groups } }";

/** Writes the ledger and the bank statement to temp files; returns their paths, line counts and the truth. */
function writeFiles(count: number) {
  const lines = { left: [CSV_HEADER], right: [CSV_HEADER] };
  const truth = generate(count, (side, line) => lines[side].push(line), { seed: 42, keepTruth: true })!;
  const path = (side: string) => join(tmpdir(), `recon-bench-reconcile-${count}-${side}.csv`);
  writeFileSync(path("left"), lines.left.join("\n") + "\n");
  writeFileSync(path("right"), lines.right.join("\n") + "\n");
  return { left: path("left"), right: path("right"), leftLines: lines.left.length - 1, rightLines: lines.right.length - 1, truth };
}

/** Seconds of the floor: exact-key FULL JOIN classification of both sources into a new table (best of two). */
async function floor(db: pg.Client, leftSource: string, rightSource: string): Promise<{ seconds: number; counts: Record<string, number> }> {
  const side = (source: string) =>
    `(SELECT id, reference, amount, currency FROM records WHERE data_source_id = '${source}'::uuid)`;
  let best = Number.POSITIVE_INFINITY;
  for (let run = 0; run < 2; run++) {
    await db.query("DROP TABLE IF EXISTS floor_groups");
    const started = performance.now();
    await db.query(
      `CREATE TABLE floor_groups AS
       SELECT CASE WHEN r.id IS NULL THEN 'UNMATCHED_LEFT' WHEN l.id IS NULL THEN 'UNMATCHED_RIGHT' ELSE 'MATCHED' END AS outcome,
         l.id AS left_id, r.id AS right_id
       FROM ${side(leftSource)} l FULL JOIN ${side(rightSource)} r
         ON l.reference = r.reference AND l.amount = r.amount AND l.currency = r.currency`,
    );
    best = Math.min(best, (performance.now() - started) / 1000);
  }
  const { rows } = await db.query<{ outcome: string; n: string }>("SELECT outcome, count(*) AS n FROM floor_groups GROUP BY outcome");
  await db.query("DROP TABLE floor_groups");
  return { seconds: best, counts: Object.fromEntries(rows.map((row) => [row.outcome, Number(row.n)])) };
}

/** The project and sources an earlier run loaded into a reused database, or null when it holds none. */
async function loadedSources(db: pg.Client): Promise<{ project: string; ledger: string; bank: string } | null> {
  const { rows } = await db.query<{ project: string; ledger: string; bank: string }>(
    `SELECT p.id AS project, l.id AS ledger, b.id AS bank FROM projects p
     JOIN data_sources l ON l.project_id = p.id AND l.name = 'Ledger' AND l.record_count > 0
     JOIN data_sources b ON b.project_id = p.id AND b.name = 'Bank' AND b.record_count > 0
     WHERE p.name = 'Bench reconcile' ORDER BY p.created_at DESC LIMIT 1`,
  );
  return rows[0] ?? null;
}

/** Follows job `id` with the `jobProgress` subscription until it ends; resolves with its last state. */
async function follow(url: string, token: string, id: string): Promise<Record<string, any>> {
  const client = createClient({ url: url.replace(/^http/, "ws"), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  let last: Record<string, any> = {};
  try {
    for await (const result of client.iterate<{ jobProgress: Record<string, any> }>({
      query: `subscription($id: ID!) { jobProgress(jobId: $id) { id status phase processed total } }`,
      variables: { id },
    })) {
      if (result.errors) throw new Error(JSON.stringify(result.errors));
      last = result.data!.jobProgress;
      if (last.status !== "QUEUED" && last.status !== "RUNNING") break;
    }
  } finally {
    await client.dispose();
  }
  return last;
}

/** How the job's groups compare with the truth. */
interface Quality {
  groups: Map<string, number>;
  /** MATCHED groups whose sides equal a matchable truth group's. */
  matchedCorrect: number;
  truthMatchable: number;
  mismatchCorrect: number;
  mismatchTruth: number;
  unmatchedLeftCorrect: number;
  onlyLeft: number;
  unmatchedRightCorrect: number;
  onlyRight: number;
  /** Category → outcome of the group its ledger line ended in ("+" when the group equals the truth's). */
  byCategory: Map<Category, Map<string, number>>;
  wrongMatched: string[];
}

/**
 * Streams the job's groups (outcome, sorted external ids of each side) out of `match_groups` with COPY and
 * scores them against `truth`.
 */
async function score(db: pg.Client, jobId: string, truth: Truth): Promise<Quality> {
  const q: Quality = {
    groups: new Map(), matchedCorrect: 0, truthMatchable: 0, mismatchCorrect: 0, mismatchTruth: 0, unmatchedLeftCorrect: 0,
    onlyLeft: 0, unmatchedRightCorrect: 0, onlyRight: truth.onlyRight.size, byCategory: new Map(), wrongMatched: [],
  };
  for (const category of truth.categoryOf.values()) {
    if (category === "onlyLeft") q.onlyLeft++;
    else if (category === "mismatch") q.mismatchTruth++;
    else q.truthMatchable++;
  }
  const tally = (category: Category, key: string) => {
    const counts = q.byCategory.get(category) ?? new Map<string, number>();
    counts.set(key, (counts.get(key) ?? 0) + 1);
    q.byCategory.set(category, counts);
  };
  const sideIds = (column: string) =>
    `coalesce((SELECT string_agg(r.external_id, ' ' ORDER BY r.external_id) FROM records r WHERE r.id = ANY(g.${column})), '')`;
  const stream = db.query(
    copyTo(`COPY (SELECT g.outcome, ${sideIds("left_record_ids")}, ${sideIds("right_record_ids")} FROM match_groups g WHERE g.job_id = '${jobId}'::uuid) TO STDOUT`),
  );
  for await (const line of createInterface({ input: stream })) {
    const [outcome, leftText, rightText] = line.split("\t") as [string, string, string];
    q.groups.set(outcome, (q.groups.get(outcome) ?? 0) + 1);
    const left = leftText ? leftText.split(" ") : [];
    const right = rightText ? rightText.split(" ") : [];
    // The truth group of the group's single ledger line, if its bank side is exactly that line's bank lines.
    const category = left.length === 1 ? truth.categoryOf.get(left[0]!) : undefined;
    const exact = left.length === 1 && [...truth.bankOf.get(left[0]!)!].sort().join(" ") === rightText;
    if (outcome === "MATCHED") {
      if (exact && category !== "mismatch" && category !== "onlyLeft") q.matchedCorrect++;
      else if (q.wrongMatched.length < 8) q.wrongMatched.push(`L[${left.join(",")}] R[${right.join(",")}] truth: ${left.map((id) => `${id}=${truth.categoryOf.get(id)}→[${truth.bankOf.get(id)?.join(",")}]`).join(" ")}`);
    } else if (outcome === "AMOUNT_MISMATCH" && exact && category === "mismatch") q.mismatchCorrect++;
    else if (outcome === "UNMATCHED_LEFT" && category === "onlyLeft" && right.length === 0) q.unmatchedLeftCorrect++;
    else if (outcome === "UNMATCHED_RIGHT" && left.length === 0 && right.length === 1 && truth.onlyRight.has(right[0]!)) q.unmatchedRightCorrect++;
    for (const id of left) {
      const of = truth.categoryOf.get(id);
      if (of) tally(of, exact && left.length === 1 ? `${outcome}+` : outcome);
    }
  }
  return q;
}

const ratio = (part: number, whole: number) => (whole ? (part / whole).toFixed(4) : "-");

async function main(): Promise<number> {
  console.log(`generating ${RECORDS.toLocaleString("en")} ledger lines (seed 42)…`);
  const files = writeFiles(RECORDS);
  const reused = process.env.BENCH_RECONCILE_DATABASE;
  const database = await createBenchDatabase(reused ?? `bench_reconcile_${Date.now()}`, { reuse: reused !== undefined });
  const log = createWriteStream(LOG);
  const db = new pg.Client({ connectionString: database.url });
  await db.connect();
  let app = await startServer({ databaseUrl: database.url, nodeArgs: NODE_ARGS, env: PROD_ENV, onLog: (line) => log.write(line + "\n") });
  let worker: Awaited<ReturnType<typeof startWorkerProcess>> | null = null;
  try {
    // Untimed: the project, both sources and their records, through the API as the admin.
    let { gql, login } = graphqlClient(app.url);
    let token = await login();
    const loaded = database.existed ? await loadedSources(db) : null;
    let project: string, ledger: string, bank: string;
    if (loaded) {
      ({ project, ledger, bank } = loaded);
      console.log(`reusing the data loaded in ${reused} (earlier jobs deleted)…`);
      await db.query("DELETE FROM reconciliation_jobs WHERE project_id = $1", [project]);
    } else {
      project = (await gql(`mutation { createProject(input: { name: "Bench reconcile" }) { id } }`, {}, token)).createProject.id;
      const newSource = async (name: string) =>
        (await gql("mutation($p: ID!, $n: String!, $m: JSON) { createDataSource(input: { projectId: $p, name: $n, columnMapping: $m }) { id } }", { p: project, n: name, m: COLUMN_MAPPING }, token)).createDataSource.id as string;
      ledger = await newSource("Ledger");
      bank = await newSource("Bank");
      console.log("loading both files through the upload route (untimed)…");
      for (const [source, path] of [[ledger, files.left], [bank, files.right]] as const) {
        const upload = await uploadFile(app.url, token, source, path);
        if (upload.rowsRejected) throw new Error(`upload rejected ${upload.rowsRejected} rows`);
      }
    }
    await db.query("VACUUM ANALYZE");

    console.log("floor: SQL FULL JOIN on (reference, amount, currency), best of 2…");
    const floorRun = await floor(db, ledger, bank);

    // A fresh server: its memory is the job's, not the uploads' leftovers.
    await app.stop();
    const inWorker = process.env.BENCH_RECONCILE_WORKER === "process";
    app = await startServer({ databaseUrl: database.url, nodeArgs: NODE_ARGS, env: inWorker ? { ...PROD_ENV, RECON_WORKERS: "0" } : PROD_ENV, onLog: (line) => log.write(line + "\n") });
    worker = inWorker ? await startWorkerProcess({ databaseUrl: database.url, nodeArgs: NODE_ARGS, env: PROD_ENV, onLog: (line) => log.write(line + "\n") }) : null;
    const measured = worker ?? app;
    ({ gql, login } = graphqlClient(app.url));
    token = await login();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const idleRss = procStatus(measured.pid, "VmRSS");

    console.log("reconciling…");
    // CPU seconds too: on a busy 2-core machine the job's time follows the CPU everything spends on it, which varies
    // less between runs than the time does.
    const cpuBefore = { process: procCpuSeconds(measured.pid), api: procCpuSeconds(app.pid), machine: machineCpuSeconds() };
    const started = performance.now();
    const { result: followed, peakRss } = await withPeakRss(measured.pid, async () => {
      const job = (await gql(
        `mutation($input: StartReconciliationInput!) { startReconciliation(input: $input) { id } }`,
        { input: { projectId: project, leftSourceId: ledger, rightSourceId: bank, dryRun: false } },
        token,
      )).startReconciliation;
      return follow(app.url, token, job.id);
    });
    const seconds = (performance.now() - started) / 1000;
    const processCpu = procCpuSeconds(measured.pid) - cpuBefore.process;
    // In the worker layout the API server still serves the job's mutation and its progress subscription.
    const apiCpu = procCpuSeconds(app.pid) - cpuBefore.api;
    const machine = machineCpuSeconds();
    const machineBusy = machine.busy - cpuBefore.machine.busy;
    const machineTotal = machine.total - cpuBefore.machine.total;
    const job = (await gql(`query($id: ID!) { reconciliationJob(id: $id) { ${JOB_FIELDS} } }`, { id: followed.id }, token)).reconciliationJob;
    console.log(`job ${job.id}: ${job.status}, attempts ${job.attempts}, processed ${job.processed}/${job.total}${job.error ? `, error: ${job.error}` : ""}`);
    console.log(`phaseMillis ${JSON.stringify(job.summary?.phaseMillis ?? null)}`);
    // The job's own stamps (database clock): a wait for a worker shows as the first figure.
    const stamp = (at: string | null) => (at ? Date.parse(at) : NaN);
    console.log(`queued → started ${((stamp(job.startedAt) - stamp(job.createdAt)) / 1000).toFixed(2)} s, started → finished ${((stamp(job.finishedAt) - stamp(job.startedAt)) / 1000).toFixed(2)} s`);
    if (job.status !== "COMPLETED") return 1;
    console.log(`outcomes ${job.summary.outcomes.map((o: any) => `${o.outcome} ${o.groups}`).join(", ")}`);
    console.log(`passes ${job.summary.passes.map((p: any) => `${p.name} ${p.groups}`).join(", ")}`);

    console.log("scoring against the truth…");
    const q = await score(db, job.id, files.truth);
    const matched = q.groups.get("MATCHED") ?? 0;
    const mismatchGroups = q.groups.get("AMOUNT_MISMATCH") ?? 0;
    const ratioToFloor = seconds / floorRun.seconds;
    const precision = matched ? q.matchedCorrect / matched : 0;
    const recall = q.matchedCorrect / q.truthMatchable;

    console.log("\nledger line categories → outcome of their group (+: sides equal the truth's)");
    for (const [category, counts] of q.byCategory) {
      console.log(`  ${category.padEnd(9)} ${[...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(", ")}`);
    }
    if (q.wrongMatched.length) console.log(`wrong MATCHED groups (first ${q.wrongMatched.length}):\n  ${q.wrongMatched.join("\n  ")}`);

    console.log(`\nrecords: ledger ${files.leftLines.toLocaleString("en")}, bank ${files.rightLines.toLocaleString("en")} (RECON_WORKERS=${process.env.RECON_WORKERS ?? 1}, RECON_JOB_BLOCK_RECORDS=${process.env.RECON_JOB_BLOCK_RECORDS ?? 80000})`);
    console.log(`floor (SQL FULL JOIN, exact key) ${floorRun.seconds.toFixed(2).padStart(8)} s   ${Object.entries(floorRun.counts).map(([k, n]) => `${k} ${n}`).join(", ")}`);
    console.log(`recon job end to end             ${seconds.toFixed(2).padStart(8)} s   ${[...q.groups].map(([k, n]) => `${k} ${n}`).join(", ")}`);
    console.log(`ratio recon / floor: ${ratioToFloor.toFixed(2)}x (target <= 6x)`);
    console.log(`auto matches: precision ${precision.toFixed(4)} (${q.matchedCorrect}/${matched}, target >= 0.995), recall ${recall.toFixed(4)} (${q.matchedCorrect}/${q.truthMatchable}, target >= 0.99)`);
    console.log(`AMOUNT_MISMATCH precision ${ratio(q.mismatchCorrect, mismatchGroups)} (${q.mismatchCorrect}/${mismatchGroups}), recall ${ratio(q.mismatchCorrect, q.mismatchTruth)} (of ${q.mismatchTruth})`);
    console.log(`UNMATCHED_LEFT recall ${ratio(q.unmatchedLeftCorrect, q.onlyLeft)} (${q.unmatchedLeftCorrect}/${q.onlyLeft}); UNMATCHED_RIGHT recall ${ratio(q.unmatchedRightCorrect, q.onlyRight)} (${q.unmatchedRightCorrect}/${q.onlyRight})`);
    console.log(`${worker ? "worker process" : "server"} RSS idle before the job ${mb(idleRss)}, peak during it ${mb(peakRss)} (target < 512 MB)`);
    console.log(`CPU during the job: ${worker ? "worker process" : "server"} ${processCpu.toFixed(1)} s;${worker ? ` API server ${apiCpu.toFixed(1)} s;` : ""} machine busy ${machineBusy.toFixed(1)} of ${machineTotal.toFixed(1)} core-seconds (PostgreSQL's share on a local database)`);
    console.log(`server log: ${LOG}`);
    return 0;
  } finally {
    await db.end();
    await worker?.stop();
    await app.stop();
    log.end();
    unlinkSync(files.left);
    unlinkSync(files.right);
    if (!reused) await database.drop();
  }
}

runAsScript(main);
