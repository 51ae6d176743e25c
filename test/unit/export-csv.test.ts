/** The export's CSV cells and signed links, without a server: formula neutralization, COPY text, signatures. */
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createExportLinks, ExportLinkError } from "../../src/auth/export-links.js";
import { batchChunks, copyLinesToRows, csvWriter, EXPORT_COLUMNS, neutralize, rowOfCopyLine } from "../../src/modules/exports/export-csv.js";

describe("neutralize", () => {
  const cases: [string, string][] = [
    ["=1+1", "'=1+1"],
    ["+SUM(A1)", "'+SUM(A1)"],
    ["-2+3", "'-2+3"],
    ["@SUM(A1)", "'@SUM(A1)"],
    ["\tindented", "'\tindented"],
    ["\rreturn", "'\rreturn"],
    ["plain", "plain"],
    ["a=b", "a=b"],
    ["", ""],
  ];
  for (const [cell, expected] of cases) it(`${JSON.stringify(cell)} → ${JSON.stringify(expected)}`, () => expect(neutralize(cell)).toBe(expected));
});

/** A COPY text line in EXPORT_COLUMNS order with the given overrides. */
function copyLine(overrides: Partial<Record<(typeof EXPORT_COLUMNS)[number], string>>): string {
  const base: Record<string, string> = {
    group_id: "g", outcome: "MATCHED", kind: "ONE_TO_ONE", status: "CONFIRMED", confidence: "1.0000", pass: "1", rule: "exact",
    amount_delta: "-0.5000", date_delta_days: "-3", side: "LEFT", record_id: "r", external_id: "L-1", amount: "-12.5000",
    currency: "EUR", booked_date: "2026-03-01", value_date: "\\N", reference: "INV-1", description: "d", counterparty: "c",
  };
  return EXPORT_COLUMNS.map((name) => overrides[name] ?? base[name]).join("\t");
}

describe("rowOfCopyLine", () => {
  it("neutralizes text columns only: negative amounts, deltas and day counts stay numbers", () => {
    const row = rowOfCopyLine(copyLine({ reference: "=HYPERLINK(1)", description: "-cmd", counterparty: "@x", rule: "+r", external_id: "-5" }));
    expect(row[EXPORT_COLUMNS.indexOf("reference")]).toBe("'=HYPERLINK(1)");
    expect(row[EXPORT_COLUMNS.indexOf("description")]).toBe("'-cmd");
    expect(row[EXPORT_COLUMNS.indexOf("counterparty")]).toBe("'@x");
    expect(row[EXPORT_COLUMNS.indexOf("rule")]).toBe("'+r");
    expect(row[EXPORT_COLUMNS.indexOf("external_id")]).toBe("'-5");
    expect(row[EXPORT_COLUMNS.indexOf("amount")]).toBe("-12.5000");
    expect(row[EXPORT_COLUMNS.indexOf("amount_delta")]).toBe("-0.5000");
    expect(row[EXPORT_COLUMNS.indexOf("date_delta_days")]).toBe("-3");
    expect(row[EXPORT_COLUMNS.indexOf("value_date")]).toBe("");
  });

  it("undoes COPY's escapes before neutralizing (a tab in the data is a tab)", () => {
    const row = rowOfCopyLine(copyLine({ description: "\\tTabbed\\nline, \\\\ backslash" }));
    expect(row[EXPORT_COLUMNS.indexOf("description")]).toBe("'\tTabbed\nline, \\ backslash");
  });
});

describe("the CSV stream", () => {
  it("writes a header and quoted rows in CRLF lines, whatever the chunking of the COPY text", async () => {
    const text = `${copyLine({ description: 'say "hi", then go' })}\n${copyLine({ reference: "é€" })}\n`;
    const bytes = Buffer.from(text);
    // Chunks cut inside a line and inside a multi-byte character.
    const cut = bytes.indexOf(Buffer.from("€")) + 1;
    const source = Readable.from([bytes.subarray(0, 10), bytes.subarray(10, cut), bytes.subarray(cut)]);
    let out = "";
    for await (const chunk of source.pipe(copyLinesToRows()).pipe(csvWriter()).pipe(batchChunks(16))) out += chunk.toString();
    const lines = out.split("\r\n");
    expect(lines[0]).toBe(EXPORT_COLUMNS.join(","));
    expect(lines[1]).toContain(',"say ""hi"", then go",');
    expect(lines[2]).toContain(",é€,");
    expect(lines).toHaveLength(4);
    expect(lines[3]).toBe("");
  });
});

describe("export links", () => {
  const links = createExportLinks("a-secret-that-is-long-enough-for-tests-00", 300);
  const claims = { viewerId: "v", jobId: "00000000-0000-4000-8000-000000000001", outcome: "ALL" };
  const search = (url: string) => new URL(url, "http://x").searchParams;

  it("verifies its own links until they expire", () => {
    const { url, expiresAt } = links.sign(claims);
    expect(links.verify(claims.jobId, search(url))).toEqual({ ...claims, expiresAt });
    expect(() => links.verify(claims.jobId, search(url), expiresAt.getTime())).toThrow(ExportLinkError);
    expect(() => links.verify(claims.jobId, search(url), expiresAt.getTime())).toThrow(/expired at/);
  });

  it("refuses another job's path, another key's signature, and links missing a parameter", () => {
    const { url } = links.sign(claims);
    expect(() => links.verify("00000000-0000-4000-8000-000000000002", search(url))).toThrow(/signature does not match/);
    const other = createExportLinks("another-secret-that-is-long-enough-000000", 300).sign(claims);
    expect(() => links.verify(claims.jobId, search(other.url))).toThrow(/signature does not match/);
    const missing = search(url);
    missing.delete("viewer");
    expect(() => links.verify(claims.jobId, missing)).toThrow("The export link has no viewer parameter");
  });
});
