/**
 * What a job keeps of the engine's groups: the rows of `match_groups`, streamed with COPY on the job's own
 * transaction (so they become visible together with the job's completion, or never), and the job summary —
 * counts and per-currency amounts per outcome, auto-match rate, per-pass hits — accumulated as groups go by.
 */
import type { Writable } from "node:stream";
import type { EngineGroup, EngineRecord, FieldScore, Outcome } from "../../reconcile/types.js";
import { scaledAmount } from "./record-stream.js";

/** 123400n → "12.3400" (scaled by 10^4, exact). */
export function decimalOf(scaled: bigint): string {
  const negative = scaled < 0n;
  const digits = (negative ? -scaled : scaled).toString().padStart(5, "0");
  return `${negative ? "-" : ""}${digits.slice(0, -4)}.${digits.slice(-4)}`;
}

/** Escapes a value for COPY's text format. */
function copyText(value: string): string {
  return /[\\\t\n\r]/.test(value) ? value.replace(/[\\\t\n\r]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : "\\r")) : value;
}

export const GROUP_COPY_COLUMNS =
  "id, job_id, project_id, left_record_ids, right_record_ids, kind, outcome, status, confidence, ambiguous, rule, pass, amount_delta, date_delta_days, duplicate_of, score_breakdown";

/**
 * Ids of a job's groups: the job id's first 64 bits, then a counter. Ascending within a job, so the primary key and
 * the (job_id, outcome, id) index are appended to rather than written all over, and the same on a re-run.
 */
export function groupIdFactory(jobId: string): () => string {
  const prefix = jobId.replace(/-/g, "").slice(0, 16);
  // Groups of pushed-down passes (exact-pushdown.ts) are numbered from 1 by PostgreSQL; the engine's from 2^48.
  let next = 2 ** 48;
  return () => {
    const hex = prefix + (next++).toString(16).padStart(16, "0");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  };
}

/** Whether every comparator held exactly: then the breakdown is not stored (the API derives it from the rules). */
function perfect(group: EngineGroup): boolean {
  return group.pass > 0 && group.confidence === 1 && group.breakdown.every((score) => score.passed && score.similarity === 1);
}

/** The JSON of a breakdown, written directly (JSON.stringify of these small objects was a tenth of a job's thread). */
function breakdownJson(breakdown: readonly FieldScore[]): string {
  let json = "[";
  for (let i = 0; i < breakdown.length; i++) {
    const { comparator, similarity, weight, passed, detail } = breakdown[i]!;
    if (i > 0) json += ",";
    json += `{"comparator":${JSON.stringify(comparator)},"similarity":${JSON.stringify(similarity)},"weight":${JSON.stringify(weight)},"passed":${passed},"detail":${JSON.stringify(detail)}}`;
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
  if (lastBreakdown?.of !== group.breakdown) lastBreakdown = { of: group.breakdown, text: copyText(breakdownJson(group.breakdown)) };
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
    copyText(group.rule),
    String(group.pass),
    decimalOf(group.amountDelta),
    String(group.dateDeltaDays),
    group.duplicateOf ?? "\\N",
    breakdownText(group),
  ].join("\t");
}

/** The columns of an exception's COPY line (`exceptionCopyLine`), the facts its severity and SLA are derived from. */
export const EXCEPTION_FACT_COLUMNS = "id, job_id, project_id, type, left_record_ids, right_record_ids, amount, currency, booked_date";

const NOT_EXCEPTIONS = new Set<Outcome>(["MATCHED", "SUGGESTED"]);

/** 19000 (days since 1970-01-01) → "2022-01-08". */
function isoDay(days: number): string {
  return new Date(days * 86_400_000).toISOString().slice(0, 10);
}

/**
 * The exception a group opens, as a COPY line of EXCEPTION_FACT_COLUMNS, or null when its outcome is not an
 * exception (MATCHED, SUGGESTED). The same facts `openExceptionsSql` reads from the records (kept equal by a test):
 * the exposure is |amountDelta| for an AMOUNT_MISMATCH and the larger side's |sum| otherwise; the currency is that of
 * the left record with the smallest id, else of the right one's; the date is the oldest booked date.
 */
export function exceptionCopyLine(group: EngineGroup, id: string, jobId: string, projectId: string): string | null {
  if (NOT_EXCEPTIONS.has(group.outcome)) return null;
  const abs = (n: bigint) => (n < 0n ? -n : n);
  let left = 0n;
  let right = 0n;
  let booked = Infinity;
  for (const record of group.leftRecords) [left, booked] = [left + record.amount, Math.min(booked, record.bookedDate)];
  for (const record of group.rightRecords) [right, booked] = [right + record.amount, Math.min(booked, record.bookedDate)];
  const exposure = group.outcome === "AMOUNT_MISMATCH" ? abs(group.amountDelta) : abs(left) > abs(right) ? abs(left) : abs(right);
  const smallest = (records: readonly EngineRecord[]) => records.reduce<EngineRecord | null>((min, r) => (min === null || r.id < min.id ? r : min), null);
  const currency = (smallest(group.leftRecords) ?? smallest(group.rightRecords))!.currency;
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

    /** Counts the pairs of passes PostgreSQL ran (exact-pushdown.ts): MATCHED 1:1 groups of equal amounts. */
    addPushed(hits: readonly number[], amounts: readonly { currency: string; amount: string; pairs: number }[]): void {
      let tally = tallies.get("MATCHED");
      if (!tally) tallies.set("MATCHED", (tally = { groups: 0, leftRecords: 0, rightRecords: 0, amounts: new Map() }));
      hits.forEach((n, index) => (passHits[index]! += n));
      for (const { currency, amount, pairs } of amounts) {
        tally.groups += pairs;
        tally.leftRecords += pairs;
        tally.rightRecords += pairs;
        leftRecords += pairs;
        rightRecords += pairs;
        let sums = tally.amounts.get(currency);
        if (!sums) tally.amounts.set(currency, (sums = { left: 0n, right: 0n }));
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
