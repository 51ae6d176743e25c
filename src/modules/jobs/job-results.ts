/**
 * What a job keeps of the engine's groups: the rows of `match_groups`, streamed with COPY on the job's own
 * transaction (so they become visible together with the job's completion, or never), and the job summary —
 * counts and per-currency amounts per outcome, auto-match rate, per-pass hits — accumulated as groups go by.
 */
import type { Writable } from "node:stream";
import type { EngineGroup, EngineRecord, FieldScore, Outcome } from "../../reconcile/types.js";
import { scaledAmount } from "./record-text.js";

/** 123400n → "12.3400" (scaled by 10^4, exact). */
export function decimalOf(scaled: bigint): string {
  if (scaled === 0n) return "0.0000"; // most groups' delta
  const negative = scaled < 0n;
  const digits = (negative ? -scaled : scaled).toString().padStart(5, "0");
  return `${negative ? "-" : ""}${digits.slice(0, -4)}.${digits.slice(-4)}`;
}

/** Escapes a value for COPY's text format. */
function copyText(value: string): string {
  return /[\\\t\n\r]/.test(value) ? value.replace(/[\\\t\n\r]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : "\\r")) : value;
}

/**
 * Escapes JSON text for COPY's text format: JSON.stringify already writes tabs and line breaks as escapes, so only
 * its backslashes need doubling (a plain search instead of copyText's regular expression over ~500 characters).
 */
function copyJson(json: string): string {
  return json.includes("\\") ? json.replaceAll("\\", "\\\\") : json;
}

export const GROUP_COPY_COLUMNS =
  "id, job_id, project_id, left_record_ids, right_record_ids, kind, outcome, status, confidence, ambiguous, rule, pass, amount_delta, date_delta_days, duplicate_of, score_breakdown";

