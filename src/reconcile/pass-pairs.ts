/**
 * One-to-one passes. A pure key-equality pass (every comparator a required exact equality: currency, exact amount,
 * exact or normalized text) pairs records by "group and zip"; any other 1:1 pass scores blocked candidate pairs and
 * assigns them greedily (assignment.ts).
 */
import type { EngineGroup } from "./types.js";
import type { Comparator } from "./rules.js";
import { isTextComparator } from "./rules.js";
import { isAmountComparator, normalizedField, windowDate, type Prepared } from "./comparators.js";
import { buildBlocks, nearestInRange } from "./blocking.js";
import { CandidateList, assignGreedy } from "./assignment.js";
import { emitGroup, scoreCandidate, type PassContext } from "./pass-context.js";

/** The most candidates one left record is scored against in a scored pass (the nearest ones), and the most left
 * records one right record is offered to. */
export const MAX_CANDIDATES_PER_RECORD = 24;

/** The part of an equality key one comparator contributes, or null when the comparator is not an exact equality. */
function equalityPart(c: Comparator): ((p: Prepared) => string | null) | null {
  if (c.field === "currency") return (p) => p.record.currency;
  if (c.field === "amount") return c.type === "exact" ? (p) => p.record.amount.toString() : null;
  if (!isTextComparator(c)) return null;
  const field = c.field;
  if (c.type === "exact") return (p) => p.record[field] || null;
  if (c.type === "normalized") return (p) => normalizedField(p, field) || null;
  return null;
}

/**
 * The block key of a record under a pass's required equality comparators; null when a text part is empty (an
 * empty reference never matches another empty reference).
 */
export function equalityKey(comparators: readonly Comparator[]): (p: Prepared) => string | null {
  const parts = comparators.filter((c) => c.required).flatMap((c) => equalityPart(c) ?? []);
  return (p) => {
    let key = "";
    for (const part of parts) {
      const value = part(p);
      if (value === null) return null;
      key += `${value}\u0000`;
    }
    return key;
  };
}

/** Whether a 1:1 pass is decided by key equality alone (every comparator required and an exact equality). */
export function isKeyEqualityPass(comparators: readonly Comparator[]): boolean {
  return comparators.every((c) => c.required && equalityPart(c) !== null);
}

/**
 * Group and zip: both sides grouped by the key, each group in (bookedDate, id) order, the n-th left paired with the
 * n-th right; surplus records stay free for later passes. The same as ROW_NUMBER() OVER (PARTITION BY key ORDER BY
 * booked_date, id) joined on (key, row number), so the runner may push such a pass into SQL. Never ambiguous.
 */
export function zipPass(ctx: PassContext): EngineGroup[] {
  const keyOf = equalityKey(ctx.pass.comparators);
  const byKey = new Map<string, { lefts: Prepared[]; rights: Prepared[] }>();
  for (const p of ctx.left) {
    if (!ctx.leftFree[p.index]) continue;
    const key = keyOf(p);
    if (key === null) continue;
    const entry = byKey.get(key);
    if (entry) entry.lefts.push(p);
    else byKey.set(key, { lefts: [p], rights: [] });
  }
  for (const p of ctx.right) {
    if (!ctx.rightFree[p.index]) continue;
    const key = keyOf(p);
    if (key !== null) byKey.get(key)?.rights.push(p);
  }
  const groups: EngineGroup[] = [];
  for (const { lefts, rights } of byKey.values()) {
    ctx.tick(lefts.length);
    for (let i = 0; i < Math.min(lefts.length, rights.length); i++) groups.push(emitGroup(ctx, [lefts[i]!], [rights[i]!], false));
  }
  return groups;
}

/** How a scored pass searches inside a block: the sorted dimension, and the range a left record looks at. */
function searchPlan(ctx: PassContext) {
  const required = ctx.scorer.comparators.filter((c) => c.spec.required);
  const tolerance = required.find((c) => isAmountComparator(c) && c.spec.type !== "exact");
  if (tolerance && isAmountComparator(tolerance)) {
    return {
      sortKey: (p: Prepared) => Number(p.record.amount),
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
 * records of its block (at most MAX_CANDIDATES_PER_RECORD, each right record offered to at most as many); pairs whose required gates hold and whose confidence reaches the pass's
 * minimum are assigned greedily, best first.
 */
export function scoredPairPass(ctx: PassContext): EngineGroup[] {
  const keyOf = equalityKey(ctx.pass.comparators);
  const plan = searchPlan(ctx);
  const blocks = buildBlocks(ctx.right, (p) => ctx.rightFree[p.index] === 1, keyOf, plan.sortKey);
  const candidates = new CandidateList();
  for (const left of ctx.left) {
    if (!ctx.leftFree[left.index]) continue;
    const key = keyOf(left);
    const block = key === null ? undefined : blocks.get(key);
    if (!block) continue;
    const { target, lo, hi } = plan.range(left);
    const found = nearestInRange(block, target, lo, hi, MAX_CANDIDATES_PER_RECORD, MAX_CANDIDATES_PER_RECORD);
    ctx.tick(found.length + 1);
    for (const r of found) {
      const right = ctx.right[r]!;
      const scored = scoreCandidate(ctx.scorer, [left], [right], false);
      if (scored && scored.confidence >= ctx.pass.minConfidence) {
        candidates.push([left.index], [r], scored.confidence, right.record.bookedDate - left.record.bookedDate, right.record.amount - left.record.amount);
      }
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
