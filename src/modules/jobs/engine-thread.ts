/**
 * Runs jobs' matching in worker threads (engine-worker.ts). Responsible for the message protocol, for cancellation
 * (a shared flag the engine polls, so a block stops within milliseconds; a thread that misses it, stuck in one long
 * call, is terminated), for turning a thread's failures into errors of its job, and for keeping threads warm
 * between jobs (`createEnginePool`): a thread started for a job spends about a third of a large job's matching time
 * on V8 compiling the engine's code, so a worker keeps its threads, and warms them on a synthetic job when it
 * starts (engine-warmup.ts). Blocks go in as the COPY text bytes the record streams read (moved, not copied, to the
 * thread, which parses them); groups come back as COPY text bytes, in chunks, while the block is still being
 * written out.
 */
import { Worker } from "node:worker_threads";
import type { RuleSet } from "../../reconcile/rules.js";
import type { JobSummary } from "./job-results.js";

/** What a thread is started with. */
export interface EngineWorkerData {
  /** Int32 flag: 1 asks the engine to stop the block under way. Cleared when a job begins. */
  stopFlag: SharedArrayBuffer;
}

/** The job a thread serves, from `begin` to `finish`. */
export interface EngineJob {
  jobId: string;
  projectId: string;
  /** The job's rules, validated (rules.ts `parseRuleSet`): the thread does not load the schema library. */
  rules: RuleSet;
  /** Whether to produce COPY text (false for dry runs). */
  persist: boolean;
  /** Pairs of the first pass PostgreSQL made (exact-pushdown.ts), per pass: they count in the summary. */
  pushed: { hits: number[] } | null;
  /** Pairs reviewers rejected, as keys of external ids (exceptions/rejected-pairs.ts): never proposed again. */
  excludedPairs?: string[];
  /** Test hook: the thread spins on its first block, never polling the stop flag (an engine stuck in one call). */
  spinForTests?: boolean;
}

/** One block: both sides' records as COPY text lines of record-stream.ts, in (booked date, id) order. */
export interface BlockRequest {
  left: Uint8Array;
  right: Uint8Array;
  carryFrom: number | null;
  finalizeBefore: number | null;
}

export type ThreadRequest =
  | { type: "begin"; job: EngineJob }
  /**
   * Runs the synthetic job of engine-warmup.ts with `rules` (the default rules: the thread does not load rules.ts,
   * which loads the schema library) while no job is under way.
   */
  | { type: "warmup"; rules: RuleSet }
  | ({ type: "block" } & BlockRequest)
  | { type: "finish"; phaseMillis: Record<string, number>; pushedAmounts: { currency: string; amount: string }[] };

export interface BlockResult {
  /** Groups per outcome in this block. */
  outcomes: Record<string, number>;
  /** The job row's running counters after this block. */
  counts: { matchedCount: number; suggestedCount: number; discrepancyCount: number; unmatchedLeftCount: number; unmatchedRightCount: number };
  matchMillis: number;
  /** Time the thread spent turning the block's bytes into records. */
  parseMillis: number;
  /** The id of the block's last group (ids ascend within a job); null for dry runs and blocks without groups. */
  lastGroupId: string | null;
  /** The block's exceptions as COPY text (job-results.ts `exceptionCopyLine`); null for dry runs and none. */
  exceptions: Uint8Array | null;
}

export type ThreadReply =
  /** `begin` or `warmup` done. */
  | { type: "ready" }
  /** COPY text (UTF-8) of some of the block's groups, whole lines; none for dry runs. */
  | { type: "groups"; chunk: Uint8Array }
  | ({ type: "block" } & BlockResult)
  | { type: "finished"; summary: JobSummary }
  | { type: "error"; cancelled: boolean; message: string; name: string };

/** The engine said it was asked to stop. */
export class EngineStopped extends Error {}

/** An error from inside the engine thread, with the engine's error name (RuleSetError…) kept. */
export class EngineThreadError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

// Compiled, the thread runs engine-worker.js. Under tsx (development, tests) the entry is TypeScript: a tiny
// bootstrap registers tsx's loader in the thread first (loader hooks of the main thread do not reach it).
const compiled = import.meta.url.endsWith(".js");
const ENTRY = new URL(compiled ? "./engine-worker.js" : "./engine-worker.ts", import.meta.url);
const TSX_BOOTSTRAP = `import("tsx/esm/api").then(({ register }) => { register(); return import(${JSON.stringify(ENTRY.href)}); })`;

