/**
 * The matching engine: two sides of records and a rule set in, groups out. Pure and synchronous (no I/O), so the
 * job runner can feed it date-ordered blocks from PostgreSQL and persist what it yields.
 *
 * Passes run in order over the records no earlier pass used; then, on what is left and not carried to the next
 * block, the discrepancy, duplicate and unmatched stages. Every record passed in ends in exactly one group or in
 * the carry. The result does not depend on the order of the input: both sides are sorted by (bookedDate, id) first
 * and every choice breaks ties on that order.
 */
import type { EngineGroup, EngineRecord } from "./types.js";
import type { RuleSet } from "./rules.js";
import { prepare, type Prepared } from "./comparators.js";
import { compileScorer, createStopCheck, type PassContext } from "./pass-context.js";
import { isKeyEqualityPass, scoredPairPass, zipPass } from "./pass-pairs.js";
import { keyGroupPass, manyToManyPass, subsetSumPass } from "./pass-groups.js";
import { discrepancyStage, duplicateStage, unmatchedStage } from "./stages.js";

export { ReconcileCancelled } from "./pass-context.js";

/** How the runner drives one call: which residual records wait for the next date block, and cancellation. */
export interface ReconcileOptions {
  /**
   * Records still unmatched after all passes whose bookedDate >= carryFrom are NOT finalized: they are returned in
   * `carry` (the runner feeds them into the next date block). Omitted: everything is finalized. Carried records
   * skip the discrepancy/duplicate/unmatched stages.
   */
  carryFrom?: number;
  /**
   * With `carryFrom`: residual records booked in [finalizeBefore, carryFrom) are carried too, but the discrepancy
   * stage may still pair them with a record that is being finalized (booked before `finalizeBefore`). The runner
   * sets carryFrom where no later record can reach a record through a pass, and finalizeBefore one discrepancy
   * window earlier, so that a record finalized now sees every record it could be a discrepancy with — including
   * those booked just after it. Omitted: equal to carryFrom.
   */
  finalizeBefore?: number;
  /** Polled regularly (at least every few thousand pairs); when it returns true, throw `ReconcileCancelled`. */
  shouldStop?: () => boolean;
  /**
   * Pairs that must never be grouped (a reviewer rejected them): consulted wherever a pass or the discrepancy stage
   * considers a left and a right record together; a group with any excluded pair is never proposed.
   */
  excludePair?: (left: EngineRecord, right: EngineRecord) => boolean;
  /**
   * The first booked date of the records new to this call: those booked earlier were carried from the last call,
   * whose passes already saw them with every record they could be grouped with except the new ones. A pass skips
   * the carried records it cannot group with a new record (booked further before `newFrom` than the pass reaches,
   * `passReach`): for them it would only repeat the last call's decisions — and where a cap on candidates or a
   * subset search's pool of the nearest free records let a repeat decide differently, the call over everything at
   * once would have decided as the last call did. Omitted: no record is carried.
   */
  newFrom?: number;
}

/** What one call yields: the groups (every finalized record in exactly one), the carry, and groups per pass. */
export interface ReconcileResult {
  groups: EngineGroup[];
  carry: { left: EngineRecord[]; right: EngineRecord[] };
  /** Groups per pass, index = pass − 1. */
  passHits: number[];
}

/** Appends without spreading (a pass may yield more groups than a call may take arguments). */
function append<T>(target: T[], items: readonly T[]): void {
  for (const item of items) target.push(item);
}

/**
 * How many days apart two records one group of `pass` holds can be booked, at most: the reach of its required
 * booked-date window (for a 1:N or N:1 pass twice that: two legs each within the window of the single record), and
 * never more than the rule set's `maxDateSpanDays`, which bounds every group.
 */
export function passReach(pass: RuleSet["passes"][number], maxDateSpanDays: number): number {
  let window = Infinity;
  for (const c of pass.comparators) {
    if (c.required && c.type === "dateWindow" && c.field === "bookedDate") window = Math.min(window, Math.max(Math.abs(c.minDays), Math.abs(c.maxDays)));
  }
  if (pass.kind === "MANY_TO_MANY") return maxDateSpanDays;
  return Math.min(maxDateSpanDays, pass.kind === "ONE_TO_ONE" ? window : 2 * window);
}

/** The first position of `records` (in (bookedDate, id) order) booked on or after `date`. */
function firstBookedFrom(records: readonly Prepared[], date: number): number {
  let low = 0;
  let high = records.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (records[mid]!.record.bookedDate < date) low = mid + 1;
    else high = mid;
  }
  return low;
}

/**
 * Runs `run` with the records booked before `date` hidden from it (not free), then gives them back their free
 * flags. Both sides are in (bookedDate, id) order, so the hidden records are a prefix of each.
 */
function hidingBefore<T>(sides: { left: Prepared[]; right: Prepared[] }, free: { left: Uint8Array; right: Uint8Array }, date: number, run: () => T): T {
  const leftEnd = firstBookedFrom(sides.left, date);
  const rightEnd = firstBookedFrom(sides.right, date);
  if (leftEnd === 0 && rightEnd === 0) return run();
  const left = free.left.slice(0, leftEnd);
  const right = free.right.slice(0, rightEnd);
  free.left.fill(0, 0, leftEnd);
  free.right.fill(0, 0, rightEnd);
  try {
    return run();
  } finally {
    free.left.set(left, 0);
    free.right.set(right, 0);
  }
}

