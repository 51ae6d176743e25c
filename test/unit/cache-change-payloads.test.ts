/** Cache changes as PostgreSQL NOTIFY payloads (queue/job-events.ts): below the 8,000-byte limit, nothing lost. */
import { expect, it } from "vitest";
import { changePayloads } from "../../src/queue/job-events.js";

const ORIGIN = "0b8f3a3e-8c1e-4a57-9c3f-5d7e0f1a2b3c";

it("sends a few tags in one payload, and everything as *", () => {
  expect(changePayloads(ORIGIN, { tags: ["Project:1", "List:Project"], source: "mutation" })).toEqual([`${ORIGIN}\nProject:1\nList:Project`]);
  expect(changePayloads(ORIGIN, { all: true, source: "flush" })).toEqual([`${ORIGIN}\n*`]);
  expect(changePayloads(ORIGIN, { tags: [], source: "mutation" })).toEqual([]);
});

it("splits thousands of tags over payloads PostgreSQL accepts, each naming its origin, in order", () => {
  const tags = Array.from({ length: 3000 }, (_, i) => `Exception:${String(i).padStart(8, "0")}-0000-4000-8000-000000000000é`);
  const payloads = changePayloads(ORIGIN, { tags, source: "reconcile" });
  expect(payloads.length).toBeGreaterThan(10);
  for (const payload of payloads) {
    expect(Buffer.byteLength(payload)).toBeLessThan(8000);
    expect(payload.startsWith(`${ORIGIN}\n`)).toBe(true);
  }
  expect(payloads.flatMap((payload) => payload.split("\n").slice(1))).toEqual(tags);
});