export interface EngineThread {
  /** The worker thread's id (log lines; tests see which jobs shared a thread). */
  readonly threadId: number;
  /**
   * Matches one block (plus what the thread carries from the last); blocks are matched one at a time, in order.
   * The block's buffers are moved to the thread (unusable here afterwards); `onGroups` receives its groups' COPY
   * text in chunks, before the promise resolves.
   */
  match(block: BlockRequest, onGroups: (chunk: Uint8Array) => void): Promise<BlockResult>;
  /** The job's summary, once every block is matched, with the amounts of the pushed-down pairs (if any). */
  finish(phaseMillis: Record<string, number>, pushedAmounts?: { currency: string; amount: string }[]): Promise<JobSummary>;
  /**
   * Stops the job for good: a running block fails with EngineStopped, within milliseconds when the engine polls
   * the stop flag, else when the thread is terminated after STOP_GRACE_MS; later requests fail the same way.
   */
  stop(): void;
  /**
   * Ends the job (always call, also after failures). Its thread goes back to its pool when the job finished
   * cleanly; otherwise (stopped, failed, or no pool) the thread is terminated.
   */
  close(): Promise<void>;
}

/**
 * The thread's old-generation heap cap: room for a block's live working set (about 1 KB per record, measured) with
 * headroom, and no more, so that V8 collects instead of growing the process by the garbage of every block.
 */
export function engineHeapLimitMb(blockRecords: number): number {
  return Math.max(128, Math.ceil((blockRecords * 2) / 1024));
}

/**
 * How long a stopped thread has to answer before it is terminated. The engine polls the flag every few
 * milliseconds; only a thread stuck in one long call misses it, and terminating interrupts any JavaScript (a
 * RegExp match included), so a cancelled job always ends and frees its worker.
 */
export const STOP_GRACE_MS = 1000;

/** One engine thread and its request/reply channel (one request at a time). */
interface Host {
  readonly worker: Worker;
  /** The stop flag, shared with the thread. */
  readonly flag: Int32Array;
  /** Set once the thread failed or was terminated: every later request rejects with it. */
  failure: Error | null;
  /** Receives the "groups" replies of the block under way. */
  onGroups: ((chunk: Uint8Array) => void) | null;
  request(message: ThreadRequest, transfer?: ArrayBuffer[]): Promise<ThreadReply>;
  terminate(): Promise<void>;
}

function spawnHost(heapLimitMb: number): Host {
  const stopFlag = new SharedArrayBuffer(4);
  const workerData = { stopFlag } satisfies EngineWorkerData;
  // A small young generation too: the process flag (--max-semi-space-size=32, for request latency) would otherwise
  // give the thread 3 x 32 MB of nursery as well.
  const resourceLimits = { maxOldGenerationSizeMb: heapLimitMb, maxYoungGenerationSizeMb: 16 };
  const worker = compiled
    ? new Worker(ENTRY, { workerData, resourceLimits })
    : new Worker(TSX_BOOTSTRAP, { eval: true, workerData, resourceLimits });
  let pending: { resolve: (reply: ThreadReply) => void; reject: (error: Error) => void } | null = null;
  let terminated: Promise<void> | null = null;
  const host: Host = {
    worker,
    flag: new Int32Array(stopFlag),
    failure: null,
    onGroups: null,
    request(message, transfer = []) {
      if (host.failure) return Promise.reject(host.failure);
      if (pending) return Promise.reject(new Error("engine thread is busy"));
      return new Promise<ThreadReply>((resolve, reject) => {
        pending = { resolve, reject };
        worker.postMessage(message, transfer);
      });
    },
    terminate() {
      // Once: a second `worker.terminate()` would wait for an "exit" event that the first one's listener removal
      // (below) keeps from ever reaching it.
      terminated ??= (async () => {
        fail(new EngineStopped());
        worker.removeAllListeners("exit");
        await worker.terminate();
      })();
      return terminated;
    },
  };
  const fail = (error: Error) => {
    host.failure ??= error;
    pending?.reject(error);
    pending = null;
  };
  worker.on("message", (reply: ThreadReply) => {
    if (reply.type === "groups") {
      host.onGroups?.(reply.chunk);
      return;
    }
    const waiting = pending;
    pending = null;
    waiting?.resolve(reply);
  });
  worker.on("error", fail);
  worker.on("exit", (code) => fail(new Error(`engine thread exited (code ${code})`)));
  return host;
}

function unwrap<T extends ThreadReply["type"]>(reply: ThreadReply, type: T): Extract<ThreadReply, { type: T }> {
  if (reply.type === "error") throw reply.cancelled ? new EngineStopped() : new EngineThreadError(reply.name, reply.message);
  if (reply.type !== type) throw new Error(`engine thread answered ${reply.type}, expected ${type}`);
  return reply as Extract<ThreadReply, { type: T }>;
}

/**
 * Begins `job` on `host` and returns the job's handle. `release` receives the host when the job is closed, with
 * whether the thread is fit for another job (the job finished: nothing of it runs, nothing was stopped).
 */
