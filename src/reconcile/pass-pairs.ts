/**
 * One-to-one passes. A pure key-equality pass (every comparator a required exact equality: currency, exact amount,
 * exact or normalized text) pairs records by "group and zip"; any other 1:1 pass scores blocked candidate pairs and
 * assigns them greedily (assignment.ts).
 */
import type { EngineGroup, FieldScore } from "./types.js";
import type { Comparator } from "./rules.js";
import { isTextComparator } from "./rule-fields.js";
import { isAmountComparator, windowDate, type Prepared } from "./comparators.js";
import { buildBlocks, KeyIndex, nearestInRange, type KeyPart } from "./blocking.js";
import { CandidateList, assignGreedy } from "./assignment.js";
import { emitGroup, pairConfidence, scoreCandidate, type PassContext } from "./pass-context.js";

/** The most candidates one left record is scored against in a scored pass (the nearest ones), and the most left
 * records one right record is offered to. */
export const MAX_CANDIDATES_PER_RECORD = 24;

/** The part of an equality key one comparator contributes, or null when the comparator is not an exact equality. */
function equalityPart(c: Comparator): KeyPart | null {
  if (c.field === "currency") return (p) => p.record.currency;
  if (c.field === "amount") return c.type === "exact" ? (p) => p.record.amount : null;
  if (!isTextComparator(c)) return null;
  const field = c.field;
  if (c.type === "exact") return (p) => p.record[field] || null;
  if (c.type === "normalized") return (p) => p.normalized(field) || null;
  return null;
}

/**
 * The block key of records under a pass's required equality comparators; a record has none when a text part is
 * empty (an empty reference never matches another empty reference).
 */
export function equalityKey(comparators: readonly Comparator[]): KeyIndex {
  return new KeyIndex(comparators.filter((c) => c.required).flatMap((c) => equalityPart(c) ?? []));
}

/** Whether a 1:1 pass is decided by key equality alone (every comparator required and an exact equality). */
export function isKeyEqualityPass(comparators: readonly Comparator[]): boolean {
  return comparators.every((c) => c.required && equalityPart(c) !== null);
}

/**
 * Group and zip: both sides grouped by the key, each group in (bookedDate, id) order and paired by a merge of the
 * two sequences: while both have records, the next left and the next right are paired when their booked dates are
 * at most `maxDateSpanDays` apart; otherwise the earlier of the two (they are more than the span apart, so never on
 * the same day) is dropped from pairing and the merge goes on with the one after it. Dropped and surplus records
 * stay free for later passes. Without the span this is ROW_NUMBER() OVER (PARTITION BY key ORDER BY booked_date, id)
 * joined on (key, row number), so the runner may push such a pass into SQL. Never ambiguous. Every group has the
 * same breakdown (each comparator held, similarity 1; only the currency's detail names the currency), so one
 * breakdown per currency is shared by the pass's groups (nothing downstream modifies a group; not frozen, as frozen
 * objects get shapes of their own that V8 drops with each block: see shapes.ts).
 */
export function zipPass(ctx: PassContext): EngineGroup[] {
  const keys = equalityKey(ctx.pass.comparators);
  // Each key's records on each side as a chain in (bookedDate, id) order: first[key], then next[record] (−1 ends).
  const chains = (records: readonly Prepared[], free: Uint8Array, add: boolean) => {
    // Key ids are numbered by the left side, so there are at most as many as free left records.
    const ids = add ? records.length : keys.size;
    const first = new Int32Array(ids).fill(-1);
    const last = new Int32Array(ids);
    const next = new Int32Array(records.length).fill(-1);
    for (const p of records) {
      if (!free[p.index]) continue;
      const key = keys.id(p, add);
      if (key < 0) continue;
      if (first[key] === -1) first[key] = p.index;
      else next[last[key]!] = p.index;
      last[key] = p.index;
    }
    return { first, next };
  };
  const lefts = chains(ctx.left, ctx.leftFree, true);
  const rights = chains(ctx.right, ctx.rightFree, false);
  const shared = new Map<string, { confidence: number; breakdown: FieldScore[] }>();
  const scoreOf = (left: Prepared, right: Prepared) => {
    let known = shared.get(left.record.currency);
    if (!known) {
      const { confidence, breakdown } = scoreCandidate(ctx.scorer, [left], [right], true)!;
      known = { confidence, breakdown };
      shared.set(left.record.currency, known);
    }
    return known;
  };
  const span = ctx.maxDateSpanDays;
  const groups: EngineGroup[] = [];
  for (let key = 0; key < keys.size; key++) {
    for (let i = lefts.first[key]!, j = rights.first[key]!; i >= 0 && j >= 0; ) {
      ctx.tick();
      const left = ctx.left[i]!;
      const right = ctx.right[j]!;
      const lag = right.record.bookedDate - left.record.bookedDate;
      if (lag > span) i = lefts.next[i]!;
      else if (lag < -span) j = rights.next[j]!;
      // A rejected pair: the left record is passed over (the right one may still pair with the next left).
      else if (ctx.excludePair?.(left.record, right.record)) i = lefts.next[i]!;
      else {
        groups.push(emitGroup(ctx, [left], [right], false, scoreOf(left, right)));
        i = lefts.next[i]!;
        j = rights.next[j]!;
      }
    }
  }
  return groups;
}

