/**
 * A synthetic reconciliation that an engine thread runs once when it starts (engine-thread.ts `EnginePool`), before
 * any job: V8 compiles the engine's hot code while it runs, so that jobs start on optimized code. Measured on the
 * benchmark's 1M × 1M job (README "bench:reconcile"), a cold thread spent a third of its matching time on
 * compilation, on code running in V8's slower tiers meanwhile, and on optimized code thrown away when a later block
 * showed it a new path.
 *
 * The data is shaped like a real job's residue after the exact first pass (what the engine sees): exact twins,
 * amount drift, reference typos, date lags, 1:N splits and N:1 batches, repeated records, discrepancies and strays
 * on both sides, in two currencies, as the COPY text lines the record streams deliver (record-stream.ts), fed in two
 * date blocks so that the carry between blocks is exercised too. Deterministic (a seeded generator): every thread
 * warms on the same records.
 */
import type { BlockRequest } from "./engine-thread.js";

/** Records per side: enough for every hot loop to reach V8's optimizing tier, few enough to take about a second. */
const WARMUP_RECORDS = 24_000;

/** The day the synthetic records start from (days since 1970-01-01). */
const FIRST_DAY = 19_000;

/** The synthetic job's two date blocks, as the job runner sends them for rules that reach `reach` days. */
export function warmupBlocks(reach: number): BlockRequest[] {
  const { left, right } = generate();
  const byDate = (lines: Line[]) => lines.sort((a, b) => a.day - b.day || (a.id < b.id ? -1 : 1));
  byDate(left);
  byDate(right);
  const middle = FIRST_DAY + Math.floor(DAYS / 2);
  const encoder = new TextEncoder();
  const text = (lines: Line[]) => encoder.encode(lines.map((line) => line.text).join(""));
  const first = { left: left.filter((l) => l.day < middle), right: right.filter((r) => r.day < middle) };
  const second = { left: left.filter((l) => l.day >= middle), right: right.filter((r) => r.day >= middle) };
  const lastDate = middle - 1;
  return [
    { left: text(first.left), right: text(first.right), carryFrom: lastDate + 1 - reach, finalizeBefore: lastDate + 1 - 2 * reach },
    { left: text(second.left), right: text(second.right), carryFrom: null, finalizeBefore: null },
  ];
}

/** Days the synthetic records span. */
const DAYS = 120;

interface Line {
  id: string;
  day: number;
  text: string;
}

/** A small seeded generator (mulberry32): the same records on every thread. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function generate(): { left: Line[]; right: Line[] } {
  const next = seeded(20261125);
  const int = (n: number) => Math.floor(next() * n);
  const left: Line[] = [];
  const right: Line[] = [];
  let serial = 0;
  /** One record as a COPY text line of the record streams: id, external id, amount, currency, booked, valued, reference, description, counterparty. */
  const line = (cents: number, currency: string, day: number, reference: string, description: string): Line => {
    serial++;
    const id = `00000000-0000-4000-8000-${serial.toString(16).padStart(12, "0")}`;
    const amount = `${cents < 0 ? "-" : ""}${Math.floor(Math.abs(cents) / 100)}.${String(Math.abs(cents) % 100).padStart(2, "0")}00`;
    return { id, day, text: `${id}\tX${serial}\t${amount}\t${currency}\t${day}\t\\N\t${reference}\t${description}\tACME Ltd\n` };
  };
  while (left.length < WARMUP_RECORDS) {
    const roll = next();
    const day = FIRST_DAY + int(DAYS);
    const cents = (1 + int(1_000_000)) * (next() < 0.03 ? -1 : 1);
    const currency = next() < 0.85 ? "EUR" : "USD";
    const reference = `INV-${100000 + serial}`;
    left.push(line(cents, currency, day, reference, `Invoice ${reference}`));
    if (roll < 0.45) right.push(line(cents, currency, day + int(3), reference, `Payment ${reference}`));
    else if (roll < 0.58) right.push(line(cents + (next() < 0.5 ? 1 : -1), currency, day + 1, reference.replace("INV-", "INV"), "Payment"));
    else if (roll < 0.66) right.push(line(cents, currency, day + 2, `BANK-${serial}`, "Transfer"));
    else if (roll < 0.72) {
      const part = Math.trunc(cents / 3);
      for (const piece of [part, part, cents - 2 * part]) right.push(line(piece, currency, day + int(2), reference, "Instalment"));
    } else if (roll < 0.75) {
      // N:1 by amount: a batch payout on the right for this and one more left record.
      const other = (1 + int(1_000_000)) * (cents < 0 ? -1 : 1);
      left.push(line(other, currency, day, `INV-${100000 + serial}`, "Invoice"));
      right.push(line(cents + other, currency, day + 1, `BATCH-${serial}`, "Batch payout"));
    } else if (roll < 0.78) {
      // N:1 by reference: two left records of one order, paid at once.
      const other = (1 + int(1_000_000)) * (cents < 0 ? -1 : 1);
      left.push(line(other, currency, day + 1, reference, "Invoice, second part"));
      right.push(line(cents + other, currency, day + 2, reference, "Payment"));
    } else if (roll < 0.81) right.push(line(cents, currency, day, reference, "Payment"), line(cents, currency, day, reference, "Payment"));
    else if (roll < 0.84) right.push(line(cents + 5_000, currency, day + 1, reference, "Payment, partial"));
    else if (roll < 0.86) right.push(line(cents, currency === "EUR" ? "USD" : "EUR", day, reference, "Payment"));
    // The same amount under the same reference written differently, booked weeks later: a date lag.
    else if (roll < 0.88) right.push(line(cents, currency, day + 10 + int(10), reference.toLowerCase(), "Payment"));
    else if (roll < 0.94) right.push(line(1 + int(1_000_000), currency, day, `STRAY-${serial}`, "Fee"));
    // else: a left record with no counterpart
  }
  return { left, right };
}
