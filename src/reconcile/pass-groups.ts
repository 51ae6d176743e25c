/**
 * Grouped passes: one record against several of the other side (1:N, N:1), or several against several (N:M).
 * With `groupBy`, groups are formed by key (the normalized text of that field); without it, 1:N and N:1 search
 * subsets of nearby records whose sum matches (bounded per record). Candidates go through the same greedy
 * assignment as pairs, so the best group wins and near-ties go to review.
 */
import type { EngineGroup } from "./types.js";
import type { Pass } from "./rules.js";
import { absAmount } from "./money.js";
import { isAmountComparator, verdictPassed, windowDate, type CompiledAmountComparator, type Prepared } from "./comparators.js";
import { buildBlocks, nearestInRange } from "./blocking.js";
import { CandidateList } from "./assignment.js";
import { candidateConfidence, type PassContext } from "./pass-context.js";
import { emitAssigned } from "./pass-pairs.js";

/** A key group larger than this (on either side) is not matched: such keys are generic ("SALARY"), not groupings. */
export const MAX_KEY_GROUP = 200;
/** The nearby records (by date) a subset-sum search combines, at most. */
export const SUBSET_POOL = 20;
/** Combinations a subset-sum search may try for one record. */
export const SUBSET_BUDGET = 1_000;

/** Which side holds the single record in a 1:N (left) or N:1 (right) pass. */
function orient(ctx: PassContext) {
  const oneIsLeft = ctx.pass.kind === "ONE_TO_MANY";
  return {
    ones: oneIsLeft ? ctx.left : ctx.right,
    many: oneIsLeft ? ctx.right : ctx.left,
    oneFree: oneIsLeft ? ctx.leftFree : ctx.rightFree,
    manyFree: oneIsLeft ? ctx.rightFree : ctx.leftFree,
    /** [lefts, rights] of a single record and its legs. */
    sides: (one: Prepared, legs: Prepared[]): [Prepared[], Prepared[]] => (oneIsLeft ? [[one], legs] : [legs, [one]]),
  };
}

/** Whether the records' booked dates all lie within `maxDateSpanDays` of each other. */
function withinSpan(ctx: PassContext, lefts: readonly Prepared[], rights: readonly Prepared[]): boolean {
  let first = Infinity;
  let last = -Infinity;
  for (const p of lefts) {
    first = Math.min(first, p.record.bookedDate);
    last = Math.max(last, p.record.bookedDate);
  }
  for (const p of rights) {
    first = Math.min(first, p.record.bookedDate);
    last = Math.max(last, p.record.bookedDate);
  }
  return last - first <= ctx.maxDateSpanDays;
}

/** Scores a group and adds it to the candidates when its gates hold, its confidence suffices and it fits the span. */
function pushCandidate(ctx: PassContext, candidates: CandidateList, lefts: Prepared[], rights: Prepared[]): void {
  ctx.tick(lefts.length * rights.length);
  if (!withinSpan(ctx, lefts, rights)) return;
  if (ctx.excludePair && lefts.some((l) => rights.some((r) => ctx.excludePair!(l.record, r.record)))) return;
  const confidence = candidateConfidence(ctx.scorer, lefts, rights);
  if (confidence < 0 || confidence < ctx.pass.minConfidence) return;
  let delta = 0n;
  for (const p of rights) delta += p.record.amount;
  for (const p of lefts) delta -= p.record.amount;
  candidates.push(
    lefts.map((p) => p.index),
    rights.map((p) => p.index),
    confidence,
    rights[0]!.record.bookedDate - lefts[0]!.record.bookedDate,
    delta,
  );
}

function groupByKey(records: readonly Prepared[], free: Uint8Array, field: NonNullable<Pass["groupBy"]>): Map<string, Prepared[]> {
  const groups = new Map<string, Prepared[]>();
  for (const p of records) {
    if (!free[p.index]) continue;
    const key = p.normalized(field);
    if (key === "") continue;
    const group = groups.get(key);
    if (group) group.push(p);
    else groups.set(key, [p]);
  }
  return groups;
}

/**
 * Whether every required comparator other than the amount one holds between a single record and one leg, and the
 * two are booked within `maxDateSpanDays`.
 */