function lease(host: Host, job: EngineJob, release: (host: Host, reusable: boolean) => Promise<void>): EngineThread {
  Atomics.store(host.flag, 0, 0);
  const begun = host.request({ type: "begin", job }).then((reply) => void unwrap(reply, "ready"));
  begun.catch(() => {}); // observed by the first match or finish
  let terminating: NodeJS.Timeout | null = null;
  let finished = false;
  let closed = false;
  return {
    threadId: host.worker.threadId,
    async match(block, receive) {
      await begun;
      host.onGroups = receive;
      try {
        const transfer = [block.left.buffer, block.right.buffer].filter((buffer): buffer is ArrayBuffer => buffer instanceof ArrayBuffer);
        const { type: _, ...result } = unwrap(await host.request({ type: "block", ...block }, [...new Set(transfer)]), "block");
        return result;
      } finally {
        host.onGroups = null;
      }
    },
    async finish(phaseMillis, pushedAmounts = []) {
      await begun;
      const { summary } = unwrap(await host.request({ type: "finish", phaseMillis, pushedAmounts }), "finished");
      finished = true;
      return summary;
    },
    stop() {
      Atomics.store(host.flag, 0, 1);
      terminating ??= setTimeout(() => void host.terminate(), STOP_GRACE_MS);
    },
    async close() {
      if (closed) return;
      closed = true;
      if (terminating) clearTimeout(terminating);
      await release(host, finished && terminating === null && host.failure === null);
    },
  };
}

/** Starts a thread of its own for one job, terminated when the job is closed (no pool: tests, the seed). */
export function startEngineThread(job: EngineJob, options: { heapLimitMb: number }): EngineThread {
  return lease(spawnHost(options.heapLimitMb), job, (host) => host.terminate());
}

/** A process's engine threads, kept between jobs (see the header). */
export interface EnginePool {
  /** Threads warm and waiting for a job. */
  readonly idle: number;
  /** A thread for `job`: an idle one (waiting for one still warming up), else a new one. */
  start(job: EngineJob): Promise<EngineThread>;
  /**
   * Starts the pool's threads and runs the synthetic job on each (engine-warmup.ts), about a second of one core
   * apiece. Resolves when they are warm; a thread that fails to warm up is dropped (jobs then start a new one).
   */
  warm(): Promise<void>;
  /** Terminates the idle threads; threads of jobs under way are terminated when their jobs close. */
  close(): Promise<void>;
}

/**
 * A pool of up to `size` idle engine threads (the process's job concurrency): a job takes one and gives it back when
 * it finishes cleanly, so that its successors run on code V8 has already optimized. Idle threads do not keep the
 * process alive.
 */
export function createEnginePool(options: { size: number; heapLimitMb: number; warmupRules: RuleSet }): EnginePool {
  const idle: Host[] = [];
  /** The warm-ups under way, and their threads (terminated at once by `close`). */
  const warming = new Set<Promise<Host | null>>();
  const warmingHosts = new Set<Host>();
  let closed = false;

  const park = (host: Host) => {
    host.worker.unref();
    idle.push(host);
  };
  const release = async (host: Host, reusable: boolean) => {
    if (reusable && !closed && idle.length + warming.size < options.size) park(host);
    else await host.terminate();
  };
  const take = (): Host | null => {
    for (let host = idle.pop(); host; host = idle.pop()) {
      // A thread that died while idle (it should not) has its failure set: it is not handed to a job.
      if (host.failure) continue;
      host.worker.ref();
      return host;
    }
    return null;
  };

  return {
    get idle() {
      return idle.length;
    },
    async start(job) {
      let host = take();
      while (!host && warming.size > 0) {
        await Promise.race(warming);
        host = take();
      }
      return lease(host ?? spawnHost(options.heapLimitMb), job, release);
    },
    async warm() {
      const runs: Promise<Host | null>[] = [];
      const failures: unknown[] = [];
      while (!closed && idle.length + warming.size < options.size) {
        const host = spawnHost(options.heapLimitMb);
        host.worker.unref();
        warmingHosts.add(host);
        const run: Promise<Host | null> = host
          .request({ type: "warmup", rules: options.warmupRules })
          .then((reply) => {
            unwrap(reply, "ready");
            return host;
          })
          .catch(async (error: unknown) => {
            // A pool closed meanwhile terminated the thread: that is no failure.
            if (!closed) failures.push(error);
            await host.terminate();
            return null;
          })
          .finally(() => {
            warming.delete(run);
            warmingHosts.delete(host);
          })
          .then((warm) => {
            if (warm && !closed) park(warm);
            else if (warm) void warm.terminate();
            return warm;
          });
        warming.add(run);
        runs.push(run);
      }
      await Promise.all(runs);
      if (failures.length) throw failures[0];
    },
    async close() {
      closed = true;
      await Promise.all([...warmingHosts].map((host) => host.terminate()));
      await Promise.all([...warming]);
      await Promise.all(idle.splice(0).map((host) => host.terminate()));
    },
  };
}
