/**
 * Perf check of the matching engine (not a test): 150,000 + 150,000 synthetic records — mostly exact matches, some
 * with amount drift and reference typos, date lags, splits, batch payouts, duplicates and strays — reconciled with
 * the default rule set. Prints the time (and per record), the heap used and the outcome counts. `ENGINE_RECORDS` sets
 * the size; `ENGINE_BLOCK` (records per block, e.g. 200000) feeds them in date blocks as the job runner does.
 */
import type { EngineGroup, EngineRecord } from "../src/reconcile/types.js";
import { reconcile, type ReconcileResult } from "../src/reconcile/engine.js";
import { compareRecords } from "../src/reconcile/comparators.js";
import { DEFAULT_RULE_SET, maxDateReach } from "../src/reconcile/rules.js";
import { positive, runAsScript, seededRandom as random } from "./support.js";

function generate(count: number) {
  const next = random(42);
  const int = (n: number) => Math.floor(next() * n);
  const left: EngineRecord[] = [];
  const right: EngineRecord[] = [];
  let serial = 0;
  // Every record has the same shape (as the job runner's record stream builds them), so that the engine's property
  // reads stay monomorphic as in production; `currency` overrides the drawn one (drawn anyway, to keep the sequence).
  const record = (amount: bigint, reference: string, bookedDate: number, currency?: string): EngineRecord => {
    const id = `00000000-0000-4000-8000-${(serial++).toString(16).padStart(12, "0")}`;
    const drawn = next() < 0.9 ? "EUR" : "USD";
    return { id, externalId: `x${serial}`, amount, currency: currency ?? drawn, bookedDate, valueDate: null, reference, description: "", counterparty: "" };
  };
  while (left.length < count) {
    const roll = next();
    const date = 19_000 + int(365);
    const amount = BigInt(100 + int(10_000_000)) * 100n;
    const reference = `INV-${serial}`;
    const l = record(amount, reference, date);
    left.push(l);
    if (roll < 0.85) right.push(record(amount, reference, date + int(3), l.currency));
    else if (roll < 0.9) right.push(record(amount + (next() < 0.5 ? 100n : -100n), reference.replace("INV-", "INV"), date + 1, l.currency));
    else if (roll < 0.93) right.push(record(amount, `BANK-${serial}`, date + 2, l.currency));
    else if (roll < 0.95) {
      const part = amount / 3n;
      for (const piece of [part, part, amount - 2n * part]) right.push(record(piece, reference, date + int(2), l.currency));
    } else if (roll < 0.96) right.push(record(amount, reference, date, l.currency), record(amount, reference, date, l.currency));
    else if (roll < 0.98) right.push(record(BigInt(100 + int(10_000_000)) * 100n, `STRAY-${serial}`, date));
    // else: left stray
  }
  return { left, right: right.slice(0, Math.max(count, right.length)) };
}

/** Feeds date blocks the way the job runner does: unmatched records carried `maxDateReach` days into the next. */
function reconcileInBlocks(blocks: readonly Block[], shouldStop: () => boolean) {
  const reach = maxDateReach(DEFAULT_RULE_SET);
  const total = { groups: [] as EngineGroup[], groupCount: 0, carry: { left: [], right: [] } as ReconcileResult["carry"], passHits: DEFAULT_RULE_SET.passes.map(() => 0) };
  blocks.forEach(({ left, right, lastDate }, i) => {
    const exhausted = i === blocks.length - 1;
    const carried = total.carry.left.length + total.carry.right.length > 0;
    const result = reconcile(total.carry.left.concat(left), total.carry.right.concat(right), DEFAULT_RULE_SET, {
      carryFrom: exhausted ? undefined : lastDate + 1 - reach,
      finalizeBefore: exhausted ? undefined : lastDate + 1 - 2 * reach,
      newFrom: carried ? Math.min(left[0]?.bookedDate ?? Infinity, right[0]?.bookedDate ?? Infinity) : undefined,
      shouldStop,
    });
    // The runner persists each block's groups and lets them go; only the last block's are kept here.
    total.groups = result.groups;
    total.groupCount += result.groups.length;
    result.passHits.forEach((hits, n) => (total.passHits[n]! += hits));
    total.carry = result.carry;
    if (process.env.ENGINE_VERBOSE) console.log(`block ${i}: ${left.length + right.length} records, ${result.carry.left.length + result.carry.right.length} carried out`);
  });
  return total;
}

interface Block {
  left: EngineRecord[];
  right: EngineRecord[];
  lastDate: number;
}

/** Both sides merged in (bookedDate, id) order and cut into blocks of about `blockRecords` that end between two dates. */
function dateBlocks(left: EngineRecord[], right: EngineRecord[], blockRecords: number): Block[] {
  const all = [...left.map((record) => ({ record, isLeft: true })), ...right.map((record) => ({ record, isLeft: false }))];
  all.sort((a, b) => compareRecords(a.record, b.record));
  const blocks: Block[] = [];
  for (let start = 0; start < all.length; ) {
    let end = Math.min(start + blockRecords, all.length);
    while (end < all.length && all[end]!.record.bookedDate === all[end - 1]!.record.bookedDate) end++;
    const block: Block = { left: [], right: [], lastDate: all[end - 1]!.record.bookedDate };
    for (const { record, isLeft } of all.slice(start, end)) (isLeft ? block.left : block.right).push(record);
    blocks.push(block);
    start = end;
  }
  return blocks;
}

async function main(): Promise<number> {
  const count = positive("ENGINE_RECORDS", 150_000);
  const blockRecords = process.env.ENGINE_BLOCK ? positive("ENGINE_BLOCK", 200_000) : null;
  const { left, right } = generate(count);
  // Cutting the blocks is the runner's parse phase: not timed.
  const blocks = blockRecords ? dateBlocks(left, right, blockRecords) : [];
  globalThis.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  let peak = heapBefore;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().heapUsed)), 50);
  const started = performance.now();
  let polls = 0;
  const shouldStop = () => {
    // The timer cannot fire while reconcile runs: sample the heap on every 50th poll instead.
    if (++polls % 50 === 0) peak = Math.max(peak, process.memoryUsage().heapUsed);
    return false;
  };
  const result = blockRecords ? reconcileInBlocks(blocks, shouldStop) : { ...reconcile(left, right, DEFAULT_RULE_SET, { shouldStop }), groupCount: 0 };
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  globalThis.gc?.();
  const heapAfter = process.memoryUsage().heapUsed;
  // In blocks: the outcomes of the last block only.
  const outcomes = new Map<string, number>();
  for (const group of result.groups) outcomes.set(group.outcome, (outcomes.get(group.outcome) ?? 0) + 1);
  const records = left.length + right.length;
  console.log(`records: ${left.length} left + ${right.length} right${blockRecords ? `, in blocks of ~${blockRecords} as the job runner feeds them` : ""}`);
  console.log(`reconcile: ${seconds.toFixed(2)} s, ${((seconds * 1e6) / records).toFixed(2)} µs/record, ${result.groupCount || result.groups.length} groups, passHits ${result.passHits.join("/")}, ${polls} shouldStop polls`);
  console.log(
    `heap: ${(heapBefore / 2 ** 20).toFixed(0)} MB before (inputs), peak ${(peak / 2 ** 20).toFixed(0)} MB (+${((peak - heapBefore) / 2 ** 20).toFixed(0)} MB), ${(heapAfter / 2 ** 20).toFixed(0)} MB after a GC (inputs and result)`,
  );
  console.log(`outcomes: ${[...outcomes].map(([outcome, n]) => `${outcome} ${n}`).join(", ")}`);
  return 0;
}

runAsScript(main);