function legGates(ctx: PassContext) {
  const gates = ctx.scorer.comparators.filter((c) => c.spec.required && !isAmountComparator(c));
  const oneIsLeft = ctx.pass.kind === "ONE_TO_MANY";
  return (one: Prepared, leg: Prepared) => {
    if (Math.abs(one.record.bookedDate - leg.record.bookedDate) > ctx.maxDateSpanDays) return false;
    for (const gate of gates) if (!verdictPassed(oneIsLeft ? gate.judge(one, leg) : gate.judge(leg, one))) return false;
    return true;
  };
}

/**
 * 1:N / N:1 by key: for each free single record, its legs are the free records of the other side with the same
 * key, booked within `maxDateSpanDays` of it, that pass the pass's other required gates against it; two or more
 * legs whose sum passes the amount comparator make a candidate, unless the legs lie further apart than the span.
 */
export function keyGroupPass(ctx: PassContext): EngineGroup[] {
  const { ones, many, oneFree, manyFree, sides } = orient(ctx);
  const field = ctx.pass.groupBy!;
  const manyByKey = groupByKey(many, manyFree, field);
  const gates = legGates(ctx);
  const candidates = new CandidateList();
  for (const one of ones) {
    if (!oneFree[one.index]) continue;
    const key = one.normalized(field);
    const group = key === "" ? undefined : manyByKey.get(key);
    if (!group || group.length > MAX_KEY_GROUP) continue;
    ctx.tick(group.length);
    const legs = group.filter((leg) => gates(one, leg));
    if (legs.length >= 2) pushCandidate(ctx, candidates, ...sides(one, legs));
  }
  return emitAssigned(ctx, candidates);
}

/**
 * N:M by key: the free records sharing a key on each side form one candidate (at least three records in all)
 * when every leg pair passes the required gates, all are booked within `maxDateSpanDays` of each other and the
 * sums balance within the amount comparator.
 */
export function manyToManyPass(ctx: PassContext): EngineGroup[] {
  const field = ctx.pass.groupBy!;
  const leftByKey = groupByKey(ctx.left, ctx.leftFree, field);
  const rightByKey = groupByKey(ctx.right, ctx.rightFree, field);
  const candidates = new CandidateList();
  for (const [key, lefts] of leftByKey) {
    const rights = rightByKey.get(key);
    if (!rights || lefts.length + rights.length < 3 || lefts.length > MAX_KEY_GROUP || rights.length > MAX_KEY_GROUP) continue;
    pushCandidate(ctx, candidates, lefts, rights);
  }
  return emitAssigned(ctx, candidates);
}

/**
 * 1:N / N:1 by subset sum: for each free single record, the SUBSET_POOL nearest free records of the other side
 * (same sign, same currency when required, inside the date window, passing the other required gates, not larger
 * than the single's amount plus tolerance) are searched for 2..maxLegs legs whose sum passes the amount
 * comparator. Fewest legs first, then the smallest |delta|; the best two of that size become candidates (two, so
 * that a near-tie is seen as ambiguous), each only if its records are booked within `maxDateSpanDays` of each other.
 * The search is capped at SUBSET_BUDGET combinations per record.
 */
