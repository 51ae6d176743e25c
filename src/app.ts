/**
 * Builds a running recon from a configuration: the PostgreSQL server (external or embedded), migrations, the
 * first admin, the composition root and the HTTP server. `main.ts` runs it as a process; tests run it in-process.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { hashPassword, MIN_PASSWORD_LENGTH } from "./auth/passwords.js";
import { createExportLinks } from "./auth/export-links.js";
import { createTokenIssuer } from "./auth/tokens.js";
import { createResponseCache } from "./cache/response-cache.js";
import { tags } from "./cache/tags.js";
import type { Config } from "./config.js";
import { createContainer, type Container } from "./container.js";
import { createDatabase } from "./db/database.js";
import { resolveDatabaseUrl } from "./db/database-server.js";
import { applyMigrations } from "./db/schema-engine.js";
import { createTrustedDocuments, loadManifest } from "./graphql/trusted-documents.js";
import { createRateLimiter } from "./http/rate-limit.js";
import { createHttpServer, type HttpServerOptions } from "./http/server.js";
import { RECOVERY_INTERVAL_MS } from "./ingest/ingest-service.js";
import { createSharedRateLimiter } from "./http/shared-rate-limit.js";
import { createLogger, type Logger } from "./observability/logger.js";
import { createMetrics } from "./observability/metrics.js";
import { currentRequestScope } from "./observability/request-scope.js";
import { createJobEvents } from "./queue/job-events.js";
import { createQueue } from "./queue/queue.js";
import { startWorkers } from "./queue/workers.js";

export interface App {
  url: string;
  container: Container;
  close(): Promise<void>;
}

/** RECON_JWT_SECRET, or a random one kept in the data directory so tokens survive restarts. */
function jwtSecret(config: Config, logger: Logger): string {
  if (config.jwtSecret) return config.jwtSecret;
  if (config.nodeEnv === "production") throw new Error("RECON_JWT_SECRET must be set in production");
  const file = join(config.dataDir, "jwt-secret");
  if (!existsSync(file)) {
    mkdirSync(config.dataDir, { recursive: true });
    writeFileSync(file, randomBytes(48).toString("base64url"), { mode: 0o600 });
    logger.info({ file }, "generated a JWT signing secret (set RECON_JWT_SECRET to choose one)");
  }
  return readFileSync(file, "utf8").trim();
}

