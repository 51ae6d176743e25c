import { describe, expect, it } from "vitest";
import { DEFAULT_RULE_SET, maxDateReach, parseRuleSet, RuleSetError } from "../../src/reconcile/rules.js";

const exactPass = { name: "p", mode: "AUTO", comparators: [{ field: "amount", type: "exact" }] };
const withComparator = (comparator: object, pass: object = {}) => ({ passes: [exactPass, { ...exactPass, ...pass, comparators: [{ field: "currency", type: "equal" }, comparator] }] });

describe("rule sets", () => {
  it("the default rule set is valid, applies its defaults and survives a JSON round trip", () => {
    expect(DEFAULT_RULE_SET.passes).toHaveLength(7);
    expect(DEFAULT_RULE_SET.discrepancies).toEqual({ key: "reference", dateWindowDays: 31 });
    expect(DEFAULT_RULE_SET.duplicates).toBe(true);
    expect(parseRuleSet(JSON.parse(JSON.stringify(DEFAULT_RULE_SET)))).toEqual(DEFAULT_RULE_SET);
    expect(DEFAULT_RULE_SET.passes.map((p) => [p.mode, p.kind, p.groupBy ?? null])).toEqual([
      ["AUTO", "ONE_TO_ONE", null],
      ["AUTO", "ONE_TO_ONE", null],
      ["AUTO", "ONE_TO_MANY", "reference"],
      ["AUTO", "MANY_TO_ONE", "reference"],
      ["SUGGEST", "ONE_TO_ONE", null],
      ["SUGGEST", "ONE_TO_MANY", null],
      ["SUGGEST", "MANY_TO_ONE", null],
    ]);
  });

  it("fills defaults: kind, weights, required, margins, similarity threshold", () => {
    const rules = parseRuleSet({ passes: [{ name: "x", mode: "SUGGEST", comparators: [{ field: "currency", type: "equal" }, { field: "description", type: "tokenSet", required: false }] }] });
    expect(rules.passes[0]).toMatchObject({ kind: "ONE_TO_ONE", minConfidence: 0, ambiguityMargin: 0.02, maxLegs: 5 });
    expect(rules.passes[0]!.comparators).toEqual([
      { field: "currency", type: "equal", weight: 1, required: true },
      { field: "description", type: "tokenSet", weight: 1, required: false, threshold: 0.8 },
    ]);
    expect(parseRuleSet({ passes: [exactPass], discrepancies: null }).discrepancies).toBeNull();
  });

  it.each([
    ["a bad tolerance", withComparator({ field: "amount", type: "absolute", tolerance: "1e-2" }), "passes[1].comparators[1].tolerance: must be a decimal such as 0.01"],
    ["five decimals", withComparator({ field: "amount", type: "absolute", tolerance: "0.00001" }), "passes[1].comparators[1].tolerance: must be a decimal such as 0.01"],
    ["a negative tolerance", withComparator({ field: "amount", type: "absolute", tolerance: "-1" }), "passes[1].comparators[1].tolerance: must be a decimal such as 0.01"],
    ["a percent over 100", withComparator({ field: "amount", type: "percent", tolerance: "150", base: "LARGER" }), "passes[1].comparators[1].tolerance: must be at most 100 (percent)"],
    ["an unknown amount type", withComparator({ field: "amount", type: "fuzzy" }), "passes[1].comparators[1].type: for field amount must be one of exact, absolute, percent"],
    ["an unknown field", withComparator({ field: "iban", type: "exact" }), "passes[1].comparators[1].field: must be one of amount, bookedDate"],
    ["a reversed window", withComparator({ field: "bookedDate", type: "dateWindow", minDays: 3, maxDays: 0 }), "passes[1].comparators[1].maxDays: must be at least minDays"],
    ["a fractional window", withComparator({ field: "valueDate", type: "dateWindow", minDays: 0.5, maxDays: 1 }), "passes[1].comparators[1].minDays:"],
    ["an unknown key", withComparator({ field: "reference", type: "exact", tolerence: "1" }), 'passes[1].comparators[1]: Unrecognized key: "tolerence"'],
    ["a threshold on exact", withComparator({ field: "reference", type: "exact", threshold: 0.5 }), "passes[1].comparators[1].threshold: applies only to tokenSet"],
    ["a regex without pattern", withComparator({ field: "reference", type: "regex" }), "passes[1].comparators[1].pattern: is required for type regex"],
    ["a regex without group", withComparator({ field: "reference", type: "regex", pattern: "\\d+" }), "passes[1].comparators[1].pattern: must have exactly one capture group, has 0"],
    ["a regex with two groups", withComparator({ field: "reference", type: "regex", pattern: "(a)(b)" }), "must have exactly one capture group, has 2"],
    ["a regex that does not compile", withComparator({ field: "reference", type: "regex", pattern: "(a" }), "pattern: does not compile"],
    ["a backreference", withComparator({ field: "reference", type: "regex", pattern: "(a)\\1" }), "passes[1].comparators[1].pattern: cannot run in linear time: backreferences"],
    ["a lookahead", withComparator({ field: "reference", type: "regex", pattern: "(?=INV)(\\w+)" }), "passes[1].comparators[1].pattern: cannot run in linear time"],
    ["a large repetition count", withComparator({ field: "reference", type: "regex", pattern: "([A-Z0-9]{6,20})" }), "passes[1].comparators[1].pattern: cannot run in linear time"],
    ["a Unicode property", withComparator({ field: "reference", type: "regex", pattern: "(\\p{Lu}+)" }), "passes[1].comparators[1].pattern: must not use \\p{…}"],
    ["a long pattern", withComparator({ field: "reference", type: "regex", pattern: `(${"a".repeat(200)})` }), "must be at most 200 characters"],
    ["a zero weight", withComparator({ field: "reference", type: "exact", weight: 0 }), "passes[1].comparators[1].weight: must be greater than 0"],
    ["no blocking comparator", { passes: [{ name: "x", mode: "AUTO", comparators: [{ field: "reference", type: "jaroWinkler" }] }] }, "passes[0].comparators: needs a required comparator usable for blocking"],
    ["blocking only when optional", { passes: [{ name: "x", mode: "AUTO", comparators: [{ field: "amount", type: "exact", required: false }] }] }, "passes[0].comparators: needs a required comparator usable for blocking"],
    ["groupBy on 1:1", { passes: [{ ...exactPass, groupBy: "reference" }] }, "passes[0].groupBy: applies only to"],
    ["N:M without groupBy", { passes: [{ ...exactPass, kind: "MANY_TO_MANY" }] }, "passes[0].groupBy: is required for MANY_TO_MANY"],
    ["subset sum without window", { passes: [{ ...exactPass, kind: "ONE_TO_MANY" }] }, "passes[0].comparators: a subset-sum pass (no groupBy) needs a required dateWindow comparator"],
    ["a grouped pass without amount", { passes: [{ name: "x", mode: "AUTO", kind: "MANY_TO_ONE", groupBy: "reference", comparators: [{ field: "currency", type: "equal" }] }] }, "needs a required amount comparator"],
    ["maxLegs 6", { passes: [{ ...exactPass, maxLegs: 6 }] }, "passes[0].maxLegs:"],
    ["no passes", { passes: [] }, "passes:"],
    ["an empty name", { passes: [{ ...exactPass, name: " " }] }, "passes[0].name:"],
    ["a wide discrepancy window", { passes: [exactPass], discrepancies: { key: "reference", dateWindowDays: 400 } }, "discrepancies.dateWindowDays:"],
    ["not an object", "rules", ""],
  ])("refuses %s, naming the path", (_, input, message) => {
    let error: unknown;
    try {
      parseRuleSet(input);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(RuleSetError);
    expect((error as Error).message).toContain(message);
    expect((error as RuleSetError).message.startsWith((error as RuleSetError).path)).toBe(true);
  });

  it("accepts a regex the linear-time engine runs, however it would backtrack", () => {
    for (const pattern of ["(a*a*a*a*a*a*b)", "((?:a+)+)", "((?:a|aa)*)", "(?:\\w+\\s?)*(x)"]) {
      expect(parseRuleSet(withComparator({ field: "reference", type: "regex", pattern })).passes[1]!.comparators[1]).toMatchObject({ pattern });
    }
  });

  it("accepts a safe regex, percent bases and valueDate windows", () => {
    const rules = parseRuleSet({
      passes: [
        {
          name: "x",
          mode: "AUTO",
          comparators: [
            { field: "amount", type: "percent", tolerance: "0.5", base: "SMALLER" },
            { field: "valueDate", type: "dateWindow", minDays: 0, maxDays: 3 },
            { field: "description", type: "regex", pattern: "INV-?(\\d{3,8})", required: false, weight: 2 },
          ],
        },
      ],
    });
    expect(rules.passes[0]!.comparators).toHaveLength(3);
  });

  it("measures the date reach as maxDateSpanDays, which bounds every window", () => {
    expect(DEFAULT_RULE_SET.maxDateSpanDays).toBe(60);
    expect(maxDateReach(DEFAULT_RULE_SET)).toBe(60);
    expect(maxDateReach({ ...DEFAULT_RULE_SET, discrepancies: null })).toBe(60);
    const lagged = parseRuleSet({
      passes: [{ name: "x", mode: "AUTO", comparators: [{ field: "bookedDate", type: "dateWindow", minDays: -10, maxDays: 2 }] }],
      discrepancies: { key: "externalId", dateWindowDays: 5 },
      maxDateSpanDays: 10,
    });
    expect(maxDateReach(lagged)).toBe(10);
    expect(maxDateReach(parseRuleSet({ passes: [exactPass], discrepancies: null, maxDateSpanDays: 1 }))).toBe(1);
  });

  it.each([
    ["a window beyond the span", { passes: [{ ...exactPass, comparators: [{ field: "bookedDate", type: "dateWindow", minDays: 0, maxDays: 11 }] }], maxDateSpanDays: 10 }, "passes[0].comparators[0].maxDays: reaches beyond maxDateSpanDays (10 days)"],
    ["a window reaching back beyond the span", { passes: [exactPass, { ...exactPass, comparators: [{ field: "valueDate", type: "dateWindow", minDays: -61, maxDays: 0 }] }] }, "passes[1].comparators[0].minDays: reaches beyond maxDateSpanDays (60 days)"],
    ["a discrepancy window beyond the span", { passes: [exactPass], discrepancies: { key: "reference", dateWindowDays: 31 }, maxDateSpanDays: 30 }, "discrepancies.dateWindowDays: reaches beyond maxDateSpanDays (30 days)"],
    ["a span of 0", { passes: [exactPass], maxDateSpanDays: 0 }, "maxDateSpanDays:"],
    ["a span over 366", { passes: [exactPass], maxDateSpanDays: 367 }, "maxDateSpanDays:"],
    ["a fractional span", { passes: [exactPass], maxDateSpanDays: 1.5 }, "maxDateSpanDays:"],
  ])("refuses %s, naming the path", (_, input, message) => {
    expect(() => parseRuleSet(input)).toThrow(RuleSetError);
    expect(() => parseRuleSet(input)).toThrow(message);
  });

  it("accepts windows exactly at the span", () => {
    const rules = parseRuleSet({
      passes: [{ ...exactPass, comparators: [{ field: "bookedDate", type: "dateWindow", minDays: -7, maxDays: 7 }] }],
      discrepancies: { key: "reference", dateWindowDays: 7 },
      maxDateSpanDays: 7,
    });
    expect(rules.maxDateSpanDays).toBe(7);
  });
});
