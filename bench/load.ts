/**
 * `npm run bench:load`: load and soak of issue #7. The compiled server in production mode (trusted documents,
 * the per-viewer rate limit shared through Redis, a response cache with Redis) on a PostgreSQL cluster and a
 * Redis of the bench's own, so both can be restarted. 200 viewers, one keep-alive connection each, send the
 * frontend's persisted operations back to back: reads that are mostly cache hits (Me, Projects, Project,
 * DataSources), reads that always or mostly miss (SearchProjects with a fresh term, ProjectStats), and writes
 * (UpdateProject, which invalidates what the viewer cached).
 *
 *   1. steady:   BENCH_LOAD_SECONDS (60) of that load;
 *   2. restarts: the same, with Redis killed (SIGKILL) a quarter in and started again 5 s later, and PostgreSQL
 *                stopped (fast shutdown: connections cut) just past half-way and started again 3 s later.
 *
 * Reported per phase: throughput, p50/p99 latency, and every failed request by HTTP status and GraphQL error
 * code, split into inside the restart windows (from a stop until the service answers again, plus a grace of
 * 3 s) and outside them. Requirements: no failure at all outside the windows; inside them only clear, retryable
 * errors (SERVICE_UNAVAILABLE with Retry-After: HTTP 503, or 200 when part of the answer succeeded). The server's RSS before the first phase and after each
 * phase (after BENCH_LOAD_WARMUP seconds of the same load, 30 by default), and every 5 s: the restarts phase's
 * mean RSS more than 10% above the steady phase's fails the bench (exit code 1; point readings swing with garbage
 * collection, so they are printed, not judged), and so do failures outside the windows or unclear ones inside.
 *
 * Needs Debian's postgresql (initdb, pg_ctl) and redis-server, as CI installs them; run as root, the cluster
 * runs as the `postgres` user. Environment: BENCH_LOAD_SECONDS, BENCH_CONNECTIONS (200), BENCH_LOAD_LOG (a file
 * for the server's log lines; default: warnings and errors printed).
 */