export function subsetSumPass(ctx: PassContext): EngineGroup[] {
  const { ones, many, oneFree, manyFree, sides } = orient(ctx);
  const oneIsLeft = ones === ctx.left;
  const amount = ctx.scorer.comparators.find((c) => c.spec.required && isAmountComparator(c)) as CompiledAmountComparator;
  const window = ctx.pass.comparators.find((c) => c.required && c.type === "dateWindow");
  if (!window || window.type !== "dateWindow") return [];
  const sameCurrency = ctx.pass.comparators.some((c) => c.required && c.field === "currency");
  // Blocks by sign (and currency): 2 × currency number + 1 for negative amounts; null for zero amounts.
  const currencies = new Map<string, number>();
  const currencyNumber = (currency: string) => {
    let n = currencies.get(currency);
    if (n === undefined) currencies.set(currency, (n = currencies.size));
    return n;
  };
  const blockKey = (p: Prepared) => (p.record.amount === 0n ? null : 2 * (sameCurrency ? currencyNumber(p.record.currency) : 0) + (p.record.amount > 0n ? 0 : 1));
  const blocks = buildBlocks(many, (p) => manyFree[p.index] === 1, blockKey, (p) => windowDate(p.record, window.field));
  // |amount| of the many side as floats, exact up to 2^53: compared with a limit of at most EXACT_SUM_LIMIT they
  // decide as the bigints would (a larger amount rounds to at least 2^53, still above the limit).
  const manyAbs = new Float64Array(many.length);
  for (const p of many) manyAbs[p.index] = Math.abs(Number(p.record.amount));
  const gates = legGates(ctx);
  const candidates = new CandidateList();
  for (const one of ones) {
    const key = blockKey(one);
    const block = oneFree[one.index] && key !== null ? blocks.get(key) : undefined;
    if (!block) continue;
    const date = windowDate(one.record, window.field);
    // right − left ∈ [min, max]: legs on the right lie at date + [min, max], legs on the left at date − [max, min].
    const [lo, hi] = oneIsLeft ? [date + window.minDays, date + window.maxDays] : [date - window.maxDays, date - window.minDays];
    const target = absAmount(one.record.amount);
    const reach = amount.reach(one.record.amount) ?? target;
    const nearby = nearestInRange(block, date, lo, hi, SUBSET_POOL * 4);
    ctx.tick(nearby.length + 1);
    const limit = target + reach;
    const pool: Prepared[] = [];
    const exact = limit <= EXACT_SUM_LIMIT;
    const limitNumber = Number(limit);
    for (const i of nearby) {
      const leg = many[i]!;
      const fits = exact ? manyAbs[i]! <= limitNumber : absAmount(leg.record.amount) <= limit;
      if (fits && gates(one, leg) && pool.push(leg) === SUBSET_POOL) break;
    }
    if (pool.length < 2) continue;
    const subsets = exact
      ? bestSubsetsOfNumbers(sortedByAbs(pool, manyAbs), manyAbs, Number(target - reach), limitNumber, Number(target), ctx.pass.maxLegs, ctx.tick)
      : bestSubsets(
          pool.sort((a, b) => (absAmount(a.record.amount) < absAmount(b.record.amount) ? -1 : absAmount(a.record.amount) > absAmount(b.record.amount) ? 1 : a.index - b.index)),
          target - reach,
          limit,
          target,
          ctx.pass.maxLegs,
          ctx.tick,
        );
    for (const legs of subsets) {
      pushCandidate(ctx, candidates, ...sides(one, legs.sort((a, b) => a.index - b.index)));
    }
  }
  return emitAssigned(ctx, candidates);
}

/**
 * Below this |amount| (in 10^-4 units, about 1.1·10^11 in money), sums of up to five legs and the search's
 * products stay below 2^53, so the subset search may use exact float arithmetic instead of bigint.
 */
const EXACT_SUM_LIMIT = BigInt(Math.floor(Number.MAX_SAFE_INTEGER / 8));

/**
 * Sorts a pool by |amount| ascending, then by position (the order `bestSubsets` searches in), on the floats of
 * `abs` (indexed by position): all at most EXACT_SUM_LIMIT, so equal floats are equal amounts. Insertion sort: a
 * pool holds at most SUBSET_POOL records.
 */
function sortedByAbs(pool: Prepared[], abs: Float64Array): Prepared[] {
  for (let i = 1; i < pool.length; i++) {
    const p = pool[i]!;
    const value = abs[p.index]!;
    let j = i - 1;
    for (; j >= 0; j--) {
      const q = pool[j]!;
      const other = abs[q.index]!;
      if (other < value || (other === value && q.index < p.index)) break;
      pool[j + 1] = q;
    }
    pool[j + 1] = p;
  }
  return pool;
}

/**
 * `bestSubsets` for a pool (sorted by `sortedByAbs`) whose amounts are all at most EXACT_SUM_LIMIT: the same search
 * in the same order with the same budget, on floats (exact at these magnitudes, `abs` by position), without
 * recursion, and with the last pick of each combination found by binary search instead of one try at a time.
 */
