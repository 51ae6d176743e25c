/**
 * An export of a job with 1,000,000 groups streams in bounded memory: the groups are written straight into the
 * test database (generate_series: a real job of that size takes minutes to run), the CSV is downloaded over real
 * HTTP from the in-process server, and the process's RSS and heap are sampled on every chunk received. A memory
 * bound, not a timing threshold: buffering the export would cost hundreds of megabytes (each CSV row is ~200 bytes).
 * Its groups' ids are numbered as pushed-down pairs' are, so the export runs both of its statements (group-scan.ts):
 * the MATCHED half by its range of ids, the rest through the index. A client that leaves midway frees its connection.
 */
import { request } from "node:http";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExportJobResultsDocument } from "../../operations/generated/graphql.js";
import { ok, persistedQuery, startTestApp, type TestApp, type TestUser } from "../helpers/app.js";
import { uploadCsv } from "../helpers/jobs.js";

const GROUPS = 1_000_000;
const RECORDS = 1000;
const MAX_GROWTH_BYTES = 64 * 1024 * 1024;

let t: TestApp;
let db: pg.Pool;
let analyst: TestUser;
let jobId: string;

beforeAll(async () => {
  t = await startTestApp();
  db = new pg.Pool({ connectionString: t.db.url, max: 2 });
  analyst = await t.createUser("ANALYST");
  const projectId = ok(await t.graphql(`mutation { createProject(input: { name: "Large export" }) { id } }`, {}, analyst.token)).createProject.id;
  const source = async (name: string) =>
    ok(await t.graphql("mutation($p: ID!, $n: String!) { createDataSource(input: { projectId: $p, name: $n }) { id } }", { p: projectId, n: name }, analyst.token)).createDataSource.id as string;
  const [ledgerId, bankId] = [await source("Ledger"), await source("Bank")];
  const lines = ["id,date,amount,currency,reference,description,counterparty"];
  for (let i = 1; i <= RECORDS; i++) lines.push(`L-${i},2026-04-${String(1 + (i % 28)).padStart(2, "0")},${i % 2 ? "-" : ""}${i}.25,EUR,REF-${i},"Payment ${i}, April",Customer ${i % 50}`);
  await uploadCsv(t, analyst.token, ledgerId, lines.join("\n") + "\n", "ledger.csv");

  // A completed job whose 1M groups each hold one of the 1,000 records (ids ascending, as a real job's are).
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO reconciliation_jobs (id, project_id, left_source_id, right_source_id, created_by, status, phase, finished_at)
     VALUES (gen_random_uuid(), $1, $2, $3, $4, 'COMPLETED', 'completed', now()) RETURNING id`,
    [projectId, ledgerId, bankId, analyst.id],
  );
  jobId = rows[0]!.id;
  await db.query(
    `WITH recs AS (SELECT array_agg(id ORDER BY id) AS ids FROM records WHERE data_source_id = $3)
     INSERT INTO match_groups (id, job_id, project_id, left_record_ids, right_record_ids, kind, outcome, status, confidence, rule, pass, amount_delta)
     SELECT (substr(replace($1::text, '-', ''), 1, 16) || lpad(to_hex(i), 16, '0'))::uuid, $1::uuid, $2::uuid, ARRAY[recs.ids[1 + i % ${RECORDS}]], '{}',
       'SINGLE', CASE WHEN i % 2 = 0 THEN 'UNMATCHED_LEFT' ELSE 'MATCHED' END::"MatchOutcome", 'PROPOSED', 0.95, 'exact', 1, 0
     FROM recs, generate_series(1, ${GROUPS}) i`,
    [jobId, projectId, ledgerId],
  );
  await db.query("ANALYZE match_groups");
}, 120_000);

/** Downloads `url` from the test server, handing each chunk to `onChunk`; resolves with the status at its end. */
function download(url: string, onChunk: (chunk: Buffer) => void): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    request(new URL(url, t.url), (response) => {
      response.on("data", onChunk);
      response.on("end", () => resolve(response.statusCode!));
      response.on("error", reject);
    })
      .on("error", reject)
      .end();
  });
}

function countLines(chunk: Buffer): number {
  let lines = 0;
  for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) lines += 1;
  return lines;
}

afterAll(async () => {
  await db?.end();
  await t?.close();
});

describe("an export of 1,000,000 groups", () => {
  it("streams every row to the client while the server's memory stays bounded", async () => {
    const link = ok(await t.graphqlBody<{ exportJobResults: { url: string } }>({ extensions: persistedQuery(ExportJobResultsDocument), variables: { jobId } }, analyst.token)).exportJobResults;
    const start = process.memoryUsage();
    let peakRss = start.rss;
    let peakHeap = start.heapUsed;
    let lines = 0;
    let bytes = 0;
    const status = await download(link.url, (chunk) => {
      bytes += chunk.length;
      lines += countLines(chunk);
      const now = process.memoryUsage();
      peakRss = Math.max(peakRss, now.rss);
      peakHeap = Math.max(peakHeap, now.heapUsed);
    });
    expect(status).toBe(200);
    expect(lines).toBe(GROUPS + 1);
    // The file is far larger than the bound: had it been buffered anywhere, memory would have grown by as much.
    expect(bytes).toBeGreaterThan(3 * MAX_GROWTH_BYTES);
    expect(peakRss - start.rss).toBeLessThan(MAX_GROWTH_BYTES);
    expect(peakHeap - start.heapUsed).toBeLessThan(MAX_GROWTH_BYTES);
  }, 120_000);

  it("lets its connection go when the client leaves mid-download, and the next export is whole", async () => {
    const exportLink = async () =>
      ok(await t.graphqlBody<{ exportJobResults: { url: string } }>({ extensions: persistedQuery(ExportJobResultsDocument), variables: { jobId } }, analyst.token)).exportJobResults.url;
    // The first chunk, then the client hangs up: the server is still in its first COPY (the pushed-down pairs' range).
    const left = await exportLink();
    await new Promise<void>((resolve, reject) => {
      const req = request(new URL(left, t.url), (response) => {
        response.once("data", () => {
          req.destroy();
          resolve();
        });
      });
      req.on("error", (error) => (req.destroyed ? undefined : reject(error)));
      req.end();
    });
    // The server destroys that connection: its COPY ends in PostgreSQL (polled, with the test's timeout as bound).
    for (;;) {
      const { rows } = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY (SELECT g.id, g.outcome%' AND pid <> pg_backend_pid()",
      );
      if (rows[0]!.n === 0) break;
    }
    const whole = await exportLink();
    let lines = 0;
    const status = await download(whole, (chunk) => (lines += countLines(chunk)));
    expect(status).toBe(200);
    expect(lines).toBe(GROUPS + 1);
  }, 120_000);
});
