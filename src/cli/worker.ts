/**
 * `npm run worker`: a process that only runs reconciliation jobs (no HTTP). Start as many as the machines allow;
 * they share the PostgreSQL-backed queue with the servers (whose own RECON_WORKERS may then be 0). Uses
 * DATABASE_URL, or the embedded PostgreSQL of a server started with `npm start` on this machine.
 * SIGTERM/SIGINT: stops taking jobs and stops running ones, which roll back and are run again by another worker
 * (or at the next start), as after a crash; one that cannot let go in time ends the process (main.ts does the same).
 */
import { loadConfig } from "../config.js";
import { createDatabase } from "../db/database.js";
import { embeddedDatabaseUrl } from "../db/database-server.js";
import { createJobServices, createRepositories, projectServiceOf } from "../container.js";
import { createAuditService } from "../modules/audit/audit-service.js";
import { createReconcileTask } from "../modules/jobs/reconcile-task.js";
import { createLogger } from "../observability/logger.js";
import { createMetrics } from "../observability/metrics.js";
import { createJobEvents } from "../queue/job-events.js";
import { createQueue } from "../queue/queue.js";
import { startWorkers } from "../queue/workers.js";

const config = loadConfig();
const logger = createLogger(config.logLevel);
const url = config.databaseUrl ?? embeddedDatabaseUrl(config);
const metrics = createMetrics();
const database = createDatabase({
  url,
  poolSize: Math.max(4, config.jobs.workers * 4),
  acquireTimeoutMs: config.databaseAcquireTimeoutMs,
  statementTimeoutMs: config.databaseStatementTimeoutMs,
  metrics,
  onConnectionLost: (error) => logger.warn({ err: error.message }, "database connection lost"),
});
// Nothing to do without PostgreSQL: say where it was looked for, rather than the driver's stack trace.
await database.pool.query("SELECT 1").catch((error: Error) => {
  const where = config.databaseUrl ? `at DATABASE_URL (${new URL(url).host})` : "embedded (started by `npm start` on this machine: is it running?)";
  process.stderr.write(`recon worker: cannot reach PostgreSQL ${where}: ${error.message.replace(/\.?$/, ".")} Set DATABASE_URL, or start the server first.\n`);
  process.exit(1);
});
const jobEvents = createJobEvents({ url, logger });
// This process has no response cache, but the API instances' caches must drop what its writes change (a scheduled
// run's schedule row, for one): it tells them over PostgreSQL (a job's own changes also go out as job events).
database.changes.subscribe((change) => jobEvents.shareChange(database.pool, change));
const queue = await createQueue({ url, logger, pollingIntervalSeconds: config.jobs.queuePollSeconds, wakeups: jobEvents });
const reconcileTask = createReconcileTask({
  pool: database.pool,
  changes: database.changes,
  events: jobEvents,
  metrics,
  logger,
  blockRecords: config.jobs.blockRecords,
  engineThreads: Math.max(1, config.jobs.workers),
});
// The scheduler's tick starts scheduled runs here too: the job and schedule services, without the API's.
const repos = createRepositories(database);
const audit = createAuditService({ audit: repos.audit });
const projects = projectServiceOf(database, repos, audit, jobEvents);
const { scheduleTickTask } = createJobServices({ database, repos, audit, projects, queue, jobEvents, reconcileTask, metrics, logger });
const workers = await startWorkers({ database, queue, reconcileTask, scheduleTickTask, logger, jobEvents }, { ...config.jobs, workers: Math.max(1, config.jobs.workers) });
logger.info({ workers: Math.max(1, config.jobs.workers) }, "recon worker is taking reconciliation jobs");

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "worker stopping: stopping running jobs");
    void reconcileTask.interrupt().then((stopped) => {
      if (stopped) return;
      logger.error("running jobs did not stop in time: exiting (recovery queues them again)");
      process.exit(1);
    });
    void (async () => {
      await workers.stop();
      await queue.stop();
      await reconcileTask.closeEngines();
      await jobEvents.close();
      await database.close();
      process.exit(0);
    })();
  });
}
