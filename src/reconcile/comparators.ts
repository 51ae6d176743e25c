/**
 * Comparators: each rule comparator compiled into a function that judges one left/right pair and returns a
 * `FieldScore` (similarity, whether its gate held, and a detail a reviewer can read). Gates on money are exact
 * (bigint); floats only ever give the similarity number.
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
import { DEFAULT_THRESHOLD, type AmountComparator, type Comparator, type DateComparator, type TextComparator, type TextField } from "./rules.js";

/** A record as the engine works with it: its position in its side's (bookedDate, id) order and cached normal forms. */
export interface Prepared {
  readonly record: EngineRecord;
  /** Position in its side's (bookedDate, id) order; comparing positions compares (bookedDate, id). */
  readonly index: number;
  readonly normalized: Partial<Record<TextField, string>>;
}

/** Orders records by (bookedDate, id), ids compared as strings (as PostgreSQL orders lower-case uuids). */
export function compareRecords(a: EngineRecord, b: EngineRecord): number {
  if (a.bookedDate !== b.bookedDate) return a.bookedDate - b.bookedDate;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Sorts one side by (bookedDate, id) and wraps each record, so that everything downstream is input-order independent. */
export function prepare(records: readonly EngineRecord[]): Prepared[] {
  return [...records].sort(compareRecords).map((record, index) => ({ record, index, normalized: {} }));
}

/** The normalized value of a text field, computed once per record. */
export function normalizedField(p: Prepared, field: TextField): string {
  return (p.normalized[field] ??= normalizeText(p.record[field]));
}

/** A comparator ready to judge pairs. `explain` asks for the detail text (skipped while scoring candidates). */
export interface CompiledComparator {
  readonly spec: Comparator;
  /** "field:type", e.g. "amount:absolute". */
  readonly label: string;
  evaluate(left: Prepared, right: Prepared, explain: boolean): FieldScore;
}

/** An amount comparator, which also judges sums (for grouped matches) and bounds the search for candidates. */
export interface CompiledAmountComparator extends CompiledComparator {
  readonly spec: AmountComparator;
  evaluateAmounts(left: bigint, right: bigint, explain: boolean): FieldScore;
  /** The largest |right − left| that can pass when one of the amounts is `anchor`; null when unbounded. */
  reach(anchor: bigint): bigint | null;
}

/** Whether a compiled comparator judges amounts (and so also sums). */
export function isAmountComparator(c: CompiledComparator): c is CompiledAmountComparator {
  return c.spec.field === "amount";
}

const round4 = (value: number) => Math.round(value * 10_000) / 10_000;
const PERCENT_DENOMINATOR = 100n * 10_000n; // percent, and the 4 decimals of the parsed percentage

function score(label: string, weight: number, similarity: number, passed: boolean, detail: string): FieldScore {
  return { comparator: label, similarity: round4(similarity), weight, passed, detail };
}

/** Compiles a validated comparator. */
export function compileComparator(spec: Comparator): CompiledComparator {
  if (spec.field === "amount") return compileAmount(spec);
  if (spec.type === "dateWindow") return compileDateWindow(spec);
  if (spec.field === "currency") {
    const label = "currency:equal";
    return {
      spec,
      label,
      evaluate(left, right, explain) {
        const a = left.record.currency;
        const b = right.record.currency;
        return score(label, spec.weight, a === b ? 1 : 0, a === b, explain ? (a === b ? `both ${a}` : `${a} ≠ ${b}`) : "");
      },
    };
  }
  return compileText(spec);
}

/** Judges one pair of records with one comparator, detail included (for tests and for explaining a match). */
export function scoreComparator(spec: Comparator, left: EngineRecord, right: EngineRecord): FieldScore {
  return compileComparator(spec).evaluate({ record: left, index: 0, normalized: {} }, { record: right, index: 0, normalized: {} }, true);
}

function compileAmount(spec: AmountComparator): CompiledAmountComparator {
  const label = `amount:${spec.type}`;
  const tolerance = spec.type === "exact" ? 0n : parseDecimal(spec.tolerance);
  const evaluateAmounts = (left: bigint, right: bigint, explain: boolean): FieldScore => {
    const delta = right - left;
    const magnitude = absAmount(delta);
    if (spec.type !== "percent") {
      const passed = magnitude <= tolerance;
      const similarity = !passed ? 0 : tolerance === 0n ? 1 : 1 - (0.5 * Number(magnitude)) / Number(tolerance);
      const detail = !explain
        ? ""
        : spec.type === "exact"
          ? passed ? "amounts equal" : `delta ${formatAmount(delta)} (must be 0)`
          : `delta ${formatAmount(delta)} ${passed ? "within" : "exceeds"} ${formatAmount(tolerance)}`;
      return score(label, spec.weight, similarity, passed, detail);
    }
    const a = absAmount(left);
    const b = absAmount(right);
    const base = spec.base === "LARGER" ? (a > b ? a : b) : spec.base === "SMALLER" ? (a < b ? a : b) : spec.base === "LEFT" ? a : b;
    const allowed = tolerance * base; // in units of 10^-6 of an amount unit
    const scaled = magnitude * PERCENT_DENOMINATOR;
    const passed = scaled <= allowed;
    const similarity = !passed ? 0 : allowed === 0n ? 1 : 1 - (0.5 * Number(scaled)) / Number(allowed);
    const detail = explain
      ? `delta ${formatAmount(delta)} ${passed ? "within" : "exceeds"} ${spec.tolerance}% of ${formatAmount(base)} (${spec.base.toLowerCase()})`
      : "";
    return score(label, spec.weight, similarity, passed, detail);
  };
  return {
    spec,
    label,
    evaluateAmounts,
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
  const days = Math.abs(delta) === 1 ? "1 day" : `${Math.abs(delta)} days`;
  return `right is ${days} ${delta > 0 ? "after" : "before"} left`;
}

function compileDateWindow(spec: DateComparator): CompiledComparator {
  const label = `${spec.field}:dateWindow`;
  const ideal = Math.min(Math.max(0, spec.minDays), spec.maxDays);
  return {
    spec,
    label,
    evaluate(left, right, explain) {
      const delta = windowDate(right.record, spec.field) - windowDate(left.record, spec.field);
      const passed = delta >= spec.minDays && delta <= spec.maxDays;
      const reach = delta >= ideal ? spec.maxDays - ideal : ideal - spec.minDays;
      const similarity = !passed ? 0 : reach === 0 ? 1 : 1 - (0.5 * Math.abs(delta - ideal)) / reach;
      const detail = explain ? `${describeLag(delta)} (${passed ? "within" : "outside"} ${spec.minDays}..${spec.maxDays})` : "";
      return score(label, spec.weight, similarity, passed, detail);
    },
  };
}

function compileText(spec: TextComparator): CompiledComparator {
  const label = `${spec.field}:${spec.type}`;
  const field = spec.field;
  const threshold = spec.threshold ?? DEFAULT_THRESHOLD;
  const similarityOf = { tokenSet: tokenSetSimilarity, jaroWinkler, levenshtein: levenshteinSimilarity } as const;
  const extract = spec.type === "regex" ? compilePattern(spec.pattern!) : null;
  return {
    spec,
    label,
    evaluate(left, right, explain) {
      let a: string;
      let b: string;
      if (spec.type === "exact") [a, b] = [left.record[field], right.record[field]];
      else if (extract) [a, b] = [extract(left.record[field]), extract(right.record[field])];
      else [a, b] = [normalizedField(left, field), normalizedField(right, field)];
      if (a === "" || b === "") {
        const which = a === "" && b === "" ? "both" : a === "" ? "left" : "right";
        return score(label, spec.weight, 0, false, explain ? `${which} empty${extract ? " (no capture)" : ""}` : "");
      }
      if (spec.type === "tokenSet" || spec.type === "jaroWinkler" || spec.type === "levenshtein") {
        const similarity = similarityOf[spec.type](a, b);
        const passed = similarity >= threshold;
        return score(label, spec.weight, similarity, passed, explain ? `similarity ${round4(similarity)} ${passed ? ">=" : "<"} ${threshold}` : "");
      }
      const passed = spec.type === "contains" ? a.includes(b) || b.includes(a) : a === b;
      const what = spec.type === "contains" ? (passed ? "one contains the other" : "neither contains the other") : passed ? "equal" : "differ";
      return score(label, spec.weight, passed ? 1 : 0, passed, explain ? (extract ? `captures ${what}: "${a}", "${b}"` : what) : "");
    },
  };
}
