/**
 * The matching side of a reconciliation job, run in a worker thread (see engine-thread.ts) so that seconds of
 * matching never block the server's event loop, and so that matching one block overlaps reading the next and
 * writing the last. Holds the job's state between blocks: the records carried over, the running summary and the
 * group-id counter. Receives blocks as COPY text bytes (parsed here: the records of a block exist in this thread
 * only); answers with the blocks' groups as COPY text for match_groups, sent in chunks of about 1 MiB (moved, not
 * copied) so that neither thread holds a block's text whole.
 */
import { parentPort, workerData } from "node:worker_threads";
import { reconcile, ReconcileCancelled } from "../../reconcile/engine.js";
import type { EngineRecord } from "../../reconcile/types.js";
import { createSummary, exceptionCopyLine, groupCopyLine, groupIdFactory } from "./job-results.js";
import { detachFromBlock, parseRecords } from "./record-text.js";
import type { EngineThreadData, ThreadReply, ThreadRequest } from "./engine-thread.js";
import { excludePairPredicate } from "../exceptions/rejected-pairs.js";

const { jobId, projectId, rules, persist, stopFlag, pushed, excludedPairs, spinForTests } = workerData as EngineThreadData;
const excludePair = excludePairPredicate(excludedPairs);
const stop = new Int32Array(stopFlag);
/** One function for every block (the engine's stop check, and the code that inlined it, stay the same). */
const shouldStop = () => Atomics.load(stop, 0) === 1;
const summary = createSummary(rules.passes.map((pass) => pass.name));
if (pushed) summary.addPushed(pushed.hits);
const nextId = groupIdFactory(jobId);
let carryLeft: EngineRecord[] = [];
let carryRight: EngineRecord[] = [];

function reply(message: ThreadReply, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(message, transfer);
}

/** Characters of COPY text gathered before they are sent on as one chunk. */
const CHUNK_CHARS = 1 << 20;
const encoder = new TextEncoder();

function sendGroups(text: string): void {
  const chunk = encoder.encode(text);
  reply({ type: "groups", chunk }, [chunk.buffer as ArrayBuffer]);
}

parentPort!.on("message", (request: ThreadRequest) => {
  try {
    if (request.type === "finish") {
      summary.addPushedAmounts(request.pushedAmounts);
      reply({ type: "finished", summary: summary.result(request.phaseMillis) });
      return;
    }
    while (spinForTests);
    const parseStarted = performance.now();
    const blockLeft = parseRecords(request.left);
    const blockRight = parseRecords(request.right);
    const started = performance.now();
    const parseMillis = started - parseStarted;
    const left = carryLeft.length ? carryLeft.concat(blockLeft) : blockLeft;
    const right = carryRight.length ? carryRight.concat(blockRight) : blockRight;
    const result = reconcile(left, right, rules, {
      carryFrom: request.carryFrom ?? undefined,
      finalizeBefore: request.finalizeBefore ?? undefined,
      // The block's records come after every carried one (blocks end between two dates).
      newFrom: carryLeft.length || carryRight.length ? Math.min(blockLeft[0]?.bookedDate ?? Infinity, blockRight[0]?.bookedDate ?? Infinity) : undefined,
      shouldStop,
      excludePair,
    });
    carryLeft = result.carry.left;
    carryRight = result.carry.right;
    for (const record of carryLeft) detachFromBlock(record);
    for (const record of carryRight) detachFromBlock(record);
    summary.add(result.groups);
    const outcomes: Record<string, number> = {};
    let copyText = "";
    // The block's exceptions go back whole with its result: the runner copies them after the block's groups.
    let exceptionText = "";
    let lastGroupId: string | null = null;
    for (const group of result.groups) {
      outcomes[group.outcome] = (outcomes[group.outcome] ?? 0) + 1;
      if (!persist) continue;
      lastGroupId = nextId();
      copyText += groupCopyLine(group, lastGroupId, jobId, projectId) + "\n";
      const exception = exceptionCopyLine(group, lastGroupId, jobId, projectId);
      if (exception !== null) exceptionText += exception + "\n";
      if (copyText.length >= CHUNK_CHARS) {
        sendGroups(copyText);
        copyText = "";
      }
    }
    if (copyText) sendGroups(copyText);
    const exceptions = exceptionText ? encoder.encode(exceptionText) : null;
    reply(
      { type: "block", outcomes, counts: summary.counts(), matchMillis: performance.now() - started, parseMillis, lastGroupId, exceptions },
      exceptions ? [exceptions.buffer as ArrayBuffer] : [],
    );
  } catch (error) {
    reply({ type: "error", cancelled: error instanceof ReconcileCancelled, message: error instanceof Error ? error.message : String(error), name: error instanceof Error ? error.name : "Error" });
  }
});
