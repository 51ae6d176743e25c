import { describe, expect, it } from "vitest";
import fc from "fast-check";
import type { EngineGroup, EngineRecord } from "../../src/reconcile/types.js";
import { passReach, reconcile, type ReconcileResult } from "../../src/reconcile/engine.js";
import { compareRecords } from "../../src/reconcile/comparators.js";
import { DEFAULT_RULE_SET, maxDateReach, parseRuleSet, type RuleSet } from "../../src/reconcile/rules.js";
import { parseDecimal } from "../../src/reconcile/money.js";

const blank: EngineRecord = { id: "", externalId: "", amount: 0n, currency: "EUR", bookedDate: 0, valueDate: null, reference: "", description: "", counterparty: "" };
/** A record; `amount` as a decimal string, dates as day numbers. */
const rec = (id: string, amount: string, reference: string, bookedDate: number, extra: Partial<EngineRecord> = {}): EngineRecord =>
  ({ ...blank, id, externalId: `ext-${id}`, amount: parseDecimal(amount), reference, bookedDate, ...extra });

const summary = (result: ReconcileResult) => result.groups.map((g) => `${g.outcome} ${g.leftIds.join("+")}|${g.rightIds.join("+")} p${g.pass}`);
const run = (left: EngineRecord[], right: EngineRecord[], rules: RuleSet) => summary(reconcile(left, right, rules));

const exactReference = DEFAULT_RULE_SET.passes[0]!;
const keyOnly = (maxDateSpanDays: number) => parseRuleSet({ passes: [exactReference], discrepancies: null, duplicates: false, maxDateSpanDays });

