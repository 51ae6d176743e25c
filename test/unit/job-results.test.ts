/**
 * What a job writes of the engine's groups: the COPY text line of a group (its breakdown JSON written directly, not
 * by JSON.stringify) and the summary's exact per-currency sums.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { createSummary, exceptionCopyLine, groupCopyLine, groupIdFactory } from "../../src/modules/jobs/job-results.js";
import { unescapeCopyText } from "../../src/modules/jobs/record-text.js";
import type { EngineGroup, EngineRecord, FieldScore } from "../../src/reconcile/types.js";

const record = (id: string, amount: bigint, currency = "EUR", bookedDate = 19_000): EngineRecord => ({
  id, externalId: id, amount, currency, bookedDate, valueDate: null, reference: "", description: "", counterparty: "",
});

function group(breakdown: FieldScore[], overrides: Partial<EngineGroup> = {}): EngineGroup {
  const left = [record("00000000-0000-4000-8000-000000000001", 1_000_000n)];
  const right = [record("00000000-0000-4000-8000-000000000002", 1_000_100n)];
  return {
    outcome: "MATCHED", kind: "ONE_TO_ONE", leftIds: left.map((r) => r.id), rightIds: right.map((r) => r.id), leftRecords: left, rightRecords: right,
    confidence: 0.9, pass: 2, rule: "amount within 0.01", amountDelta: 100n, dateDeltaDays: 1, ambiguous: false, breakdown, ...overrides,
  };
}

/** The breakdown column of a COPY line, as the JSON PostgreSQL would store (null for \N). */
function storedBreakdown(line: string): unknown {
  const field = line.split("\t").at(-1)!;
  return field === "\\N" ? null : JSON.parse(unescapeCopyText(field));
}

const JOB = "11afdabe-c41a-4ec6-82a8-5f8edcf485f8";
const PROJECT = "21afdabe-c41a-4ec6-82a8-5f8edcf485f8";

describe("a job's group ids", () => {
  it("are the job id's first 64 bits and a counter from 2^48, ascending, as PostgreSQL orders uuids", () => {
    const nextId = groupIdFactory(JOB);
    const ids = Array.from({ length: 5000 }, nextId);
    // The formula the pushed-down pairs' ids follow in SQL (exact-pushdown.ts), counted from 2^48.
    const expected = (n: number) => {
      const hex = JOB.replace(/-/g, "").slice(0, 16) + (2 ** 48 + n).toString(16).padStart(16, "0");
      return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    };
    expect(ids[0]).toBe("11afdabe-c41a-4ec6-0001-000000000000");
    expect(ids.map((_, n) => expected(n))).toEqual(ids);
    expect([...ids].sort()).toEqual(ids);
  });
});

describe("a group's COPY line", () => {
  it("stores any breakdown as the JSON of its scores, whatever their text holds (quotes, tabs, backslashes, unicode)", () => {
    const score = fc.record({
      comparator: fc.string(),
      similarity: fc.double({ min: 0, max: 1, noNaN: true }),
      weight: fc.double({ min: 0, max: 100, noNaN: true }),
      passed: fc.boolean(),
      detail: fc.string({ unit: "grapheme" }),
    });
    fc.assert(
      fc.property(fc.array(score, { minLength: 1, maxLength: 5 }), (breakdown) => {
        const line = groupCopyLine(group(breakdown), "11afdabe-c41a-4ec6-0001-000000000001", JOB, PROJECT);
        expect(line.split("\t")).toHaveLength(16);
        expect(storedBreakdown(line)).toEqual(JSON.parse(JSON.stringify(breakdown)));
      }),
    );
  });

  it("stores any rule name as its text, passes one after another (quotes, tabs, backslashes, unicode)", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: "grapheme" }), { minLength: 1, maxLength: 4 }), (rules) => {
        for (const rule of rules) {
          const line = groupCopyLine(group([], { rule }), "11afdabe-c41a-4ec6-0001-000000000001", JOB, PROJECT);
          expect(line.split("\t")).toHaveLength(16);
          expect(unescapeCopyText(line.split("\t")[10]!)).toBe(rule);
        }
      }),
    );
  });

  it("stores no breakdown for a perfect match, an empty one for an unmatched record, and a shared one once per array", () => {
    const perfect = [{ comparator: "reference:exact", similarity: 1, weight: 1, passed: true, detail: "equal" }];
    expect(storedBreakdown(groupCopyLine(group(perfect, { confidence: 1 }), "11afdabe-c41a-4ec6-0001-000000000001", JOB, PROJECT))).toBeNull();
    const unmatched = group([], { outcome: "UNMATCHED_LEFT", pass: 0, confidence: 0, rightIds: [], rightRecords: [] });
    expect(storedBreakdown(groupCopyLine(unmatched, "11afdabe-c41a-4ec6-0001-000000000002", JOB, PROJECT))).toEqual([]);
    // Two groups sharing one array, then one with an equal-looking but different array: each line its own scores.
    const shared = [{ comparator: "amount:absolute", similarity: 0.5, weight: 2, passed: true, detail: "delta 0.0100" }];
    const other = [{ ...shared[0]!, detail: "delta 0.0200" }];
    const lines = [group(shared), group(shared), group(other)].map((g, i) => groupCopyLine(g, `11afdabe-c41a-4ec6-0001-00000000001${i}`, JOB, PROJECT));
    expect(lines.map(storedBreakdown)).toEqual([shared, shared, other]);
  });
});

