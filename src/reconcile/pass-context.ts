/**
 * What every pass works with, and how a set of chosen records becomes an `EngineGroup`: the pass's compiled
 * comparators, both prepared sides with their "still free" flags, scoring of a candidate (a pair or a group), and
 * the outcome rules (AUTO → MATCHED; SUGGEST → SUGGESTED or REFERENCE_MISMATCH; near-ties → SUGGESTED).
 */
import type { EngineGroup, EngineRecord, FieldScore, GroupKind } from "./types.js";
import type { Pass } from "./rules.js";
import { compileComparator, flatText, isAmountComparator, verdictTicks, type CompiledComparator, type Prepared, type Verdict } from "./comparators.js";

/** Thrown by `reconcile` when its `shouldStop` option asks it to stop. */
export class ReconcileCancelled extends Error {
  constructor() {
    super("reconciliation cancelled");
    this.name = "ReconcileCancelled";
  }
}

/** How often (in units of work: pairs scored, records visited) `shouldStop` is polled. */
const POLL_EVERY = 1024;

const neverStop = (): void => {};
/** The stop check of each `shouldStop` function (see `createStopCheck`). */
const stopChecks = new WeakMap<() => boolean, (units?: number) => void>();

/**
 * A counter of work that polls `shouldStop` every `POLL_EVERY` units and throws `ReconcileCancelled` when told to.
 * The same function for the same `shouldStop`: the passes' optimized code calls it in its loops, and V8 throws away
 * code that inlined a function object which is then replaced (a new check per block cost the job's thread a round
 * of recompiling every pass, on every block).
 */
export function createStopCheck(shouldStop?: () => boolean): (units?: number) => void {
  if (!shouldStop) return neverStop;
  let check = stopChecks.get(shouldStop);
  if (!check) {
    let budget = POLL_EVERY;
    check = (units = 1) => {
      budget -= units;
      if (budget > 0) return;
      budget = POLL_EVERY;
      if (shouldStop()) throw new ReconcileCancelled();
    };
    stopChecks.set(shouldStop, check);
  }
  return check;
}

/** One pass being run: its rules, 1-based number, and the records of both sides with what is still unmatched. */
export interface PassContext {
  readonly pass: Pass;
  readonly passNumber: number;
  readonly scorer: Scorer;
  readonly left: readonly Prepared[];
  readonly right: readonly Prepared[];
  /** 1 while the record at that position is unmatched. */
  readonly leftFree: Uint8Array;
  readonly rightFree: Uint8Array;
  readonly tick: (units?: number) => void;
  /** The rule set's `maxDateSpanDays`: no group holds two records booked further apart. */
  readonly maxDateSpanDays: number;
  /** Pairs a reviewer rejected (ReconcileOptions.excludePair): never put in one group by a pass. */
  readonly excludePair?: (left: EngineRecord, right: EngineRecord) => boolean;
}

/** A pass's compiled comparators in rule order, and the order to test them in: required ones first. */
export interface Scorer {
  readonly comparators: readonly CompiledComparator[];
  readonly gateOrder: readonly number[];
  /** Scratch space for the similarities (in 1/10,000) of the candidate being scored, in rule order. */
  readonly ticks: Float64Array;
}

/** The scorer of each pass of the rule sets in use (see `compileScorer`). */
const scorers = new WeakMap<Pass, Scorer>();

/**
 * Compiles a pass's comparators, once per pass: a job calls `reconcile` once per block with the same rule set, and
 * fresh comparator functions every call would make V8 discard and recompile the passes' optimized code each time.
 */
export function compileScorer(pass: Pass): Scorer {
  let scorer = scorers.get(pass);
  if (!scorer) {
    scorer = compileScorerOnce(pass);
    scorers.set(pass, scorer);
  }
  return scorer;
}

