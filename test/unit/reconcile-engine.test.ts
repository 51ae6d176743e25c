import { describe, expect, it } from "vitest";
import fc from "fast-check";
import type { EngineGroup, EngineRecord } from "../../src/reconcile/types.js";
import { reconcile, ReconcileCancelled, type ReconcileResult } from "../../src/reconcile/engine.js";
import { DEFAULT_RULE_SET, parseRuleSet, type RuleSet } from "../../src/reconcile/rules.js";
import { compileScorer, createStopCheck } from "../../src/reconcile/pass-context.js";
import { parseDecimal } from "../../src/reconcile/money.js";

let serial = 0;
/** A record; `amount` as a decimal string, dates as day numbers. */
const rec = (id: string, amount: string, reference: string, bookedDate = 100, extra: Partial<EngineRecord> = {}): EngineRecord => ({
  id,
  externalId: `ext-${id}-${serial++}`,
  amount: parseDecimal(amount),
  currency: "EUR",
  bookedDate,
  valueDate: null,
  reference,
  description: "",
  counterparty: "",
  ...extra,
});

/** The groups as short lines, e.g. "MATCHED L1|R1 p1". */
const summary = (result: ReconcileResult) =>
  result.groups.map((g) => `${g.outcome} ${g.leftIds.join("+")}|${g.rightIds.join("+")} p${g.pass}${g.ambiguous ? " ambiguous" : ""}${g.duplicateOf ? ` of ${g.duplicateOf}` : ""}`);

const run = (left: EngineRecord[], right: EngineRecord[], rules: RuleSet = DEFAULT_RULE_SET) => summary(reconcile(left, right, rules));

