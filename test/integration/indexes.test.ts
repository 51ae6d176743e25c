/**
 * The hot list and count queries use indexes. The API runs against the benchmark's data set (5,000 projects,
 * 50,000 jobs, 20,000 data sources, 1,000 users); every SELECT it sends is captured and EXPLAINed with its own
 * bind values, and no plan may scan a whole large table.
 */
import type { AddressInfo } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedBulk } from "../../bench/seed-bulk.js";
import { createTokenIssuer } from "../../src/auth/tokens.js";
import { createExportLinks } from "../../src/auth/export-links.js";
import { createContainer } from "../../src/container.js";
import { createTrustedDocuments, loadManifest } from "../../src/graphql/trusted-documents.js";
import { createResponseCache } from "../../src/cache/response-cache.js";
import { loadConfig } from "../../src/config.js";
import { createDatabase, type Database, type StatementEvent } from "../../src/db/database.js";
import { createJobEvents } from "../../src/queue/job-events.js";
import { createQueue } from "../../src/queue/queue.js";
import { createHttpServer, type RunningHttpServer } from "../../src/http/server.js";
import { createLogger } from "../../src/observability/logger.js";
import { createMetrics } from "../../src/observability/metrics.js";
import { createTestDatabase, type TestDatabase } from "../helpers/database.js";

/**
 * Tables of 5,000 rows or more in this data set. (`users` has 1,000: fetching 100 owners by primary key from it is
 * rightly a sequential scan of a dozen pages, which the planner prefers to 100 index probes.)
 */
const LARGE_TABLES = new Set(["projects", "reconciliation_jobs", "data_sources", "project_members"]);

let db: TestDatabase;
let database: Database;
let http: RunningHttpServer;
let url: string;
let closeQueue: (() => Promise<void>) | undefined;
let captured: StatementEvent[] = [];
const tokens = createTokenIssuer("index-test-secret-that-is-long-enough", 3600);

beforeAll(async () => {
  db = await createTestDatabase();
  const metrics = createMetrics();
  database = createDatabase({ url: db.url, poolSize: 4, metrics, onStatement: (statement) => captured.push(statement) });
  await seedBulk(database.pool);
  await database.pool.query("VACUUM ANALYZE");
  // Uncached: every request must reach the database for its SQL to be captured.
  const cache = await createResponseCache({ ...loadConfig({ RESPONSE_CACHE: "off" }).cache, metrics, logger: createLogger("silent") });
  const container = createContainer({
    database,
    cache,
    tokens,
    metrics,
    logger: createLogger("silent"),
    exposeSqlStatements: true,
    trustedDocuments: createTrustedDocuments({ manifest: loadManifest(), enforce: false }),
    limits: { maxUploadBytes: 1024 ** 3, maxConcurrentIngests: 1 },
    exportLinks: createExportLinks("index-test-secret-that-is-long-enough", 300),
    queue: await createQueue({ url: db.url, logger: createLogger("silent") }),
    jobEvents: createJobEvents({ url: db.url, logger: createLogger("silent") }),
    jobBlockRecords: 10_000,
  });
  closeQueue = async () => {
    await container.queue.stop();
    await container.jobEvents.close();
  };
  http = await createHttpServer(container);
  await new Promise<void>((resolve) => http.server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(http.server.address() as AddressInfo).port}/graphql`;
});
afterAll(async () => {
  await http?.close();
  await closeQueue?.();
  await database?.close();
  await db?.drop();
});

/** The user on whose behalf a query runs: the first bulk user with `role`, active. */
async function tokenFor(role: string): Promise<string> {
  const { rows } = await database.pool.query(
    `SELECT id FROM users WHERE role = $1::"Role" AND is_active ORDER BY email LIMIT 1`,
    [role],
  );
  return (await tokens.issue(rows[0].id, 0)).token;
}

/** Sequential scans of large tables in the plan of `statement`. */
async function seqScans(client: pg.PoolClient, statement: StatementEvent): Promise<string[]> {
  const { rows } = await client.query(`EXPLAIN (FORMAT JSON) ${statement.text}`, statement.values);
  const found: string[] = [];
  const walk = (node: any) => {
    if (node["Node Type"] === "Seq Scan" && LARGE_TABLES.has(node["Relation Name"])) found.push(node["Relation Name"]);
    for (const child of node.Plans ?? []) walk(child);
  };
  walk(rows[0]["QUERY PLAN"][0].Plan);
  return found;
}

const operations: [string, string, string, Record<string, unknown>?][] = [
  ["ADMIN", "project list with owner, counts and total", "{ projects(first: 100) { totalCount edges { node { owner { name } jobCount dataSourceCount } } } }"],
  ["ANALYST", "own project list with counts and total", "{ projects(first: 100) { totalCount edges { node { owner { name } jobCount dataSourceCount latestJob { id } } } } }"],
  ["ANALYST", "project list filtered by status", "{ projects(first: 20, filter: { status: ACTIVE }) { edges { node { name } } } }"],
  ["ADMIN", "user list with project counts", "{ users(first: 100) { totalCount edges { node { projectCount } } } }"],
  ["ANALYST", "visible user list", "{ users(first: 50) { edges { node { name projectCount } } } }"],
  ["ADMIN", "project search", "{ searchProjects(query: \"Ledger US 4321\", first: 20) { owner { name } jobCount } }"],
  ["ANALYST", "project detail with jobs and stats", "{ projects(first: 5) { edges { node { dataSources { name } members { user { name } } jobs(first: 10, status: COMPLETED) { totalCount edges { node { id leftSource { name } } } } stats { recordCount lastJob { id } } } } } }"],
];

describe("index use", () => {
  it.each(operations)("%s: %s", async (role, _, query) => {
    const token = await tokenFor(role);
    captured = [];
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query }),
    });
    const body = (await response.json()) as { errors?: unknown };
    expect(body.errors).toBeUndefined();
    const selects = captured.filter((statement) => /^\s*(SELECT|WITH)/i.test(statement.text));
    expect(selects.length).toBeGreaterThan(1);
    const client = await database.pool.connect();
    try {
      for (const statement of selects) {
        expect({ sql: statement.text, seqScans: await seqScans(client, statement) }).toEqual({ sql: statement.text, seqScans: [] });
      }
    } finally {
      client.release();
    }
  });
});
