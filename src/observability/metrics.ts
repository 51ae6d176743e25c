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