describe("the default rule set on hand-made scenarios", () => {
  it("matches exact reference, amount and currency in pass 1, whatever the dates", () => {
    expect(run([rec("L1", "100.00", "INV-1", 100)], [rec("R1", "100.00", "INV-1", 140)])).toEqual(["MATCHED L1|R1 p1"]);
  });

  it("matches drift within 0.01 with a similar reference and a lag of up to 3 days (pass 2)", () => {
    const result = reconcile([rec("L1", "100.00", "INV-1001", 100)], [rec("R1", "100.01", "inv1001", 103)], DEFAULT_RULE_SET);
    expect(summary(result)).toEqual(["MATCHED L1|R1 p2"]);
    const group = result.groups[0]!;
    expect(group).toMatchObject({ amountDelta: 100n, dateDeltaDays: 3, kind: "ONE_TO_ONE", rule: DEFAULT_RULE_SET.passes[1]!.name });
    // amount 0.5 (at the edge), currency 1, date 0.5 (at the edge), reference 1.
    expect(group.confidence).toBe(0.75);
    expect(group.breakdown.map((b) => b.detail)).toEqual(["delta 0.0100 within 0.0100", "both EUR", "right is 3 days after left (within -3..3)", "similarity 1 >= 0.8"]);
  });

  it("one minor unit beyond the tolerance is not matched automatically", () => {
    expect(run([rec("L1", "100.00", "INV-1001", 100)], [rec("R1", "100.0101", "inv1001", 101)])).toEqual(["AMOUNT_MISMATCH L1|R1 p0"]);
  });

  it("matches a reference typo (pass 2)", () => {
    expect(run([rec("L1", "250.00", "ACME-INV-20240117")], [rec("R1", "250.00", "ACME-INV-2024017", 101)])).toEqual(["MATCHED L1|R1 p2"]);
  });

  it("suggests amount-and-date matches; different references make it REFERENCE_MISMATCH", () => {
    // Best first: the pair one day apart before the pair two days apart.
    expect(run([rec("L1", "75.00", "INV-7", 100), rec("L2", "80.00", "", 100)], [rec("R1", "75.00", "SEPA 99812", 102), rec("R2", "80.00", "", 101)])).toEqual([
      "SUGGESTED L2|R2 p5",
      "REFERENCE_MISMATCH L1|R1 p5",
    ]);
  });

  it("reports a lag beyond the windows as DATE_LAG and a currency difference as CURRENCY_MISMATCH", () => {
    expect(run([rec("L1", "75.00", "INV-7", 100)], [rec("R1", "75.00", "inv7", 110)])).toEqual(["DATE_LAG L1|R1 p0"]);
    expect(run([rec("L1", "75.00", "INV-7", 100)], [rec("R1", "75.00", "INV-7", 100, { currency: "USD" })])).toEqual(["CURRENCY_MISMATCH L1|R1 p0"]);
  });

  it("matches a 1:N split by reference and an N:1 batch payout by reference", () => {
    const result = reconcile(
      [rec("L1", "300.00", "INV-9", 100), rec("L2", "40.00", "PO-77", 100), rec("L3", "60.00", "PO-77", 101), rec("L4", "100.00", "PO-77", 99)],
      [rec("R1", "100.00", "INV-9", 100), rec("R2", "199.99", "INV-9", 101), rec("R3", "200.00", "PO-77", 102)],
      DEFAULT_RULE_SET,
    );
    expect(summary(result)).toEqual(["MATCHED L1|R1+R2 p3", "MATCHED L4+L2+L3|R3 p4"]);
    expect(result.groups.map((g) => [g.kind, g.amountDelta])).toEqual([
      ["ONE_TO_MANY", -100n],
      ["MANY_TO_ONE", 0n],
    ]);
    expect(result.passHits).toEqual([0, 0, 1, 1, 0, 0, 0]);
    // A comparator judged per leg pair explains the worst of them; amounts are judged on the sums.
    expect(result.groups[0]!.breakdown.map((score) => score.detail)).toEqual([
      "delta -0.0100 within 0.0100",
      "both EUR (worst of 2 leg pairs)",
      "right is 1 day after left (within -3..3) (worst of 2 leg pairs)",
    ]);
  });

  it("suggests a split found by subset sum when references do not group it", () => {
    expect(run([rec("L1", "300.00", "ORDER 5", 100)], [rec("R1", "120.00", "card a", 100), rec("R2", "180.00", "card b", 101), rec("R3", "55.00", "other", 100)])).toEqual([
      "SUGGESTED L1|R1+R2 p6",
      "UNMATCHED_RIGHT |R3 p0",
    ]);
  });

  it("prefers fewer legs in a subset sum", () => {
    const result = run([rec("L1", "100.00", "", 100)], [rec("R1", "50.00", "", 100), rec("R2", "50.00", "", 100), rec("R3", "20.00", "", 100), rec("R4", "30.00", "", 100), rec("R5", "60.00", "", 100), rec("R6", "40.00", "", 100)]);
    expect(result[0]).toMatch(/^SUGGESTED L1\|R\d\+R\d p6/);
  });

  it("reports duplicates of the same side, pointing at the matched twin", () => {
    const left = [rec("L1", "10.00", "INV-1", 100)];
    const right = [rec("R1", "10.00", "INV-1", 100), rec("R2", "10.00", "INV-1", 100), rec("R3", "5.00", "X", 100, { externalId: "same" }), rec("R4", "6.00", "Y", 101, { externalId: "same" })];
    expect(run(left, right)).toEqual(["MATCHED L1|R1 p1", "DUPLICATE |R2 p0 of R1", "DUPLICATE |R4 p0 of R3", "UNMATCHED_RIGHT |R3 p0"]);
  });

  it("never matches empty references with each other", () => {
    const keyOnly = parseRuleSet({ passes: [DEFAULT_RULE_SET.passes[0]] });
    const left = [rec("L1", "10.00", "", 100), rec("L2", "10.00", "", 100)];
    const right = [rec("R1", "10.00", "", 100)];
    expect(run(left, right, keyOnly)).toEqual(["UNMATCHED_LEFT L1| p0", "UNMATCHED_LEFT L2| p0", "UNMATCHED_RIGHT |R1 p0"]);
    // With the defaults they are only suggested, on amount and date; the two left ones are not duplicates.
    expect(run(left, right)).toEqual(["SUGGESTED L1|R1 p5 ambiguous", "UNMATCHED_LEFT L2| p0"]);
  });

  it("group and zip pairs equal keys in (bookedDate, id) order; surplus falls through", () => {
    const keyOnly = parseRuleSet({ passes: [DEFAULT_RULE_SET.passes[0]], duplicates: false });
    const left = [rec("L2", "10.00", "A", 102), rec("L1", "10.00", "A", 101)];
    const right = [rec("R3", "10.00", "A", 103), rec("R1", "10.00", "A", 100), rec("R2", "10.00", "A", 100)];
    expect(run(left, right, keyOnly)).toEqual(["MATCHED L1|R1 p1", "MATCHED L2|R2 p1", "UNMATCHED_RIGHT |R3 p0"]);
  });

  it("marks a near-tie ambiguous and sends it to review", () => {
    const result = run([rec("L1", "100.00", "INV-500", 100)], [rec("R1", "100.00", "INV-501", 101), rec("R2", "100.00", "INV-502", 101)]);
    expect(result).toEqual(["SUGGESTED L1|R1 p2 ambiguous", "UNMATCHED_RIGHT |R2 p0"]);
    // A clear winner is not ambiguous.
    expect(run([rec("L1", "100.00", "INV-500", 100)], [rec("R1", "100.00", "INV-5OO", 100), rec("R2", "100.00", "INV-502", 103)])[0]).toBe("MATCHED L1|R1 p2");
  });

  it("a crowd of look-alikes is paired off, not starved by the candidate cap", () => {
    const left = Array.from({ length: 60 }, (_, i) => rec(`L${String(i).padStart(2, "0")}`, "10.00", "", 100));
    const right = Array.from({ length: 60 }, (_, i) => rec(`R${String(i).padStart(2, "0")}`, "10.00", "", 100));
    const groups = reconcile(left, right, DEFAULT_RULE_SET).groups;
    expect(groups).toHaveLength(60);
    expect(groups.every((g) => g.outcome === "SUGGESTED" && g.kind === "ONE_TO_ONE")).toBe(true);
  });

  it("carries unmatched records from carryFrom on, and finalizes them when fed again", () => {
    const left = [rec("L1", "10.00", "A", 100), rec("L2", "20.00", "B", 100), rec("L3", "30.00", "C", 105)];
    const right = [rec("R1", "10.00", "A", 104), rec("R2", "99.00", "Z", 106)];
    const first = reconcile(left, right, DEFAULT_RULE_SET, { carryFrom: 103 });
    expect(summary(first)).toEqual(["MATCHED L1|R1 p1", "UNMATCHED_LEFT L2| p0"]);
    expect(first.carry.left.map((r) => r.id)).toEqual(["L3"]);
    expect(first.carry.right.map((r) => r.id)).toEqual(["R2"]);
    const second = reconcile([...first.carry.left, rec("L4", "99.00", "Z", 107)], first.carry.right, DEFAULT_RULE_SET);
    expect(summary(second)).toEqual(["MATCHED L4|R2 p1", "UNMATCHED_LEFT L3| p0"]);
  });

  it("stops when asked", () => {
    const left = Array.from({ length: 3000 }, (_, i) => rec(`L${i}`, `${i}.00`, `R${i}`));
    const right = left.map((r) => ({ ...r, id: `R-${r.id}` }));
    let polls = 0;
    expect(() => reconcile(left, right, DEFAULT_RULE_SET, { shouldStop: () => ++polls > 1 })).toThrow(ReconcileCancelled);
    expect(polls).toBe(2);
  });

  it("stops a later call with the same shouldStop (one stop check serves every block of a job)", () => {
    const left = Array.from({ length: 3000 }, (_, i) => rec(`L${i}`, `${i}.00`, `R${i}`));
    const right = left.map((r) => ({ ...r, id: `R-${r.id}` }));
    let stopped = false;
    const shouldStop = () => stopped;
    expect(reconcile(left, right, DEFAULT_RULE_SET, { shouldStop }).groups).toHaveLength(3000);
    stopped = true;
    expect(() => reconcile(left, right, DEFAULT_RULE_SET, { shouldStop })).toThrow(ReconcileCancelled);
    expect(createStopCheck(shouldStop)).toBe(createStopCheck(shouldStop));
  });

  it("compiles a pass's comparators once, however many calls use it", () => {
    const pass = DEFAULT_RULE_SET.passes[1]!;
    expect(compileScorer(pass)).toBe(compileScorer(pass));
    expect(compileScorer(parseRuleSet(DEFAULT_RULE_SET).passes[1]!)).not.toBe(compileScorer(pass));
  });

  it("matches N:M by key when the sums balance", () => {
    const rules = parseRuleSet({
      passes: [{ name: "n:m", mode: "AUTO", kind: "MANY_TO_MANY", groupBy: "reference", comparators: [{ field: "amount", type: "exact" }, { field: "currency", type: "equal" }] }],
    });
    const left = [rec("L1", "10.00", "K"), rec("L2", "20.00", "K"), rec("L3", "5.00", "Q"), rec("L4", "5.00", "Q", 140)];
    const right = [rec("R1", "15.00", "k"), rec("R2", "15.00", "K"), rec("R3", "9.00", "Q")];
    expect(run(left, right, rules)).toEqual(["MATCHED L1+L2|R1+R2 p1", "AMOUNT_MISMATCH L3|R3 p0", "UNMATCHED_LEFT L4| p0"]);
  });
});