function compileScorerOnce(pass: Pass): Scorer {
  const comparators = pass.comparators.map(compileComparator);
  const positions = comparators.map((_, i) => i);
  const gateOrder = [...positions.filter((i) => comparators[i]!.spec.required), ...positions.filter((i) => !comparators[i]!.spec.required)];
  return { comparators, gateOrder, ticks: new Float64Array(comparators.length) };
}

/** Σ weight·similarity / Σ weight over the scratch similarities, rounded to 4 decimals (summed in rule order). */
function confidenceOf(scorer: Scorer): number {
  let weighted = 0;
  let weights = 0;
  for (let i = 0; i < scorer.comparators.length; i++) {
    const weight = scorer.comparators[i]!.spec.weight;
    weighted += weight * (scorer.ticks[i]! / 10_000);
    weights += weight;
  }
  return Math.round((weighted / weights) * 10_000) / 10_000;
}

/**
 * The confidence of a 1:1 candidate whose required gates all hold, or −1 when one fails. The same number as
 * `scoreCandidate(scorer, [left], [right], false)`, without allocating.
 */
export function pairConfidence(scorer: Scorer, left: Prepared, right: Prepared): number {
  const { comparators, gateOrder, ticks } = scorer;
  for (const position of gateOrder) {
    const comparator = comparators[position]!;
    const v = comparator.judge(left, right);
    if (v < 0 && comparator.spec.required) return -1;
    ticks[position] = verdictTicks(v);
  }
  return confidenceOf(scorer);
}

/** The confidence of a candidate of any shape whose required gates all hold, or −1 (see `scoreCandidate`). */
export function candidateConfidence(scorer: Scorer, lefts: readonly Prepared[], rights: readonly Prepared[]): number {
  if (lefts.length === 1 && rights.length === 1) return pairConfidence(scorer, lefts[0]!, rights[0]!);
  const { comparators, gateOrder, ticks } = scorer;
  for (const position of gateOrder) {
    const comparator = comparators[position]!;
    const v = isAmountComparator(comparator) ? comparator.judgeAmounts(legSum(lefts), legSum(rights)) : worstVerdict(comparator, lefts, rights);
    if (v < 0 && comparator.spec.required) return -1;
    ticks[position] = verdictTicks(v);
  }
  return confidenceOf(scorer);
}

/** The worst similarity over every (left leg, right leg) pair, passed only when all pairs pass. */
function worstVerdict(comparator: CompiledComparator, lefts: readonly Prepared[], rights: readonly Prepared[]): Verdict {
  let worst = Infinity;
  let allPassed = true;
  for (const left of lefts) {
    for (const right of rights) {
      const v = comparator.judge(left, right);
      if (v < 0) {
        // A required gate that fails on one leg pair fails the candidate: the rest cannot change that.
        if (comparator.spec.required) return -1;
        allPassed = false;
      }
      worst = Math.min(worst, verdictTicks(v));
    }
  }
  return allPassed ? worst : -1 - worst;
}

/** A candidate's score: confidence (Σ weight·similarity / Σ weight, 4 decimals) and, when explained, the breakdown. */
export interface CandidateScore {
  passed: boolean;
  confidence: number;
  /** In the rule's comparator order. */
  breakdown: FieldScore[];
}

/**
 * Scores a candidate of any shape. Amount comparators judge the sums of both sides; every other comparator judges
 * each (left leg, right leg) pair and keeps the worst (a group passes a gate only if all its leg pairs do). Without
 * `explain`, returns null at the first failed required gate.
 */
export function scoreCandidate(scorer: Scorer, lefts: readonly Prepared[], rights: readonly Prepared[], explain: boolean): CandidateScore | null {
  if (!explain) {
    const confidence = candidateConfidence(scorer, lefts, rights);
    return confidence < 0 ? null : { passed: true, confidence, breakdown: [] };
  }
  const { comparators, gateOrder } = scorer;
  const scores = new Array<FieldScore>(comparators.length);
  let passed = true;
  for (const position of gateOrder) {
    const comparator = comparators[position]!;
    const fieldScore = isAmountComparator(comparator)
      ? comparator.evaluateAmounts(legSum(lefts), legSum(rights), explain)
      : worstLegPair(comparator, lefts, rights, explain);
    if (!fieldScore.passed && comparator.spec.required) passed = false;
    scores[position] = fieldScore;
  }
  let weighted = 0;
  let weights = 0;
  for (const fieldScore of scores) {
    weighted += fieldScore.weight * fieldScore.similarity;
    weights += fieldScore.weight;
  }
  return { passed, confidence: Math.round((weighted / weights) * 10_000) / 10_000, breakdown: scores };
}

