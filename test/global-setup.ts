/**
 * Once per test run: find the PostgreSQL server (DATABASE_URL, or an embedded one started here), build a
 * template database with all migrations applied, and hand both to the test files, which clone the template
 * into a database of their own (test/helpers/database.ts).
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { freePort } from "./helpers/ports.js";
import { join } from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres } from "../src/db/database-server.js";
import { withDatabaseName } from "../src/db/database-url.js";
import { applyMigrations } from "../src/db/schema-engine.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** Superuser URL of the test PostgreSQL server (database `postgres`). */
    postgresServerUrl: string;
    /** Name of the migrated template database to clone. */
    templateDatabase: string;
  }
}

export default async function setup(project: TestProject) {
  let serverUrl: string;
  let stopServer = async () => {};
  if (process.env.DATABASE_URL) {
    serverUrl = withDatabaseName(process.env.DATABASE_URL, "postgres");
  } else {
    // /tmp, not a 0700 mkdtemp directory alone: the embedded server runs as `postgres` when we are root.
    const dir = mkdtempSync("/tmp/recon-test-pg-");
    chmodSync(dir, 0o755);
    const embedded = await startEmbeddedPostgres(join(dir, "pg"), await freePort());
    serverUrl = embedded.url;
    stopServer = async () => {
      await embedded.stop();
      rmSync(dir, { recursive: true, force: true });
    };
  }

  const templateDatabase = `recon_test_template_${process.pid}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${templateDatabase}`);
  await admin.query(`CREATE DATABASE ${templateDatabase}`);
  await applyMigrations(withDatabaseName(serverUrl, templateDatabase));

  project.provide("postgresServerUrl", serverUrl);
  project.provide("templateDatabase", templateDatabase);

  return async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${templateDatabase} WITH (FORCE)`);
    await admin.end();
    await stopServer();
  };
}