/** Runs one pass over the still-free records, choosing its strategy from its kind and comparators. */
function runPass(ctx: PassContext): EngineGroup[] {
  const { pass } = ctx;
  if (pass.kind === "ONE_TO_ONE") return isKeyEqualityPass(pass.comparators) ? zipPass(ctx) : scoredPairPass(ctx);
  if (pass.kind === "MANY_TO_MANY") return manyToManyPass(ctx);
  return pass.groupBy ? keyGroupPass(ctx) : subsetSumPass(ctx);
}

/**
 * Reconciles `left` against `right` with `rules` (validated by `parseRuleSet`). Ids must be unique across both
 * sides. Throws `ReconcileCancelled` when `options.shouldStop` says so.
 */
export function reconcile(left: readonly EngineRecord[], right: readonly EngineRecord[], rules: RuleSet, options: ReconcileOptions = {}): ReconcileResult {
  const tick = createStopCheck(options.shouldStop);
  const sides = { left: prepare(left), right: prepare(right) };
  const leftFree = new Uint8Array(sides.left.length).fill(1);
  const rightFree = new Uint8Array(sides.right.length).fill(1);
  const groups: EngineGroup[] = [];
  const passHits = rules.passes.map((pass, i) => {
    // Every property in one literal, none spread in: V8 gives a literal's objects one map for good, but an object
    // grown property by property gets maps that die with it at the end of the block, and the passes' optimized
    // code, specialized to them, would be thrown away and compiled again for the next block's.
    const ctx: PassContext = {
      pass,
      passNumber: i + 1,
      scorer: compileScorer(pass),
      left: sides.left,
      right: sides.right,
      leftFree,
      rightFree,
      tick,
      maxDateSpanDays: rules.maxDateSpanDays,
      excludePair: options.excludePair,
    };
    const found =
      options.newFrom === undefined
        ? runPass(ctx)
        : hidingBefore(sides, { left: leftFree, right: rightFree }, options.newFrom - passReach(pass, rules.maxDateSpanDays), () => runPass(ctx));
    append(groups, found);
    return found.length;
  });

  // Residual records booked from finalizeBefore on wait for the next block; the rest are finalized by the stages.
  const carryFrom = options.carryFrom ?? Infinity;
  const finalizeBefore = Math.min(options.finalizeBefore ?? carryFrom, carryFrom);
  const carryFlags = (records: Prepared[], free: Uint8Array) => {
    const carried = new Uint8Array(free.length);
    for (const p of records) if (free[p.index] && p.record.bookedDate >= finalizeBefore) [free[p.index], carried[p.index]] = [0, 1];
    return carried;
  };
  const leftCarried = carryFlags(sides.left, leftFree);
  const rightCarried = carryFlags(sides.right, rightFree);

  if (rules.discrepancies) {
    // Carried records no pass can reach any more may still be the other half of a finalized record's discrepancy.
    const open = (records: Prepared[], free: Uint8Array, carried: Uint8Array) => {
      const flags = free.slice();
      for (const p of records) if (carried[p.index] && p.record.bookedDate < carryFrom) flags[p.index] = 1;
      return flags;
    };
    const leftOpen = open(sides.left, leftFree, leftCarried);
    const rightOpen = open(sides.right, rightFree, rightCarried);
    const leftWasOpen = leftOpen.slice();
    const rightWasOpen = rightOpen.slice();
    append(
      groups,
      discrepancyStage(sides.left, sides.right, leftOpen, rightOpen, rules.discrepancies, tick, (l, r) =>
        (l.record.bookedDate < finalizeBefore || r.record.bookedDate < finalizeBefore) && !options.excludePair?.(l.record, r.record),
      ),
    );
    // Records the stage paired (open before, closed now) are no longer free (nor carried).
    for (let i = 0; i < leftOpen.length; i++) if (leftWasOpen[i] && !leftOpen[i]) [leftFree[i], leftCarried[i]] = [0, 0];
    for (let i = 0; i < rightOpen.length; i++) if (rightWasOpen[i] && !rightOpen[i]) [rightFree[i], rightCarried[i]] = [0, 0];
  }
  if (rules.duplicates) {
    // Matched: grouped by a pass or the discrepancy stage (neither free nor carried).
    const matched = (free: Uint8Array, carried: Uint8Array) => free.map((f, i) => (f || carried[i] ? 0 : 1));
    append(groups, duplicateStage("LEFT", sides.left, leftFree, matched(leftFree, leftCarried), tick));
    append(groups, duplicateStage("RIGHT", sides.right, rightFree, matched(rightFree, rightCarried), tick));
  }
  append(groups, unmatchedStage("LEFT", sides.left, leftFree));
  append(groups, unmatchedStage("RIGHT", sides.right, rightFree));
  const carry = (records: Prepared[], carried: Uint8Array) => records.filter((p) => carried[p.index]).map((p) => p.record);
  return { groups, carry: { left: carry(sides.left, leftCarried), right: carry(sides.right, rightCarried) }, passHits };
}
