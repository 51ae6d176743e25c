/**
 * The audit chain's verification, pure: given the events in chain order (each with its stored hash and its
 * canonical text) and the chain's recorded end, says whether the chain is whole and, if not, which event is the
 * first one that does not fit and why. Each event's hash must be sha256(previous hash ‖ its canonical text) and
 * its `seq` the previous one's plus one; the first event follows GENESIS_HASH.
 *
 * The canonical text is produced by PostgreSQL (`audit_event_canonical`, migration 20261124025000_audit_hash_chain),
 * which also computes the hashes when events are appended; this module recomputes them independently in Node.
 */
import { createHash } from "node:crypto";

/** The "previous hash" of the first event. */
export const GENESIS_HASH = "0".repeat(64);

/** One event as the verifier reads it. `seq` is a decimal string (a bigint column). */
export interface ChainLink {
  id: string;
  seq: string;
  hash: string;
  canonical: string;
}

/** Where the chain says it ends (the audit_chain_head row), if it says at all. */
export interface ChainHead {
  seq: string;
  hash: string;
}

export interface ChainVerification {
  valid: boolean;
  eventsChecked: number;
  /** The first event that does not fit the chain; null when the chain is whole or only its end is missing. */
  firstBrokenEventId: string | null;
  reason: string | null;
}

/** sha256(previous hash ‖ canonical text), hex: how each event is chained to the one before it. */
export function linkHash(previousHash: string, canonical: string): string {
  return createHash("sha256").update(previousHash + canonical, "utf8").digest("hex");
}

/**
 * Walks the batches (in seq order, as they come: only one batch is held at a time) and stops at the first event
 * that breaks the chain. `head` is read in the same snapshot as the events.
 */
export async function verifyChain(batches: AsyncIterable<readonly ChainLink[]>, head: ChainHead | null): Promise<ChainVerification> {
  let previousHash = GENESIS_HASH;
  let expected = 1n;
  let checked = 0;
  const broken = (event: ChainLink, reason: string): ChainVerification => ({
    valid: false,
    eventsChecked: checked,
    firstBrokenEventId: event.id,
    reason: `event ${event.id} (seq ${event.seq}): ${reason}`,
  });

  for await (const batch of batches) {
    for (const event of batch) {
      checked += 1;
      const seq = BigInt(event.seq);
      if (seq !== expected) {
        return broken(
          event,
          seq > expected
            ? `expected seq ${expected}: ${seq - expected === 1n ? `event ${expected} is` : `events ${expected} to ${seq - 1n} are`} missing from the chain`
            : `seq ${seq} is out of order (expected ${expected})`,
        );
      }
      const hash = linkHash(previousHash, event.canonical);
      if (hash !== event.hash) {
        return broken(event, "its hash does not match its fields and the event before it: the event was changed, moved or inserted after it was recorded");
      }
      previousHash = hash;
      expected += 1n;
    }
  }

  const last = expected - 1n;
  if (!head) {
    return { valid: false, eventsChecked: checked, firstBrokenEventId: null, reason: "the chain's head (audit_chain_head row 1) is missing" };
  }
  if (BigInt(head.seq) !== last || (last > 0n && head.hash !== previousHash)) {
    return {
      valid: false,
      eventsChecked: checked,
      firstBrokenEventId: null,
      reason:
        BigInt(head.seq) > last
          ? `the chain ends at seq ${last} but ${head.seq} events were recorded: the last ${BigInt(head.seq) - last} were deleted`
          : `the chain's head (seq ${head.seq}) does not match its last event (seq ${last})`,
    };
  }
  return { valid: true, eventsChecked: checked, firstBrokenEventId: null, reason: null };
}
