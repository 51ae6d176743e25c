/**
 * Runs a job's matching in a worker thread (engine-worker.ts): one thread per running job, ended with the job.
 * Responsible for the message protocol, for cancellation (a shared flag the engine polls, so a block stops within
 * milliseconds; a thread that misses it, stuck in one long call, is terminated) and for turning the thread's
 * failures into errors of the job. Blocks go in as the COPY text bytes the record streams read (moved, not copied,
 * to the thread, which parses them); groups come back as COPY text bytes, in chunks, while the block is still
 * being written out.
 */
import { Worker } from "node:worker_threads";
import type { RuleSet } from "../../reconcile/rules.js";
import type { JobSummary } from "./job-results.js";

export interface EngineThreadData {
  jobId: string;
  projectId: string;
  /** The job's rules, validated (rules.ts `parseRuleSet`): the thread does not load the schema library. */
  rules: RuleSet;
  /** Whether to produce COPY text (false for dry runs). */
  persist: boolean;
  /** Int32 flag: 1 asks the engine to stop. */
  stopFlag: SharedArrayBuffer;
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
  /**
   * Matches one block (plus what the thread carries from the last); blocks are matched one at a time, in order.
   * The block's buffers are moved to the thread (unusable here afterwards); `onGroups` receives its groups' COPY
   * text in chunks, before the promise resolves.
   */
  match(block: BlockRequest, onGroups: (chunk: Uint8Array) => void): Promise<BlockResult>;
  /** The job's summary, once every block is matched, with the amounts of the pushed-down pairs (if any). */
  finish(phaseMillis: Record<string, number>, pushedAmounts?: { currency: string; amount: string }[]): Promise<JobSummary>;
  /**
   * Stops the thread for good: a running block fails with EngineStopped, within milliseconds when the engine polls
   * the stop flag, else when the thread is terminated after STOP_GRACE_MS; later requests fail the same way.
   */
  stop(): void;
  /** Ends the thread (always call, also after failures). */
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

export function startEngineThread(data: Omit<EngineThreadData, "stopFlag">, options: { heapLimitMb: number }): EngineThread {
  const stopFlag = new SharedArrayBuffer(4);
  const flag = new Int32Array(stopFlag);
  const workerData = { ...data, stopFlag } satisfies EngineThreadData;
  // A small young generation too: the process flag (--max-semi-space-size=32, for request latency) would otherwise
  // give the thread 3 x 32 MB of nursery as well.
  const resourceLimits = { maxOldGenerationSizeMb: options.heapLimitMb, maxYoungGenerationSizeMb: 16 };
  const worker = compiled
    ? new Worker(ENTRY, { workerData, resourceLimits })
    : new Worker(TSX_BOOTSTRAP, { eval: true, workerData, resourceLimits });
  let pending: { resolve: (reply: ThreadReply) => void; reject: (error: Error) => void } | null = null;
  let onGroups: ((chunk: Uint8Array) => void) | null = null;
  let failure: Error | null = null;
  let terminating: NodeJS.Timeout | null = null;
  const fail = (error: Error) => {
    failure ??= error;
    pending?.reject(error);
    pending = null;
  };
  worker.on("message", (reply: ThreadReply) => {
    if (reply.type === "groups") {
      onGroups?.(reply.chunk);
      return;
    }
    const waiting = pending;
    pending = null;
    waiting?.resolve(reply);
  });
  worker.on("error", fail);
  worker.on("exit", (code) => fail(new Error(`engine thread exited (code ${code})`)));

  function request(message: ThreadRequest, transfer: ArrayBuffer[] = []): Promise<ThreadReply> {
    if (failure) return Promise.reject(failure);
    if (pending) return Promise.reject(new Error("engine thread is busy"));
    return new Promise<ThreadReply>((resolve, reject) => {
      pending = { resolve, reject };
      worker.postMessage(message, transfer);
    });
  }

  function unwrap<T extends ThreadReply["type"]>(reply: ThreadReply, type: T): Extract<ThreadReply, { type: T }> {
    if (reply.type === "error") throw reply.cancelled ? new EngineStopped() : new EngineThreadError(reply.name, reply.message);
    if (reply.type !== type) throw new Error(`engine thread answered ${reply.type}, expected ${type}`);
    return reply as Extract<ThreadReply, { type: T }>;
  }

  return {
    async match(block, receive) {
      onGroups = receive;
      try {
        const transfer = [block.left.buffer, block.right.buffer].filter((buffer): buffer is ArrayBuffer => buffer instanceof ArrayBuffer);
        const { type: _, ...result } = unwrap(await request({ type: "block", ...block }, [...new Set(transfer)]), "block");
        return result;
      } finally {
        onGroups = null;
      }
    },
    async finish(phaseMillis, pushedAmounts = []) {
      return unwrap(await request({ type: "finish", phaseMillis, pushedAmounts }), "finished").summary;
    },
    stop() {
      Atomics.store(flag, 0, 1);
      terminating ??= setTimeout(() => {
        fail(new EngineStopped());
        void worker.terminate();
      }, STOP_GRACE_MS);
    },
    async close() {
      if (terminating) clearTimeout(terminating);
      worker.removeAllListeners("exit");
      await worker.terminate();
    },
  };
}
