/**
 * `npm run bench:api`: the N+1 benchmark of issue #2. Seeds a fresh database with 5,000 projects, starts recon
 * twice in-process on it — as shipped (per-request DataLoaders) and with the old platform's naive resolvers
 * (bench/naive-resolvers.ts) — and load-tests the same project list against both with autocannon. Prints req/s,
 * latency, SQL statements per request and the throughput ratio (target: batched >= 10x naive at 100 rows), then
 * the same at 10 rows to show statements per request stay constant for recon and grow with rows for the naive set.
 * Exits non-zero if any request failed. autocannon runs in a worker thread, off the servers' event loop but on the
 * same machine as them and PostgreSQL: absolute req/s depend on the host, the ratio is the figure that matters.
 *
 * Environment: DATABASE_URL (the server to create `bench_api_<timestamp>` on), BENCH_DURATION (measured seconds
 * per run, default 10), BENCH_WARMUP (seconds, default 2), BENCH_CONNECTIONS (default 10).
 */
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import pg from "pg";
import { startApp, type App } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import type { DbClient } from "../src/db/database.js";
import { withDatabaseName } from "../src/db/database-url.js";
import { createNaiveResolvers } from "./naive-resolvers.js";
import { seedBulk } from "./seed-bulk.js";
import { positive, runAsScript } from "./support.js";

const SERVER_URL = withDatabaseName(process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres", "postgres");
const DURATION = positive("BENCH_DURATION", 10);
const WARMUP = positive("BENCH_WARMUP", 2);
const CONNECTIONS = positive("BENCH_CONNECTIONS", 10);
const TARGET_RATIO = 10;
const ADMIN = { email: "admin@recon.local", password: "bench-admin-password" };
const PROJECT_LIST = `query ProjectList($first: Int!) {
  projects(first: $first) { edges { node { id name owner { name } jobCount dataSourceCount } } }
}`;

interface Measurement {
  server: string;
  reqPerSec: number;
  p50: number;
  p99: number;
  /** Statements the app's pool sent during the probe request (exact: it is the only request in flight). */
  sqlStatements: number;
  /** What the response's `extensions.sqlStatements` claimed for the same request. */
  reported: number;
  failures: number;
}

interface GraphQLResponse {
  data?: Record<string, any>;
  errors?: { message: string }[];
  extensions?: { sqlStatements?: number };
}

/** One GraphQL request; throws on any error, so a broken setup fails before the load test. */
async function graphql(url: string, query: string, variables: object, token?: string): Promise<GraphQLResponse> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const result = (await response.json()) as GraphQLResponse;
  if (!response.ok || result.errors?.length) throw new Error(`GraphQL request failed: ${JSON.stringify(result.errors)}`);
  return result;
}

/** All statements `app`'s pool has sent so far. */
async function statementsSent(app: App): Promise<number> {
  return (await app.container.metrics.sqlStatementsTotal.get()).values[0]?.value ?? 0;
}

/** Probes once (counting its statements), then warms up and measures with autocannon. */
async function measure(server: string, app: App, token: string, first: number): Promise<Measurement> {
  const before = await statementsSent(app);
  const probe = await graphql(app.url, PROJECT_LIST, { first }, token);
  const sqlStatements = (await statementsSent(app)) - before;
  if (probe.data?.projects.edges.length !== first) throw new Error(`${server}: expected ${first} projects`);
  const result = await autocannon({
    url: app.url,
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: PROJECT_LIST, variables: { first } }),
    connections: CONNECTIONS,
    duration: DURATION,
    warmup: { connections: CONNECTIONS, duration: WARMUP },
    workers: 1, // the load generator gets its own thread, so it does not slow the server it measures
    verifyBody: fileURLToPath(new URL("./verify-body.cjs", import.meta.url)), // counts GraphQL errors (status 200)
  });
  const failures = [result, result.warmup].reduce((n, r) => n + (r ? r.errors + r.non2xx + r.mismatches : 0), 0);
  return {
    server,
    reqPerSec: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    sqlStatements,
    reported: probe.extensions?.sqlStatements ?? NaN,
    failures,
  };
}