/** Creates the first ADMIN when the database has no users yet. */
async function ensureFirstAdmin(container: Container, config: Config): Promise<void> {
  const { repos, logger } = container;
  if ((await repos.users.countAll()) > 0) return;
  const generated = !config.adminPassword;
  const password = config.adminPassword ?? randomBytes(18).toString("base64url");
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new Error(`RECON_ADMIN_PASSWORD must be at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  await repos.users.create({ email: config.adminEmail, name: "Administrator", role: "ADMIN", passwordHash: await hashPassword(password) });
  logger.info({ email: config.adminEmail }, "created the first admin user");
  if (generated) {
    // Printed once, on the console only (not in the structured log): it is never shown again.
    process.stderr.write(`\n  First admin: ${config.adminEmail}\n  Password:    ${password}\n  (shown once; set RECON_ADMIN_PASSWORD to choose it)\n\n`);
  }
}

export async function startApp(config: Config, options: HttpServerOptions = {}): Promise<App> {
  const logger = createLogger(config.logLevel);
  const dbServer = await resolveDatabaseUrl(config);
  try {
    const applied = await applyMigrations(dbServer.url);
    if (applied.length) logger.info({ applied }, "applied database migrations");
  } catch (error) {
    await dbServer.stop();
    throw error;
  }
  const metrics = createMetrics();
  const database = createDatabase({
    url: dbServer.url,
    poolSize: config.databasePoolSize,
    acquireTimeoutMs: config.databaseAcquireTimeoutMs,
    statementTimeoutMs: config.databaseStatementTimeoutMs,
    metrics,
    onPoolPressure: (inUse, size) => logger.warn({ inUse, size }, "database pool above 80% in use"),
    onConnectionLost: (error) => logger.warn({ err: error.message }, "database connection lost; the next request reconnects"),
    onStatement: ({ text, durationMs, failed }) => {
      if (durationMs < config.slowSqlMs) return;
      // Only the statement text: bind values may hold personal data.
      logger.warn({ requestId: currentRequestScope()?.requestId, durationMs: Math.round(durationMs), failed, sql: text.slice(0, 2000) }, "slow SQL statement");
    },
  });
  const cache = await createResponseCache({ ...config.cache, metrics, logger });
  // Every committed write invalidates what it changed (announced after commit; see db/change-feed.ts).
  database.changes.subscribe((change) => cache.invalidate(change));
  const secret = jwtSecret(config, logger);
  const tokens = createTokenIssuer(secret, config.jwtTtlSeconds);
  // Job rows are written by workers anywhere, some in processes with no response cache: every instance drops
  // what it cached of a job when the job announces a change (and everything after missing announcements).
  const jobEvents = createJobEvents({
    url: dbServer.url,
    logger,
    reconnected: () => void cache.flush(),
    listening: (up) => cache.hearPeers(up),
  });
  // Writes that do not reach the other instances through Redis (none is configured, or this instance's cache is
  // off) are told them over PostgreSQL, as worker processes tell theirs (cli/worker.ts); every instance applies
  // what it hears (with Redis, through Redis: so all instances drop it).
  if (!config.cache.redisUrl || !cache.enabled) database.changes.subscribe((change) => jobEvents.shareChange(database.pool, change));
  jobEvents.onPeerChange((change) => void cache.invalidate(change));
  jobEvents.subscribeAll((jobId, projectId) => {
    // A job's completion also carries forward or settles earlier jobs' exceptions of the project.
    if (jobId && projectId) void cache.invalidate({ tags: [tags.job(jobId), tags.projectJobs(projectId), tags.projectStats(projectId), tags.projectExceptions(projectId)], source: "job-event" });
  });
  const queue = await createQueue({ url: dbServer.url, logger, pollingIntervalSeconds: config.jobs.queuePollSeconds, wakeups: jobEvents });
  // Per viewer across all instances when they share Redis, per instance otherwise.
  const rateLimit = { perSecond: config.rateLimitPerSecond, burst: config.rateLimitBurst };
  const rateLimiter = config.cache.redisUrl
    ? await createSharedRateLimiter({ ...rateLimit, url: config.cache.redisUrl, namespace: config.cache.namespace, timeoutMs: config.cache.redisTimeoutMs, logger })
    : createRateLimiter(rateLimit);
  const container = createContainer({
    queue,
    jobEvents,
    jobBlockRecords: config.jobs.blockRecords,
    jobWorkers: config.jobs.workers,
    slowOperationMs: config.slowOperationMs,
    rateLimiter,
    database,
    cache,
    tokens,
    metrics,
    logger,
    exposeSqlStatements: config.nodeEnv !== "production",
    trustedDocuments: createTrustedDocuments({ manifest: loadManifest(), enforce: config.trustedDocuments }),
    limits: { maxUploadBytes: config.maxUploadBytes, maxConcurrentIngests: config.maxConcurrentIngests, maxConcurrentExports: config.maxConcurrentExports },
    exportLinks: createExportLinks(secret, config.exportLinkTtlSeconds),
  });
  await ensureFirstAdmin(container, config);
  const { ingest } = container.services;
  await ingest.recoverInterrupted();
  // And again from time to time: an upload answered early (Prefer: respond-async) whose instance was killed must
  // end FAILED for the client following it, even if no instance restarts.
  const uploadRecovery = setInterval(() => {
    ingest.recoverInterrupted().catch((error) => logger.warn({ err: error }, "could not look for interrupted uploads"));
  }, RECOVERY_INTERVAL_MS);
  uploadRecovery.unref();
  const workers = await startWorkers(container, config.jobs);
  // Before the first request: the cache must hear other processes' writes before it serves anything.
  await jobEvents.ready();
  const http = await createHttpServer(container, options);
  await new Promise<void>((resolve, reject) => {
    http.server.once("error", reject);
    http.server.listen(config.port, config.host, () => resolve());
  });
  // Replays the most-used queries saved by earlier instances (in Redis), in the background.
  const warmingAtStart = cache.warm();
  const { port } = http.server.address() as AddressInfo;
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  const url = `http://${host === "127.0.0.1" || host === "0.0.0.0" ? "localhost" : host}:${port}/graphql`;
  return {
    url,
    container,
    async close() {
      await cache.stopWarming();
      await warmingAtStart;
      await http.close();
      clearInterval(uploadRecovery);
      // Ingests answered early (202) outlive their requests, so the HTTP server's drain did not wait for them:
      // they finish, or, if the process is killed first, roll back and are marked FAILED by recovery.
      if (ingest.running > 0) logger.info({ ingests: ingest.running }, "waiting for running ingests to finish");
      await ingest.drain();
      // The workers stop taking jobs and wait for those under way. On a signal, main.ts has already interrupted
      // them (each rolls back and is queued again, as after a crash); a caller that has not waits for them to end.
      await workers.stop();
      await queue.stop();
      await container.reconcileTask.closeEngines();
      await jobEvents.close();
      await rateLimiter.close();
      await cache.close();
      await database.close();
      await dbServer.stop();
    },
  };
}
