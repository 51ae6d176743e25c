/**
 * Comparators: each rule comparator compiled into functions that judge one left/right pair: a packed verdict
 * (similarity and whether its gate held, no allocation) while candidates are scored, and a `FieldScore` (with a
 * detail a reviewer can read) for the groups emitted. Gates on money are exact (bigint); floats only ever give the
 * similarity number.
 *
 * Similarity formulas (so a confidence can be explained):
 * - amount exact, currency equal, text exact/normalized/contains/regex: 1 when the gate holds, else 0.
 * - amount absolute (tolerance T): 1 − 0.5·|Δ|/T inside the tolerance (1 when identical, 0.5 exactly at the
 *   edge), 0 outside; with T = 0 it behaves like exact.
 * - amount percent (p % of a base B): the same with T = p/100·B; B is the larger or smaller magnitude, or the left
 *   or right one. The gate is |Δ|·10^6 ≤ p·10^4·B, computed in bigint.
 * - dateWindow [min, max] on Δ = right date − left date: the ideal lag is the window's point nearest to 0;
 *   1 − 0.5·|Δ − ideal| / (distance from ideal to the window edge on Δ's side) inside, 0 outside.
 * - tokenSet, jaroWinkler, levenshtein: the measure itself (see text.ts); the gate is similarity ≥ threshold.
 * Similarities are rounded to 4 decimals.
 */
import type { EngineRecord, FieldScore } from "./types.js";
import { absAmount, formatAmount, parseDecimal } from "./money.js";
import { compilePattern } from "./regex-pattern.js";
import { jaroWinkler, levenshteinSimilarity, normalizeText, tokenSetSimilarity } from "./text.js";
import { DEFAULT_THRESHOLD, type TextField } from "./rule-fields.js";
import type { AmountComparator, Comparator, DateComparator, TextComparator } from "./rules.js";
import { keepShape } from "./shapes.js";

/** A record as the engine works with it: its position in its side's (bookedDate, id) order and cached normal forms. */
export class Prepared {
  /** Normalized text per field, computed on first use (most records never need one). */
  private reference: string | undefined = undefined;
  private description: string | undefined = undefined;
  private counterparty: string | undefined = undefined;
  private externalId: string | undefined = undefined;
  /**
   * The amount as a float: exact up to 2^53 in magnitude, and of the amount's sign always. For sorting, blocking
   * and bounds; gates on money use the bigint.
   */
  readonly amountFloat: number;

  constructor(
    readonly record: EngineRecord,
    /** Position in its side's (bookedDate, id) order; comparing positions compares (bookedDate, id). */
    readonly index: number,
  ) {
    this.amountFloat = Number(record.amount);
  }

  /** The normalized value of a text field, computed once per record. */
  normalized(field: TextField): string {
    return (this[field] ??= normalizeText(this.record[field]));
  }
}
keepShape(new Prepared({ id: "", externalId: "", amount: 0n, currency: "", bookedDate: 0, valueDate: null, reference: "", description: "", counterparty: "" }, 0));

/**
 * The parts as one string in flat storage, for the details of a breakdown. A template literal makes a tree of V8
 * "cons" strings, a node per part; details live with their groups until the block is written, and their 450,000
 * nodes per 80,000-record block were a tenth of the engine thread's live heap for its collector to trace.
 */
export function flatText(...parts: (string | number)[]): string {
  return parts.join("");
}