function printTable(title: string, rows: Measurement[]): void {
  const header = ["server", "req/s", "p50 ms", "p99 ms", "SQL/req", "extensions.sqlStatements", "errors"];
  const cells = rows.map((r) =>
    [r.server, r.reqPerSec.toFixed(1), r.p50, r.p99, r.sqlStatements, r.reported, r.failures].map(String));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join("   ");
  console.log(`\n${title}\n${line(header)}\n${cells.map(line).join("\n")}`);
}

/** Runs both servers at `first` rows, prints the table and the throughput ratio; returns [recon, naive]. */
async function compare(first: number, recon: App, naive: App, token: string): Promise<Measurement[]> {
  process.stderr.write(`measuring ${first} rows: ${WARMUP} s warm-up + ${DURATION} s per server…\n`);
  const rows = [
    await measure("batched (recon)", recon, token, first),
    await measure("naive (one query per row per field)", naive, token, first),
  ];
  printTable(`projects(first: ${first}) as ADMIN — ${CONNECTIONS} connections, ${DURATION} s after ${WARMUP} s warm-up`, rows);
  console.log(`throughput ratio batched/naive: ${(rows[0].reqPerSec / rows[1].reqPerSec).toFixed(1)}x`);
  return rows;
}

async function main(): Promise<number> {
  const database = `bench_api_${Date.now()}`;
  const admin = new pg.Client({ connectionString: SERVER_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${database}"`);
  const apps: App[] = [];
  try {
    const config = loadConfig({
      ...process.env,
      NODE_ENV: "development", // keeps extensions.sqlStatements in responses
      RESPONSE_CACHE: "off", // executions are measured here, not cache hits (bench:cache measures those)
      DATABASE_URL: withDatabaseName(SERVER_URL, database),
      PORT: "0",
      LOG_LEVEL: "warn",
      RECON_SLOW_SQL_MS: "60000", // under load every statement waits on the busy event loop: not worth a log line
      RECON_ADMIN_EMAIL: ADMIN.email,
      RECON_ADMIN_PASSWORD: ADMIN.password,
      RECON_JWT_SECRET: "bench-api-jwt-secret-not-for-production-use",
      RECON_RATE_LIMIT_PER_SECOND: "0", // the load comes from one viewer
      RECON_WORKERS: "0", // the bulk seed's jobs are not runnable jobs
    });
    const recon = await startApp(config); // applies migrations and creates the admin
    apps.push(recon);
    const started = Date.now();
    const counts = await seedBulk(recon.container.database.pool);
    process.stderr.write(`seeded ${JSON.stringify(counts)} in ${Date.now() - started} ms\n`);

    let naivePrisma: DbClient | undefined;
    const naive = await startApp(config, { resolverOverrides: [createNaiveResolvers(() => naivePrisma!)] });
    apps.push(naive);
    naivePrisma = naive.container.database.prisma;

    const login = await graphql(recon.url, "mutation($email: String!, $password: String!) { login(email: $email, password: $password) { token } }", ADMIN);
    const token = login.data!.login.token as string;

    const hundred = await compare(100, recon, naive, token);
    const met = hundred[0].reqPerSec >= TARGET_RATIO * hundred[1].reqPerSec;
    console.log(`target: batched >= ${TARGET_RATIO}x naive at 100 rows — ${met ? "met" : "NOT MET"}`);
    const ten = await compare(10, recon, naive, token);
    console.log(`SQL statements per request, 10 → 100 rows: batched ${ten[0].sqlStatements} → ${hundred[0].sqlStatements}, ` +
      `naive ${ten[1].sqlStatements} → ${hundred[1].sqlStatements}`);
    if ([...hundred, ...ten].some((r) => r.sqlStatements !== r.reported)) {
      console.log("note: extensions.sqlStatements under-counts requests that wait for a pooled connection " +
        "(SQL/req is the pool's own counter across the probe, the only request in flight)");
    }
    const failures = [...hundred, ...ten].reduce((n, r) => n + r.failures, 0);
    if (failures) console.error(`\n${failures} request(s) failed`);
    return failures ? 1 : 0;
  } finally {
    for (const app of apps.reverse()) await app.close().catch((error) => console.error("closing an app:", error));
    // Without FORCE: PostgreSQL waits (up to 5 s) for the closed pools' sessions to end instead of killing them.
    await admin.query(`DROP DATABASE IF EXISTS "${database}"`);
    await admin.end();
  }
}

runAsScript(main);