describe("the job summary", () => {
  it("sums each outcome's records per currency and side exactly, from the groups' own records", () => {
    const summary = createSummary(["exact", "amount within 0.01"]);
    const big = 9_007_199_254_740_993n; // above 2^53: no float could hold it
    summary.add([
      group([], { leftRecords: [record("a", big)], rightRecords: [record("b", big + 1n), record("c", -5n, "USD")] }),
      group([], { outcome: "UNMATCHED_LEFT", pass: 0, leftRecords: [record("d", 12_3400n, "USD")], rightRecords: [], leftIds: ["d"], rightIds: [] }),
    ]);
    const result = summary.result({});
    const amounts = (outcome: string) => result.outcomes.find((o) => o.outcome === outcome)!.amounts;
    expect(amounts("MATCHED")).toEqual([
      { currency: "EUR", left: "900719925474.0993", right: "900719925474.0994" },
      { currency: "USD", left: "0.0000", right: "-0.0005" },
    ]);
    expect(amounts("UNMATCHED_LEFT")).toEqual([{ currency: "USD", left: "12.3400", right: "0.0000" }]);
  });

  it("lists only outcomes that occurred: no MATCHED entry when PostgreSQL's exact pass paired nothing", () => {
    const summary = createSummary(["exact"]);
    summary.addPushed([0]);
    summary.addPushedAmounts([]);
    summary.add([group([], { outcome: "UNMATCHED_LEFT", pass: 0, leftRecords: [record("d", 1n)], rightRecords: [], leftIds: ["d"], rightIds: [] })]);
    expect(summary.result({}).outcomes.map((o) => o.outcome)).toEqual(["UNMATCHED_LEFT"]);
  });
});

describe("an exception's COPY line", () => {
  const line = (g: EngineGroup) => exceptionCopyLine(g, "11afdabe-c41a-4ec6-0001-000000000001", JOB, PROJECT)?.split("\t").slice(3);
  const withRecords = (outcome: EngineGroup["outcome"], left: EngineRecord[], right: EngineRecord[], amountDelta = 0n) =>
    group([], { outcome, leftRecords: left, rightRecords: right, leftIds: left.map((r) => r.id), rightIds: right.map((r) => r.id), amountDelta });

  it("is none for matches and suggestions", () => {
    expect(line(withRecords("MATCHED", [record("a", 1n)], [record("b", 1n)]))).toBeUndefined();
    expect(line(withRecords("SUGGESTED", [record("a", 1n)], [record("b", 1n)]))).toBeUndefined();
  });

  it("takes the larger side's |sum|, or |delta| for an amount mismatch; the oldest date", () => {
    const left = [record("b", -30_0000n, "EUR", 19_010), record("a", 5_0000n, "EUR", 19_012)];
    const right = [record("c", 20_0000n, "EUR", 19_005)];
    // |−30 + 5| = 25 against |20|: 25; the oldest date, day 19,005 = 2022-01-13.
    expect(line(withRecords("REFERENCE_MISMATCH", left, right))).toEqual(["REFERENCE_MISMATCH", "{b,a}", "{c}", "25.0000", "EUR", "2022-01-13"]);
    expect(line(withRecords("AMOUNT_MISMATCH", left, right, 45_0000n))).toEqual(["AMOUNT_MISMATCH", "{b,a}", "{c}", "45.0000", "EUR", "2022-01-13"]);
    expect(line(withRecords("UNMATCHED_RIGHT", [], [record("d", -7_5000n, "USD", 0)]))).toEqual(["UNMATCHED_RIGHT", "{}", "{d}", "7.5000", "USD", "1970-01-01"]);
  });

  it("takes the currency of the left record with the smallest id, else the right one's", () => {
    const left = [record("f", 1n, "GBP"), record("e", 1n, "CHF")];
    const right = [record("a", 1n, "USD")];
    expect(line(withRecords("CURRENCY_MISMATCH", left, right))![4]).toBe("CHF");
    expect(line(withRecords("UNMATCHED_RIGHT", [], [record("z", 1n, "JPY"), record("y", 1n, "SEK")]))![4]).toBe("SEK");
  });
});