import { execFileSync, spawn } from "node:child_process";
import { appendFileSync, chmodSync, existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import http from "node:http";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { createTrustedDocuments, loadManifest } from "../src/graphql/trusted-documents.js";
import { freePort } from "../test/helpers/ports.js";
import { startTestRedis } from "../test/helpers/redis.js";
import { seedBulk } from "./seed-bulk.js";
import { ADMIN_EMAIL, ADMIN_PASSWORD, createBenchDatabase, mb, procStatus, PROD_ENV, PROD_NODE_ARGS, startServer } from "./server-process.js";
import { positive, runAsScript, seededRandom as random } from "./support.js";

const SECONDS = positive("BENCH_LOAD_SECONDS", 60);
/** Load before the first measurement: caches fill, pools open, V8 sizes its heap. */
const WARMUP_SECONDS = positive("BENCH_LOAD_WARMUP", 30);
const CONNECTIONS = positive("BENCH_CONNECTIONS", 200);
const PROJECTS_PER_VIEWER = 3;
/** After a dependency answers again, errors still count as inside its window this long (pools reconnect). */
const GRACE_MS = 3000;
const VIEWER_PASSWORD = "load-viewer-password";

/** A PostgreSQL cluster of the bench's own (Debian's binaries), which it may stop and start. */
async function startCluster() {
  const versions = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a));
  if (!versions.length) throw new Error("bench:load needs Debian's postgresql (initdb, pg_ctl under /usr/lib/postgresql)");
  const bin = `/usr/lib/postgresql/${versions[0]}/bin`;
  const dir = `/var/tmp/recon-bench-load-${process.pid}`;
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  const run = (tool: string, args: string[]) =>
    execFileSync(asRoot ? "runuser" : `${bin}/${tool}`, asRoot ? ["-u", "postgres", "--", `${bin}/${tool}`, ...args] : args, { stdio: "ignore" });
  mkdirSync(dir, { recursive: true });
  if (asRoot) execFileSync("chown", ["postgres:postgres", dir]);
  chmodSync(dir, 0o700);
  run("initdb", ["-D", `${dir}/data`, "-U", "postgres", "--auth=trust", "-E", "UTF8"]);
  const options = `-c listen_addresses=127.0.0.1 -p ${port} -c max_connections=200 -c fsync=off -c unix_socket_directories=${dir}`;
  const start = () => run("pg_ctl", ["-D", `${dir}/data`, "-o", options, "-l", `${dir}/log`, "-w", "start"]);
  start();
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    start,
    /** Fast shutdown: every connection is cut at once, as a crash or failover would. */
    stop: () => run("pg_ctl", ["-D", `${dir}/data`, "-m", "fast", "-w", "stop"]),
    remove() {
      if (existsSync(`${dir}/data/postmaster.pid`)) run("pg_ctl", ["-D", `${dir}/data`, "-m", "immediate", "-w", "stop"]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every persisted operation the load sends, by name → its manifest hash. */
const trusted = createTrustedDocuments({ manifest: loadManifest(), enforce: true });
function hash(operation: string): string {
  const value = trusted.hashOf(operation);
  if (!value) throw new Error(`the manifest has no operation ${operation}`);
  return value;
}

interface Viewer {
  token: string;
  projects: string[];
  /** Its connection: one keep-alive socket, as one browser tab. */
  agent: http.Agent;
}

/** One answer as the load saw it. */
interface Sample {
  at: number;
  ms: number;
  status: number;
  /** The first GraphQL error's code, "" for none; "NETWORK" when the request failed below HTTP. */
  code: string;
  retryAfter: boolean;
}

/** Posts `body` on `agent` (keep-alive: one socket per viewer); never rejects: a failure below HTTP is status 0. */
function post(url: URL, agent: http.Agent, token: string | null, body: string) {
  const started = performance.now();
  return new Promise<{ at: number; ms: number; status: number; retryAfter: boolean; text: string }>((resolve) => {
    const failed = () => resolve({ at: started, ms: performance.now() - started, status: 0, retryAfter: false, text: "" });
    const request = http.request(url, {
      method: "POST",
      agent,
      headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", failed);
      response.on("end", () => resolve({
        at: started,
        ms: performance.now() - started,
        status: response.statusCode ?? 0,
        retryAfter: response.headers["retry-after"] !== undefined,
        text: Buffer.concat(chunks).toString("utf8"),
      }));
    });
    request.on("error", failed);
    request.end(body);
  });
}

/** The first GraphQL error's code of an answer ("" for none), parsed only when the answer may hold one. */
function errorCode(status: number, text: string): string {
  if (status === 0) return "NETWORK";
  if (status === 200 && !text.includes('"errors"')) return "";
  try {
    return (JSON.parse(text) as { errors?: { extensions?: { code?: string } }[] }).errors?.[0]?.extensions?.code ?? "NO_CODE";
  } catch {
    return "NOT_JSON";
  }
}

async function send(url: URL, agent: http.Agent, token: string | null, body: string): Promise<Sample> {
  const { at, ms, status, retryAfter, text } = await post(url, agent, token, body);
  return { at, ms, status, retryAfter, code: errorCode(status, text) };
}

/** The next request of a viewer: 70% reads that are mostly hits, 20% reads that mostly miss, 10% writes. */
function nextRequest(viewer: Viewer, next: () => number, counter: number): string {
  const pick = next();
  const project = viewer.projects[Math.floor(next() * viewer.projects.length)];
  const op = (name: string, variables: Record<string, unknown> = {}) => JSON.stringify({ documentId: hash(name), variables });
  if (pick < 0.2) return op("Me");
  if (pick < 0.4) return op("Projects", { first: 25 });
  if (pick < 0.6) return op("Project", { id: project });
  if (pick < 0.7) return op("DataSources", { projectId: project });
  if (pick < 0.8) return op("SearchProjects", { query: `load ${Math.floor(next() * 1e6)}` });
  if (pick < 0.9) return op("ProjectStats", { projectId: project });
  return op("UpdateProject", { id: project, input: { description: `edit ${counter}` } });
}

/** Runs the load for `seconds` while `during` runs (it gets the phase's start); returns every sample. */
async function runLoad(url: URL, viewers: Viewer[], seconds: number, seed: number, during?: (startedAt: number) => Promise<void>) {
  const samples: Sample[] = [];
  const startedAt = performance.now();
  const until = startedAt + seconds * 1000;
  await Promise.all([
    ...viewers.map(async (viewer, index) => {
      const next = random(seed * 1000 + index);
      for (let counter = 0; performance.now() < until; counter++) samples.push(await send(url, viewer.agent, viewer.token, nextRequest(viewer, next, counter)));
    }),
    during?.(startedAt),
  ]);
  return { samples, startedAt, seconds };
}

/** The server's V8 heap in use (prom-client's default metric), to tell heap growth from allocator growth. */
async function heapUsed(url: URL): Promise<number> {
  const text = await (await fetch(new URL("/metrics", url))).text();
  return Number(/^nodejs_heap_size_used_bytes (\S+)$/m.exec(text)?.[1] ?? NaN);
}

const percentile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN);

/** Summarizes a phase: throughput, latency, failures inside and outside `windows` ([from, to] in performance.now() ms). */
function summarize(name: string, run: Awaited<ReturnType<typeof runLoad>>, windows: [number, number][]) {
  const inside = (s: Sample) => windows.some(([from, to]) => s.at + s.ms >= from && s.at <= to);
  const failed = (s: Sample) => s.status !== 200 || s.code !== "";
  const ok = run.samples.filter((s) => !failed(s));
  const latencies = run.samples.map((s) => s.ms).sort((a, b) => a - b);
  const outsideLatencies = run.samples.filter((s) => !inside(s)).map((s) => s.ms).sort((a, b) => a - b);
  const tally = (list: Sample[]) => {
    const counts = new Map<string, number>();
    for (const s of list) {
      const key = `${s.status || "no response"} ${s.code}${s.code === "SERVICE_UNAVAILABLE" ? (s.retryAfter ? " +Retry-After" : " (no Retry-After)") : ""}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return Object.fromEntries(counts);
  };
  const failures = run.samples.filter(failed);
  const outside = failures.filter((s) => !inside(s));
  const within = failures.filter(inside);
  const unclear = within.filter((s) => !(s.code === "SERVICE_UNAVAILABLE" && s.retryAfter));
  const row = {
    phase: name,
    requests: run.samples.length,
    reqPerSec: Math.round(ok.length / run.seconds),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    p99Outside: percentile(outsideLatencies, 99),
    failuresOutside: outside.length,
    failuresInside: within.length,
    unclearInside: unclear.length,
  };
  console.log(`\n${name}: ${row.requests} requests, ${row.reqPerSec} ok/s, p50 ${row.p50.toFixed(1)} ms, p99 ${row.p99.toFixed(1)} ms (outside restart windows ${row.p99Outside.toFixed(1)} ms)`);
  console.log(`  failures outside restart windows: ${outside.length} ${JSON.stringify(tally(outside))}`);
  if (windows.length) console.log(`  failures inside restart windows: ${within.length} ${JSON.stringify(tally(within))}; not a clear retryable error: ${unclear.length}`);
  return row;
}

async function main(): Promise<number> {
  const cluster = await startCluster();
  const redis = await startTestRedis();
  process.env.DATABASE_URL = cluster.url;
  let database: Awaited<ReturnType<typeof createBenchDatabase>> | undefined;
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  try {
    database = await createBenchDatabase(`bench_load_${Date.now()}`);
    const logFile = process.env.BENCH_LOAD_LOG;
    server = await startServer({
      databaseUrl: database.url,
      nodeArgs: PROD_NODE_ARGS, // as `npm run start:prod`, with its environment
      env: {
        ...PROD_ENV,
        NODE_ENV: "production", // trusted documents on: the load sends persisted operations by documentId
        REDIS_URL: redis.url,
        RECON_WORKERS: "0", // an API instance: the bulk seed's jobs are not runnable
        RECON_RATE_LIMIT_PER_SECOND: "50", // the production default, per viewer, shared through Redis
        DATABASE_POOL_SIZE: "20",
      },
      onLog: (line) => {
        if (logFile) appendFileSync(logFile, `${line}\n`);
        else if (/"level":(4|5|6)\d/.test(line)) console.error(line);
      },
    });
    // Background volume, after the server has created its first admin (it does so only in an empty database).
    const pool = new pg.Pool({ connectionString: database.url });
    const counts = await seedBulk(pool, { users: 2000, projects: 10_000, jobs: 20_000, dataSources: 20_000 });
    await pool.end();
    process.stderr.write(`seeded ${JSON.stringify(counts)}\n`);
    const url = new URL(server.url);
    // The viewers: analysts with a few projects and a data source each, signed in with the Login operation.
    const setupAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const adminToken = (await gqlPersisted(url, setupAgent, null, "Login", { email: ADMIN_EMAIL, password: ADMIN_PASSWORD })).login.token as string;
    const viewers: Viewer[] = [];
    for (let i = 0; i < CONNECTIONS; i++) {
      const email = `load${i}@bench.recon.local`;
      await gqlPersisted(url, setupAgent, adminToken, "CreateUser", { input: { email, name: `Load ${i}`, password: VIEWER_PASSWORD, role: "ANALYST" } });
      const token = (await gqlPersisted(url, setupAgent, null, "Login", { email, password: VIEWER_PASSWORD })).login.token as string;
      const projects: string[] = [];
      for (let p = 0; p < PROJECTS_PER_VIEWER; p++) {
        const id = (await gqlPersisted(url, setupAgent, token, "CreateProject", { input: { name: `Load ${i}.${p}` } })).createProject.id as string;
        await gqlPersisted(url, setupAgent, token, "CreateDataSource", { input: { projectId: id, name: "Bank" } });
        projects.push(id);
      }
      viewers.push({ token, projects, agent: new http.Agent({ keepAlive: true, maxSockets: 1 }) });
    }
    setupAgent.destroy();

    // The server's RSS every 5 s from the warm-up on, printed at the end (growth that never levels off is a leak).
    // Point readings swing with V8's garbage collection (±10% here), so each phase's mean is compared too.
    const rssTimeline: { phase: string; bytes: number }[] = [];
    let phase = "warm-up";
    const sampler = setInterval(() => rssTimeline.push({ phase, bytes: procStatus(server!.pid, "VmRSS") }), 5000);
    await runLoad(url, viewers, WARMUP_SECONDS, 0);
    const rssBefore = procStatus(server.pid, "VmRSS");
    const heapBefore = await heapUsed(url);
    phase = "steady";
    const steady = summarize("steady", await runLoad(url, viewers, SECONDS, 1), []);
    const rssAfterSteady = procStatus(server.pid, "VmRSS");
    const heapAfterSteady = await heapUsed(url);

    const windows: [number, number][] = [];
    const at = (startedAt: number, fraction: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, startedAt + fraction * SECONDS * 1000 - performance.now())));
    phase = "restarts";
    const restarts = summarize("restarts", await runLoad(url, viewers, SECONDS, 2, async (startedAt) => {
      await at(startedAt, 0.25);
      const redisDown = performance.now();
      await redis.kill();
      await new Promise((resolve) => setTimeout(resolve, 5000));
      await redis.start();
      windows.push([redisDown, performance.now() + GRACE_MS]);
      console.log(`redis: killed at ${((redisDown - startedAt) / 1000).toFixed(1)} s, back after ${((performance.now() - redisDown) / 1000).toFixed(1)} s`);
      await at(startedAt, 0.55);
      const pgDown = performance.now();
      cluster.stop();
      await new Promise((resolve) => setTimeout(resolve, 3000));
      cluster.start();
      windows.push([pgDown, performance.now() + GRACE_MS]);
      console.log(`postgresql: stopped at ${((pgDown - startedAt) / 1000).toFixed(1)} s, back after ${((performance.now() - pgDown) / 1000).toFixed(1)} s`);
    }), windows);
    const rssAfter = procStatus(server.pid, "VmRSS");
    const heapAfter = await heapUsed(url);

    clearInterval(sampler);
    const growth = rssAfter / rssBefore - 1;
    const meanOf = (name: string) => {
      const values = rssTimeline.filter((sample) => sample.phase === name).map((sample) => sample.bytes);
      return values.reduce((sum, value) => sum + value, 0) / values.length;
    };
    const meanGrowth = meanOf("restarts") / meanOf("steady") - 1;
    console.log(`\nserver RSS every 5 s from the warm-up on (MB): ${rssTimeline.map((sample) => Math.round(sample.bytes / 1024 / 1024)).join(" ")}`);
    console.log(`server RSS mean: steady ${mb(meanOf("steady"))}, restarts ${mb(meanOf("restarts"))} (${(meanGrowth * 100).toFixed(1)}%; limit +10%)`);
    console.log(`\nserver RSS: before ${mb(rssBefore)}, after steady ${mb(rssAfterSteady)}, after restarts ${mb(rssAfter)} (${(growth * 100).toFixed(1)}%, a point reading)`);
    console.log(`server V8 heap in use: before ${mb(heapBefore)}, after steady ${mb(heapAfterSteady)}, after restarts ${mb(heapAfter)}`);
    console.log(`\n| phase | requests | ok req/s | p50 ms | p99 ms | p99 outside windows | failures outside | failures inside (unclear) |`);
    console.log(`|---|---|---|---|---|---|---|---|`);
    for (const r of [steady, restarts]) {
      console.log(`| ${r.phase} | ${r.requests} | ${r.reqPerSec} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.p99Outside.toFixed(1)} | ${r.failuresOutside} | ${r.failuresInside} (${r.unclearInside}) |`);
    }
    for (const viewer of viewers) viewer.agent.destroy();
    const failedRequirement = steady.failuresOutside > 0 || restarts.failuresOutside > 0 || restarts.unclearInside > 0 || meanGrowth > 0.1;
    return failedRequirement ? 1 : 0;
  } finally {
    await server?.stop();
    await redis.kill();
    await database?.drop().catch(() => {});
    cluster.remove();
  }
}

/** Sends a manifest operation by documentId during setup; throws on any error. */
async function gqlPersisted(url: URL, agent: http.Agent, token: string | null, operation: string, variables: Record<string, unknown>) {
  const { status, text } = await post(url, agent, token, JSON.stringify({ documentId: hash(operation), variables }));
  const code = errorCode(status, text);
  if (status !== 200 || code) throw new Error(`${operation}: ${status} ${code} ${text.slice(0, 500)}`);
  return (JSON.parse(text) as { data: any }).data;
}

runAsScript(main);