describe("maxDateSpanDays bounds every group", () => {
  it("group and zip pairs records exactly at the span, not one day beyond", () => {
    expect(run([rec("L1", "10.00", "A", 100)], [rec("R1", "10.00", "A", 160)], DEFAULT_RULE_SET)).toEqual(["MATCHED L1|R1 p1"]);
    expect(run([rec("L1", "10.00", "A", 100)], [rec("R1", "10.00", "A", 161)], DEFAULT_RULE_SET)).toEqual(["UNMATCHED_LEFT L1| p0", "UNMATCHED_RIGHT |R1 p0"]);
    expect(run([rec("L1", "10.00", "A", 100)], [rec("R1", "10.00", "A", 95)], keyOnly(5))).toEqual(["MATCHED L1|R1 p1"]);
    expect(run([rec("L1", "10.00", "A", 100)], [rec("R1", "10.00", "A", 94)], keyOnly(5))).toEqual(["UNMATCHED_LEFT L1| p0", "UNMATCHED_RIGHT |R1 p0"]);
  });

  it("group and zip drops the earlier of the next left and right when they are too far apart, and merges on", () => {
    // L1 is more than 5 days before R1: L1 is dropped, L2 pairs with R1, then L3 with R2.
    const left = [rec("L1", "10.00", "A", 100), rec("L2", "10.00", "A", 104), rec("L3", "10.00", "A", 110)];
    const right = [rec("R1", "10.00", "A", 106), rec("R2", "10.00", "A", 111)];
    expect(run(left, right, keyOnly(5))).toEqual(["MATCHED L2|R1 p1", "MATCHED L3|R2 p1", "UNMATCHED_LEFT L1| p0"]);
    // The same on the right side: R1 is dropped, R2 pairs with L1.
    expect(run([rec("L1", "10.00", "A", 110)], [rec("R1", "10.00", "A", 100), rec("R2", "10.00", "A", 107)], keyOnly(5))).toEqual(["MATCHED L1|R2 p1", "UNMATCHED_RIGHT |R1 p0"]);
  });

  it("bounds a scored pass that has no date window", () => {
    const rules = parseRuleSet({ passes: [{ name: "amount", mode: "AUTO", comparators: [{ field: "amount", type: "absolute", tolerance: "0.01" }] }], discrepancies: null, maxDateSpanDays: 5 });
    expect(run([rec("L1", "10.00", "A", 100)], [rec("R1", "10.01", "B", 105)], rules)).toEqual(["MATCHED L1|R1 p1"]);
    expect(run([rec("L1", "10.00", "A", 100)], [rec("R1", "10.01", "B", 106)], rules)).toEqual(["UNMATCHED_LEFT L1| p0", "UNMATCHED_RIGHT |R1 p0"]);
  });

  it("bounds every pair of legs of a group by key", () => {
    const rules = parseRuleSet({
      passes: [{ name: "split", mode: "AUTO", kind: "ONE_TO_MANY", groupBy: "reference", comparators: [{ field: "amount", type: "exact" }] }],
      discrepancies: null,
      duplicates: false,
      maxDateSpanDays: 10,
    });
    // Both legs within 5 days of the single and 10 apart: matched.
    expect(run([rec("L1", "30.00", "K", 105)], [rec("R1", "10.00", "K", 100), rec("R2", "20.00", "K", 110)], rules)).toEqual(["MATCHED L1|R1+R2 p1"]);
    // Each leg within the span of the single, but 11 days apart: not matched.
    expect(run([rec("L1", "30.00", "K", 105)], [rec("R1", "10.00", "K", 100), rec("R2", "20.00", "K", 111)], rules)).toEqual([
      "UNMATCHED_LEFT L1| p0",
      "UNMATCHED_RIGHT |R1 p0",
      "UNMATCHED_RIGHT |R2 p0",
    ]);
    const manyToMany = parseRuleSet({ ...rules, passes: [{ ...rules.passes[0]!, kind: "MANY_TO_MANY" }] });
    expect(run([rec("L1", "15.00", "K", 100), rec("L2", "15.00", "K", 110)], [rec("R1", "30.00", "K", 105)], manyToMany)).toEqual(["MATCHED L1+L2|R1 p1"]);
    expect(run([rec("L1", "15.00", "K", 100), rec("L2", "15.00", "K", 111)], [rec("R1", "30.00", "K", 105)], manyToMany)).toEqual([
      "UNMATCHED_LEFT L1| p0",
      "UNMATCHED_LEFT L2| p0",
      "UNMATCHED_RIGHT |R1 p0",
    ]);
  });

  it("bounds the legs of a subset sum whose window is wider than the span", () => {
    const rules = parseRuleSet({
      passes: [{ name: "sum", mode: "SUGGEST", kind: "ONE_TO_MANY", comparators: [{ field: "amount", type: "exact" }, { field: "bookedDate", type: "dateWindow", minDays: -10, maxDays: 10 }] }],
      discrepancies: null,
      maxDateSpanDays: 10,
    });
    expect(run([rec("L1", "30.00", "", 105)], [rec("R1", "10.00", "", 100), rec("R2", "20.00", "", 110)], rules)).toEqual(["SUGGESTED L1|R1+R2 p1"]);
    expect(run([rec("L1", "30.00", "", 105)], [rec("R1", "10.00", "", 99), rec("R2", "20.00", "", 110)], rules)).toEqual([
      "UNMATCHED_LEFT L1| p0",
      "UNMATCHED_RIGHT |R1 p0",
      "UNMATCHED_RIGHT |R2 p0",
    ]);
  });
});

/**
 * Runs the engine the way the job runner does (reconcile-task.ts): both sides merged in (bookedDate, id) order into
 * blocks of about `blockRecords` that end between two dates, unmatched records carried `maxDateReach` days forward.
 */
function reconcileInBlocks(left: EngineRecord[], right: EngineRecord[], rules: RuleSet, blockRecords: number): EngineGroup[] {
  const reach = maxDateReach(rules);
  const streams = [[...left].sort(compareRecords), [...right].sort(compareRecords)] as const;
  const position = [0, 0];
  let carry: ReconcileResult["carry"] = { left: [], right: [] };
  const groups: EngineGroup[] = [];
  for (;;) {
    const block: [EngineRecord[], EngineRecord[]] = [[], []];
    let lastDate = -Infinity;
    let exhausted = false;
    for (let taken = 0; ; taken++) {
      const l = streams[0][position[0]!];
      const r = streams[1][position[1]!];
      if (!l && !r) {
        exhausted = true;
        break;
      }
      const side = !r || (l && l.bookedDate <= r.bookedDate) ? 0 : 1;
      const record = (side === 0 ? l : r)!;
      if (taken >= blockRecords && record.bookedDate !== lastDate) break;
      position[side]!++;
      block[side].push(record);
      lastDate = record.bookedDate;
    }
    const carried = carry.left.length + carry.right.length > 0;
    const result = reconcile(carry.left.concat(block[0]), carry.right.concat(block[1]), rules, {
      carryFrom: exhausted ? undefined : lastDate + 1 - reach,
      finalizeBefore: exhausted ? undefined : lastDate + 1 - 2 * reach,
      newFrom: carried ? Math.min(block[0][0]?.bookedDate ?? Infinity, block[1][0]?.bookedDate ?? Infinity) : undefined,
    });
    groups.push(...result.groups);
    carry = result.carry;
    if (exhausted) return groups;
  }
}

