/**
 * Job events across instances: "job X changed" (progress, phase, status, cancellation), broadcast through
 * PostgreSQL LISTEN/NOTIFY so a subscription served by one instance follows a job run by a worker anywhere, and a
 * cancellation reaches the worker running the job. Responsible for one dedicated listening connection per process
 * (re-established with backoff when it drops) and for fanning notifications out to local listeners.
 * Payloads carry only the job's and its project's ids: listeners re-read the job, so a missed or coalesced
 * notification never leaves anyone with stale state. Every API instance also invalidates its response cache from
 * them (app.ts): a job run by a worker process, which has no cache of its own, is still seen fresh everywhere.
 * The same connection carries the queue's wake-ups ("task T has new work"), so that a worker in another process
 * takes a job as soon as it is queued rather than at its next poll of the queue (queue.ts).
 */
import pg from "pg";
import type { Logger } from "../observability/logger.js";

export const JOB_EVENTS_CHANNEL = "recon_job_events";
export const QUEUE_WAKEUPS_CHANNEL = "recon_queue_wakeups";

type Listener = () => void;
/** Hears every job's events (the response cache's invalidation). */
type AnyListener = (jobId: string, projectId: string) => void;

/** "Task T has new work", across processes: what the queue needs to wake its workers everywhere (queue.ts). */
export interface QueueWakeups {
  /** Tells every process that `task` has new work. Best effort: a wake-up lost while reconnecting waits for a poll. */
  wake(task: string): Promise<void>;
  /** Calls `listener` with the task's name whenever any process (this one included) wakes it. */
  onWake(listener: (task: string) => void): void;
}

export interface JobEvents extends QueueWakeups {
  /** Announces that job `jobId` of project `projectId` changed (runs `pg_notify` on the given pool or client). */
  publish(db: Pick<pg.Pool, "query">, jobId: string, projectId: string): Promise<void>;
  /** Calls `listener` on every announced change of `jobId` until the returned function is called. */
  subscribe(jobId: string, listener: Listener): () => void;
  /** Calls `listener` on every announced change of any job. */
  subscribeAll(listener: AnyListener): void;
  /** Resolves once the listening connection is up (tests and workers wait for it before relying on events). */
  ready(): Promise<void>;
  close(): Promise<void>;
}

export function createJobEvents(options: {
  url: string;
  logger: Logger;
  /** Called after the listening connection was re-established: events may have been missed meanwhile. */
  reconnected?: () => void;
}): JobEvents {
  const { url, logger, reconnected } = options;
  const listeners = new Map<string, Set<Listener>>();
  const everything = new Set<AnyListener>();
  const wakeListeners = new Set<(task: string) => void>();
  let client: pg.Client | null = null;
  let closed = false;
  let retryDelayMs = 100;
  let connectedBefore = false;
  let markReady: () => void;
  let readyPromise = new Promise<void>((resolve) => (markReady = resolve));

  function dispatch(payload: string): void {
    const [jobId = "", projectId = ""] = payload.split(":");
    for (const listener of everything) {
      try {
        listener(jobId, projectId);
      } catch (error) {
        logger.error({ err: error, jobId }, "job event listener failed");
      }
    }
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
      if (!message.payload) return;
      if (message.channel === JOB_EVENTS_CHANNEL) dispatch(message.payload);
      else if (message.channel === QUEUE_WAKEUPS_CHANNEL) for (const listener of wakeListeners) listener(message.payload);
    });
    next.on("error", (error) => {
      logger.warn({ err: error }, "job events connection lost; reconnecting");
      reconnect(next);
    });
    try {
      await next.connect();
      await next.query(`LISTEN ${JOB_EVENTS_CHANNEL}`);
      await next.query(`LISTEN ${QUEUE_WAKEUPS_CHANNEL}`);
      client = next;
      retryDelayMs = 100;
      markReady();
      // Anything that changed while we were not listening: every listener re-reads its job.
      for (const jobId of listeners.keys()) dispatch(jobId);
      if (connectedBefore) reconnected?.();
      connectedBefore = true;
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
    async publish(db, jobId, projectId) {
      await db.query("SELECT pg_notify($1, $2)", [JOB_EVENTS_CHANNEL, `${jobId}:${projectId}`]);
    },
    subscribeAll(listener) {
      everything.add(listener);
    },
    async wake(task) {
      // On the listening connection (idle between notifications): sending needs no pool connection of its own.
      await client?.query("SELECT pg_notify($1, $2)", [QUEUE_WAKEUPS_CHANNEL, task]).catch((error: unknown) => {
        logger.warn({ err: error, task }, "could not wake the queue's workers; they will poll");
      });
    },
    onWake(listener) {
      wakeListeners.add(listener);
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
      everything.clear();
      wakeListeners.clear();
      const current = client;
      client = null;
      await current?.end().catch(() => {});
    },
  };
}
