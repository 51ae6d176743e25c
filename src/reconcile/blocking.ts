/**
 * Blocking: how a pass finds candidates without comparing every left record with every right one. Records of one
 * side are hashed into blocks by the pass's required equality keys (currency, exact amount, exact or normalized
 * text); inside a block they are sorted on one numeric dimension (amount or date) so that a tolerance or a date
 * window becomes a binary search. A record looks at most `cap` members, the nearest to its own value first, which
 * bounds the work per record deterministically.
 */
import type { Prepared } from "./comparators.js";

/** Members of one block (side positions), sorted by (key, position), and their keys. */
export interface Block {
  readonly members: Int32Array;
  readonly keys: Float64Array;
}

/**
 * Hashes the records for which `include` holds into blocks by `blockKey` (null: the record cannot match and is left
 * out), each sorted by `sortKey`.
 */
export function buildBlocks(
  records: readonly Prepared[],
  include: (p: Prepared) => boolean,
  blockKey: (p: Prepared) => string | null,
  sortKey: (p: Prepared) => number,
): Map<string, Block> {
  const grouped = new Map<string, number[]>();
  for (const p of records) {
    if (!include(p)) continue;
    const key = blockKey(p);
    if (key === null) continue;
    const members = grouped.get(key);
    if (members) members.push(p.index);
    else grouped.set(key, [p.index]);
  }
  const blocks = new Map<string, Block>();
  for (const [key, positions] of grouped) {
    const keyed = positions.map((i) => ({ i, k: sortKey(records[i]!) }));
    keyed.sort((a, b) => a.k - b.k || a.i - b.i);
    blocks.set(key, { members: Int32Array.from(keyed, (e) => e.i), keys: Float64Array.from(keyed, (e) => e.k) });
  }
  return blocks;
}

function lowerBound(keys: Float64Array, value: number): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (keys[mid]! < value) low = mid + 1;
    else high = mid;
  }
  return low;
}

/**
 * Up to `cap` members whose key lies in [lo, hi], the nearest to `target` first (ties: the lower key first, then
 * by position), found by binary search and outward expansion.
 */
export function nearestInRange(block: Block, target: number, lo: number, hi: number, cap: number): number[] {
  const { members, keys } = block;
  const found: number[] = [];
  const start = lowerBound(keys, Math.min(Math.max(target, lo), hi));
  let down = start - 1;
  let up = start;
  while (found.length < cap) {
    const canDown = down >= 0 && keys[down]! >= lo;
    const canUp = up < keys.length && keys[up]! <= hi;
    if (!canDown && !canUp) break;
    if (canDown && (!canUp || target - keys[down]! <= keys[up]! - target)) found.push(members[down--]!);
    else found.push(members[up++]!);
  }
  return found;
}
