/**
 * `npm run db:diff [-- --from <old schema.prisma>] [--name <migration_name>]`: prints the SQL that takes the schema
 * of the last commit (`git show HEAD:prisma/schema.prisma`, or the `--from` file) to the working
 * `prisma/schema.prisma`; with `--name`, writes it as a new migration directory. Needs no network; the engine wants
 * a reachable PostgreSQL (DATABASE_URL or the embedded one) though it changes nothing there.
 * The drift test (test/integration/migrations.test.ts) then proves the migrations add up to the schema.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../config.js";
import { resolveDatabaseUrl } from "../db/database-server.js";
import { defaultSchemaPaths, diffSchemas } from "../db/schema-engine.js";

function flag(name: string): string | undefined {
  const index = process.argv.indexOf(name);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

const fromFile = flag("--from");
const migrationName = flag("--name");
const from = fromFile
  ? readFileSync(fromFile, "utf8")
  : execFileSync("git", ["show", "HEAD:prisma/schema.prisma"], { encoding: "utf8" });
const server = await resolveDatabaseUrl(loadConfig());
const sql = await diffSchemas(server.url, from, readFileSync(defaultSchemaPaths.schemaFile, "utf8")).finally(() =>
  server.stop(),
);

if (!sql) {
  console.log("No schema changes: nothing to migrate.");
} else if (migrationName) {
  const stamp = new Date().toISOString().replace(/\D/g, "").slice(0, 14);
  const dir = join(defaultSchemaPaths.migrationsDir, `${stamp}_${migrationName}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "migration.sql"), `${sql}\n`);
  console.log(`Wrote ${dir}/migration.sql`);
} else {
  console.log(sql);
}
