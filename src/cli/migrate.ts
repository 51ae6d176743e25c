/** `npm run db:migrate`: applies pending migrations to DATABASE_URL (or the embedded database) and exits. */
import { loadConfig } from "../config.js";
import { resolveDatabaseUrl } from "../db/database-server.js";
import { applyMigrations } from "../db/schema-engine.js";

const server = await resolveDatabaseUrl(loadConfig());
try {
  const applied = await applyMigrations(server.url);
  console.log(applied.length ? `Applied ${applied.length} migration(s): ${applied.join(", ")}` : "Database is up to date.");
} finally {
  await server.stop();
}
