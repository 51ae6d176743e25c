/**
 * Global greedy assignment: the scored candidates of a pass (pairs or groups) are taken best first, each only if
 * none of its records is already used, so no record is matched twice and the result does not depend on input
 * order. Best first means (confidence desc, |date delta| asc, |amount delta| asc, left records, right records),
 * records compared by their (bookedDate, id) position. A chosen candidate is ambiguous when another candidate
 * sharing one of its records, all of whose records are still free, scores within the pass's ambiguity margin.
 */
import { absAmount } from "./money.js";
import { keepShape } from "./shapes.js";

/** Candidates of one pass, stored column-wise (a pass may score millions of pairs). */
export class CandidateList {
  /** Confidence in 1/10,000 (confidences are rounded to 4 decimals, so this is exact). */
  readonly ticks: number[] = [];
  readonly absDate: number[] = [];
  /** |amount delta| as a float: only a tie-breaker, never a gate. */
  readonly absAmount: number[] = [];
  readonly legStart: number[] = [];
  readonly leftCount: number[] = [];
  readonly rightCount: number[] = [];
  /** Left positions then right positions of every candidate, back to back. */
  readonly legs: number[] = [];

  get size(): number {
    return this.ticks.length;
  }

  push(lefts: readonly number[], rights: readonly number[], confidence: number, dateDelta: number, amountDelta: bigint): void {
    this.pushScores(confidence, dateDelta, amountDelta, lefts.length, rights.length);
    for (const i of lefts) this.legs.push(i);
    for (const i of rights) this.legs.push(i);
  }

  /** `push` for a 1:1 candidate, without the leg arrays. */
  pushPair(left: number, right: number, confidence: number, dateDelta: number, amountDelta: bigint): void {
    this.pushScores(confidence, dateDelta, amountDelta, 1, 1);
    this.legs.push(left, right);
  }

  private pushScores(confidence: number, dateDelta: number, amountDelta: bigint, leftCount: number, rightCount: number): void {
    this.ticks.push(Math.round(confidence * 10_000));
    this.absDate.push(Math.abs(dateDelta));
    this.absAmount.push(Number(absAmount(amountDelta)));
    this.legStart.push(this.legs.length);
    this.leftCount.push(leftCount);
    this.rightCount.push(rightCount);
  }

  lefts(c: number): number[] {
    return this.legs.slice(this.legStart[c], this.legStart[c]! + this.leftCount[c]!);
  }

  rights(c: number): number[] {
    const start = this.legStart[c]! + this.leftCount[c]!;
    return this.legs.slice(start, start + this.rightCount[c]!);
  }
}
keepShape(new CandidateList());

/** A chosen candidate. */
export interface Assignment {
  candidate: number;
  ambiguous: boolean;
}

function compareCandidates(list: CandidateList, a: number, b: number): number {
  const { ticks, absDate, absAmount, legs, legStart, leftCount, rightCount } = list;
  if (ticks[a] !== ticks[b]) return ticks[b]! - ticks[a]!;
  if (absDate[a] !== absDate[b]) return absDate[a]! - absDate[b]!;
  if (absAmount[a] !== absAmount[b]) return absAmount[a]! - absAmount[b]!;
  // Left legs, then right legs, compared position by position (a shorter list first when one is a prefix).
  for (const [countA, countB, offsetA, offsetB] of [
    [leftCount[a]!, leftCount[b]!, 0, 0],
    [rightCount[a]!, rightCount[b]!, leftCount[a]!, leftCount[b]!],
  ] as const) {
    for (let i = 0; i < Math.min(countA, countB); i++) {
      const diff = legs[legStart[a]! + offsetA + i]! - legs[legStart[b]! + offsetB + i]!;
      if (diff !== 0) return diff;
    }
    if (countA !== countB) return countA - countB;
  }
  return 0;
}

/** For each record of one side, the candidates touching it in rank order (compressed rows). */
function incidence(list: CandidateList, order: Uint32Array, records: number, side: "left" | "right") {
  const start = new Int32Array(records + 1);
  const legsOf = (c: number) => (side === "left" ? list.lefts(c) : list.rights(c));
  for (const c of order) for (const r of legsOf(c)) start[r + 1]!++;
  for (let r = 0; r < records; r++) start[r + 1]! += start[r]!;
  const fill = start.slice(0, records);
  const items = new Int32Array(start[records]!);
  for (const c of order) for (const r of legsOf(c)) items[fill[r]!++] = c;
  return { start, items };
}

/**
 * Chooses candidates best first, marking their records used in `leftFree`/`rightFree`; returns the choices in
 * the order made. `marginTicks` is the ambiguity margin in 1/10,000.
 */
export function assignGreedy(
  list: CandidateList,
  marginTicks: number,
  leftFree: Uint8Array,
  rightFree: Uint8Array,
  tick: (units?: number) => void,
): Assignment[] {
  const order = Uint32Array.from({ length: list.size }, (_, i) => i).sort((a, b) => compareCandidates(list, a, b));
  tick(list.size);
  const byLeft = incidence(list, order, leftFree.length, "left");
  const byRight = incidence(list, order, rightFree.length, "right");
  const allFree = (c: number) => list.lefts(c).every((i) => leftFree[i]) && list.rights(c).every((i) => rightFree[i]);
  const hasCompetitor = (c: number, records: number[], index: { start: Int32Array; items: Int32Array }) => {
    for (const r of records) {
      for (let k = index.start[r]!; k < index.start[r + 1]!; k++) {
        const other = index.items[k]!;
        if (list.ticks[other]! < list.ticks[c]! - marginTicks) break;
        if (other !== c && allFree(other)) return true;
      }
    }
    return false;
  };
  const chosen: Assignment[] = [];
  for (const c of order) {
    if (!allFree(c)) continue;
    const lefts = list.lefts(c);
    const rights = list.rights(c);
    const ambiguous = hasCompetitor(c, lefts, byLeft) || hasCompetitor(c, rights, byRight);
    for (const i of lefts) leftFree[i] = 0;
    for (const i of rights) rightFree[i] = 0;
    chosen.push({ candidate: c, ambiguous });
  }
  return chosen;
}
