/**
 * Perf check of the matching engine (not a test): 150,000 + 150,000 synthetic records — mostly exact matches, some
 * with amount drift and reference typos, date lags, splits, batch payouts, duplicates and strays — reconciled with
 * the default rule set. Prints the time, the heap used and the outcome counts. `ENGINE_RECORDS` sets the size.
 */
import type { EngineRecord } from "../src/reconcile/types.js";
import { reconcile } from "../src/reconcile/engine.js";
import { DEFAULT_RULE_SET } from "../src/reconcile/rules.js";
import { positive, runAsScript } from "./support.js";

/** A small deterministic PRNG (mulberry32), so every run reconciles the same data. */
function random(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function generate(count: number) {
  const next = random(42);
  const int = (n: number) => Math.floor(next() * n);
  const left: EngineRecord[] = [];
  const right: EngineRecord[] = [];
  let serial = 0;
  const record = (amount: bigint, reference: string, bookedDate: number): EngineRecord => {
    const id = `00000000-0000-4000-8000-${(serial++).toString(16).padStart(12, "0")}`;
    return { id, externalId: `x${serial}`, amount, currency: next() < 0.9 ? "EUR" : "USD", bookedDate, valueDate: null, reference, description: "", counterparty: "" };
  };
  while (left.length < count) {
    const roll = next();
    const date = 19_000 + int(365);
    const amount = BigInt(100 + int(10_000_000)) * 100n;
    const reference = `INV-${serial}`;
    const l = record(amount, reference, date);
    left.push(l);
    if (roll < 0.85) right.push({ ...record(amount, reference, date + int(3)), currency: l.currency });
    else if (roll < 0.9) right.push({ ...record(amount + (next() < 0.5 ? 100n : -100n), reference.replace("INV-", "INV"), date + 1), currency: l.currency });
    else if (roll < 0.93) right.push({ ...record(amount, `BANK-${serial}`, date + 2), currency: l.currency });
    else if (roll < 0.95) {
      const part = amount / 3n;
      for (const piece of [part, part, amount - 2n * part]) right.push({ ...record(piece, reference, date + int(2)), currency: l.currency });
    } else if (roll < 0.96) right.push({ ...record(amount, reference, date), currency: l.currency }, { ...record(amount, reference, date), currency: l.currency });
    else if (roll < 0.98) right.push(record(BigInt(100 + int(10_000_000)) * 100n, `STRAY-${serial}`, date));
    // else: left stray
  }
  return { left, right: right.slice(0, Math.max(count, right.length)) };
}

async function main(): Promise<number> {
  const count = positive("ENGINE_RECORDS", 150_000);
  const { left, right } = generate(count);
  globalThis.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  let peak = heapBefore;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().heapUsed)), 50);
  const started = performance.now();
  let polls = 0;
  const result = reconcile(left, right, DEFAULT_RULE_SET, {
    shouldStop: () => {
      // The timer cannot fire while reconcile runs: sample the heap on every 50th poll instead.
      if (++polls % 50 === 0) peak = Math.max(peak, process.memoryUsage().heapUsed);
      return false;
    },
  });
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  globalThis.gc?.();
  const heapAfter = process.memoryUsage().heapUsed;
  const outcomes = new Map<string, number>();
  for (const group of result.groups) outcomes.set(group.outcome, (outcomes.get(group.outcome) ?? 0) + 1);
  console.log(`records: ${left.length} left + ${right.length} right`);
  console.log(`reconcile: ${seconds.toFixed(2)} s, ${result.groups.length} groups, passHits ${result.passHits.join("/")}, ${polls} shouldStop polls`);
  console.log(`heap: ${(heapBefore / 2 ** 20).toFixed(0)} MB before (inputs), peak ${(peak / 2 ** 20).toFixed(0)} MB, ${(heapAfter / 2 ** 20).toFixed(0)} MB after a GC (inputs and result)`);
  console.log(`outcomes: ${[...outcomes].map(([outcome, n]) => `${outcome} ${n}`).join(", ")}`);
  return 0;
}

runAsScript(main);
