/**
 * Composition root: builds the repositories and services once, from the database and configuration, with
 * each service given only the dependencies it uses.
 */
import type { TokenIssuer } from "./auth/tokens.js";
import type { ExportLinks } from "./auth/export-links.js";
import type { ResponseCache } from "./cache/response-cache.js";
import type { Database } from "./db/database.js";
import type { TrustedDocuments } from "./graphql/trusted-documents.js";
import type { RateLimiter } from "./http/rate-limit.js";
import type { Logger } from "./observability/logger.js";
import type { Metrics } from "./observability/metrics.js";
import { createAuditRepository } from "./modules/audit/audit-repository.js";
import { createCacheService } from "./modules/cache/cache-service.js";
import { createAuditService, type AuditService } from "./modules/audit/audit-service.js";
import { createAuthService } from "./modules/auth/auth-service.js";
import { createLoginThrottle } from "./modules/auth/login-throttle.js";
import { createDataSourceRepository } from "./modules/data-sources/data-source-repository.js";
import { createDataSourceService } from "./modules/data-sources/data-source-service.js";
import { createJobRepository } from "./modules/jobs/job-repository.js";
import { createProjectRepository } from "./modules/projects/project-repository.js";
import { createProjectService, type ProjectService } from "./modules/projects/project-service.js";
import { createUserRepository } from "./modules/users/user-repository.js";
import { createUserService } from "./modules/users/user-service.js";
import { createUploadRepository } from "./modules/uploads/upload-repository.js";
import { createIngestService } from "./ingest/ingest-service.js";
import { createJobService } from "./modules/jobs/job-service.js";
import { createExportRepository } from "./modules/exports/export-repository.js";
import { createExportService } from "./modules/exports/export-service.js";
import { createReconcileTask, type ReconcileTaskData } from "./modules/jobs/reconcile-task.js";
import { createScheduleRepository } from "./modules/schedules/schedule-repository.js";
import { createScheduleService } from "./modules/schedules/schedule-service.js";
import { createScheduleTickTask } from "./modules/schedules/schedule-task.js";
import { createStatsRepository } from "./modules/stats/stats-repository.js";
import { createExceptionRepository } from "./modules/exceptions/exception-repository.js";
import { createExceptionService } from "./modules/exceptions/exception-service.js";
import { createMatchWorkService } from "./modules/exceptions/match-work-service.js";
import type { JobEvents } from "./queue/job-events.js";
import type { Queue, Task } from "./queue/queue.js";

export function createRepositories(database: Pick<Database, "prisma" | "read" | "changes" | "pool">) {
  const access = { prisma: database.prisma, read: database.read, changes: database.changes, pool: database.pool };
  return {
    users: createUserRepository(access),
    projects: createProjectRepository(access),
    dataSources: createDataSourceRepository(access),
    jobs: createJobRepository(access),
    audit: createAuditRepository(access),
    exports: createExportRepository(access),
    uploads: createUploadRepository(access),
    schedules: createScheduleRepository(access),
    stats: createStatsRepository(access),
    exceptions: createExceptionRepository(access),
  };
}

export type Repositories = ReturnType<typeof createRepositories>;

/**
 * Jobs and their automatic runs: the job service, the schedule service and the scheduler's tick task. Shared by
 * the server's container and the worker-only process (`npm run worker`), which works the tick too.
 */
export function createJobServices(deps: {
  database: Database;
  repos: Repositories;
  audit: AuditService;
  projects: ProjectService;
  queue: Queue;
  jobEvents: JobEvents;
  reconcileTask: Task<ReconcileTaskData>;
  metrics: Metrics;
  logger: Logger;
}) {
  const { database, repos, audit, projects, metrics, logger } = deps;
  const jobs = createJobService({
    transaction: database.transaction,
    pool: database.pool,
    jobs: repos.jobs,
    dataSources: repos.dataSources,
    projects,
    audit,
    queue: deps.queue,
    events: deps.jobEvents,
    task: deps.reconcileTask,
  });
  const schedules = createScheduleService({ transaction: database.transaction, schedules: repos.schedules, users: repos.users, projects, jobs, audit, metrics, logger });
  return { jobs, schedules, scheduleTickTask: createScheduleTickTask({ schedules }) };
}

