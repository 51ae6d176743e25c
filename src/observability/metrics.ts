/**
 * Every Prometheus metric recon exports, in one registry. Default process metrics (real CPU and memory, never a
 * placeholder) are collected here too. Other modules receive the `Metrics` object and never create metrics.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    sqlStatementsTotal: new Counter({
      name: "recon_db_statements_total",
      help: "SQL statements sent to PostgreSQL.",
      registers: [registry],
    }),
    sqlStatementsPerOperation: new Histogram({
      name: "recon_db_queries_per_operation",
      help: "SQL statements run to answer one GraphQL operation.",
      labelNames: ["operation"] as const,
      buckets: [0, 1, 2, 3, 4, 5, 8, 12, 20, 50, 100],
      registers: [registry],
    }),
    dbConnectRetriesTotal: new Counter({
      name: "recon_db_connect_retries_total",
      help: "Retries of getting a database connection, by reason (acquire-timeout, connection).",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
    dbPoolConnections: new Gauge({
      name: "recon_db_pool_connections",
      help: "Connections of the database pool by state (in_use, idle) and callers waiting for one (waiting).",
      labelNames: ["state"] as const,
      registers: [registry],
    }),
    dataloaderBatchSize: new Histogram({
      name: "recon_dataloader_batch_size",
      help: "Keys per DataLoader batch.",
      labelNames: ["loader"] as const,
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
      registers: [registry],
    }),
    fileUploadsActive: new Gauge({
      name: "file_uploads_active",
      help: "File ingests running in this instance.",
      registers: [registry],
    }),
    ingestRowsTotal: new Counter({
      name: "recon_ingest_rows_total",
      help: "CSV rows ingested (result=ingested), refused (rejected) or ingested with a warning (flagged).",
      labelNames: ["result"] as const,
      registers: [registry],
    }),
    ingestBytesTotal: new Counter({
      name: "recon_ingest_bytes_total",
      help: "Bytes of uploaded files read.",
      registers: [registry],
    }),
    reconciliationJobsActive: new Gauge({
      name: "reconciliation_jobs_active",
      help: "Reconciliation jobs running in this process.",
      registers: [registry],
    }),
    reconcileRecordsTotal: new Counter({
      name: "recon_reconcile_records_total",
      help: "Records read and matched by reconciliation jobs.",
      registers: [registry],
    }),
    reconcileGroupsTotal: new Counter({
      name: "recon_reconcile_groups_total",
      help: "Groups produced by reconciliation jobs, by outcome (MATCHED, SUGGESTED, discrepancies, UNMATCHED_*).",
      labelNames: ["outcome"] as const,
      registers: [registry],
    }),
    triggeredJobsTotal: new Counter({
      name: "recon_triggered_jobs_total",
      help: "Automatic reconciliation runs that were due, by why (uploads, schedule) and what happened (queued, skipped).",
      labelNames: ["reason", "result"] as const,
      registers: [registry],
    }),
    reconcileJobDuration: new Histogram({
      name: "recon_reconcile_job_duration_seconds",
      help: "Wall time of reconciliation job runs (claim to commit, cancellation or failure).",
      buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers: [registry],
    }),
    cacheRequestsTotal: new Counter({
      name: "recon_cache_requests_total",
      help: "Response-cache lookups by layer (l1, l2; all for a bypass) and result.",
      labelNames: ["layer", "result"] as const,
      registers: [registry],
    }),
    cacheHitsTotal: new Counter({
      name: "cache_hits_total",
      help: "GraphQL requests answered from the response cache (any layer).",
      registers: [registry],
    }),
    cacheMissesTotal: new Counter({
      name: "cache_misses_total",
      help: "Cacheable GraphQL requests the response cache could not answer (executed, then stored).",
      registers: [registry],
    }),
    cacheEvictionsTotal: new Counter({
      name: "recon_cache_evictions_total",
      help: "Entries evicted from a cache layer to stay within its entry and byte caps.",
      labelNames: ["layer"] as const,
      registers: [registry],
    }),
    cacheInvalidationsTotal: new Counter({
      name: "recon_cache_invalidations_total",
      help: "Invalidations announced by committed writes, by source (mutation, ingest, background, flush).",
      labelNames: ["source"] as const,
      registers: [registry],
    }),
    cacheEntries: new Gauge({
      name: "recon_cache_entries",
      help: "Answers held in a cache layer of this instance.",
      labelNames: ["layer"] as const,
      registers: [registry],
    }),
    cacheBytes: new Gauge({
      name: "recon_cache_bytes",
      help: "Approximate bytes held in a cache layer of this instance.",
      labelNames: ["layer"] as const,
      registers: [registry],
    }),
    cacheRedisUp: new Gauge({
      name: "recon_cache_redis_up",
      help: "1 when the response cache's Redis tier is reachable, 0 while the cache bypasses itself.",
      registers: [registry],
    }),
    rateLimitedTotal: new Counter({
      name: "recon_rate_limited_total",
      help: "GraphQL requests refused with 429 by the per-viewer rate limit.",
      registers: [registry],
    }),
    httpRequestsTotal: new Counter({
      name: "http_requests_total",
      help: "HTTP requests answered, by method, route and status code.",
      labelNames: ["method", "route", "status"] as const,
      registers: [registry],
    }),
    httpRequestDuration: new Histogram({
      name: "http_request_duration_seconds",
      help: "Time from a request's arrival to the end of its answer, by method and route.",
      labelNames: ["method", "route"] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30, 300],
      registers: [registry],
    }),
    graphqlOperationDuration: new Histogram({
      name: "recon_graphql_operation_duration_seconds",
      help: "Time to answer a GraphQL operation.",
      labelNames: ["operation", "outcome"] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
