/** The audit chain's verifier on hand-built chains: whole, altered, with gaps, reordered, cut at the end. */
import { describe, expect, it } from "vitest";
import { GENESIS_HASH, linkHash, verifyChain, type ChainLink } from "../../src/modules/audit/audit-chain.js";

/** A whole chain of `n` events, the canonical text of each being `event <seq>`. */
function chain(n: number): ChainLink[] {
  const links: ChainLink[] = [];
  let previous = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const canonical = `event ${seq}`;
    previous = linkHash(previous, canonical);
    links.push({ id: `id-${seq}`, seq: String(seq), hash: previous, canonical });
  }
  return links;
}

async function* batches(links: ChainLink[], size = 3): AsyncGenerator<ChainLink[]> {
  for (let at = 0; at < links.length; at += size) yield links.slice(at, at + size);
}

const headOf = (links: ChainLink[]) => ({ seq: links.at(-1)?.seq ?? "0", hash: links.at(-1)?.hash ?? GENESIS_HASH });

describe("verifyChain", () => {
  it("accepts a whole chain read in batches, and an empty one", async () => {
    const links = chain(10);
    expect(await verifyChain(batches(links), headOf(links))).toEqual({ valid: true, eventsChecked: 10, firstBrokenEventId: null, reason: null });
    expect(await verifyChain(batches([]), { seq: "0", hash: GENESIS_HASH })).toMatchObject({ valid: true, eventsChecked: 0 });
  });

  it("hashes sha256(previous hash ‖ canonical text) from 64 zeros", () => {
    // sha256 of "000…000x" (64 zeros), computed once by another implementation (printf | sha256sum).
    expect(linkHash(GENESIS_HASH, "x")).toBe("88258fac11427f77c0b241fa14c18fd1d18af298ddc686bb0d60b148a59ce546");
    expect(linkHash(GENESIS_HASH, "x")).not.toBe(linkHash(GENESIS_HASH, "y"));
  });

  const cases: [string, (links: ChainLink[]) => ChainLink[], string | null, string][] = [
    ["an altered event", (l) => l.map((e) => (e.seq === "4" ? { ...e, canonical: "event 4, altered" } : e)), "id-4", "its hash does not match"],
    ["a deleted event", (l) => l.filter((e) => e.seq !== "5"), "id-6", "expected seq 5: event 5 is missing from the chain"],
    ["two deleted events", (l) => l.filter((e) => e.seq !== "5" && e.seq !== "6"), "id-7", "events 5 to 6 are missing"],
    ["an altered event whose hash was recomputed", (l) => rehash(l, 4), "id-5", "its hash does not match"],
  ];
  for (const [name, damage, broken, reason] of cases) {
    it(`finds ${name}`, async () => {
      const links = chain(10);
      const result = await verifyChain(batches(damage(links)), headOf(links));
      expect(result).toMatchObject({ valid: false, firstBrokenEventId: broken });
      expect(result.reason).toContain(reason);
    });
  }

  it("finds events deleted from the end through the head", async () => {
    const links = chain(10);
    expect(await verifyChain(batches(links.slice(0, 8)), headOf(links))).toEqual({
      valid: false,
      eventsChecked: 8,
      firstBrokenEventId: null,
      reason: "the chain ends at seq 8 but 10 events were recorded: the last 2 were deleted",
    });
  });
});

/** The chain with event `seq`'s text changed and its own hash recomputed (but not the events after it). */
function rehash(links: ChainLink[], seq: number): ChainLink[] {
  return links.map((event, index) => {
    if (index !== seq - 1) return event;
    const canonical = `${event.canonical}, altered`;
    return { ...event, canonical, hash: linkHash(links[index - 1]!.hash, canonical) };
  });
}
