/**
 * Every environment variable recon reads, parsed and validated once at start. README's configuration table lists
 * the same variables; keep the two in step.
 */
import { resolve } from "node:path";
import { parseTtls, type CacheTtls } from "./cache/tags.js";

export interface Config {
  /** `production` turns off development conveniences (SQL statement counts in responses). */
  nodeEnv: string;
  host: string;
  port: number;
  /** PostgreSQL server; when absent an embedded PostgreSQL is started under `dataDir`. */
  databaseUrl: string | undefined;
  databasePoolSize: number;
  /** Longest wait for a free pooled connection before retrying (three retries, then SERVICE_UNAVAILABLE). */
  databaseAcquireTimeoutMs: number;
  /** PostgreSQL stops any statement of a request running longer than this (ingest lifts it for its own). */
  databaseStatementTimeoutMs: number;
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
  /** GraphQL operations slower than this are logged with their request id (never their variables). */
  slowOperationMs: number;
  /** Largest file accepted by an upload, in bytes. */
  maxUploadBytes: number;
  /** Ingests this instance runs at once; more are refused with TOO_MANY_INGESTS. */
  maxConcurrentIngests: number;
  /** Exports this instance streams at once (each holds a database connection); more get TOO_MANY_EXPORTS. */
  maxConcurrentExports: number;
  /** How long a signed export download link works. */
  exportLinkTtlSeconds: number;
  /** Reconciliation jobs (src/modules/jobs/, src/queue/). */
  jobs: {
    /** Jobs this process runs at once (0: it only queues them, for API-only instances). */
    workers: number;
    /** Records (both sides) the engine matches at a time: bounds a worker's memory. */
    blockRecords: number;
    /** How often a worker looks for jobs whose worker was lost, to queue them again. */
    recoverySeconds: number;
    /**
     * How often an idle worker polls the queue. Jobs queued by any instance wake workers at once over LISTEN/NOTIFY;
     * the poll is the fallback (a wake-up lost while a connection was down) and what picks up scheduled runs' ticks.
     */
    queuePollSeconds: number;
    /**
     * Whether a process that runs jobs warms its engine threads on a synthetic job when it starts (about a second
     * of one core per thread), so that its first job does not pay V8's compilation (engine-thread.ts).
     */
    engineWarmup: boolean;
  };
  /**
   * `RECON_TRUSTED_DOCUMENTS`: only the persisted-documents manifest's operations run, except for ANALYST and ADMIN
   * viewers (ad-hoc operations under a stricter cost limit; src/graphql/trusted-documents.ts). On by default in
   * production.
   */
  trustedDocuments: boolean;
  /** GraphQL requests per second per viewer (token bucket, per instance); 0 turns the limit off. */
  rateLimitPerSecond: number;
  /** Requests a viewer may send at once before the rate applies. */
  rateLimitBurst: number;
  /** Response cache settings (src/cache/). */
  cache: {
    /** `RESPONSE_CACHE=off` disables it entirely (every answer executed). */
    enabled: boolean;
    /** Shared L2 and cross-instance invalidation; without it, L1 alone. */
    redisUrl: string | undefined;
    namespace: string;
    maxEntries: number;
    maxBytes: number;
    ttls: CacheTtls;
    /** Longest wait for Redis before a request bypasses the cache. */
    redisTimeoutMs: number;
  };
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

function onOff(env: Env, name: string, fallback: boolean): boolean {
  const raw = text(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (raw === "on" || raw === "true" || raw === "1") return true;
  if (raw === "off" || raw === "false" || raw === "0") return false;
  throw new Error(`Environment variable ${name} must be "on" or "off", got "${env[name]}"`);
}

/** Reads the configuration from `env` (the process environment by default); throws on invalid values. */
export function loadConfig(env: Env = process.env): Config {
  const jwtSecret = text(env, "RECON_JWT_SECRET");
  if (jwtSecret !== undefined && jwtSecret.length < 32) {
    throw new Error("Environment variable RECON_JWT_SECRET must be at least 32 characters");
  }
  const nodeEnv = text(env, "NODE_ENV") ?? "development";
  return {
    nodeEnv,
    host: text(env, "HOST") ?? "127.0.0.1",
    port: integer(env, "PORT", 4000),
    databaseUrl: text(env, "DATABASE_URL"),
    databasePoolSize: integer(env, "DATABASE_POOL_SIZE", 10, 1),
    databaseAcquireTimeoutMs: integer(env, "DATABASE_ACQUIRE_TIMEOUT_MS", 5000, 1),
    databaseStatementTimeoutMs: integer(env, "DATABASE_STATEMENT_TIMEOUT_MS", 30_000),
    dataDir: resolve(text(env, "RECON_DATA_DIR") ?? ".data"),
    embeddedPostgresPort: integer(env, "RECON_EMBEDDED_PG_PORT", 54329, 1),
    adminEmail: (text(env, "RECON_ADMIN_EMAIL") ?? "admin@recon.local").toLowerCase(),
    adminPassword: text(env, "RECON_ADMIN_PASSWORD"),
    jwtSecret,
    jwtTtlSeconds: integer(env, "RECON_JWT_TTL_SECONDS", 12 * 3600, 60),
    logLevel: text(env, "LOG_LEVEL") ?? "info",
    slowSqlMs: integer(env, "RECON_SLOW_SQL_MS", 200),
    slowOperationMs: integer(env, "RECON_SLOW_OPERATION_MS", 1000),
    maxUploadBytes: integer(env, "RECON_MAX_UPLOAD_BYTES", 2 * 1024 ** 3, 1),
    maxConcurrentIngests: integer(env, "RECON_MAX_CONCURRENT_INGESTS", 2, 1),
    maxConcurrentExports: integer(env, "RECON_MAX_CONCURRENT_EXPORTS", 2, 1),
    exportLinkTtlSeconds: integer(env, "RECON_EXPORT_LINK_TTL_SECONDS", 300, 10),
    trustedDocuments: onOff(env, "RECON_TRUSTED_DOCUMENTS", nodeEnv === "production"),
    rateLimitPerSecond: integer(env, "RECON_RATE_LIMIT_PER_SECOND", 50),
    rateLimitBurst: integer(env, "RECON_RATE_LIMIT_BURST", 200, 1),
    jobs: {
      workers: integer(env, "RECON_WORKERS", 1),
      blockRecords: integer(env, "RECON_JOB_BLOCK_RECORDS", 80_000, 1000),
      recoverySeconds: integer(env, "RECON_JOB_RECOVERY_SECONDS", 10, 1),
      queuePollSeconds: integer(env, "RECON_QUEUE_POLL_SECONDS", 1, 1),
      engineWarmup: onOff(env, "RECON_ENGINE_WARMUP", true),
    },
    cache: {
      enabled: onOff(env, "RESPONSE_CACHE", true),
      redisUrl: text(env, "REDIS_URL"),
      namespace: text(env, "RESPONSE_CACHE_NAMESPACE") ?? "recon-cache",
      maxEntries: integer(env, "RESPONSE_CACHE_MAX_ENTRIES", 2000, 1),
      maxBytes: integer(env, "RESPONSE_CACHE_MAX_BYTES", 64 * 1024 ** 2, 1024),
      ttls: parseTtls(text(env, "RESPONSE_CACHE_TTLS")),
      redisTimeoutMs: integer(env, "RESPONSE_CACHE_REDIS_TIMEOUT_MS", 100, 1),
    },
  };
}