/** The first three groups of every id of a job's groups (`xxxxxxxx-xxxx-xxxx-`): the job id's first 64 bits. */
export function groupIdPrefix(jobId: string): string {
  const hex = jobId.toLowerCase().replace(/-/g, "").slice(0, 16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-`;
}

/**
 * Ids of a job's groups: the job id's first 64 bits, then a counter. Ascending within a job, so the primary key and
 * the (job_id, outcome, id) index are appended to rather than written all over, and the same on a re-run. The
 * counter's top 16 bits (0001) keep them out of the pushed-down pairs' range (0000: group-scan.ts).
 */
export function groupIdFactory(jobId: string): () => string {
  const prefix = groupIdPrefix(jobId);
  // Groups of pushed-down passes (exact-pushdown.ts) are numbered from 1 by PostgreSQL; the engine's from 2^48:
  // the counter's top 16 bits (the uuid's fourth group) stay 0001 for 2^48 groups, so only the last 12 digits vary.
  let next = 0;
  return () => {
    if (next >= 2 ** 48) throw new Error("a job's group ids are exhausted");
    return `${prefix}0001-${(next++).toString(16).padStart(12, "0")}`;
  };
}

/** Whether every comparator held exactly: then the breakdown is not stored (the API derives it from the rules). */
function perfect(group: EngineGroup): boolean {
  return group.pass > 0 && group.confidence === 1 && group.breakdown.every((score) => score.passed && score.similarity === 1);
}

/**
 * The start of a breakdown entry's JSON up to its similarity, per comparator name: a rule set has a handful of
 * comparators, and their quoted names were a good part of writing every breakdown.
 */
const entryStarts = new Map<string, string>();
function entryStart(comparator: string): string {
  let start = entryStarts.get(comparator);
  if (start === undefined) {
    start = `{"comparator":${JSON.stringify(comparator)},"similarity":`;
    if (entryStarts.size < 1_000) entryStarts.set(comparator, start);
  }
  return start;
}

/** The JSON of a breakdown, written directly (JSON.stringify of these small objects was a tenth of a job's thread). */
function breakdownJson(breakdown: readonly FieldScore[]): string {
  let json = "[";
  for (let i = 0; i < breakdown.length; i++) {
    const { comparator, similarity, weight, passed, detail } = breakdown[i]!;
    if (i > 0) json += ",";
    json += `${entryStart(comparator)}${JSON.stringify(similarity)},"weight":${JSON.stringify(weight)},"passed":${passed},"detail":${JSON.stringify(detail)}}`;
  }
  return json + "]";
}

/**
 * The breakdown column of a group. The engine shares one breakdown array among consecutive groups of a pass (its
 * exact matches), so the last array's text is remembered; a WeakMap of every array cost more than it saved.
 */
let lastBreakdown: { of: readonly FieldScore[]; text: string } | null = null;
function breakdownText(group: EngineGroup): string {
  if (perfect(group)) return "\\N";
  if (group.breakdown.length === 0) return "[]";
  if (lastBreakdown?.of !== group.breakdown) lastBreakdown = { of: group.breakdown, text: copyJson(breakdownJson(group.breakdown)) };
  return lastBreakdown.text;
}

/** One COPY line for a group. AUTO matches are CONFIRMED; everything else awaits review. */
export function groupCopyLine(group: EngineGroup, id: string, jobId: string, projectId: string): string {
  return [
    id,
    jobId,
    projectId,
    `{${group.leftIds.join(",")}}`,
    `{${group.rightIds.join(",")}}`,
    group.kind,
    group.outcome,
    group.outcome === "MATCHED" ? "CONFIRMED" : "PROPOSED",
    group.confidence.toFixed(4),
    group.ambiguous ? "t" : "f",
    ruleText(group.rule),
    String(group.pass),
    decimalOf(group.amountDelta),
    String(group.dateDeltaDays),
    group.duplicateOf ?? "\\N",
    breakdownText(group),
  ].join("\t");
}

/** A rule name as COPY text; the last one is remembered (groups come pass by pass). */
let lastRule = { name: "", text: "" };
function ruleText(name: string): string {
  if (lastRule.name !== name) lastRule = { name, text: copyText(name) };
  return lastRule.text;
}

/** The columns of an exception's COPY line (`exceptionCopyLine`), the facts its severity and SLA are derived from. */
export const EXCEPTION_FACT_COLUMNS = "id, job_id, project_id, type, left_record_ids, right_record_ids, amount, currency, booked_date";

const NOT_EXCEPTIONS = new Set<Outcome>(["MATCHED", "SUGGESTED"]);

/** 19000 (days since 1970-01-01) → "2022-01-08"; the last few hundred days asked for are remembered (they repeat). */
const isoDays = new Map<number, string>();
function isoDay(days: number): string {
  let text = isoDays.get(days);
  if (text === undefined) {
    text = new Date(days * 86_400_000).toISOString().slice(0, 10);
    if (isoDays.size >= 512) isoDays.clear();
    isoDays.set(days, text);
  }
  return text;
}

/**
 * The exception a group opens, as a COPY line of EXCEPTION_FACT_COLUMNS, or null when its outcome is not an
 * exception (MATCHED, SUGGESTED). The same facts `openExceptionsSql` reads from the records (kept equal by a test):
 * the exposure is |amountDelta| for an AMOUNT_MISMATCH and the larger side's |sum| otherwise; the currency is that of
 * the left record with the smallest id, else of the right one's; the date is the oldest booked date.
 */
export function exceptionCopyLine(group: EngineGroup, id: string, jobId: string, projectId: string): string | null {
  if (NOT_EXCEPTIONS.has(group.outcome)) return null;
  let left = 0n;
  let right = 0n;
  let booked = Infinity;
  for (const record of group.leftRecords) {
    left += record.amount;
    if (record.bookedDate < booked) booked = record.bookedDate;
  }
  for (const record of group.rightRecords) {
    right += record.amount;
    if (record.bookedDate < booked) booked = record.bookedDate;
  }
  const exposure = group.outcome === "AMOUNT_MISMATCH" ? abs(group.amountDelta) : abs(left) > abs(right) ? abs(left) : abs(right);
  const currency = (smallestId(group.leftRecords) ?? smallestId(group.rightRecords))!.currency;
  return [
    id,
    jobId,
    projectId,
    group.outcome,
    `{${group.leftIds.join(",")}}`,
    `{${group.rightIds.join(",")}}`,
    decimalOf(exposure),
    currency,
    isoDay(booked),
  ].join("\t");
}

function abs(n: bigint): bigint {
  return n < 0n ? -n : n;
}

/** The record with the smallest id, or null for none. */
function smallestId(records: readonly EngineRecord[]): EngineRecord | null {
  let min: EngineRecord | null = null;
  for (const record of records) if (min === null || record.id < min.id) min = record;
  return min;
}

/** Writes a chunk of COPY text to a COPY stream, waiting when the stream asks to (back-pressure). */
export async function writeChunk(stream: Writable, chunk: Uint8Array): Promise<void> {
  if (stream.write(chunk)) return;
  await new Promise<void>((resolve, reject) => {
    const onDrain = () => (stream.off("error", onError), resolve());
    const onError = (error: Error) => (stream.off("drain", onDrain), reject(error));
    stream.once("drain", onDrain);
    stream.once("error", onError);
  });
}

interface OutcomeTally {
  groups: number;
  leftRecords: number;
  rightRecords: number;
  amounts: Map<string, { left: bigint; right: bigint }>;
}

/** The job summary as stored (JSON) and served (`JobSummary`). */
export interface JobSummary {
  leftRecords: number;
  rightRecords: number;
  autoMatchRate: number;
  outcomes: { outcome: Outcome; groups: number; leftRecords: number; rightRecords: number; amounts: { currency: string; left: string; right: string }[] }[];
  passes: { pass: number; name: string; groups: number }[];
  phaseMillis: Record<string, number>;
}

const DISCREPANCY_OUTCOMES = new Set<Outcome>(["AMOUNT_MISMATCH", "DATE_LAG", "REFERENCE_MISMATCH", "CURRENCY_MISMATCH", "DUPLICATE"]);

/** The running sums of an outcome's records in `currency`. */
function sumsOf(tally: OutcomeTally, currency: string): { left: bigint; right: bigint } {
  let sums = tally.amounts.get(currency);
  if (!sums) tally.amounts.set(currency, (sums = { left: 0n, right: 0n }));
  return sums;
}

/** Accumulates the summary of a job from its groups, block after block. */
export function createSummary(passNames: readonly string[]) {
  const tallies = new Map<Outcome, OutcomeTally>();
  const passHits = passNames.map(() => 0);
  let leftRecords = 0;
  let rightRecords = 0;

  return {
    /** Counts `groups`. */
    add(groups: readonly EngineGroup[]): void {
      for (const group of groups) {
        let tally = tallies.get(group.outcome);
        if (!tally) tallies.set(group.outcome, (tally = { groups: 0, leftRecords: 0, rightRecords: 0, amounts: new Map() }));
        tally.groups++;
        tally.leftRecords += group.leftIds.length;
        tally.rightRecords += group.rightIds.length;
        leftRecords += group.leftIds.length;
        rightRecords += group.rightIds.length;
        if (group.pass > 0 && group.pass <= passHits.length) passHits[group.pass - 1]!++;
        for (const record of group.leftRecords) sumsOf(tally, record.currency).left += record.amount;
        for (const record of group.rightRecords) sumsOf(tally, record.currency).right += record.amount;
      }
    },

    /** Counts the pairs of passes PostgreSQL ran (exact-pushdown.ts): MATCHED 1:1 groups, `hits` per pass. */
    addPushed(hits: readonly number[]): void {
      hits.forEach((n, index) => (passHits[index]! += n));
      const pairs = hits.reduce((sum, n) => sum + n, 0);
      // The summary lists the outcomes that occurred: none when PostgreSQL paired nothing.
      if (pairs === 0) return;
      let tally = tallies.get("MATCHED");
      if (!tally) tallies.set("MATCHED", (tally = { groups: 0, leftRecords: 0, rightRecords: 0, amounts: new Map() }));
      tally.groups += pairs;
      tally.leftRecords += pairs;
      tally.rightRecords += pairs;
      leftRecords += pairs;
      rightRecords += pairs;
    },

    /** Adds the amounts of the pairs `addPushed` counted (both sides equal: exact amounts), known later. */
    addPushedAmounts(amounts: readonly { currency: string; amount: string }[]): void {
      if (amounts.length === 0) return;
      let tally = tallies.get("MATCHED");
      if (!tally) tallies.set("MATCHED", (tally = { groups: 0, leftRecords: 0, rightRecords: 0, amounts: new Map() }));
      for (const { currency, amount } of amounts) {
        const sums = sumsOf(tally, currency);
        sums.left += scaledAmount(amount);
        sums.right += scaledAmount(amount);
      }
    },

    /** The job row's counters: groups MATCHED / SUGGESTED / with a discrepancy, unmatched records per side. */
    counts() {
      const groupsOf = (outcome: Outcome) => tallies.get(outcome)?.groups ?? 0;
      let discrepancy = 0;
      for (const outcome of DISCREPANCY_OUTCOMES) discrepancy += groupsOf(outcome);
      return {
        matchedCount: groupsOf("MATCHED"),
        suggestedCount: groupsOf("SUGGESTED"),
        discrepancyCount: discrepancy,
        unmatchedLeftCount: tallies.get("UNMATCHED_LEFT")?.leftRecords ?? 0,
        unmatchedRightCount: tallies.get("UNMATCHED_RIGHT")?.rightRecords ?? 0,
      };
    },

    result(phaseMillis: Record<string, number>): JobSummary {
      const matched = tallies.get("MATCHED");
      const all = leftRecords + rightRecords;
      return {
        leftRecords,
        rightRecords,
        autoMatchRate: all === 0 ? 0 : Number((((matched?.leftRecords ?? 0) + (matched?.rightRecords ?? 0)) / all).toFixed(6)),
        outcomes: [...tallies].map(([outcome, tally]) => ({
          outcome,
          groups: tally.groups,
          leftRecords: tally.leftRecords,
          rightRecords: tally.rightRecords,
          amounts: [...tally.amounts]
            .sort(([a], [b]) => (a < b ? -1 : 1))
            .map(([currency, sums]) => ({ currency, left: decimalOf(sums.left), right: decimalOf(sums.right) })),
        })),
        passes: passNames.map((name, index) => ({ pass: index + 1, name, groups: passHits[index]! })),
        phaseMillis,
      };
    },
  };
}
