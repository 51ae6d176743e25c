/**
 * `npm run bench:cache`: the response cache of issue #3. On a freshly seeded database (bench/seed-bulk.ts, plus
 * 100,000 records ingested into one project for its statistics), load-tests two queries — the project list
 * (100 rows with owner and counts) and projectStats — four ways, in one run on one machine:
 *
 *   hit     recon with its cache on, the same request over and over (answered from L1)
 *   miss    recon with its cache on, every request a new key (lookup, execute, store: a miss's whole cost)
 *   off     recon with RESPONSE_CACHE=off (every request executed)
 *   bare    a bare node:http server writing the same bytes (the ceiling for any server in Node)
 *
 * Hit and bare alternate twice and each keeps its better run (so background noise cannot favour either side).
 * Prints req/s, p50/p99 and the ratios the issue sets targets for: hit >= 5x off, hit >= 50% of bare, p99 of
 * hits <= 5 ms at 50 connections. autocannon runs in a worker thread; servers run in this process, PostgreSQL
 * beside them: absolute figures depend on the host, the ratios carry over. With REDIS_URL set, the cached server
 * also uses Redis (L2); hits still come from L1.
 *
 * Environment: DATABASE_URL (server to create `bench_cache_<timestamp>` on), BENCH_DURATION (seconds per run,
 * default 5), BENCH_WARMUP (default 1), BENCH_CONNECTIONS (default 50), REDIS_URL (optional).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import pg from "pg";
import { startApp, type App } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { withDatabaseName } from "../src/db/database-url.js";
import { seedBulk } from "./seed-bulk.js";
import { positive, runAsScript } from "./support.js";

const SERVER_URL = withDatabaseName(process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres", "postgres");
const DURATION = positive("BENCH_DURATION", 5);
const WARMUP = positive("BENCH_WARMUP", 1);
const CONNECTIONS = positive("BENCH_CONNECTIONS", 50);
const ADMIN = { email: "admin@recon.local", password: "bench-admin-password" };
const RECORDS = 100_000;

const QUERIES = {
  "project list (100 rows, owner, counts)": {
    query: "query ProjectList { projects(first: 100) { totalCount edges { node { id name status owner { name } jobCount dataSourceCount } } } }",
    variables: {} as Record<string, unknown>,
  },
  "projectStats (100k records)": {
    query: `query Stats($id: ID!) { projectStats(projectId: $id) { recordCount matchedRecords suggestedRecords unmatchedRecords
      matchRate recordsBySource { recordCount dataSource { name } } lastJob { status } } }`,
    variables: {} as Record<string, unknown>,
  },
};

interface Row {
  scenario: string;
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
}

async function graphql(url: string, query: string, variables: object, token?: string) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const text = await response.text();
  const result = JSON.parse(text) as { data?: Record<string, any>; errors?: unknown[] };
  if (!response.ok || result.errors?.length) throw new Error(`GraphQL request failed: ${text}`);
  return { result, text, headers: response.headers };
}

async function load(scenario: string, url: string, body: string, token: string, uniqueKeys = false): Promise<Row> {
  const result = await autocannon({
    url,
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    // A miss per request: an extra, unused variable (a fresh id each time) makes every key new, the answer the same.
    body: uniqueKeys ? JSON.stringify({ ...JSON.parse(body), variables: { ...JSON.parse(body).variables, _miss: "[<id>]" } }) : body,
    ...(uniqueKeys ? ({ idReplacement: true } as object) : {}), // autocannon's types lack the option
    connections: CONNECTIONS,
    duration: DURATION,
    warmup: { connections: CONNECTIONS, duration: WARMUP },
    workers: 1, // the load generator gets its own thread, off the servers' event loop
    verifyBody: fileURLToPath(new URL("./verify-body.cjs", import.meta.url)),
  });
  const errors = [result, result.warmup].reduce((sum, r) => sum + (r ? r.errors + r.non2xx + r.mismatches : 0), 0);
  return { scenario, reqPerSec: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors };
}

/** A node:http server that reads each request and answers with `bytes`, as a cache hit would. */
async function bareServer(bytes: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    req.on("data", () => {});
    req.on("end", () => {
      res.setHeader("content-type", "application/json; charset=utf-8");
      res.setHeader("x-cache", "HIT");
      res.end(bytes);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql` };
}

function printTable(title: string, rows: Row[]) {
  const header = ["scenario", "req/s", "p50 ms", "p99 ms", "errors"];
  const cells = rows.map((r) => [r.scenario, r.reqPerSec.toFixed(0), String(r.p50), String(r.p99), String(r.errors)]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join("   ");
  console.log(`\n${title}\n${line(header)}\n${cells.map(line).join("\n")}`);
}

async function main(): Promise<number> {
  const database = `bench_cache_${Date.now()}`;
  const admin = new pg.Client({ connectionString: SERVER_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${database}"`);
  const apps: App[] = [];
  const servers: Server[] = [];
  let failures = 0;
  try {
    const env = {
      ...process.env,
      NODE_ENV: "production", // no per-response SQL counts: bodies are what a production client gets
      DATABASE_URL: withDatabaseName(SERVER_URL, database),
      PORT: "0",
      LOG_LEVEL: "warn",
      RECON_SLOW_SQL_MS: "60000",
      RECON_ADMIN_EMAIL: ADMIN.email,
      RECON_ADMIN_PASSWORD: ADMIN.password,
      RECON_JWT_SECRET: "bench-cache-jwt-secret-not-for-production-use",
      RESPONSE_CACHE_NAMESPACE: `bench-${Date.now()}`,
      RECON_RATE_LIMIT_PER_SECOND: "0", // one viewer sends tens of thousands of requests a second here
      // The bench's queries are not the frontend's persisted operations; hits are checked against the manifest
      // either way (a Set lookup of the hash the cache key already computed).
      RECON_TRUSTED_DOCUMENTS: "off",
      RECON_WORKERS: "0", // the bulk seed's jobs are not runnable jobs
    };
    const cached = await startApp(loadConfig(env));
    apps.push(cached);
    const counts = await seedBulk(cached.container.database.pool);
    process.stderr.write(`seeded ${JSON.stringify(counts)}\n`);
    const uncached = await startApp(loadConfig({ ...env, RESPONSE_CACHE: "off" }));
    apps.push(uncached);

    const token = (await graphql(cached.url, "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token } }", ADMIN)).result.data!.login.token as string;
    // The newest project (first in the list) gets a data source with RECORDS records, ingested through the upload route.
    const first = (await graphql(cached.url, "{ projects(first: 1) { edges { node { id } } } }", {}, token)).result.data!.projects.edges[0].node.id as string;
    const source = (await graphql(cached.url, "mutation($p: ID!) { createDataSource(input: { projectId: $p, name: \"bench statement\" }) { id } }", { p: first }, token)).result.data!.createDataSource.id as string;
    let csv = "id,amount,currency,date,reference,description\n";
    for (let i = 0; i < RECORDS; i++) csv += `B${i},${(i % 9973) + 0.25},EUR,2026-10-${String(1 + (i % 28)).padStart(2, "0")},INV-${i % 5000},payment\n`;
    const upload = await fetch(`${cached.url.replace(/\/graphql$/, "")}/data-sources/${source}/file?name=bench.csv`, {
      method: "PUT", headers: { authorization: `Bearer ${token}`, "content-type": "text/csv" }, body: csv,
    });
    if (!upload.ok) throw new Error(`upload failed: ${await upload.text()}`);
    // Settle the database first: autovacuum waking up after the bulk writes would take a core from the first runs.
    await cached.container.database.pool.query("VACUUM ANALYZE");
    QUERIES["projectStats (100k records)"].variables = { id: first };

    const summary: string[] = [];
    for (const [name, { query, variables }] of Object.entries(QUERIES)) {
      const body = JSON.stringify({ query, variables });
      const probe = await graphql(cached.url, query, variables, token); // stores the answer: the hit run's bytes
      const again = await graphql(cached.url, query, variables, token);
      if (again.headers.get("x-cache") !== "HIT" || again.text !== probe.text) throw new Error(`${name}: the second request was not an identical hit`);
      const bare = await bareServer(probe.text);
      servers.push(bare.server);
      process.stderr.write(`measuring ${name}: 6 × (${WARMUP} s warm-up + ${DURATION} s) at ${CONNECTIONS} connections…\n`);
      // Hit and bare alternate, twice, and each keeps its better run: background noise on this shared machine
      // then cannot favour one of the two compared figures.
      const best = (a: Row, b: Row) => (a.reqPerSec >= b.reqPerSec ? a : b);
      const hitRuns: Row[] = [];
      const bareRuns: Row[] = [];
      for (let round = 0; round < 2; round++) {
        hitRuns.push(await load("hit (cache on, same request)", cached.url, body, token));
        bareRuns.push(await load("bare node:http, same bytes", bare.url, body, token));
      }
      const rows = [
        best(hitRuns[0], hitRuns[1]),
        await load("miss (cache on, a new key each request)", cached.url, body, token, true),
        await load("off (RESPONSE_CACHE=off)", uncached.url, body, token),
        best(bareRuns[0], bareRuns[1]),
      ];
      failures += [...hitRuns, ...bareRuns].reduce((sum, row) => sum + row.errors, 0);
      failures += rows[1].errors + rows[2].errors;
      printTable(`${name} — ${probe.text.length} bytes, ${CONNECTIONS} connections`, rows);
      const [hit, miss, off, ceiling] = rows;
      const lines = [
        `hit / off: ${(hit.reqPerSec / off.reqPerSec).toFixed(1)}x (target >= 5x) — ${hit.reqPerSec >= 5 * off.reqPerSec ? "met" : "NOT MET"}`,
        `hit / bare: ${((100 * hit.reqPerSec) / ceiling.reqPerSec).toFixed(0)}% (target >= 50%) — ${hit.reqPerSec >= 0.5 * ceiling.reqPerSec ? "met" : "NOT MET"}`,
        `p99 of hits: ${hit.p99} ms (target <= 5 ms) — ${hit.p99 <= 5 ? "met" : "NOT MET"}; bare node:http in the same run: ${ceiling.p99} ms`,
        `miss / off: ${(miss.reqPerSec / off.reqPerSec).toFixed(2)}x (what a miss costs over plain execution)`,
      ];
      for (const line of lines) console.log(line);
      summary.push(`${name}: ${lines.join("; ")}`);
    }
    console.log(`\n${summary.join("\n")}`);
    if (failures) console.error(`\n${failures} request(s) failed`);
    return failures ? 1 : 0;
  } finally {
    for (const server of servers) server.close();
    for (const app of apps.reverse()) await app.close().catch((error) => console.error("closing an app:", error));
    await admin.query(`DROP DATABASE IF EXISTS "${database}"`);
    await admin.end();
  }
}

runAsScript(main);
