/**
 * The stages after the passes, on the records no pass used and that are not carried to the next block:
 * discrepancies (a left and a right record sharing a key but not matching: CURRENCY_MISMATCH, AMOUNT_MISMATCH or
 * DATE_LAG), duplicates (a record repeating another of its own side: DUPLICATE), and finally UNMATCHED_LEFT /
 * UNMATCHED_RIGHT for the rest. They give a reviewer the reason a record was left over, not a match.
 */
import type { EngineGroup, FieldScore, Side } from "./types.js";
import type { RuleSet } from "./rules.js";
import { describeLag, flatText, normalizedField, type Prepared } from "./comparators.js";
import { formatAmount } from "./money.js";

/** Records per side and key the discrepancy stage pairs at most (a key shared by more is not a reference). */
const MAX_DISCREPANCY_GROUP = 100;

function singleGroup(side: Side, p: Prepared, outcome: EngineGroup["outcome"], rule: string, breakdown: FieldScore[] = [], duplicateOf?: string): EngineGroup {
  const left = side === "LEFT";
  // duplicateOf is always present (undefined but for duplicates): one literal, one object shape (see shapes.ts).
  return {
    outcome,
    kind: "SINGLE",
    leftIds: left ? [p.record.id] : [],
    rightIds: left ? [] : [p.record.id],
    leftRecords: left ? [p.record] : [],
    rightRecords: left ? [] : [p.record],
    confidence: 0,
    pass: 0,
    rule,
    amountDelta: left ? -p.record.amount : p.record.amount,
    dateDeltaDays: 0,
    ambiguous: false,
    breakdown,
    duplicateOf,
  };
}

function fact(comparator: string, passed: boolean, detail: string): FieldScore {
  return { comparator, similarity: passed ? 1 : 0, weight: 1, passed, detail };
}

/**
 * Pairs residual records that share the normalized, non-empty key within `dateWindowDays` (booked dates), one to
 * one, closest dates first (then left, then right by (bookedDate, id)). The outcome names the first difference:
 * currency, then amount (amountDelta = right − left), else the date lag that kept the passes from matching them.
 */
export function discrepancyStage(
  left: readonly Prepared[],
  right: readonly Prepared[],
  leftFree: Uint8Array,
  rightFree: Uint8Array,
  config: NonNullable<RuleSet["discrepancies"]>,
  tick: (units?: number) => void,
  /** Whether a pair may be formed now (the runner's block boundary); every pair by default. */
  allowed: (l: Prepared, r: Prepared) => boolean = () => true,
): EngineGroup[] {
  const byKey = new Map<string, { lefts: Prepared[]; rights: Prepared[] }>();
  for (const p of left) {
    const key = leftFree[p.index] ? normalizedField(p, config.key) : "";
    if (key === "") continue;
    const entry = byKey.get(key) ?? byKey.set(key, { lefts: [], rights: [] }).get(key)!;
    if (entry.lefts.length < MAX_DISCREPANCY_GROUP) entry.lefts.push(p);
  }
  for (const p of right) {
    const entry = rightFree[p.index] ? byKey.get(normalizedField(p, config.key)) : undefined;
    if (entry && entry.rights.length < MAX_DISCREPANCY_GROUP) entry.rights.push(p);
  }
  const groups: EngineGroup[] = [];
  for (const { lefts, rights } of byKey.values()) {
    if (rights.length === 0) continue;
    tick(lefts.length * rights.length);
    const pairs: [Prepared, Prepared, number][] = [];
    for (const l of lefts) {
      for (const r of rights) {
        const lag = r.record.bookedDate - l.record.bookedDate;
        if (Math.abs(lag) <= config.dateWindowDays && allowed(l, r)) pairs.push([l, r, lag]);
      }
    }
    pairs.sort((a, b) => Math.abs(a[2]) - Math.abs(b[2]) || a[0].index - b[0].index || a[1].index - b[1].index);
    for (const [l, r, lag] of pairs) {
      if (!leftFree[l.index] || !rightFree[r.index]) continue;
      leftFree[l.index] = 0;
      rightFree[r.index] = 0;
      groups.push(discrepancyGroup(l, r, lag, config.key));
    }
  }
  return groups;
}