/** How a scored pass searches inside a block: the sorted dimension, and the range a left record looks at. */
function searchPlan(ctx: PassContext) {
  const required = ctx.scorer.comparators.filter((c) => c.spec.required);
  const tolerance = required.find((c) => isAmountComparator(c) && c.spec.type !== "exact");
  if (tolerance && isAmountComparator(tolerance)) {
    return {
      sortKey: (p: Prepared) => p.amountFloat,
      range(p: Prepared) {
        const reach = tolerance.reach(p.record.amount);
        const amount = p.record.amount;
        return reach === null
          ? { target: Number(amount), lo: -Infinity, hi: Infinity }
          : { target: Number(amount), lo: Number(amount - reach), hi: Number(amount + reach) };
      },
    };
  }
  const window = required.map((c) => c.spec).find((s) => s.type === "dateWindow");
  if (window && window.type === "dateWindow") {
    return {
      sortKey: (p: Prepared) => windowDate(p.record, window.field),
      range(p: Prepared) {
        const date = windowDate(p.record, window.field);
        return { target: date, lo: date + window.minDays, hi: date + window.maxDays };
      },
    };
  }
  return {
    sortKey: (p: Prepared) => p.record.bookedDate,
    range: (p: Prepared) => ({ target: p.record.bookedDate, lo: -Infinity, hi: Infinity }),
  };
}

/**
 * A scored 1:1 pass: each free left record, in (bookedDate, id) order, is scored against the nearest free right
 * records of its block (at most MAX_CANDIDATES_PER_RECORD, each right record offered to at most as many); pairs
 * booked at most `maxDateSpanDays` apart whose required gates hold and whose confidence reaches the pass's minimum
 * are assigned greedily, best first.
 */
export function scoredPairPass(ctx: PassContext): EngineGroup[] {
  const keys = equalityKey(ctx.pass.comparators);
  const plan = searchPlan(ctx);
  const blocks = buildBlocks(ctx.right, (p) => ctx.rightFree[p.index] === 1, (p) => {
    const key = keys.id(p, true);
    return key < 0 ? null : key;
  }, plan.sortKey);
  const candidates = new CandidateList();
  for (const left of ctx.left) {
    if (!ctx.leftFree[left.index]) continue;
    const key = keys.id(left, false);
    const block = key < 0 ? undefined : blocks.get(key);
    if (!block) continue;
    const { target, lo, hi } = plan.range(left);
    const found = nearestInRange(block, target, lo, hi, MAX_CANDIDATES_PER_RECORD, MAX_CANDIDATES_PER_RECORD);
    ctx.tick(found.length + 1);
    for (const r of found) {
      const right = ctx.right[r]!;
      const lag = right.record.bookedDate - left.record.bookedDate;
      if (lag > ctx.maxDateSpanDays || lag < -ctx.maxDateSpanDays) continue;
      if (ctx.excludePair?.(left.record, right.record)) continue;
      const confidence = pairConfidence(ctx.scorer, left, right);
      if (confidence >= 0 && confidence >= ctx.pass.minConfidence) candidates.pushPair(left.index, r, confidence, lag, right.record.amount - left.record.amount);
    }
  }
  return emitAssigned(ctx, candidates);
}

/** Assigns a pass's candidates greedily and turns the choices into groups. */
export function emitAssigned(ctx: PassContext, candidates: CandidateList): EngineGroup[] {
  const marginTicks = Math.round(ctx.pass.ambiguityMargin * 10_000);
  const chosen = assignGreedy(candidates, marginTicks, ctx.leftFree, ctx.rightFree, ctx.tick);
  return chosen.map(({ candidate, ambiguous }) =>
    emitGroup(
      ctx,
      candidates.lefts(candidate).map((i) => ctx.left[i]!),
      candidates.rights(candidate).map((i) => ctx.right[i]!),
      ambiguous,
    ),
  );
}
