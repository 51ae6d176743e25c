import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { detachFromBlock, parseRecords } from "../../src/modules/jobs/record-text.js";
import { decimalOf } from "../../src/modules/jobs/job-results.js";
import type { EngineRecord } from "../../src/reconcile/types.js";

/** COPY's text-format escaping, as PostgreSQL writes a field (backslash, tab, line breaks). */
const escape = (value: string) => value.replace(/[\\\t\n\r]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : "\\r"));

/** A record as the record stream's COPY writes it: one line of nine tab-separated fields. */
function copyLine(r: EngineRecord): string {
  return [r.id, escape(r.externalId), decimalOf(r.amount), r.currency, String(r.bookedDate), r.valueDate === null ? "\\N" : String(r.valueDate),
    escape(r.reference), escape(r.description), escape(r.counterparty)].join("\t");
}

const recordArb: fc.Arbitrary<EngineRecord> = fc.record({
  id: fc.uuid(),
  externalId: fc.string({ unit: "grapheme" }),
  amount: fc.bigInt({ min: -(10n ** 19n), max: 10n ** 19n }),
  currency: fc.constantFrom("EUR", "USD", "JPY"),
  bookedDate: fc.integer({ min: -30_000, max: 60_000 }),
  valueDate: fc.option(fc.integer({ min: -30_000, max: 60_000 }), { nil: null }),
  reference: fc.string({ unit: "grapheme" }),
  description: fc.string({ unit: "grapheme" }),
  counterparty: fc.string({ unit: "grapheme" }),
});

describe("parseRecords (the engine thread's reading of a block)", () => {
  it("gives back every record of a block of COPY lines, whatever its text holds (tabs, line breaks, backslashes, unicode)", () => {
    fc.assert(
      fc.property(fc.array(recordArb, { maxLength: 20 }), (records) => {
        const bytes = new TextEncoder().encode(records.map((r) => copyLine(r) + "\n").join(""));
        expect(parseRecords(bytes)).toEqual(records);
      }),
    );
  });

  it("refuses a line with too few fields rather than making up a record", () => {
    expect(() => parseRecords(new TextEncoder().encode("a\tb\tc\n"))).toThrow(/line 1 of a block has too few fields/);
  });

  it("keeps a carried record's values when it gives its text storage of its own", () => {
    fc.assert(
      fc.property(fc.array(recordArb, { maxLength: 20 }), (records) => {
        const bytes = new TextEncoder().encode(records.map((r) => copyLine(r) + "\n").join(""));
        const parsed = parseRecords(bytes);
        for (const record of parsed) detachFromBlock(record);
        expect(parsed).toEqual(records);
      }),
    );
  });
});
