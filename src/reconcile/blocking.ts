/**
 * Blocking: how a pass finds candidates without comparing every left record with every right one. Records of one
 * side are hashed into blocks by the pass's required equality keys (currency, exact amount, exact or normalized
 * text); inside a block they are sorted on one numeric dimension (amount or date) so that a tolerance or a date
 * window becomes a binary search. A record looks at most `cap` members, the nearest to its own value first, and a
 * member is offered to at most `maxLoad` records (then skipped), which bounds the work on both sides
 * deterministically and keeps a crowd of look-alikes (same amount, same day) from all competing for the same few.
 */
import type { Prepared } from "./comparators.js";
import { keepShape } from "./shapes.js";

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
  const up = new Int32Array(n + 1);
  for (let i = 0; i <= n; i++) up[i] = i;
  return { members, keys, load: new Int32Array(n), up, down: up.slice() };
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

/** One part of a composite key: a record's value (compared with ===), or null when the record has no key. */
export type KeyPart = (p: Prepared) => string | bigint | null;

/** Mixes a string or bigint into a 32-bit FNV-1a style hash. */
function mix(hash: number, value: string | bigint): number {
  if (typeof value === "bigint") {
    const x = Number(value);
    return Math.imul(Math.imul(hash ^ (x | 0), 16777619) ^ ((x / 4294967296) | 0), 16777619);
  }
  for (let i = 0; i < value.length; i++) hash = Math.imul(hash ^ value.charCodeAt(i), 16777619);
  return Math.imul(hash ^ 0xff, 16777619); // a separator, so that ("ab", "c") and ("a", "bc") differ
}

/**
 * Numbers composite keys (equality of every part) without building a key string per record: records are hashed, and
 * a hash shared by different keys is told apart by comparing the parts with a representative record of each key.
 * Key ids are dense and numbered in the order their first record was seen.
 */
export class KeyIndex {
  private readonly byHash = new Map<number, number>();
  /** Per key id: a record holding the key, and the next key id with the same hash (−1: none). */
  private readonly representatives: Prepared[] = [];
  private readonly sameHash: number[] = [];

  constructor(private readonly parts: readonly KeyPart[]) {}

  get size(): number {
    return this.representatives.length;
  }

  /** The id of `p`'s key (numbering it when `add` and new); −1 when `p` has no key, or it is new and not added. */
  id(p: Prepared, add: boolean): number {
    let hash = 0x811c9dc5;
    for (const part of this.parts) {
      const value = part(p);
      if (value === null) return -1;
      hash = mix(hash, value);
    }
    hash &= 0x3fffffff; // a small integer, which a Map keys without allocating
    const first = this.byHash.get(hash);
    for (let id = first ?? -1; id >= 0; id = this.sameHash[id]!) if (this.sameKey(this.representatives[id]!, p)) return id;
    if (!add) return -1;
    const id = this.representatives.length;
    this.representatives.push(p);
    this.sameHash.push(first ?? -1);
    this.byHash.set(hash, id);
    return id;
  }

  private sameKey(a: Prepared, b: Prepared): boolean {
    for (const part of this.parts) if (part(a) !== part(b)) return false;
    return true;
  }
}
keepShape(new KeyIndex([]));

/**
 * Hashes the records for which `include` holds into blocks by `blockKey` (null: the record cannot match and is left
 * out), each sorted by `sortKey`.
 */
export function buildBlocks<K>(
  records: readonly Prepared[],
  include: (p: Prepared) => boolean,
  blockKey: (p: Prepared) => K | null,
  sortKey: (p: Prepared) => number,
): Map<K, Block> {
  const grouped = new Map<K, number[]>();
  for (const p of records) {
    if (!include(p)) continue;
    const key = blockKey(p);
    if (key === null) continue;
    const members = grouped.get(key);
    if (members) members.push(p.index);
    else grouped.set(key, [p.index]);
  }
  const blocks = new Map<K, Block>();
  for (const [key, positions] of grouped) {
    // Positions ascend (records are in position order), so ordering ties by rank orders them by position.
    const n = positions.length;
    const sortKeys = new Float64Array(n);
    for (let rank = 0; rank < n; rank++) sortKeys[rank] = sortKey(records[positions[rank]!]!);
    const order = new Uint32Array(n);
    for (let rank = 0; rank < n; rank++) order[rank] = rank;
    order.sort((a, b) => sortKeys[a]! - sortKeys[b]! || a - b);
    const members = new Int32Array(n);
    const keys = new Float64Array(n);
    for (let at = 0; at < n; at++) {
      members[at] = positions[order[at]!]!;
      keys[at] = sortKeys[order[at]!]!;
    }
    blocks.set(key, newBlock(members, keys));
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