function legSum(legs: readonly Prepared[]): bigint {
  if (legs.length === 1) return legs[0]!.record.amount;
  let total = 0n;
  for (const p of legs) total += p.record.amount;
  return total;
}

function worstLegPair(comparator: CompiledComparator, lefts: readonly Prepared[], rights: readonly Prepared[], explain: boolean): FieldScore {
  if (lefts.length === 1 && rights.length === 1) return comparator.evaluate(lefts[0]!, rights[0]!, explain);
  let worst: FieldScore | null = null;
  let allPassed = true;
  for (const left of lefts) {
    for (const right of rights) {
      const fieldScore = comparator.evaluate(left, right, explain);
      allPassed &&= fieldScore.passed;
      if (!worst || fieldScore.similarity < worst.similarity) worst = fieldScore;
    }
  }
  const pairs = lefts.length * rights.length;
  const { comparator: name, similarity, weight, detail } = worst!;
  return { comparator: name, similarity, weight, passed: allPassed, detail: explain ? flatText(detail, " (worst of ", pairs, " leg pairs)") : "" };
}

/** The kind of a group from the number of records on each side. */
export function kindOf(leftCount: number, rightCount: number): GroupKind {
  if (leftCount === 1) return rightCount === 1 ? "ONE_TO_ONE" : "ONE_TO_MANY";
  return rightCount === 1 ? "MANY_TO_ONE" : "MANY_TO_MANY";
}

/**
 * Turns chosen records into the pass's group and marks them used. Outcome: an ambiguous choice is SUGGESTED; in a
 * SUGGEST pass a 1:1 pair whose references are both non-empty and differ after normalization is
 * REFERENCE_MISMATCH, otherwise SUGGESTED; an AUTO pass yields MATCHED.
 */
export function emitGroup(
  ctx: PassContext,
  lefts: readonly Prepared[],
  rights: readonly Prepared[],
  ambiguous: boolean,
  /** The score when the caller already knows it (group and zip shares one breakdown among its groups). */
  known?: { confidence: number; breakdown: FieldScore[] },
): EngineGroup {
  for (const p of lefts) ctx.leftFree[p.index] = 0;
  for (const p of rights) ctx.rightFree[p.index] = 0;
  const { confidence, breakdown } = known ?? scoreCandidate(ctx.scorer, lefts, rights, true)!;
  let outcome: EngineGroup["outcome"] = ctx.pass.mode === "AUTO" ? "MATCHED" : "SUGGESTED";
  if (ambiguous) outcome = "SUGGESTED";
  else if (ctx.pass.mode === "SUGGEST" && lefts.length === 1 && rights.length === 1) {
    const a = lefts[0]!.normalized("reference");
    const b = rights[0]!.normalized("reference");
    if (a !== "" && b !== "" && a !== b) outcome = "REFERENCE_MISMATCH";
  }
  return {
    outcome,
    kind: kindOf(lefts.length, rights.length),
    leftIds: lefts.map((p) => p.record.id),
    rightIds: rights.map((p) => p.record.id),
    leftRecords: lefts.map((p) => p.record),
    rightRecords: rights.map((p) => p.record),
    confidence,
    pass: ctx.passNumber,
    rule: ctx.pass.name,
    amountDelta: legSum(rights) - legSum(lefts),
    dateDeltaDays: rights[0]!.record.bookedDate - lefts[0]!.record.bookedDate,
    ambiguous,
    breakdown,
  };
}
