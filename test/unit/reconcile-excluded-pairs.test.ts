/**
 * The engine's `excludePair` option: a pair a reviewer rejected is never grouped again, whichever pass or stage would
 * have grouped it (key equality, scored 1:1, 1:N groups, the discrepancy stage), and everything else is unchanged.
 */
import { describe, expect, it } from "vitest";
import type { EngineRecord } from "../../src/reconcile/types.js";
import { reconcile, type ReconcileResult } from "../../src/reconcile/engine.js";
import { DEFAULT_RULE_SET } from "../../src/reconcile/rules.js";
import { parseDecimal } from "../../src/reconcile/money.js";

const rec = (id: string, amount: string, reference: string, bookedDate = 100, extra: Partial<EngineRecord> = {}): EngineRecord => ({
  id,
  externalId: `ext-${id}`,
  amount: parseDecimal(amount),
  currency: "EUR",
  bookedDate,
  valueDate: null,
  reference,
  description: "",
  counterparty: "",
  ...extra,
});

const lines = (result: ReconcileResult) => result.groups.map((g) => `${g.outcome} ${g.leftIds.join("+")}|${g.rightIds.join("+")} p${g.pass}`);

/** Excludes the pairs given as "L1|R1" (by external id, the way the job runner asks). */
const excluding = (...pairs: string[]) => {
  const set = new Set(pairs.map((pair) => pair.split("|").map((id) => `ext-${id}`).join("\u0000")));
  return (left: EngineRecord, right: EngineRecord) => set.has(`${left.externalId}\u0000${right.externalId}`);
};

const cases: { name: string; left: EngineRecord[]; right: EngineRecord[]; exclude: string; before: string[]; after: string[] }[] = [
  {
    name: "key equality (group and zip): the right record pairs with the next left of the key instead",
    left: [rec("L1", "100.00", "INV-1", 100), rec("L2", "100.00", "INV-1", 101)],
    right: [rec("R1", "100.00", "INV-1", 100)],
    exclude: "L1|R1",
    before: ["MATCHED L1|R1 p1", "UNMATCHED_LEFT L2| p0"],
    after: ["MATCHED L2|R1 p1", "UNMATCHED_LEFT L1| p0"],
  },
  {
    name: "scored 1:1 pass: the suggestion is not made; the records end unmatched",
    left: [rec("L1", "80.00", "", 100)],
    right: [rec("R1", "80.00", "", 101)],
    exclude: "L1|R1",
    before: ["SUGGESTED L1|R1 p5"],
    after: ["UNMATCHED_LEFT L1| p0", "UNMATCHED_RIGHT |R1 p0"],
  },
  {
    name: "1:N group pass: a group holding a rejected pair is not proposed",
    left: [rec("L1", "300.00", "ORDER 5", 100)],
    right: [rec("R1", "120.00", "card a", 100), rec("R2", "180.00", "card b", 101)],
    exclude: "L1|R2",
    before: ["SUGGESTED L1|R1+R2 p6"],
    after: ["UNMATCHED_LEFT L1| p0", "UNMATCHED_RIGHT |R1 p0", "UNMATCHED_RIGHT |R2 p0"],
  },
  {
    name: "discrepancy stage: a rejected AMOUNT_MISMATCH is not reported again",
    left: [rec("L1", "100.00", "INV-1001", 100)],
    right: [rec("R1", "100.0101", "inv1001", 101)],
    exclude: "L1|R1",
    before: ["AMOUNT_MISMATCH L1|R1 p0"],
    after: ["UNMATCHED_LEFT L1| p0", "UNMATCHED_RIGHT |R1 p0"],
  },
];

describe("reconcile with excluded pairs", () => {
  for (const c of cases) {
    it(c.name, () => {
      expect(lines(reconcile(c.left, c.right, DEFAULT_RULE_SET))).toEqual(c.before);
      expect(lines(reconcile(c.left, c.right, DEFAULT_RULE_SET, { excludePair: excluding(c.exclude) }))).toEqual(c.after);
    });
  }

  it("excluding a pair that no group holds changes nothing", () => {
    const left = [rec("L1", "100.00", "INV-1", 100), rec("L2", "80.00", "", 100)];
    const right = [rec("R1", "100.00", "INV-1", 100), rec("R2", "80.00", "", 101)];
    expect(lines(reconcile(left, right, DEFAULT_RULE_SET, { excludePair: excluding("L1|R2") }))).toEqual(lines(reconcile(left, right, DEFAULT_RULE_SET)));
  });
});
