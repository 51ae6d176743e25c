/**
 * Prisma's schema engine, run offline from its WebAssembly build (`@prisma/schema-engine-wasm`).
 *
 * Responsible for applying `prisma/migrations` exactly as `prisma migrate deploy` does (same `_prisma_migrations`
 * bookkeeping, same advisory lock) and for diffing a live database against `prisma/schema.prisma`. Prisma's CLI
 * would download a native engine for this, which fails without internet; the wasm engine needs no download.
 */
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { bindMigrationAwareSqlAdapterFactory } from "@prisma/driver-adapter-utils";
import * as engineBindings from "@prisma/schema-engine-wasm/schema_engine_bg";

const require = createRequire(import.meta.url);

/** Locations of the Prisma schema and migrations; defaults to the repository's own. */
export interface SchemaPaths {
  schemaFile: string;
  migrationsDir: string;
}

export const defaultSchemaPaths: SchemaPaths = {
  schemaFile: resolve(import.meta.dirname, "../../prisma/schema.prisma"),
  migrationsDir: resolve(import.meta.dirname, "../../prisma/migrations"),
};

const noFilters = { externalTables: [], externalEnums: [] };
let wasmReady: Promise<void> | undefined;

/** Instantiates the wasm module once per process (its bundler-style entry point cannot be imported by Node). */
function loadWasm(): Promise<void> {
  wasmReady ??= (async () => {
    const wasmPath = require.resolve("@prisma/schema-engine-wasm/schema_engine_bg").replace(/\.js$/, ".wasm");
    const { instance } = await WebAssembly.instantiate(readFileSync(wasmPath), {
      "./schema_engine_bg.js": engineBindings as unknown as WebAssembly.ModuleImports,
    });
    engineBindings.__wbg_set_wasm(instance.exports);
    (instance.exports as { __wbindgen_start?: () => void }).__wbindgen_start?.();
  })();
  return wasmReady;
}

async function withEngine<T>(
  databaseUrl: string,
  schema: string,
  run: (engine: engineBindings.SchemaEngine) => Promise<T>,
): Promise<T> {
  await loadWasm();
  // Our own pool, so that its connections (one holds the migration advisory lock) are closed when we are done;
  // freeing the engine alone leaves them open and the next run waits for the lock.
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  const adapter = bindMigrationAwareSqlAdapterFactory(new PrismaPg(pool));
  const engine = await engineBindings.SchemaEngine.new({ datamodels: [["schema.prisma", schema]] }, () => {}, adapter);
  try {
    return await run(engine);
  } finally {
    engine.free();
    await pool.end();
  }
}

function migrationList(paths: SchemaPaths): engineBindings.MigrationList {
  const lockPath = join(paths.migrationsDir, "migration_lock.toml");
  const directories = existsSync(paths.migrationsDir)
    ? readdirSync(paths.migrationsDir, { withFileTypes: true })
        .filter((entry) => entry.isDirectory())
        .map((entry) => entry.name)
        .sort()
    : [];
  return {
    baseDir: paths.migrationsDir,
    lockfile: { path: "migration_lock.toml", content: existsSync(lockPath) ? readFileSync(lockPath, "utf8") : null },
    shadowDbInitScript: "",
    migrationDirectories: directories.map((name) => ({
      path: name,
      migrationFile: {
        path: "migration.sql",
        content: { tag: "ok", value: readFileSync(join(paths.migrationsDir, name, "migration.sql"), "utf8") },
      },
    })),
  };
}

/**
 * True when the database records exactly the migrations in `paths`, each finished, with the checksum of its file.
 * Then there is nothing to apply, and the wasm engine (which stays in memory once loaded, ~45 MB of a server's
 * RSS) need not be loaded at all. Anything else — no bookkeeping table, a pending, failed, rolled-back, unknown or
 * edited migration — is left to the engine, which handles it as `prisma migrate deploy` does.
 */
async function allApplied(databaseUrl: string, paths: SchemaPaths): Promise<boolean> {
  const { migrationDirectories } = migrationList(paths);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string; checksum: string }>(
      `SELECT migration_name AS name, checksum FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM _prisma_migrations m WHERE m.finished_at IS NULL OR m.rolled_back_at IS NOT NULL)`,
    );
    const recorded = new Map(rows.map((row) => [row.name, row.checksum]));
    return (
      recorded.size === migrationDirectories.length &&
      migrationDirectories.every(({ path, migrationFile }) => {
        const sql = migrationFile.content.tag === "ok" ? migrationFile.content.value : null;
        return sql !== null && recorded.get(path) === createHash("sha256").update(sql).digest("hex");
      })
    );
  } catch (error) {
    if ((error as { code?: string }).code === "42P01") return false; // no _prisma_migrations yet
    throw error;
  } finally {
    await client.end();
  }
}

/** Applies pending migrations (like `prisma migrate deploy`) and returns the names of those applied now. */
export async function applyMigrations(databaseUrl: string, paths = defaultSchemaPaths): Promise<string[]> {
  if (await allApplied(databaseUrl, paths)) return [];
  return withEngine(databaseUrl, readFileSync(paths.schemaFile, "utf8"), async (engine) => {
    const output = await engine.applyMigrations({ migrationsList: migrationList(paths), filters: noFilters });
    return output.appliedMigrationNames;
  });
}

/**
 * The SQL that takes a database built from the Prisma schema `from` (or an empty one) to the schema `to`.
 * Both are schema texts; the engine still insists on a reachable server at `databaseUrl`, but changes nothing there.
 * (It can also describe a live database, but through the pg driver adapter that fails on PostgreSQL's internal
 * `"char"` columns, so drift is checked by comparing catalogs instead.)
 */
export async function diffSchemas(databaseUrl: string, from: string | null, to: string): Promise<string> {
  return withEngine(databaseUrl, to, async (engine) => {
    const result = await engine.diff({
      from: from === null ? { tag: "empty" } : { tag: "schemaDatamodel", files: [{ path: "schema.prisma", content: from }] },
      to: { tag: "schemaDatamodel", files: [{ path: "schema.prisma", content: to }] },
      script: true,
      exitCode: null,
      filters: noFilters,
    });
    return (result.stdout ?? "").replace(/^-- This is an empty migration\.\s*$/m, "").trim();
  });
}