/** Orders records by (bookedDate, id), ids compared as strings (as PostgreSQL orders lower-case uuids). */
export function compareRecords(a: EngineRecord, b: EngineRecord): number {
  if (a.bookedDate !== b.bookedDate) return a.bookedDate - b.bookedDate;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Sorts one side by (bookedDate, id) and wraps each record, so that everything downstream is input-order
 * independent. The job runner feeds blocks already in that order, which is checked in one scan and not sorted again.
 */
export function prepare(records: readonly EngineRecord[]): Prepared[] {
  let sorted = true;
  for (let i = 1; i < records.length && sorted; i++) sorted = compareRecords(records[i - 1]!, records[i]!) <= 0;
  const ordered = sorted ? records : sortRecords(records);
  const prepared = new Array<Prepared>(ordered.length);
  for (let i = 0; i < ordered.length; i++) prepared[i] = new Prepared(ordered[i]!, i);
  return prepared;
}

/** Sorts by (bookedDate, id): a counting sort by date when the dates span few days, then each day by id. */
function sortRecords(records: readonly EngineRecord[]): EngineRecord[] {
  let first = Infinity;
  let last = -Infinity;
  for (const r of records) {
    first = Math.min(first, r.bookedDate);
    last = Math.max(last, r.bookedDate);
  }
  const days = last - first + 1;
  if (!(days <= 4 * records.length + 1024) || !Number.isInteger(first) || !Number.isInteger(last)) return [...records].sort(compareRecords);
  const start = new Int32Array(days + 1);
  for (const r of records) start[r.bookedDate - first + 1]!++;
  for (let d = 0; d < days; d++) start[d + 1]! += start[d]!;
  const fill = start.slice(0, days);
  const ordered = new Array<EngineRecord>(records.length);
  for (const r of records) ordered[fill[r.bookedDate - first]!++] = r;
  const byId = (a: EngineRecord, b: EngineRecord) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  for (let d = 0; d < days; d++) {
    if (start[d + 1]! - start[d]! < 2) continue;
    const day = ordered.slice(start[d], start[d + 1]).sort(byId);
    for (let k = 0; k < day.length; k++) ordered[start[d]! + k] = day[k]!;
  }
  return ordered;
}

/** The normalized value of a text field, computed once per record. */
export function normalizedField(p: Prepared, field: TextField): string {
  return p.normalized(field);
}

/**
 * A verdict packed into one number, so that scoring candidates allocates nothing: the similarity in 1/10,000
 * (0..10,000) when the gate held, or −1 − that when it did not.
 */
export type Verdict = number;
/** Packs a similarity (rounded to 4 decimals) and whether the gate held. */
const verdict = (similarity: number, passed: boolean): Verdict => (passed ? Math.round(similarity * 10_000) : -1 - Math.round(similarity * 10_000));
/** Whether the gate of a verdict held. */
export const verdictPassed = (v: Verdict): boolean => v >= 0;
/** The similarity of a verdict in 1/10,000. */
export const verdictTicks = (v: Verdict): number => (v >= 0 ? v : -1 - v);

/**
 * A comparator ready to judge pairs: `judge` gives the verdict alone (used while scoring candidates), `evaluate`
 * the full `FieldScore`; `explain` asks for the detail text.
 */
export interface CompiledComparator {
  readonly spec: Comparator;
  /** "field:type", e.g. "amount:absolute". */
  readonly label: string;
  judge(left: Prepared, right: Prepared): Verdict;
  evaluate(left: Prepared, right: Prepared, explain: boolean): FieldScore;
}

/** An amount comparator, which also judges sums (for grouped matches) and bounds the search for candidates. */
export interface CompiledAmountComparator extends CompiledComparator {
  readonly spec: AmountComparator;
  judgeAmounts(left: bigint, right: bigint): Verdict;
  evaluateAmounts(left: bigint, right: bigint, explain: boolean): FieldScore;
  /** The largest |right − left| that can pass when one of the amounts is `anchor`; null when unbounded. */
  reach(anchor: bigint): bigint | null;
}

/** Whether a compiled comparator judges amounts (and so also sums). */
export function isAmountComparator(c: CompiledComparator): c is CompiledAmountComparator {
  return c.spec.field === "amount";
}

const PERCENT_DENOMINATOR = 100n * 10_000n; // percent, and the 4 decimals of the parsed percentage

function score(label: string, weight: number, v: Verdict, detail: string): FieldScore {
  return { comparator: label, similarity: verdictTicks(v) / 10_000, weight, passed: verdictPassed(v), detail };
}

/** Compiles a validated comparator. */
export function compileComparator(spec: Comparator): CompiledComparator {
  if (spec.field === "amount") return compileAmount(spec);
  if (spec.type === "dateWindow") return compileDateWindow(spec);
  if (spec.field === "currency") {
    const label = "currency:equal";
    const judge = (left: Prepared, right: Prepared) => (left.record.currency === right.record.currency ? 10_000 : -1);
    return {
      spec,
      label,
      judge,
      evaluate(left, right, explain) {
        const a = left.record.currency;
        const b = right.record.currency;
        return score(label, spec.weight, judge(left, right), explain ? (a === b ? flatText("both ", a) : flatText(a, " ≠ ", b)) : "");
      },
    };
  }
  return compileText(spec);
}

/** Judges one pair of records with one comparator, detail included (for tests and for explaining a match). */
export function scoreComparator(spec: Comparator, left: EngineRecord, right: EngineRecord): FieldScore {
  return compileComparator(spec).evaluate(new Prepared(left, 0), new Prepared(right, 1), true);
}

function compileAmount(spec: AmountComparator): CompiledAmountComparator {
  const label = `amount:${spec.type}`;
  const tolerance = spec.type === "exact" ? 0n : parseDecimal(spec.tolerance);
  const base = spec.type === "percent" ? spec.base : "LARGER";
  const baseOf = (left: bigint, right: bigint) => {
    const a = absAmount(left);
    const b = absAmount(right);
    return base === "LARGER" ? (a > b ? a : b) : base === "SMALLER" ? (a < b ? a : b) : base === "LEFT" ? a : b;
  };
  const judgeAmounts = (left: bigint, right: bigint): Verdict => {
    const magnitude = absAmount(right - left);
    if (spec.type !== "percent") {
      const passed = magnitude <= tolerance;
      return verdict(!passed ? 0 : tolerance === 0n ? 1 : 1 - (0.5 * Number(magnitude)) / Number(tolerance), passed);
    }
    const allowed = tolerance * baseOf(left, right); // in units of 10^-6 of an amount unit
    const scaled = magnitude * PERCENT_DENOMINATOR;
    const passed = scaled <= allowed;
    return verdict(!passed ? 0 : allowed === 0n ? 1 : 1 - (0.5 * Number(scaled)) / Number(allowed), passed);
  };
  const evaluateAmounts = (left: bigint, right: bigint, explain: boolean): FieldScore => {
    const v = judgeAmounts(left, right);
    if (!explain) return score(label, spec.weight, v, "");
    const passed = verdictPassed(v);
    const delta = right - left;
    const detail =
      spec.type === "percent"
        ? flatText("delta ", formatAmount(delta), passed ? " within " : " exceeds ", spec.tolerance, "% of ", formatAmount(baseOf(left, right)), " (", base.toLowerCase(), ")")
        : spec.type === "exact"
          ? passed ? "amounts equal" : flatText("delta ", formatAmount(delta), " (must be 0)")
          : flatText("delta ", formatAmount(delta), passed ? " within " : " exceeds ", formatAmount(tolerance));
    return score(label, spec.weight, v, detail);
  };
  return {
    spec,
    label,
    judgeAmounts,
    evaluateAmounts,
    judge: (left, right) => judgeAmounts(left.record.amount, right.record.amount),
    evaluate: (left, right, explain) => evaluateAmounts(left.record.amount, right.record.amount, explain),
    reach(anchor) {
      if (spec.type !== "percent") return tolerance;
      // |Δ| ≤ p·max(|l|, |r|) ≤ p·(|anchor| + |Δ|)  ⇒  |Δ| ≤ p·|anchor| / (1 − p): a bound valid for every base.
      if (tolerance >= PERCENT_DENOMINATOR) return null;
      const numerator = tolerance * absAmount(anchor);
      const denominator = PERCENT_DENOMINATOR - tolerance;
      return (numerator + denominator - 1n) / denominator;
    },
  };
}

/** The date a window compares: the value date falls back to the booked date when a record has none. */
export function windowDate(record: EngineRecord, field: DateComparator["field"]): number {
  return field === "valueDate" ? (record.valueDate ?? record.bookedDate) : record.bookedDate;
}

/** "right is 2 days after left", "right is 1 day before left", "same day". */
export function describeLag(delta: number): string {
  if (delta === 0) return "same day";
  const days = Math.abs(delta) === 1 ? "1 day" : flatText(Math.abs(delta), " days");
  return flatText("right is ", days, delta > 0 ? " after left" : " before left");
}

function compileDateWindow(spec: DateComparator): CompiledComparator {
  const label = `${spec.field}:dateWindow`;
  const ideal = Math.min(Math.max(0, spec.minDays), spec.maxDays);
  const lag = (left: Prepared, right: Prepared) => windowDate(right.record, spec.field) - windowDate(left.record, spec.field);
  const judge = (left: Prepared, right: Prepared): Verdict => {
    const delta = lag(left, right);
    const passed = delta >= spec.minDays && delta <= spec.maxDays;
    const reach = delta >= ideal ? spec.maxDays - ideal : ideal - spec.minDays;
    return verdict(!passed ? 0 : reach === 0 ? 1 : 1 - (0.5 * Math.abs(delta - ideal)) / reach, passed);
  };
  return {
    spec,
    label,
    judge,
    evaluate(left, right, explain) {
      const v = judge(left, right);
      const detail = explain ? flatText(describeLag(lag(left, right)), verdictPassed(v) ? " (within " : " (outside ", spec.minDays, "..", spec.maxDays, ")") : "";
      return score(label, spec.weight, v, detail);
    },
  };
}

function compileText(spec: TextComparator): CompiledComparator {
  const label = `${spec.field}:${spec.type}`;
  const field = spec.field;
  const threshold = spec.threshold ?? DEFAULT_THRESHOLD;
  const similarityOf = { tokenSet: tokenSetSimilarity, jaroWinkler, levenshtein: levenshteinSimilarity } as const;
  const extract = spec.type === "regex" ? compilePattern(spec.pattern!) : null;
  // The text each side compares: raw for exact, the capture for regex, else the normalized form (cached per record).
  const textOf = (p: Prepared) => (spec.type === "exact" ? p.record[field] : extract ? extract(p.record[field]) : p.normalized(field));
  const measure = spec.type === "tokenSet" || spec.type === "jaroWinkler" || spec.type === "levenshtein" ? similarityOf[spec.type] : null;
  const judgeTexts = (a: string, b: string): Verdict => {
    if (a === "" || b === "") return verdict(0, false);
    if (measure) {
      const similarity = measure(a, b);
      return verdict(similarity, similarity >= threshold);
    }
    const passed = spec.type === "contains" ? a.includes(b) || b.includes(a) : a === b;
    return verdict(passed ? 1 : 0, passed);
  };
  return {
    spec,
    label,
    judge: (left, right) => judgeTexts(textOf(left), textOf(right)),
    evaluate(left, right, explain) {
      const a = textOf(left);
      const b = textOf(right);
      const v = judgeTexts(a, b);
      if (!explain) return score(label, spec.weight, v, "");
      if (a === "" || b === "") {
        const which = a === "" && b === "" ? "both" : a === "" ? "left" : "right";
        return score(label, spec.weight, v, `${which} empty${extract ? " (no capture)" : ""}`);
      }
      const passed = verdictPassed(v);
      if (measure) return score(label, spec.weight, v, flatText("similarity ", verdictTicks(v) / 10_000, passed ? " >= " : " < ", threshold));
      const what = spec.type === "contains" ? (passed ? "one contains the other" : "neither contains the other") : passed ? "equal" : "differ";
      return score(label, spec.weight, v, extract ? `captures ${what}: "${a}", "${b}"` : what);
    },
  };
}
