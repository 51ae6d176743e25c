import { Kind } from "graphql";
import { describe, expect, it } from "vitest";
import { DateTime, Decimal } from "../../src/graphql/scalars.js";

describe("scalars", () => {
  it("keeps decimals exact, as strings", () => {
    expect(Decimal.parseValue("1234.5678")).toBe("1234.5678");
    expect(Decimal.parseLiteral({ kind: Kind.STRING, value: "-0.01" })).toBe("-0.01");
    expect(() => Decimal.parseValue(0.1)).toThrow(/Decimal must be a string/);
    expect(() => Decimal.parseValue("1e3")).toThrow(/Decimal must be a string/);
    expect(Decimal.serialize("10.10")).toBe("10.10");
  });

  it("writes dates as UTC ISO strings and refuses what is not one", () => {
    expect(DateTime.serialize(new Date(Date.UTC(2026, 10, 23, 19, 30)))).toBe("2026-11-23T19:30:00.000Z");
    expect((DateTime.parseValue("2026-11-23T20:30:00+01:00") as Date).toISOString()).toBe("2026-11-23T19:30:00.000Z");
    expect(() => DateTime.parseValue("23/11/2026")).toThrow(/ISO-8601/);
  });
});