function discrepancyGroup(l: Prepared, r: Prepared, lag: number, key: string): EngineGroup {
  const a = l.record;
  const b = r.record;
  const delta = b.amount - a.amount;
  const outcome = a.currency !== b.currency ? "CURRENCY_MISMATCH" : delta !== 0n ? "AMOUNT_MISMATCH" : "DATE_LAG";
  return {
    outcome,
    kind: "ONE_TO_ONE",
    leftIds: [a.id],
    rightIds: [b.id],
    leftRecords: [a],
    rightRecords: [b],
    confidence: 0,
    pass: 0,
    rule: "discrepancy",
    amountDelta: delta,
    dateDeltaDays: lag,
    ambiguous: false,
    breakdown: [
      fact(`${key}:normalized`, true, "same key"),
      fact("currency:equal", a.currency === b.currency, a.currency === b.currency ? flatText("both ", a.currency) : flatText(a.currency, " ≠ ", b.currency)),
      fact("amount:exact", delta === 0n, delta === 0n ? "amounts equal" : flatText("delta ", formatAmount(delta))),
      fact("bookedDate:lag", lag === 0, describeLag(lag)),
    ],
  };
}

/**
 * Marks residual records of one side that repeat another record of that side passed in the same call: the same
 * (amount, currency, bookedDate, normalized non-empty reference), or the same non-empty externalId. A record is a
 * DUPLICATE when one of its twins was matched (then it duplicates the earliest matched twin) or precedes it in
 * (bookedDate, id) order (then it duplicates the earliest twin); the first of a set of unmatched twins stays
 * unmatched. `residual` holds 1 for the records this stage may decide, `matched` for those a pass or the
 * discrepancy stage grouped.
 */
export function duplicateStage(side: Side, records: readonly Prepared[], residual: Uint8Array, matched: Uint8Array, tick: (units?: number) => void): EngineGroup[] {
  const byTuple = new Map<string, number[]>();
  const byExternalId = new Map<string, number[]>();
  const add = (map: Map<string, number[]>, key: string, index: number) => {
    const list = map.get(key);
    if (list) list.push(index);
    else map.set(key, [index]);
  };
  // Only records that could be twins of a residual one are indexed (most records are matched and have no twin). The
  // amounts are looked up as floats: equal amounts always meet; a rare false meeting only indexes one more record.
  const residualAmounts = new Set<number>();
  const residualExternalIds = new Set<string>();
  for (const p of records) {
    if (!residual[p.index]) continue;
    residualAmounts.add(Number(p.record.amount));
    residualExternalIds.add(p.record.externalId);
  }
  for (const p of records) {
    const reference = residualAmounts.has(Number(p.record.amount)) ? p.normalized("reference") : "";
    if (reference !== "") add(byTuple, tupleKey(p, reference), p.index);
    if (p.record.externalId !== "" && residualExternalIds.has(p.record.externalId)) add(byExternalId, p.record.externalId, p.index);
  }
  tick(records.length);
  const groups: EngineGroup[] = [];
  for (const p of records) {
    if (!residual[p.index]) continue;
    const reference = normalizedField(p, "reference");
    const twins = [
      ...(reference === "" ? [] : byTuple.get(tupleKey(p, reference))!),
      ...(p.record.externalId === "" ? [] : byExternalId.get(p.record.externalId)!),
    ].filter((i) => i !== p.index);
    if (twins.length === 0) continue;
    const earliestMatched = twins.reduce((best, i) => (matched[i] && (best < 0 || i < best) ? i : best), -1);
    const earliest = twins.reduce((best, i) => Math.min(best, i));
    const original = earliestMatched >= 0 ? earliestMatched : earliest < p.index ? earliest : -1;
    if (original < 0) continue;
    const twin = records[original]!.record;
    const how = p.record.externalId !== "" && p.record.externalId === twin.externalId ? "externalId" : "amount, currency, bookedDate and reference";
    residual[p.index] = 0;
    groups.push(singleGroup(side, p, "DUPLICATE", "duplicate", [fact(`duplicate:${how === "externalId" ? "externalId" : "record"}`, true, `same ${how} as ${twin.id}`)], twin.id));
  }
  return groups;
}

function tupleKey(p: Prepared, reference: string): string {
  return `${p.record.amount}\u0000${p.record.currency}\u0000${p.record.bookedDate}\u0000${reference}`;
}

/** UNMATCHED_LEFT / UNMATCHED_RIGHT groups for the records still marked in `residual`. */
export function unmatchedStage(side: Side, records: readonly Prepared[], residual: Uint8Array): EngineGroup[] {
  const outcome = side === "LEFT" ? "UNMATCHED_LEFT" : "UNMATCHED_RIGHT";
  return records.filter((p) => residual[p.index]).map((p) => singleGroup(side, p, outcome, "unmatched"));
}
