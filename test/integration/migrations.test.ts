/**
 * The migrations are the schema: applying prisma/migrations must produce exactly the database that
 * schema.prisma describes (no drift), and applying them is recorded the way `prisma migrate deploy` records it.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyMigrations, defaultSchemaPaths, diffSchemas } from "../../src/db/schema-engine.js";
import { createEmptyDatabase, type TestDatabase } from "../helpers/database.js";

/** Everything about a database's public schema that a migration can change, as comparable rows. */
async function catalog(url: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const q = async (text: string) => (await client.query(text)).rows.map((row) => JSON.stringify(row)).sort();
    return {
      columns: await q(`SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default,
          character_maximum_length, numeric_precision, numeric_scale, datetime_precision
        FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> '_prisma_migrations'`),
      indexes: await q(`SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND tablename <> '_prisma_migrations'`),
      constraints: await q(`SELECT conrelid::regclass::text AS table, conname, pg_get_constraintdef(oid) AS definition
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> '_prisma_migrations'`),
      enums: await q(`SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) AS labels
        FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname`),
      extensions: await q(`SELECT extname FROM pg_extension`),
    };
  } finally {
    await client.end();
  }
}

describe("migrations", () => {
  let migrated: TestDatabase;
  let fromSchema: TestDatabase;

  beforeAll(async () => {
    [migrated, fromSchema] = await Promise.all([createEmptyDatabase(), createEmptyDatabase()]);
  });
  afterAll(async () => {
    await Promise.all([migrated?.drop(), fromSchema?.drop()]);
  });

  it("apply once, then report nothing pending", async () => {
    const names = readdirSync(defaultSchemaPaths.migrationsDir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name)
      .sort();
    expect(names.length).toBeGreaterThan(0);
    expect(await applyMigrations(migrated.url)).toEqual(names);
    expect(await applyMigrations(migrated.url)).toEqual([]);

    // Bookkeeping compatible with `prisma migrate deploy`: one finished row per migration, sha256 checksum.
    const client = new pg.Client({ connectionString: migrated.url });
    await client.connect();
    const { rows } = await client.query(
      "SELECT migration_name, checksum, finished_at FROM _prisma_migrations ORDER BY migration_name",
    );
    await client.end();
    expect(rows.map((row) => row.migration_name)).toEqual(names);
    for (const row of rows) {
      const sql = readFileSync(join(defaultSchemaPaths.migrationsDir, row.migration_name, "migration.sql"));
      expect(row.checksum).toBe(createHash("sha256").update(sql).digest("hex"));
      expect(row.finished_at).not.toBeNull();
    }
  });

  it("produce exactly the database schema.prisma describes", async () => {
    const schema = readFileSync(defaultSchemaPaths.schemaFile, "utf8");
    const script = await diffSchemas(fromSchema.url, null, schema);
    const client = new pg.Client({ connectionString: fromSchema.url });
    await client.connect();
    await client.query(script);
    await client.end();

    const [actual, expected] = await Promise.all([catalog(migrated.url), catalog(fromSchema.url)]);
    expect(actual.columns).toEqual(expected.columns);
    expect(actual.indexes).toEqual(expected.indexes);
    expect(actual.enums).toEqual(expected.enums);
    expect(actual.extensions).toEqual(expected.extensions);
    // The one deliberate addition Prisma cannot express: emails are stored lower-cased, which makes the unique
    // index on email case-insensitive.
    const extra = actual.constraints.filter((row) => !expected.constraints.includes(row));
    expect(extra.map((row) => JSON.parse(row).conname)).toEqual(["users_email_lowercase"]);
    expect(expected.constraints.filter((row) => !actual.constraints.includes(row))).toEqual([]);
  });
});
