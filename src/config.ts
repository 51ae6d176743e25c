/**
 * Every environment variable recon reads, parsed and validated once at start. README's configuration table lists
 * the same variables; keep the two in step.
 */
import { resolve } from "node:path";

export interface Config {
  /** `production` turns off development conveniences (SQL statement counts in responses). */
  nodeEnv: string;
  host: string;
  port: number;
  /** PostgreSQL server; when absent an embedded PostgreSQL is started under `dataDir`. */
  databaseUrl: string | undefined;
  databasePoolSize: number;
  /** Where embedded PostgreSQL and generated secrets live between runs. */
  dataDir: string;
  embeddedPostgresPort: number;
  /** The first admin, created at start when no user exists. */
  adminEmail: string;
  adminPassword: string | undefined;
  /** HMAC key for access tokens; generated and kept in `dataDir` when absent. */
  jwtSecret: string | undefined;
  jwtTtlSeconds: number;
  logLevel: string;
  /** SQL statements slower than this are logged with their request id. */
  slowSqlMs: number;
  /** Largest file accepted by an upload, in bytes. */
  maxUploadBytes: number;
  /** Ingests this instance runs at once; more are refused with TOO_MANY_INGESTS. */
  maxConcurrentIngests: number;
}

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`Environment variable ${name} must be an integer >= ${min}, got "${raw}"`);
  }
  return value;
}

function text(env: Env, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw ? raw : undefined;
}

/** Reads the configuration from `env` (the process environment by default); throws on invalid values. */
export function loadConfig(env: Env = process.env): Config {
  const jwtSecret = text(env, "RECON_JWT_SECRET");
  if (jwtSecret !== undefined && jwtSecret.length < 32) {
    throw new Error("Environment variable RECON_JWT_SECRET must be at least 32 characters");
  }
  return {
    nodeEnv: text(env, "NODE_ENV") ?? "development",
    host: text(env, "HOST") ?? "127.0.0.1",
    port: integer(env, "PORT", 4000),
    databaseUrl: text(env, "DATABASE_URL"),
    databasePoolSize: integer(env, "DATABASE_POOL_SIZE", 10, 1),
    dataDir: resolve(text(env, "RECON_DATA_DIR") ?? ".data"),
    embeddedPostgresPort: integer(env, "RECON_EMBEDDED_PG_PORT", 54329, 1),
    adminEmail: (text(env, "RECON_ADMIN_EMAIL") ?? "admin@recon.local").toLowerCase(),
    adminPassword: text(env, "RECON_ADMIN_PASSWORD"),
    jwtSecret,
    jwtTtlSeconds: integer(env, "RECON_JWT_TTL_SECONDS", 12 * 3600, 60),
    logLevel: text(env, "LOG_LEVEL") ?? "info",
    slowSqlMs: integer(env, "RECON_SLOW_SQL_MS", 200),
    maxUploadBytes: integer(env, "RECON_MAX_UPLOAD_BYTES", 2 * 1024 ** 3, 1),
    maxConcurrentIngests: integer(env, "RECON_MAX_CONCURRENT_INGESTS", 2, 1),
  };
}