export interface ContainerDeps {
  database: Database;
  /** The response cache over GraphQL answers (HTTP layer), with its stats and flush for admins. */
  cache: ResponseCache;
  tokens: TokenIssuer;
  metrics: Metrics;
  logger: Logger;
  exposeSqlStatements: boolean;
  /** The persisted-documents manifest and whether only its operations run (RECON_TRUSTED_DOCUMENTS). */
  trustedDocuments: TrustedDocuments;
  limits: { maxUploadBytes: number; maxConcurrentIngests: number; maxConcurrentExports?: number };
  /** Signed download links for exports (keyed by the JWT secret). */
  exportLinks: ExportLinks;
  /** The durable job queue (pg-boss) and the cross-instance job-event bus (LISTEN/NOTIFY). */
  queue: Queue;
  jobEvents: JobEvents;
  /** Per-viewer GraphQL rate limit (RECON_RATE_LIMIT_*; fleet-wide with Redis); none when absent. */
  rateLimiter?: RateLimiter;
  /** GraphQL operations slower than this are logged (RECON_SLOW_OPERATION_MS); none when absent. */
  slowOperationMs?: number;
  /** Jobs this process runs at once (RECON_WORKERS): as many engine threads are kept between jobs. */
  jobWorkers?: number;
  /** Records per engine block (RECON_JOB_BLOCK_RECORDS). */
  jobBlockRecords: number;
}

export function createContainer(deps: ContainerDeps) {
  const { database, tokens, metrics, logger, limits } = deps;
  const { prisma, transaction } = database;
  const repos = createRepositories(database);
  const audit = createAuditService({ audit: repos.audit });
  const projects = projectServiceOf(database, repos, audit, deps.jobEvents);
  const auth = createAuthService({ users: repos.users, tokens, prisma, throttle: createLoginThrottle(database.pool) });
  const reconcileTask = createReconcileTask({
    pool: database.pool,
    changes: database.changes,
    events: deps.jobEvents,
    metrics,
    logger,
    blockRecords: deps.jobBlockRecords,
    engineThreads: deps.jobWorkers,
  });
  const { jobs, schedules, scheduleTickTask } = createJobServices({ database, repos, audit, projects, queue: deps.queue, jobEvents: deps.jobEvents, reconcileTask, metrics, logger });
  return {
    ...deps,
    repos,
    /** The background task workers run (RECON_WORKERS of them in this process; `npm run worker` for more). */
    reconcileTask,
    /** The scheduler's once-a-minute tick that starts due scheduled runs (worked where workers run). */
    scheduleTickTask,
    services: {
      audit,
      cache: createCacheService({ cache: deps.cache, changes: database.changes }),
      auth,
      users: createUserService({ transaction, users: repos.users, audit, passwords: auth }),
      projects,
      dataSources: createDataSourceService({ transaction, dataSources: repos.dataSources, projects, audit }),
      jobs,
      schedules,
      exceptions: createExceptionService({ transaction, exceptions: repos.exceptions, projects, audit }),
      matchWork: createMatchWorkService({ transaction, exceptions: repos.exceptions, jobs: repos.jobs, projects, audit }),
      exports: createExportService({
        jobs: repos.jobs,
        projects,
        viewers: auth,
        exports: repos.exports,
        links: deps.exportLinks,
        maxConcurrent: limits.maxConcurrentExports ?? 2,
      }),
      ingest: createIngestService({
        pool: database.pool,
        changes: database.changes,
        uploads: repos.uploads,
        dataSources: repos.dataSources,
        projects,
        audit,
        metrics,
        logger,
        limits,
        triggers: schedules,
      }),
    },
  };
}

export type Container = ReturnType<typeof createContainer>;
export type Services = Container["services"];

/** The project service on a database (the API's container and the worker-only process both need one). */
export function projectServiceOf(database: Database, repos: Repositories, audit: AuditService, jobEvents: JobEvents): ProjectService {
  return createProjectService({
    transaction: database.transaction,
    pool: database.pool,
    projects: repos.projects,
    users: repos.users,
    audit,
    jobs: repos.jobs,
    events: jobEvents,
  });
}
