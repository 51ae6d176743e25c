/**
 * Job events across instances: "job X changed" (progress, phase, status, cancellation), broadcast through
 * PostgreSQL LISTEN/NOTIFY so a subscription served by one instance follows a job run by a worker anywhere, and a
 * cancellation reaches the worker running the job. Responsible for one dedicated listening connection per process
 * (re-established with backoff when it drops) and for fanning notifications out to local listeners.
 * Payloads carry only the job id: listeners re-read the job, so a missed or coalesced notification never leaves
 * anyone with stale state.
 */
import pg from "pg";
import type { Logger } from "../observability/logger.js";

export const JOB_EVENTS_CHANNEL = "recon_job_events";

type Listener = () => void;

export interface JobEvents {
  /** Announces that job `jobId` changed (runs `pg_notify` on the given pool or client). */
  publish(db: Pick<pg.Pool, "query">, jobId: string): Promise<void>;
  /** Calls `listener` on every announced change of `jobId` until the returned function is called. */
  subscribe(jobId: string, listener: Listener): () => void;
  /** Resolves once the listening connection is up (tests and workers wait for it before relying on events). */
  ready(): Promise<void>;
  close(): Promise<void>;
}

export function createJobEvents(options: { url: string; logger: Logger }): JobEvents {
  const { url, logger } = options;
  const listeners = new Map<string, Set<Listener>>();
  let client: pg.Client | null = null;
  let closed = false;
  let retryDelayMs = 100;
  let markReady: () => void;
  let readyPromise = new Promise<void>((resolve) => (markReady = resolve));

  function dispatch(jobId: string): void {
    for (const listener of listeners.get(jobId) ?? []) {
      try {
        listener();
      } catch (error) {
        logger.error({ err: error, jobId }, "job event listener failed");
      }
    }
  }

  async function connect(): Promise<void> {
    if (closed) return;
    const next = new pg.Client({ connectionString: url, application_name: "recon-job-events" });
    next.on("notification", (message) => {
      if (message.channel === JOB_EVENTS_CHANNEL && message.payload) dispatch(message.payload);
    });
    next.on("error", (error) => {
      logger.warn({ err: error }, "job events connection lost; reconnecting");
      reconnect(next);
    });
    try {
      await next.connect();
      await next.query(`LISTEN ${JOB_EVENTS_CHANNEL}`);
      client = next;
      retryDelayMs = 100;
      markReady();
      // Anything that changed while we were not listening: every listener re-reads its job.
      for (const jobId of listeners.keys()) dispatch(jobId);
    } catch (error) {
      logger.warn({ err: error }, "could not listen for job events; retrying");
      reconnect(next);
    }
  }

  function reconnect(broken: pg.Client): void {
    if (client === broken) client = null;
    broken.end().catch(() => {});
    if (closed) return;
    readyPromise = new Promise<void>((resolve) => (markReady = resolve));
    const delay = retryDelayMs;
    retryDelayMs = Math.min(retryDelayMs * 2, 5_000);
    setTimeout(() => void connect(), delay).unref();
  }

  void connect();

  return {
    async publish(db, jobId) {
      await db.query("SELECT pg_notify($1, $2)", [JOB_EVENTS_CHANNEL, jobId]);
    },
    subscribe(jobId, listener) {
      let set = listeners.get(jobId);
      if (!set) listeners.set(jobId, (set = new Set()));
      set.add(listener);
      return () => {
        set.delete(listener);
        if (set.size === 0) listeners.delete(jobId);
      };
    },
    ready: () => readyPromise,
    async close() {
      closed = true;
      listeners.clear();
      const current = client;
      client = null;
      await current?.end().catch(() => {});
    },
  };
}