function bestSubsetsOfNumbers(pool: Prepared[], abs: Float64Array, lo: number, hi: number, target: number, maxLegs: number, tick: (units?: number) => void): Prepared[][] {
  const n = pool.length;
  const values = scratch.values.length >= n ? scratch.values : (scratch.values = new Float64Array(n));
  for (let i = 0; i < n; i++) values[i] = abs[pool[i]!.index]!;
  const largest = values[n - 1]!;
  // next[d]: the next pool position to try at depth d; sums[d]: the sum of the picks above depth d.
  if (scratch.next.length < maxLegs) [scratch.next, scratch.sums] = [new Int32Array(maxLegs), new Float64Array(maxLegs)];
  const { next, sums } = scratch;
  let budget = SUBSET_BUDGET;
  for (let size = 2; size <= Math.min(maxLegs, n); size++) {
    const found: { picks: number[]; miss: number }[] = [];
    let depth = 0;
    next[0] = 0;
    sums[0] = 0;
    while (depth >= 0) {
      const remaining = size - depth;
      const i = next[depth]!;
      if (i > n - remaining || budget <= 0) {
        if (--depth >= 0) next[depth]!++;
        continue;
      }
      if (remaining === 1) {
        // The last pick, in one step: the search would try i, i+1, … (one budget unit each) until a sum exceeds
        // `hi` (that try included) or the pool or the budget ends, keeping the sums inside [lo, hi]. Values are
        // sorted, so those are a run of positions found by binary search.
        const base = sums[depth]!;
        const over = firstAbove(values, i, n, hi - base);
        const tried = Math.min(budget, over < n ? over - i + 1 : n - i);
        const end = Math.min(over, i + tried);
        for (let k = firstAbove(values, i, end, lo - base - 1); k < end; k++) {
          next[depth] = k;
          found.push({ picks: Array.from(next.subarray(0, depth + 1)), miss: Math.abs(base + values[k]! - target) });
        }
        budget -= tried;
        if (--depth >= 0) next[depth]!++;
        continue;
      }
      budget--;
      const sum = sums[depth]! + values[i]!;
      // Later values are at least values[i]: if even the smallest completion overshoots, go back up a level.
      if (sum + values[i]! * (remaining - 1) > hi) {
        if (--depth >= 0) next[depth]!++;
        continue;
      }
      if (sum + largest * (remaining - 1) >= lo) {
        sums[depth + 1] = sum;
        next[depth + 1] = i + 1;
        depth++;
        continue;
      }
      next[depth]!++;
    }
    tick(SUBSET_BUDGET - budget);
    if (found.length > 0) {
      found.sort((a, b) => a.miss - b.miss);
      return found.slice(0, 2).map(({ picks }) => picks.map((i) => pool[i]!));
    }
    if (budget <= 0) break;
  }
  return [];
}

/**
 * Working arrays of `bestSubsetsOfNumbers`, reused from one search to the next: a pass makes one search per free
 * record (152,000 in a 1M × 1M job), each of which allocated three typed arrays. Grown when a pool or maxLegs is larger.
 */
const scratch = { values: new Float64Array(SUBSET_POOL), next: new Int32Array(5), sums: new Float64Array(5) };

/** The first position in [from, to) of the ascending `values` whose value exceeds `limit` (`to` when none). */
function firstAbove(values: Float64Array, from: number, to: number, limit: number): number {
  let low = from;
  let high = to;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (values[mid]! > limit) high = mid;
    else low = mid + 1;
  }
  return low;
}

/**
 * The best (up to) two subsets of `pool` (sorted by |amount| ascending) of the smallest size in 2..maxLegs whose
 * |amount| sum lies in [lo, hi], ranked by |sum − target| then by pool order; depth-first with pruning.
 */
function bestSubsets(pool: Prepared[], lo: bigint, hi: bigint, target: bigint, maxLegs: number, tick: (units?: number) => void): Prepared[][] {
  const values = pool.map((p) => absAmount(p.record.amount));
  let budget = SUBSET_BUDGET;
  for (let size = 2; size <= Math.min(maxLegs, pool.length); size++) {
    const found: { picks: number[]; miss: bigint }[] = [];
    const picks: number[] = [];
    const search = (from: number, sum: bigint): void => {
      const remaining = size - picks.length;
      for (let i = from; i <= values.length - remaining && budget > 0; i++) {
        budget--;
        const next = sum + values[i]!;
        // Later values are at least values[i]: if even the smallest completion overshoots, stop.
        if (next + values[i]! * BigInt(remaining - 1) > hi) break;
        if (next + values[values.length - 1]! * BigInt(remaining - 1) < lo) continue;
        picks.push(i);
        if (remaining === 1) {
          const miss = absAmount(next - target);
          found.push({ picks: [...picks], miss });
        } else search(i + 1, next);
        picks.pop();
      }
    };
    search(0, 0n);
    tick(SUBSET_BUDGET - budget);
    if (found.length > 0) {
      found.sort((a, b) => (a.miss < b.miss ? -1 : a.miss > b.miss ? 1 : 0));
      return found.slice(0, 2).map(({ picks: chosen }) => chosen.map((i) => pool[i]!));
    }
    if (budget <= 0) break;
  }
  return [];
}
