/**
 * Job events across instances: "job X changed" (progress, phase, status, cancellation), broadcast through
 * PostgreSQL LISTEN/NOTIFY so a subscription served by one instance follows a job run by a worker anywhere, and a
 * cancellation reaches the worker running the job. Responsible for one dedicated listening connection per process
 * (re-established with backoff when it drops) and for fanning notifications out to local listeners.
 * Payloads carry only the job's and its project's ids: listeners re-read the job, so a missed or coalesced
 * notification never leaves anyone with stale state. Every API instance also invalidates its response cache from
 * them (app.ts): a job run by a worker process, which has no cache of its own, is still seen fresh everywhere.
 * The same connection carries the queue's wake-ups ("task T has new work"), so that a worker in another process
 * takes a job as soon as it is queued rather than at its next poll of the queue (queue.ts), and the committed
 * writes of processes that share no Redis, so that every instance's response cache drops what they changed
 * (app.ts).
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import type { Change } from "../db/change-feed.js";
import type { Logger } from "../observability/logger.js";

export const JOB_EVENTS_CHANNEL = "recon_job_events";
export const QUEUE_WAKEUPS_CHANNEL = "recon_queue_wakeups";
export const CACHE_CHANGES_CHANNEL = "recon_cache_changes";

/** PostgreSQL refuses NOTIFY payloads of 8,000 bytes or more: a change is sent in parts below that. */
const MAX_PAYLOAD_BYTES = 7_900;

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

/**
 * Committed writes, across processes: what keeps the response caches of instances without a shared Redis
 * coherent (with Redis, its pub/sub does that: cache/redis-tier.ts).
 */
export interface CacheChanges {
  /**
   * Tells every other process which cached answers a committed write made stale: `pg_notify` on the listening
   * connection (idle between notifications, so a busy pool does not delay the write's answer), or on `db` while
   * that connection is down. Never fails: a failure is logged.
   */
  shareChange(db: Pick<pg.Pool, "query">, change: Change): Promise<void>;
  /** Calls `listener` with every change another process shared (never this one's own) until the returned function is called. */
  onPeerChange(listener: (change: Change) => void): () => void;
}

export interface JobEvents extends QueueWakeups, CacheChanges {
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
  /**
   * Called with true whenever the listening connection is up (the first time too), and with false when it is
   * lost: meanwhile, other processes' notifications go unheard.
   */
  listening?: (up: boolean) => void;
}): JobEvents {
  const { url, logger, reconnected, listening } = options;
  /** This process's mark on the changes it shares, so that it can tell them from its peers'. */
  const origin = randomUUID();
  const peerChangeListeners = new Set<(change: Change) => void>();
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
      else if (message.channel === CACHE_CHANGES_CHANNEL) dispatchPeerChange(message.payload);
    });
    next.on("error", (error) => {
      logger.warn({ err: error }, "job events connection lost; reconnecting");
      reconnect(next);
    });
    try {
      await next.connect();
      await next.query(`LISTEN ${JOB_EVENTS_CHANNEL}`);
      await next.query(`LISTEN ${QUEUE_WAKEUPS_CHANNEL}`);
      await next.query(`LISTEN ${CACHE_CHANGES_CHANNEL}`);
      client = next;
      retryDelayMs = 100;
      listening?.(true);
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
    if (client === broken) {
      client = null;
      listening?.(false);
    }
    broken.end().catch(() => {});
    if (closed) return;
    readyPromise = new Promise<void>((resolve) => (markReady = resolve));
    const delay = retryDelayMs;
    retryDelayMs = Math.min(retryDelayMs * 2, 5_000);
    setTimeout(() => void connect(), delay).unref();
  }

  /** The notifications sent on the listening connection, one after another (pg runs one query at a time on it). */
  let sending: Promise<unknown> = Promise.resolve();
  /** Sends a notification on the listening connection; rejects when there is none or it fails. */
  function notifyOnListener(channel: string, payload: string): Promise<unknown> {
    const sent = sending.then(() => {
      if (!client) throw new Error("not listening");
      return client.query("SELECT pg_notify($1, $2)", [channel, payload]);
    });
    sending = sent.catch(() => {});
    return sent;
  }

  /** A peer's change (`<origin>\n*` for everything, `<origin>\n<tag>\n<tag>…` otherwise); this process's own are skipped. */
  function dispatchPeerChange(payload: string): void {
    const [from, ...rest] = payload.split("\n");
    if (from === origin || rest.length === 0) return;
    const change: Change = rest[0] === "*" ? { all: true, source: "peer" } : { tags: rest, source: "peer" };
    for (const listener of peerChangeListeners) {
      try {
        listener(change);
      } catch (error) {
        logger.error({ err: error }, "cache change listener failed");
      }
    }
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
      // None while reconnecting: the workers' poll covers that moment.
      if (!client) return;
      await notifyOnListener(QUEUE_WAKEUPS_CHANNEL, task).catch((error: unknown) => {
        logger.warn({ err: error, task }, "could not wake the queue's workers; they will poll");
      });
    },
    onWake(listener) {
      wakeListeners.add(listener);
    },
    async shareChange(db, change) {
      const notify = async (payload: string) => {
        try {
          await notifyOnListener(CACHE_CHANGES_CHANNEL, payload);
        } catch {
          // No listening connection, or it broke under the query: the pool sends it.
          await db.query("SELECT pg_notify($1, $2)", [CACHE_CHANGES_CHANNEL, payload]);
        }
      };
      try {
        for (const payload of changePayloads(origin, change)) await notify(payload);
      } catch (error) {
        // The write is committed; only other instances' caches miss it (until their TTLs, or a reconnection's flush).
        logger.warn({ err: error }, "could not tell other processes about a write; their response caches may serve it stale until expiry");
      }
    },
    onPeerChange(listener) {
      peerChangeListeners.add(listener);
      return () => void peerChangeListeners.delete(listener);
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
      peerChangeListeners.clear();
      const current = client;
      client = null;
      await current?.end().catch(() => {});
    },
  };
}

/** A change as NOTIFY payloads: its tags split over as many as needed, each naming its origin. */
export function changePayloads(origin: string, change: Change): string[] {
  if ("all" in change) return [`${origin}\n*`];
  const payloads: string[] = [];
  let current = origin;
  for (const tag of change.tags) {
    if (current !== origin && Buffer.byteLength(current) + 1 + Buffer.byteLength(tag) > MAX_PAYLOAD_BYTES) {
      payloads.push(current);
      current = origin;
    }
    current += `\n${tag}`;
  }
  if (current !== origin) payloads.push(current);
  return payloads;
}
