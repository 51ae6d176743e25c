/**
 * The matching side of reconciliation jobs, run in a worker thread (see engine-thread.ts) so that seconds of
 * matching never block the server's event loop, and so that matching one block overlaps reading the next and
 * writing the last. A thread serves one job at a time, and job after job when its pool keeps it (engine-thread.ts
 * `createEnginePool`): `begin` sets up a job's state — the records carried between blocks, the running summary,
 * the group-id counter — and nothing of a job outlives the next `begin`. Receives blocks as COPY text bytes (parsed
 * here: the records of a block exist in this thread only); answers with the blocks' groups as COPY text for
 * match_groups, sent in chunks of about 1 MiB (moved, not copied) so that neither thread holds a block's text whole.
 * `warmup` runs a synthetic job (engine-warmup.ts) whose results go nowhere: V8 compiles the engine's hot code
 * before a real job needs it.
 */
import { parentPort, workerData } from "node:worker_threads";
import { reconcile, ReconcileCancelled } from "../../reconcile/engine.js";
import type { RuleSet } from "../../reconcile/rules.js";
import type { EngineRecord } from "../../reconcile/types.js";
import { createSummary, exceptionCopyLine, groupCopyLine, groupIdFactory } from "./job-results.js";
import { detachFromBlock, parseRecords } from "./record-text.js";
import type { BlockRequest, EngineJob, EngineWorkerData, ThreadReply, ThreadRequest } from "./engine-thread.js";
import { warmupBlocks } from "./engine-warmup.js";
import { excludePairPredicate } from "../exceptions/rejected-pairs.js";

const stop = new Int32Array((workerData as EngineWorkerData).stopFlag);
/** One function for every block (the engine's stop check, and the code that inlined it, stay the same). */
const shouldStop = () => Atomics.load(stop, 0) === 1;

/** What the thread holds for the job it serves: set by `begin`, dropped by the next. */
function jobState(job: EngineJob) {
  const summary = createSummary(job.rules.passes.map((pass) => pass.name));
  if (job.pushed) summary.addPushed(job.pushed.hits);
  return {
    job,
    excludePair: excludePairPredicate(job.excludedPairs),
    summary,
    nextId: groupIdFactory(job.jobId),
    carryLeft: [] as EngineRecord[],
    carryRight: [] as EngineRecord[],
  };
}
let state: ReturnType<typeof jobState> | null = null;

function reply(message: ThreadReply, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(message, transfer);
}

/** Characters of COPY text gathered before they are sent on as one chunk. */
const CHUNK_CHARS = 1 << 20;
const encoder = new TextEncoder();

/**
 * Matches one block of the current job: its groups go to `sendGroups` as COPY text chunks; the block's outcome
 * counts, timings and exceptions (COPY text, whole) are returned.
 */
function matchBlock(current: ReturnType<typeof jobState>, request: BlockRequest, sendGroups: (text: string) => void) {
  const { job, summary } = current;
  while (job.spinForTests);
  const parseStarted = performance.now();
  const blockLeft = parseRecords(request.left);
  const blockRight = parseRecords(request.right);
  const started = performance.now();
  const parseMillis = started - parseStarted;
  const left = current.carryLeft.length ? current.carryLeft.concat(blockLeft) : blockLeft;
  const right = current.carryRight.length ? current.carryRight.concat(blockRight) : blockRight;
  const result = reconcile(left, right, job.rules, {
    carryFrom: request.carryFrom ?? undefined,
    finalizeBefore: request.finalizeBefore ?? undefined,
    // The block's records come after every carried one (blocks end between two dates).
    newFrom: current.carryLeft.length || current.carryRight.length ? Math.min(blockLeft[0]?.bookedDate ?? Infinity, blockRight[0]?.bookedDate ?? Infinity) : undefined,
    shouldStop,
    excludePair: current.excludePair,
  });
  current.carryLeft = result.carry.left;
  current.carryRight = result.carry.right;
  for (const record of current.carryLeft) detachFromBlock(record);
  for (const record of current.carryRight) detachFromBlock(record);
  summary.add(result.groups);
  const outcomes: Record<string, number> = {};
  let copyText = "";
  // The block's exceptions go back whole with its result: the runner copies them after the block's groups.
  let exceptionText = "";
  let lastGroupId: string | null = null;
  for (const group of result.groups) {
    outcomes[group.outcome] = (outcomes[group.outcome] ?? 0) + 1;
    if (!job.persist) continue;
    lastGroupId = current.nextId();
    copyText += groupCopyLine(group, lastGroupId, job.jobId, job.projectId) + "\n";
    const exception = exceptionCopyLine(group, lastGroupId, job.jobId, job.projectId);
    if (exception !== null) exceptionText += exception + "\n";
    if (copyText.length >= CHUNK_CHARS) {
      sendGroups(copyText);
      copyText = "";
    }
  }
  if (copyText) sendGroups(copyText);
  const exceptions = exceptionText ? encoder.encode(exceptionText) : null;
  return { outcomes, counts: summary.counts(), matchMillis: performance.now() - started, parseMillis, lastGroupId, exceptions };
}

/** The synthetic job `warmup` runs with `rules`: results produced (COPY text too) and dropped. */
function warmUp(rules: RuleSet): void {
  const warm = jobState({ jobId: "00000000-0000-4000-8000-000000000000", projectId: "00000000-0000-4000-8000-000000000000", rules, persist: true, pushed: null });
  // The groups' text is encoded as a job's would be, then dropped.
  for (const block of warmupBlocks(rules.maxDateSpanDays)) matchBlock(warm, block, (text) => void encoder.encode(text));
  warm.summary.addPushedAmounts([]);
  warm.summary.result({});
}

parentPort!.on("message", (request: ThreadRequest) => {
  try {
    switch (request.type) {
      case "begin":
        state = jobState(request.job);
        reply({ type: "ready" });
        return;
      case "warmup":
        warmUp(request.rules);
        reply({ type: "ready" });
        return;
      case "finish":
        if (!state) throw new Error("no job begun");
        state.summary.addPushedAmounts(request.pushedAmounts);
        reply({ type: "finished", summary: state.summary.result(request.phaseMillis) });
        state = null;
        return;
      case "block": {
        if (!state) throw new Error("no job begun");
        const result = matchBlock(state, request, (text) => {
          const chunk = encoder.encode(text);
          reply({ type: "groups", chunk }, [chunk.buffer as ArrayBuffer]);
        });
        reply({ type: "block", ...result }, result.exceptions ? [result.exceptions.buffer as ArrayBuffer] : []);
        return;
      }
    }
  } catch (error) {
    reply({ type: "error", cancelled: error instanceof ReconcileCancelled, message: error instanceof Error ? error.message : String(error), name: error instanceof Error ? error.name : "Error" });
  }
});
