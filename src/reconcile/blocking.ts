/**
 * Blocking: how a pass finds candidates without comparing every left record with every right one. Records of one
 * side are hashed into blocks by the pass's required equality keys (currency, exact amount, exact or normalized
 * text); inside a block they are sorted on one numeric dimension (amount or date) so that a tolerance or a date
 * window becomes a binary search. A record looks at most `cap` members, the nearest to its own value first, and a
 * member is offered to at most `maxLoad` records (then skipped), which bounds the work on both sides
 * deterministically and keeps a crowd of look-alikes (same amount, same day) from all competing for the same few.
 */
import type { Prepared } from "./comparators.js";

/** Members of one block (side positions), sorted by (key, position), their keys, and how often each was offered. */
export interface Block {
  readonly members: Int32Array;
  readonly keys: Float64Array;
  readonly load: Int32Array;
  /** Union-find links to the nearest member above / below (shifted by one) that is not yet fully loaded. */
  readonly up: Int32Array;
  readonly down: Int32Array;
}

function newBlock(members: Int32Array, keys: Float64Array): Block {
  const n = members.length;
  return { members, keys, load: new Int32Array(n), up: Int32Array.from({ length: n + 1 }, (_, i) => i), down: Int32Array.from({ length: n + 1 }, (_, i) => i) };
}

/** The first live index at or after `i` in a union-find chain (path-halving). */
function find(links: Int32Array, i: number): number {
  while (links[i] !== i) {
    links[i] = links[links[i]!]!;
    i = links[i]!;
  }
  return i;
}

/** The nearest member at or above `i` not yet fully loaded (members.length when none). */
const liveUp = (block: Block, i: number) => find(block.up, i);
/** The nearest member at or below `i` not yet fully loaded (−1 when none). */
const liveDown = (block: Block, i: number) => find(block.down, i + 1) - 1;

function offer(block: Block, i: number, maxLoad: number): void {
  if (++block.load[i]! < maxLoad) return;
  block.up[i] = i + 1;
  block.down[i + 1] = i;
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
    blocks.set(key, newBlock(Int32Array.from(keyed, (e) => e.i), Float64Array.from(keyed, (e) => e.k)));
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
 * Up to `cap` members whose key lies in [lo, hi] and that were offered fewer than `maxLoad` times, the nearest to
 * `target` first (ties: the lower key first, then by position), found by binary search and outward expansion.
 */
export function nearestInRange(block: Block, target: number, lo: number, hi: number, cap: number, maxLoad = Infinity): number[] {
  const { members, keys } = block;
  const found: number[] = [];
  const start = lowerBound(keys, Math.min(Math.max(target, lo), hi));
  let down = liveDown(block, start - 1);
  let up = liveUp(block, start);
  while (found.length < cap) {
    const canDown = down >= 0 && keys[down]! >= lo;
    const canUp = up < keys.length && keys[up]! <= hi;
    if (!canDown && !canUp) break;
    const taken = canDown && (!canUp || target - keys[down]! <= keys[up]! - target) ? down : up;
    found.push(members[taken]!);
    if (taken === down) down = liveDown(block, down - 1);
    else up = liveUp(block, up + 1);
    if (maxLoad !== Infinity) offer(block, taken, maxLoad);
  }
  return found;
}