/** Groups as a sorted list of "outcome left ids | right ids", ids sorted: what must not depend on blocking. */
const asSet = (groups: EngineGroup[]) => groups.map((g) => `${g.outcome} ${[...g.leftIds].sort().join("+")}|${[...g.rightIds].sort().join("+")}`).sort();

describe("blocked runs", () => {
  const recordArb = fc.record({
    amount: fc.constantFrom("10.00", "20.00", "-10.00"),
    reference: fc.constantFrom("", "INV-1", "INV-2", "PO-7"),
    bookedDate: fc.integer({ min: 0, max: 40 }),
    currency: fc.constantFrom("EUR", "USD"),
  });
  const build = (side: string, raw: readonly { amount: string; reference: string; bookedDate: number; currency: string }[]) =>
    raw.map((r, i) => rec(`${side}${String(i).padStart(3, "0")}`, r.amount, r.reference, r.bookedDate, { currency: r.currency }));

  it("a key-equality rule set gives the same groups in date blocks as in one call", () => {
    fc.assert(
      fc.property(
        fc.array(recordArb, { maxLength: 60 }),
        fc.array(recordArb, { maxLength: 60 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 30 }),
        (rawLeft, rawRight, span, blockRecords) => {
          const rules = keyOnly(span);
          const left = build("L", rawLeft);
          const right = build("R", rawRight);
          expect(asSet(reconcileInBlocks(left, right, rules, blockRecords))).toEqual(asSet(reconcile(left, right, rules).groups));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("carried records (ReconcileOptions.newFrom)", () => {
  // Pass 2 of the defaults pairs these (amount within 0.01, booked within 3 days, similar reference).
  const similar = (l: number, r: number) => [[rec("L1", "10.00", "INV-1001", l)], [rec("R1", "10.01", "INV-1001X", r)]] as const;
  const rules = parseRuleSet({ passes: [DEFAULT_RULE_SET.passes[1]!], discrepancies: null, duplicates: false, maxDateSpanDays: 60 });

  it("a pass leaves alone carried records booked further before the new ones than it reaches", () => {
    const [left, right] = similar(100, 101);
    expect(run([...left], [...right], rules)).toEqual(["MATCHED L1|R1 p1"]);
    // Both booked more than 3 days before the block's new records: the last call already decided about them.
    expect(summary(reconcile([...left], [...right], rules, { newFrom: 105 }))).toEqual(["UNMATCHED_LEFT L1| p0", "UNMATCHED_RIGHT |R1 p0"]);
  });

  it("carried records within the pass's reach of the new records are matched, with each other or with a new record", () => {
    // New records from day 104; the pass reaches 3 days: carried records booked on day 101 or later take part.
    const [left, right] = similar(101, 102);
    expect(summary(reconcile([...left], [...right], rules, { newFrom: 104 }))).toEqual(["MATCHED L1|R1 p1"]);
    const [carried, fresh] = similar(101, 104);
    expect(summary(reconcile([...carried], [...fresh], rules, { newFrom: 104 }))).toEqual(["MATCHED L1|R1 p1"]);
  });

  it("each pass reaches as far as its booked-date window (twice for 1:N and N:1 legs), never beyond the span", () => {
    expect(DEFAULT_RULE_SET.passes.map((pass) => passReach(pass, DEFAULT_RULE_SET.maxDateSpanDays))).toEqual([60, 3, 6, 6, 3, 6, 6]);
    expect(passReach(DEFAULT_RULE_SET.passes[2]!, 4)).toBe(4);
    const valueDateWindow = parseRuleSet({
      passes: [{ name: "v", mode: "AUTO", comparators: [{ field: "amount", type: "exact" }, { field: "valueDate", type: "dateWindow", minDays: -2, maxDays: 2 }] }],
    }).passes[0]!;
    // A value-date window does not bound booked dates: the span does.
    expect(passReach(valueDateWindow, 60)).toBe(60);
  });
});