// Property tests on small random worlds with many collisions (few amounts, references, dates).
const recordArb = fc.record({
  amount: fc.constantFrom("10.00", "10.01", "20.00", "30.00", "-10.00", "5.00", "15.00"),
  reference: fc.constantFrom("", "INV-1", "inv1", "INV-2", "INV-12", "PO-7"),
  bookedDate: fc.integer({ min: 100, max: 110 }),
  currency: fc.constantFrom("EUR", "EUR", "USD"),
  externalId: fc.constantFrom("", "x1", "x2", "x3", "x4", "x5", "x6"),
});
type RawRecord = typeof recordArb extends fc.Arbitrary<infer T> ? T : never;
const worldArb = fc.record({ left: fc.array(recordArb, { maxLength: 14 }), right: fc.array(recordArb, { maxLength: 14 }), seed: fc.integer() });
const build = (side: string, raw: readonly RawRecord[]) =>
  raw.map((r, i) => rec(`${side}${String(i).padStart(2, "0")}`, r.amount, r.reference, r.bookedDate, { currency: r.currency, externalId: r.externalId }));

function shuffle<T>(items: readonly T[], seed: number): T[] {
  const copy = [...items];
  let state = seed | 0;
  for (let i = copy.length - 1; i > 0; i--) {
    state = (Math.imul(state, 1103515245) + 12345) | 0;
    const j = (state >>> 0) % (i + 1);
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

const canonical = (groups: EngineGroup[]) => groups.map((g) => JSON.stringify(g, (_, v) => (typeof v === "bigint" ? v.toString() : v))).sort();
const allIds = (result: ReconcileResult) => [...result.groups.flatMap((g) => [...g.leftIds, ...g.rightIds]), ...result.carry.left.map((r) => r.id), ...result.carry.right.map((r) => r.id)];
const ruleSets = [
  DEFAULT_RULE_SET,
  parseRuleSet({
    passes: [
      { name: "tolerant", mode: "AUTO", ambiguityMargin: 0.1, comparators: [{ field: "amount", type: "percent", tolerance: "50", base: "SMALLER" }, { field: "reference", type: "levenshtein", threshold: 0.5, required: false }] },
      { name: "n:m", mode: "SUGGEST", kind: "MANY_TO_MANY", groupBy: "reference", comparators: [{ field: "amount", type: "absolute", tolerance: "0.01" }] },
    ],
    discrepancies: { key: "externalId", dateWindowDays: 3 },
  }),
];

describe("engine properties", () => {
  it("every record ends in exactly one group or the carry", () => {
    fc.assert(
      fc.property(worldArb, fc.constantFrom(...ruleSets), fc.option(fc.integer({ min: 100, max: 111 }), { nil: undefined }), ({ left, right }, rules, carryFrom) => {
        const l = build("L", left);
        const r = build("R", right);
        const result = reconcile(l, r, rules, { carryFrom });
        const ids = allIds(result);
        expect(ids.sort()).toEqual([...l, ...r].map((x) => x.id).sort());
        for (const group of result.groups) {
          expect(group.leftIds.every((id) => id.startsWith("L")) && group.rightIds.every((id) => id.startsWith("R"))).toBe(true);
          if (group.pass > 0) expect(group.breakdown.every((b) => b.passed || !rules.passes[group.pass - 1]!.comparators.find((c) => `${c.field}:${c.type}` === b.comparator)!.required)).toBe(true);
          if (group.ambiguous) expect(group.outcome).toBe("SUGGESTED");
          if (group.outcome === "DUPLICATE") expect(group.duplicateOf).toBeDefined();
        }
        expect(result.passHits).toEqual(rules.passes.map((_, i) => result.groups.filter((g) => g.pass === i + 1).length));
      }),
      { numRuns: 300 },
    );
  });

  it("the result does not depend on the order of the input", () => {
    fc.assert(
      fc.property(worldArb, fc.constantFrom(...ruleSets), ({ left, right, seed }, rules) => {
        const l = build("L", left);
        const r = build("R", right);
        const a = reconcile(l, r, rules, { carryFrom: 106 });
        const b = reconcile(shuffle(l, seed), shuffle(r, seed + 1), rules, { carryFrom: 106 });
        expect(canonical(b.groups)).toEqual(canonical(a.groups));
        expect(b.carry).toEqual(a.carry);
      }),
      { numRuns: 300 },
    );
  });

  it("carrying changes only the final stages: pass groups are the same, and the carry is what they would have finalized", () => {
    fc.assert(
      fc.property(worldArb, fc.constantFrom(...ruleSets), fc.integer({ min: 100, max: 111 }), ({ left, right }, rules, carryFrom) => {
        const l = build("L", left);
        const r = build("R", right);
        const whole = reconcile(l, r, rules);
        const split = reconcile(l, r, rules, { carryFrom });
        expect(canonical(split.groups.filter((g) => g.pass > 0))).toEqual(canonical(whole.groups.filter((g) => g.pass > 0)));
        const finalizedLater = whole.groups.filter((g) => g.pass === 0).flatMap((g) => [...g.leftIds, ...g.rightIds]);
        const carried = [...split.carry.left, ...split.carry.right];
        expect(carried.every((x) => x.bookedDate >= carryFrom && finalizedLater.includes(x.id))).toBe(true);
        for (const group of split.groups.filter((g) => g.pass === 0)) {
          expect([...group.leftIds, ...group.rightIds].every((id) => [...l, ...r].find((x) => x.id === id)!.bookedDate < carryFrom)).toBe(true);
        }
        // Feeding the carry again finalizes it.
        const next = reconcile(split.carry.left, split.carry.right, rules);
        expect(next.carry).toEqual({ left: [], right: [] });
        expect(allIds(next).sort()).toEqual(carried.map((x) => x.id).sort());
      }),
      { numRuns: 300 },
    );
  });

  it("an ambiguous choice has a free competitor within the margin; a lone candidate never is", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 3 }), (rights, lag) => {
        // One left and `rights` identical candidates: ambiguous exactly when there is more than one.
        const left = [rec("L1", "10.00", "INV-100", 100)];
        const right = Array.from({ length: rights }, (_, i) => rec(`R${i}`, "10.00", "INV-10", 100 + lag));
        const [group] = reconcile(left, right, DEFAULT_RULE_SET).groups;
        expect(group!.ambiguous).toBe(rights > 1);
        expect(group!.outcome).toBe(rights > 1 ? "SUGGESTED" : "MATCHED");
      }),
    );
  });
});
