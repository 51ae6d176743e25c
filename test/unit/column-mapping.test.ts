/**
 * The column mapping (ingest/column-mapping.ts): which settings are refused when a mapping is saved, and how a
 * header's names resolve to the mapped columns.
 */
import { describe, expect, it } from "vitest";
import { parseColumnMapping, resolveColumns, type ColumnMapping } from "../../src/ingest/column-mapping.js";

function mapping(input: Record<string, unknown>): ColumnMapping {
  const parsed = parseColumnMapping(input);
  if (!parsed.ok) throw new Error(`${parsed.path}: ${parsed.message}`);
  return parsed.mapping;
}

describe("parseColumnMapping", () => {
  it("reads a mapping stored before unknown settings were refused as it was read then", () => {
    const parsed = parseColumnMapping({ refrence: "memo", dateFormat: "DD/MM/YYYY" }, { stored: true });
    expect(parsed.ok && parsed.mapping.dateFormat).toBe("DD/MM/YYYY");
  });

  it.each([
    // Each record is framed as `<line><delimiter>…`: a digit as either would be read as part of the line number.
    [{ delimiter: "1" }, "delimiter", "must not be a digit or a line break"],
    [{ quote: "1" }, "quote", "must not be a digit or a line break"],
    [{ delimiter: "0" }, "delimiter", "must not be a digit or a line break"],
    [{ delimiter: "\n" }, "delimiter", "must not be a digit or a line break"],
    [{ delimiter: "\r" }, "delimiter", "must not be a digit or a line break"],
    [{ quote: "\n" }, "quote", "must not be a digit or a line break"],
    [{ quote: "\r" }, "quote", "must not be a digit or a line break"],
    [{ delimiter: "€" }, "delimiter", "must be one ASCII character"],
    [{ quote: "''" }, "quote", "must be one ASCII character"],
    [{ delimiter: ";", quote: ";" }, "delimiter", "must differ from quote"],
    [{ delimiter: '"' }, "delimiter", "must differ from quote"],
    // A setting it does not know: a typo would otherwise leave the column silently unmapped.
    [{ refrence: "memo" }, "refrence", "is not a setting of a column mapping (did you mean reference?)"],
    [{ bogus: "x" }, "bogus", "is not a setting of a column mapping"],
    [{ sign: { column: "dc", negativeValue: ["D"] } }, "sign.negativeValue", "is not a setting of a column mapping (did you mean negativeValues?)"],
  ])("refuses %j, naming %s", (input, path, message) => {
    expect(parseColumnMapping(input)).toEqual({ ok: false, path, message });
  });

  it.each([{ delimiter: ";" }, { delimiter: "\t", quote: "'" }, { delimiter: "|" }, { delimiter: " " }])("accepts %j", (input) => {
    expect(parseColumnMapping(input).ok).toBe(true);
  });
});

describe("resolveColumns", () => {
  const defaults = mapping({});

  it("resolves names case-insensitively and picks up optional columns by name", () => {
    const header = ["ID", "Amount", "currency", "date", "Reference", "note"];
    expect(resolveColumns(defaults, header, header.length)).toEqual({
      ok: true,
      positions: new Map([["externalId", 0], ["amount", 1], ["currency", 2], ["bookedDate", 3], ["reference", 4]]),
    });
  });

  it("refuses a header naming a mapped column twice, with the fields, whatever the case", () => {
    const header = ["id", "amount", "AMOUNT", "currency", "date"];
    expect(resolveColumns(defaults, header, header.length)).toEqual({ ok: false, repeated: { name: "amount", fields: [2, 3] } });
    const named = ["Buchung", "Soll", "Haben", "Soll", "Datum", "Soll"];
    const german = mapping({ externalId: "Buchung", debit: "Soll", credit: "Haben", bookedDate: "Datum", fixedCurrency: "EUR" });
    expect(resolveColumns(german, named, named.length)).toEqual({ ok: false, repeated: { name: "Soll", fields: [2, 4, 6] } });
  });

  it("refuses a header naming an optional column twice (it would be picked up by name)", () => {
    const header = ["id", "amount", "currency", "date", "reference", "reference"];
    expect(resolveColumns(defaults, header, header.length)).toEqual({ ok: false, repeated: { name: "reference", fields: [5, 6] } });
  });

  it("resolves a mapping by position whatever names the header repeats", () => {
    const header = ["id", "amount", "amount", "currency", "date", "reference", "reference"];
    const byPosition = mapping({ externalId: 1, amount: 3, currency: 4, bookedDate: 5, reference: 7 });
    expect(resolveColumns(byPosition, header, header.length)).toEqual({
      ok: true,
      positions: new Map([["externalId", 0], ["amount", 2], ["currency", 3], ["bookedDate", 4], ["reference", 6]]),
    });
  });

  it("lets unmapped names repeat", () => {
    const header = ["id", "amount", "currency", "date", "note", "note", "", ""];
    expect(resolveColumns(defaults, header, header.length).ok).toBe(true);
  });

  it("lists the mapped columns a header lacks", () => {
    expect(resolveColumns(defaults, ["id", "currency", "date"], 3)).toEqual({ ok: false, missing: ['amount ("amount")'] });
  });
});
