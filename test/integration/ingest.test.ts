/**
 * CSV ingest end to end: files go through the real GraphQL multipart protocol into PostgreSQL, and the stored
 * records, row issues and upload states are read back. One fixture per case in test/fixtures/ingest/.
 */
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorCode, ok, startTestApp, type GraphQLResponse, type TestApp, type TestUser } from "../helpers/app.js";
import { holdIngests, waitUntilFinal } from "../helpers/ingest.js";

const fixture = (name: string) => readFileSync(join(import.meta.dirname, "../fixtures/ingest", name));

let t: TestApp;
let db: pg.Pool;
let analyst: TestUser;
let projectId: string;

const UPLOAD = `mutation Upload($source: ID!, $file: Upload!, $policy: IngestPolicy, $force: Boolean) {
  uploadDataSourceFile(dataSourceId: $source, file: $file, policy: $policy, force: $force) {
    id status fileName sha256 sizeBytes bytesRead rowsRead rowsIngested rowsRejected rowsFlagged error errorLine
    rowErrors(first: 100) { totalCount edges { node { line column reason severity } } }
  }
}`;

/** Sends one operation with one file, as the GraphQL multipart request spec says. */
async function multipart(query: string, variables: Record<string, unknown>, content: Buffer, fileName: string, token: string, headers: Record<string, string> = {}): Promise<GraphQLResponse> {
  const form = new FormData();
  form.append("operations", JSON.stringify({ query, variables: { ...variables, file: null } }));
  form.append("map", JSON.stringify({ 0: ["variables.file"] }));
  form.append("0", new Blob([new Uint8Array(content)], { type: "text/csv" }), fileName);
  const response = await fetch(t.url, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "apollo-require-preflight": "true", ...headers },
    body: form,
  });
  return { status: response.status, headers: response.headers, ...((await response.json()) as object) };
}

const upload = (source: string, name: string, options: { content?: Buffer; policy?: string; force?: boolean; token?: string } = {}) =>
  multipart(UPLOAD, { source, policy: options.policy, force: options.force }, options.content ?? fixture(name), name, options.token ?? analyst.token);
/** good.csv again into a source, forced. */
const upload_ = (source: string) => upload(source, "good.csv", { force: true });

/** The file as the body of `PUT /data-sources/<id>/file` (the CLI's and curl's route), with optional extra headers. */
async function put(source: string, name: string, options: { content?: Buffer; policy?: string; headers?: Record<string, string>; token?: string } = {}) {
  const target = new URL(`/data-sources/${source}/file`, t.url);
  target.searchParams.set("name", name);
  if (options.policy) target.searchParams.set("policy", options.policy);
  return fetch(target, {
    method: "PUT",
    headers: { authorization: `Bearer ${options.token ?? analyst.token}`, "content-type": "text/csv", ...options.headers },
    body: new Uint8Array(options.content ?? fixture(name)),
  });
}

const UPLOAD_READ = `query($id: ID!) { fileUpload(id: $id) {
  id status fileName rowsRead rowsIngested rowsRejected rowsFlagged error errorLine
  rowErrors(first: 100) { totalCount edges { node { line column reason severity } } }
} }`;

/** An upload read back through GraphQL, as a client following it would. */
async function readUpload(id: string) {
  return ok(await t.graphql(UPLOAD_READ, { id }, analyst.token)).fileUpload;
}

/** Uploads a file through the multipart mutation or the PUT route; the upload as GraphQL reads it afterwards. */
async function uploadVia(route: "multipart" | "PUT", source: string, name: string, policy?: string) {
  if (route === "multipart") return ok(await upload(source, name, { policy })).uploadDataSourceFile;
  const response = await put(source, name, { policy });
  expect(response.status).toBe(200);
  const { upload: summary } = (await response.json()) as { upload: { id: string } };
  return readUpload(summary.id);
}

const issuesOf = (result: any) => result.rowErrors.edges.map((edge: any) => edge.node);

/** The row problems previewDataSourceFile shows for a fixture under the source's mapping, in the form rowErrors lists them. */
async function previewIssues(source: string, name: string) {
  const response = await multipart(
    "mutation($source: ID!, $file: Upload!) { previewDataSourceFile(dataSourceId: $source, file: $file) { rows { errors { line column reason severity } } } }",
    { source },
    fixture(name),
    name,
    analyst.token,
  );
  return ok(response).previewDataSourceFile.rows.flatMap((row: any) => row.errors);
}

const WIN1252_HINT = "(is the file Windows-1252? then set the column mapping's encoding to WIN1252)";

async function createSource(name: string, columnMapping?: unknown): Promise<string> {
  const data = ok(
    await t.graphql(
      "mutation($p: ID!, $n: String!, $m: JSON) { createDataSource(input: { projectId: $p, name: $n, columnMapping: $m }) { id } }",
      { p: projectId, n: name, m: columnMapping },
      analyst.token,
    ),
  );
  return data.createDataSource.id;
}

async function records(fileId: string) {
  const { rows } = await db.query(
    `SELECT external_id, amount::text, currency, booked_date::text, value_date::text, reference, description, counterparty, row_number, extras
     FROM records WHERE file_id = $1 ORDER BY row_number`,
    [fileId],
  );
  return rows;
}

beforeAll(async () => {
  t = await startTestApp({ RECON_MAX_UPLOAD_BYTES: String(4 * 1024 * 1024), LOG_LEVEL: "error" });
  db = new pg.Pool({ connectionString: t.db.url, max: 2 });
  analyst = await t.createUser("ANALYST");
  projectId = ok(await t.graphql("mutation { createProject(input: { name: \"Ingest\" }) { id } }", {}, analyst.token)).createProject.id;
});
afterAll(async () => {
  await db?.end();
  await t?.close();
});

describe("ingest", () => {
  it("stores exact amounts, UTC dates, trimmed text and multi-line fields with their line numbers", async () => {
    const source = await createSource("Good");
    const result = ok(await upload(source, "good.csv")).uploadDataSourceFile;
    expect(result).toMatchObject({ status: "COMPLETED", fileName: "good.csv", rowsRead: 4, rowsIngested: 4, rowsRejected: 0, error: null });
    expect(result.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(result.sizeBytes).toBe(fixture("good.csv").length);
    expect(await records(result.id)).toEqual([
      expect.objectContaining({ external_id: "T-1", amount: "100.0000", currency: "EUR", booked_date: "2026-10-01", reference: "INV-1", counterparty: "ACME GmbH", row_number: 2 }),
      expect.objectContaining({ external_id: "T-2", amount: "-25.5000", currency: "EUR", description: "Refund, partial", row_number: 3 }),
      expect.objectContaining({ external_id: "T-3", amount: "1234567.8912", currency: "USD", description: "Multi\nline note", row_number: 4 }),
      expect.objectContaining({ external_id: "T-4", amount: "0.0100", currency: "GBP", reference: "", description: "padded", row_number: 6 }),
    ]);
    const source_ = ok(await t.graphql("query($p: ID!) { dataSources(projectId: $p) { id recordCount status } }", { p: projectId }, analyst.token));
    expect(source_.dataSources.find((s: any) => s.id === source)).toMatchObject({ recordCount: 4, status: "READY" });
  });

  it("skips invalid rows by default, naming line, column and reason, and flags duplicate ids", async () => {
    const source = await createSource("Mixed");
    const result = ok(await upload(source, "mixed-errors.csv")).uploadDataSourceFile;
    expect(result).toMatchObject({ status: "COMPLETED", rowsRead: 9, rowsIngested: 3, rowsRejected: 6, rowsFlagged: 2 });
    const issues = result.rowErrors.edges.map((edge: any) => edge.node);
    expect(issues).toEqual([
      { line: 2, column: "id", reason: "external id 'A-1' appears 2 times in this data source", severity: "WARNING" },
      { line: 3, column: "amount", reason: "'ten' is not a number", severity: "ERROR" },
      { line: 4, column: "currency", reason: "'EURO' is not a 3-letter ISO 4217 code", severity: "ERROR" },
      { line: 5, column: "date", reason: "'2026-02-30' is not a date in format YYYY-MM-DD", severity: "ERROR" },
      { line: 6, column: "id", reason: "is empty", severity: "ERROR" },
      { line: 7, column: "amount", reason: "'1.123456' has more than 4 decimal places", severity: "ERROR" },
      { line: 8, column: "(row)", reason: "expected 6 fields, found 7", severity: "ERROR" },
      { line: 10, column: "id", reason: "external id 'A-1' appears 2 times in this data source", severity: "WARNING" },
    ]);
    expect((await records(result.id)).map((row) => row.external_id)).toEqual(["A-1", "A-8", "A-1"]);
  });

  it("knows the calendar: month lengths, leap years, the accepted years 1900 to 2999", async () => {
    const source = await createSource("Calendar");
    const result = ok(await upload(source, "calendar.csv")).uploadDataSourceFile;
    expect((await records(result.id)).map((row) => row.booked_date)).toEqual(["2024-02-29", "2000-02-29", "2026-12-31", "2026-01-05", "2999-12-31"]);
    expect(result.rowErrors.edges.map((edge: any) => edge.node.line)).toEqual([3, 5, 6, 7, 10, 11]);
    expect(result.rowErrors.edges[0].node.reason).toBe("'2023-02-29' is not a date in format YYYY-MM-DD");
  });

  it("ingests nothing under REJECT_FILE when a row is invalid, but lists the rows", async () => {
    const source = await createSource("Strict");
    const result = ok(await upload(source, "mixed-errors.csv", { policy: "REJECT_FILE" })).uploadDataSourceFile;
    expect(result).toMatchObject({ status: "FAILED", rowsIngested: 0, rowsRejected: 6 });
    expect(result.error).toContain("REJECT_FILE");
    expect(result.rowErrors.totalCount).toBe(6);
    expect(await records(result.id)).toEqual([]);
  });

  it("ingests nothing under REJECT_FILE when the only invalid row is one the framer dropped (wrong field count)", async () => {
    const source = await createSource("Strict ragged");
    const result = ok(await upload(source, "ragged-row.csv", { policy: "REJECT_FILE" })).uploadDataSourceFile;
    expect(result).toMatchObject({ status: "FAILED", rowsRead: 3, rowsIngested: 0, rowsRejected: 1 });
    expect(result.rowErrors.edges.map((edge: any) => edge.node)).toEqual([
      { line: 3, column: "(row)", reason: "expected 6 fields, found 7", severity: "ERROR" },
    ]);
    const { rows } = await db.query("SELECT count(*)::int AS n FROM records WHERE data_source_id = $1", [source]);
    expect(rows[0].n).toBe(0);
  });

  const utf8 = (line: number, character: number) => `byte 0xFC at line ${line}, character ${character} is not valid UTF-8 ${WIN1252_HINT}`;
  it.each([
    ["all-rows-invalid-utf8.csv", {}, [
      { line: 2, column: "name", reason: utf8(2, 21), severity: "ERROR" },
      { line: 3, column: "name", reason: utf8(3, 21), severity: "ERROR" },
    ]],
    ["no-header-invalid-utf8.csv", { externalId: 1, amount: 2, currency: 3, bookedDate: 4, header: false }, [
      { line: 1, column: "column 5", reason: utf8(1, 21), severity: "ERROR" },
      { line: 2, column: "column 5", reason: utf8(2, 21), severity: "ERROR" },
    ]],
    ["all-rows-ragged.csv", {}, [
      { line: 2, column: "(row)", reason: "expected 4 fields, found 3", severity: "ERROR" },
      { line: 3, column: "(row)", reason: "expected 4 fields, found 5", severity: "ERROR" },
    ]],
  ])("lists every row of %s, whose every data row the framer drops, under either policy, and previews them alike", async (name, mapping, issues) => {
    const source = await createSource(`Dropped ${name}`, mapping);
    const skipped = ok(await upload(source, name)).uploadDataSourceFile;
    expect(skipped).toMatchObject({ status: "COMPLETED", rowsRead: 2, rowsIngested: 0, rowsRejected: 2, error: null, errorLine: null });
    expect(issuesOf(skipped)).toEqual(issues);
    const rejected = ok(await upload(source, name, { policy: "REJECT_FILE", force: true })).uploadDataSourceFile;
    const first = issues[0]!;
    expect(rejected).toMatchObject({ status: "FAILED", rowsRead: 2, rowsIngested: 0, rowsRejected: 2, errorLine: first.line });
    const where = first.column === "(row)" ? "the row as a whole" : `column ${first.column}`;
    expect(rejected.error).toBe(`2 invalid row(s): nothing was ingested (policy REJECT_FILE); the first is line ${first.line}, ${where}: ${first.reason}; see rowErrors`);
    expect(issuesOf(rejected)).toEqual(issues);
    expect(await previewIssues(source, name)).toEqual(issues);
  });

  it("names the first invalid row, its line and column in a REJECT_FILE refusal", async () => {
    const source = await createSource("Strict first");
    const result = ok(await upload(source, "mixed-errors.csv", { policy: "REJECT_FILE" })).uploadDataSourceFile;
    expect(result.error).toBe("6 invalid row(s): nothing was ingested (policy REJECT_FILE); the first is line 3, column amount: 'ten' is not a number; see rowErrors");
    expect(result.errorLine).toBe(3);
  });

  describe.each(["multipart", "PUT"] as const)("bytes that are not text in the declared encoding (%s)", (route) => {
    const utf8Issues = [
      { line: 3, column: "description", reason: `byte 0xE9 at line 3, character 32 is not valid UTF-8 ${WIN1252_HINT}`, severity: "ERROR" },
      { line: 4, column: "reference", reason: `byte 0xE2 at line 4, character 27 is not valid UTF-8 ${WIN1252_HINT}`, severity: "ERROR" },
      // A quoted field over two lines: the row starts on line 5, the byte is on line 6.
      { line: 5, column: "description", reason: `byte 0xFF at line 6, character 7 is not valid UTF-8 ${WIN1252_HINT}`, severity: "ERROR" },
    ];

    it("SKIP_INVALID_ROWS: rejects each such row with its line, column and character, and ingests the rest", async () => {
      const source = await createSource(`UTF-8 skip ${route}`);
      const result = await uploadVia(route, source, "invalid-utf8.csv");
      expect(result).toMatchObject({ status: "COMPLETED", rowsRead: 5, rowsIngested: 2, rowsRejected: 3, error: null, errorLine: null });
      expect(issuesOf(result)).toEqual(utf8Issues);
      expect((await records(result.id)).map((row) => [row.external_id, row.description, row.row_number])).toEqual([
        ["U-1", "Café crème", 2],
        ["U-5", "€ 5", 7],
      ]);
    });

    it("REJECT_FILE: ingests nothing, lists every such row, and names the first in the error", async () => {
      const source = await createSource(`UTF-8 reject ${route}`);
      const result = await uploadVia(route, source, "invalid-utf8.csv", "REJECT_FILE");
      expect(result).toMatchObject({ status: "FAILED", rowsRead: 5, rowsIngested: 0, rowsRejected: 3, errorLine: 3 });
      expect(result.error).toBe(`3 invalid row(s): nothing was ingested (policy REJECT_FILE); the first is line 3, column description: ${utf8Issues[0].reason}; see rowErrors`);
      expect(issuesOf(result)).toEqual(utf8Issues);
      expect(await records(result.id)).toEqual([]);
    });

    it("Windows-1252: rejects a row holding one of the five bytes it leaves undefined, under either policy", async () => {
      const mapping = { encoding: "WIN1252", delimiter: ";" };
      const issue = { line: 3, column: "description", reason: "byte 0x81 at line 3, character 39 is not a character in Windows-1252", severity: "ERROR" };
      const skipped = await uploadVia(route, await createSource(`Windows skip ${route}`, mapping), "invalid-win1252.csv");
      expect(skipped).toMatchObject({ status: "COMPLETED", rowsIngested: 2, rowsRejected: 1 });
      expect(issuesOf(skipped)).toEqual([issue]);
      expect((await records(skipped.id)).map((row) => [row.external_id, row.description])).toEqual([
        ["W-1", "Café € 5"],
        ["W-3", "œuvre"],
      ]);
      const rejected = await uploadVia(route, await createSource(`Windows reject ${route}`, mapping), "invalid-win1252.csv", "REJECT_FILE");
      expect(rejected).toMatchObject({ status: "FAILED", rowsIngested: 0, rowsRejected: 1, errorLine: 3 });
      expect(rejected.error).toContain(`the first is line 3, column description: ${issue.reason}`);
      expect(await records(rejected.id)).toEqual([]);
    });
  });

  it("refuses the same file twice unless forced", async () => {
    const source = await createSource("Twice");
    ok(await upload(source, "good.csv"));
    const again = await upload(source, "good.csv");
    expect(again.status).toBe(409);
    expect(errorCode(again)).toBe("DUPLICATE_FILE");
    const forced = ok(await upload(source, "good.csv", { force: true })).uploadDataSourceFile;
    expect(forced).toMatchObject({ status: "COMPLETED", rowsIngested: 4, rowsFlagged: 4 });
  });

  const structural: [string, string | Buffer, RegExp, number | null][] = [
    ["unterminated-quote.csv", "unterminated-quote.csv", /unterminated quoted field/, 3],
    ["binary.csv", "binary.csv", /binary/, 3],
    ["empty.csv", "empty.csv", /empty/, null],
    ["header-only.csv", "header-only.csv", /no data rows/, null],
    ["missing-columns.csv", "missing-columns.csv", /amount \("amount"\)/, 1],
    ["duplicate-header.csv", "duplicate-header.csv", /^line 1: the header has 'amount' twice \(fields 2 and 3\); map the column by position instead$/, 1],
    ["invalid-utf8-header.csv", "invalid-utf8-header.csv", /^line 1: byte 0xE4 at character 36 of the header \(its field 6\) is not valid UTF-8 \(is the file Windows-1252\?/, 1],
    ["a line over 1 MiB", Buffer.from(`id,amount,currency,date,reference,description\nL-1,1.00,EUR,2026-10-01,R,${"x".repeat(1024 * 1024 + 10)}\n`), /longer than 1048576 bytes/, 2],
  ];
  it.each(structural)("fails %s as a whole with a clear error and the line", async (name, file, message, line) => {
    const source = await createSource(`Broken ${name}`);
    const response = await upload(source, typeof file === "string" ? file : "long.csv", typeof file === "string" ? {} : { content: file });
    expect(response.status).toBe(422);
    expect(errorCode(response)).toBe("INVALID_FILE");
    expect(response.errors![0].message).toMatch(message);
    expect(response.errors![0].extensions?.line ?? null).toBe(line);
    const failed = ok(await t.graphql("query($id: ID!) { fileUpload(id: $id) { status error errorLine rowsIngested } }", { id: response.errors![0].extensions!.uploadId }, analyst.token));
    expect(failed.fileUpload).toMatchObject({ status: "FAILED", rowsIngested: 0, errorLine: line });
    const { rows } = await db.query("SELECT count(*)::int AS n FROM records WHERE data_source_id = $1", [source]);
    expect(rows[0].n).toBe(0);
  });

  it("refuses a file over the size limit with 413", async () => {
    const source = await createSource("Huge");
    const row = "T-9,1.00,EUR,2026-10-01,INV-9,filler,ACME\n";
    const big = Buffer.concat([fixture("good.csv"), Buffer.from(row.repeat(Math.ceil((5 * 1024 * 1024) / row.length)))]);
    const response = await upload(source, "huge.csv", { content: big });
    expect(response.status).toBe(413);
    expect(errorCode(response)).toBe("PAYLOAD_TOO_LARGE");
  });

  it("reads a UTF-8 BOM and Windows-1252", async () => {
    const bom = ok(await upload(await createSource("BOM"), "utf8-bom.csv")).uploadDataSourceFile;
    expect((await records(bom.id))[0]).toMatchObject({ external_id: "BOM-1", description: "Café crème" });
    const win = ok(await upload(await createSource("Windows", { encoding: "WIN1252" }), "windows-1252.csv")).uploadDataSourceFile;
    expect((await records(win.id))[0]).toMatchObject({ external_id: "W-1", description: "Café crème € 5" });
  });

  it("maps a German bank export: title rows, semicolons, debit/credit, decimal commas, DD.MM.YYYY", async () => {
    const source = await createSource("Girokonto", {
      externalId: "Buchung", debit: "Soll", credit: "Haben", currency: "Währung", bookedDate: "Datum",
      reference: "Verwendungszweck", counterparty: "Auftraggeber", delimiter: ";", decimalSeparator: ",",
      thousandsSeparator: ".", dateFormat: "DD.MM.YYYY", skipRows: 2,
    });
    const result = ok(await upload(source, "european.csv")).uploadDataSourceFile;
    expect(result).toMatchObject({ status: "COMPLETED", rowsIngested: 3, rowsRejected: 0 });
    expect((await records(result.id)).map((row) => [row.external_id, row.amount, row.booked_date, row.row_number])).toEqual([
      ["E-1", "-1234.5600", "2026-10-01", 4],
      ["E-2", "2000.0000", "2026-10-02", 5],
      ["E-3", "-0.9900", "2026-10-31", 6],
    ]);
  });

  it("refuses a debit or credit cell with a sign or parentheses as a row problem naming its column, and previews it alike", async () => {
    const source = await createSource("Split", { debit: "debit", credit: "credit" });
    const result = ok(await upload(source, "signed-debit-credit.csv")).uploadDataSourceFile;
    expect(result).toMatchObject({ status: "COMPLETED", rowsIngested: 2, rowsRejected: 4 });
    const sign = "has a sign: debit and credit columns hold unsigned amounts";
    const issues = [
      { line: 3, column: "debit", reason: `'-12.50' ${sign}`, severity: "ERROR" },
      { line: 4, column: "debit", reason: `'(3.00)' ${sign}`, severity: "ERROR" },
      { line: 5, column: "credit", reason: `'-4' ${sign}`, severity: "ERROR" },
      { line: 6, column: "credit", reason: `'+4' ${sign}`, severity: "ERROR" },
    ];
    expect(issuesOf(result)).toEqual(issues);
    expect((await records(result.id)).map((row) => [row.external_id, row.amount])).toEqual([["S-1", "-12.5000"], ["S-6", "-9999999999999999.9999"]]);
    expect(await previewIssues(source, "signed-debit-credit.csv")).toEqual(issues);
  });

  it("reads amounts by the mapping's separators only, quoting a refused cell as written, and previews them alike", async () => {
    const decimalComma = { delimiter: ";", decimalSeparator: "," };
    const plain = await createSource("Decimal comma", decimalComma);
    const result = ok(await upload(plain, "separators.csv")).uploadDataSourceFile;
    const notANumber = (line: number, cell: string) => ({ line, column: "amount", reason: `'${cell}' is not a number`, severity: "ERROR" });
    // Without a thousands separator, "." is no separator at all: "1.234" is not 1.234.
    const plainIssues = [notANumber(3, "1.234"), notANumber(5, "1.234,50"), notANumber(6, "12.50")];
    expect(issuesOf(result)).toEqual(plainIssues);
    expect((await records(result.id)).map((row) => [row.external_id, row.amount])).toEqual([["G-1", "1234.5000"], ["G-3", "-12.5000"]]);
    expect(await previewIssues(plain, "separators.csv")).toEqual(plainIssues);

    // With "." as thousands separator: only between groups of three digits.
    const grouped = await createSource("Decimal comma, thousands point", { ...decimalComma, thousandsSeparator: "." });
    const groupedResult = ok(await upload(grouped, "separators.csv")).uploadDataSourceFile;
    expect(issuesOf(groupedResult)).toEqual([notANumber(6, "12.50")]);
    expect((await records(groupedResult.id)).map((row) => [row.external_id, row.amount])).toEqual([
      ["G-1", "1234.5000"],
      ["G-2", "1234.0000"],
      ["G-3", "-12.5000"],
      ["G-4", "1234.5000"],
    ]);
    expect(await previewIssues(grouped, "separators.csv")).toEqual([notANumber(6, "12.50")]);
  });

  it("maps a header that repeats a mapped name by position, and keeps every unmapped column in extras under a key of its own", async () => {
    const byPosition = await createSource("Repeated by position", { externalId: 1, amount: 3, currency: 4, bookedDate: 5, header: true });
    const result = ok(await upload(byPosition, "duplicate-header.csv")).uploadDataSourceFile;
    expect((await records(result.id)).map((row) => [row.amount, row.extras])).toEqual([["2.0000", { amount: "1.00" }]]);
    const repeated = ok(await upload(await createSource("Repeated extras"), "duplicate-extras.csv")).uploadDataSourceFile;
    expect((await records(repeated.id))[0].extras).toEqual({ note: "first", column_6: "blank 6", "note (2)": "second", column_8: "blank 8", "note (3)": "third" });
    // The preview refuses a header that repeats a mapped name as the ingest does.
    const preview = await multipart(
      "mutation($source: ID!, $file: Upload!) { previewDataSourceFile(dataSourceId: $source, file: $file) { validRows } }",
      { source: await createSource("Repeated preview") },
      fixture("duplicate-header.csv"),
      "duplicate-header.csv",
      analyst.token,
    );
    expect(errorCode(preview)).toBe("INVALID_FILE");
    expect(preview.errors![0]).toMatchObject({ message: "line 1: the header has 'amount' twice (fields 2 and 3); map the column by position instead", extensions: { line: 1 } });
  });

  it("maps columns by position when there is no header, and a sign column", async () => {
    const positional = await createSource("Positional", { externalId: 1, currency: 2, bookedDate: 3, amount: 4, description: 5, header: false });
    const result = ok(await upload(positional, "no-header.csv")).uploadDataSourceFile;
    expect((await records(result.id)).map((row) => [row.external_id, row.amount, row.row_number])).toEqual([
      ["N-1", "42.0000", 1],
      ["N-2", "-17.2500", 2],
    ]);
    const signed = await createSource("Signed", { sign: { column: "dc", negativeValues: ["D", "DR"] } });
    const signedResult = ok(await upload(signed, "sign-column.csv")).uploadDataSourceFile;
    expect((await records(signedResult.id)).map((row) => row.amount)).toEqual(["50.0000", "-20.0000", "-5.0000"]);
  });

  it("previews the first rows with their errors and writes nothing", async () => {
    const source = await createSource("Preview");
    const response = await multipart(
      `mutation($source: ID!, $file: Upload!) { previewDataSourceFile(dataSourceId: $source, file: $file) {
        header validRows invalidRows rows { line externalId amount currency bookedDate errors { column reason } } } }`,
      { source },
      fixture("mixed-errors.csv"),
      "mixed-errors.csv",
      analyst.token,
    );
    const preview = ok(response).previewDataSourceFile;
    expect(preview.header).toEqual(["id", "amount", "currency", "date", "reference", "description"]);
    expect(preview).toMatchObject({ validRows: 3, invalidRows: 6 });
    expect(preview.rows[0]).toEqual({ line: 2, externalId: "A-1", amount: "10.0000", currency: "EUR", bookedDate: "2026-10-01", errors: [] });
    expect(preview.rows[1].errors).toEqual([{ column: "amount", reason: "'ten' is not a number" }]);
    const { rows } = await db.query("SELECT count(*)::int AS n FROM records WHERE data_source_id = $1", [source]);
    expect(rows[0].n).toBe(0);
  });

  it("previews rows with bytes invalid in the encoding as an ingest reports them", async () => {
    const source = await createSource("Preview encoding");
    const response = await multipart(
      `mutation($source: ID!, $file: Upload!) { previewDataSourceFile(dataSourceId: $source, file: $file) {
        validRows invalidRows rows { line externalId description errors { line column reason severity } } } }`,
      { source },
      fixture("invalid-utf8.csv"),
      "invalid-utf8.csv",
      analyst.token,
    );
    const preview = ok(response).previewDataSourceFile;
    expect(preview).toMatchObject({ validRows: 2, invalidRows: 3 });
    expect(preview.rows.map((row: any) => [row.line, row.externalId, row.errors.map((error: any) => `${error.line} ${error.column}: ${error.reason}`)])).toEqual([
      [2, "U-1", []],
      [3, "", [`3 description: byte 0xE9 at line 3, character 32 is not valid UTF-8 ${WIN1252_HINT}`]],
      [4, "", [`4 reference: byte 0xE2 at line 4, character 27 is not valid UTF-8 ${WIN1252_HINT}`]],
      [5, "", [`5 description: byte 0xFF at line 6, character 7 is not valid UTF-8 ${WIN1252_HINT}`]],
      [7, "U-5", []],
    ]);
    // The same through a trial mapping that reads the file as Windows-1252: every byte is text then.
    const asWindows = ok(await multipart(
      `mutation($source: ID!, $file: Upload!, $m: JSON) { previewDataSourceFile(dataSourceId: $source, file: $file, columnMapping: $m) { validRows invalidRows } }`,
      { source, m: { encoding: "WIN1252" } },
      fixture("invalid-utf8.csv"),
      "invalid-utf8.csv",
      analyst.token,
    )).previewDataSourceFile;
    expect(asWindows).toEqual({ validRows: 5, invalidRows: 0 });
  });

  it("refuses uploads from viewers and outsiders, and refuses an invalid column mapping by field", async () => {
    const source = await createSource("Guarded");
    const outsider = await t.createUser("ANALYST");
    expect(errorCode(await upload(source, "good.csv", { token: outsider.token }))).toBe("NOT_FOUND");
    // An upload one may not see reads as missing; a member sees it.
    const mine = ok(await upload(source, "good.csv")).uploadDataSourceFile.id;
    const read = "query($id: ID!) { fileUpload(id: $id) { id rowsIngested dataSource { id } uploadedBy { id } } }";
    expect(ok(await t.graphql(read, { id: mine }, outsider.token)).fileUpload).toBeNull();
    expect(ok(await t.graphql(read, { id: mine }, analyst.token)).fileUpload).toMatchObject({ id: mine, rowsIngested: 4, uploadedBy: { id: analyst.id } });
    const preview = await multipart(
      "mutation($source: ID!, $file: Upload!) { previewDataSourceFile(dataSourceId: $source, file: $file) { validRows } }",
      { source }, fixture("good.csv"), "good.csv", outsider.token,
    );
    expect(errorCode(preview)).toBe("NOT_FOUND");
    const viewer = await t.createUser("VIEWER");
    ok(await t.graphql("mutation($p: ID!, $u: ID!) { addProjectMember(projectId: $p, userId: $u, role: ANALYST) { id } }", { p: projectId, u: viewer.id }, analyst.token));
    expect(errorCode(await upload(source, "good.csv", { token: viewer.token }))).toBe("FORBIDDEN");
    const bad = await t.graphql(
      "mutation($p: ID!) { createDataSource(input: { projectId: $p, name: \"Bad\", columnMapping: { dateFormat: \"DD/MM/YY\" } }) { id } }",
      { p: projectId },
      analyst.token,
    );
    expect(errorCode(bad)).toBe("BAD_USER_INPUT");
    expect(bad.errors![0].extensions?.field).toBe("input.columnMapping.dateFormat");
  });

  it("refuses a digit or a line break as the delimiter or the quote (the framer's line prefix), naming the setting", async () => {
    const create = (columnMapping: unknown) =>
      t.graphql("mutation($p: ID!, $m: JSON) { createDataSource(input: { projectId: $p, name: \"Odd\", columnMapping: $m }) { id } }", { p: projectId, m: columnMapping }, analyst.token);
    for (const [columnMapping, field] of [
      [{ delimiter: "1" }, "input.columnMapping.delimiter"],
      [{ quote: "0" }, "input.columnMapping.quote"],
      [{ quote: "\n" }, "input.columnMapping.quote"],
      [{ delimiter: "\r" }, "input.columnMapping.delimiter"],
      [{ delimiter: "'", quote: "'" }, "input.columnMapping.delimiter"],
    ] as const) {
      const refused = await create(columnMapping);
      expect(errorCode(refused), JSON.stringify(columnMapping)).toBe("BAD_USER_INPUT");
      expect(refused.errors![0].extensions?.field).toBe(field);
    }
    // A trial mapping in the preview is checked the same way.
    const preview = await multipart(
      "mutation($source: ID!, $file: Upload!, $m: JSON) { previewDataSourceFile(dataSourceId: $source, file: $file, columnMapping: $m) { validRows } }",
      { source: await createSource("Odd preview"), m: { quote: "1" } },
      fixture("good.csv"),
      "good.csv",
      analyst.token,
    );
    expect(errorCode(preview)).toBe("BAD_USER_INPUT");
    expect(preview.errors![0].extensions?.field).toBe("columnMapping.quote");
  });

  it("rejects a multipart request without Apollo's CSRF preflight header", async () => {
    const source = await createSource("Csrf");
    const form = new FormData();
    form.append("operations", JSON.stringify({ query: UPLOAD, variables: { source, file: null } }));
    form.append("map", JSON.stringify({ 0: ["variables.file"] }));
    form.append("0", new Blob([new Uint8Array(fixture("good.csv"))]), "good.csv");
    const response = await fetch(t.url, { method: "POST", headers: { authorization: `Bearer ${analyst.token}` }, body: form });
    expect(response.status).toBe(400);
    const { rows } = await db.query("SELECT count(*)::int AS n FROM uploaded_files WHERE data_source_id = $1", [source]);
    expect(rows[0].n).toBe(0);
  });

  it("ties records to their upload's project and data source: they go when the project goes", async () => {
    const other = ok(await t.graphql("mutation { createProject(input: { name: \"Short-lived\" }) { id } }", {}, analyst.token)).createProject.id;
    const source = ok(
      await t.graphql("mutation($p: ID!) { createDataSource(input: { projectId: $p, name: \"Bank\" }) { id } }", { p: other }, analyst.token),
    ).createDataSource.id;
    const result = ok(await upload(source, "good.csv")).uploadDataSourceFile;
    expect(await records(result.id)).toHaveLength(4);

    // A record cannot name another project or data source than its upload's (one composite foreign key).
    const misfiled = db.query(
      `INSERT INTO records (id, project_id, data_source_id, file_id, external_id, amount, currency, booked_date, row_number)
       VALUES (gen_random_uuid(), $1, $2, $3, 'X', 1, 'EUR', '2026-01-01', 99)`,
      [projectId, source, result.id],
    );
    await expect(misfiled).rejects.toMatchObject({ code: "23503" });

    ok(await t.graphql("mutation($id: ID!) { deleteProject(id: $id) }", { id: other }, analyst.token));
    const { rows } = await db.query("SELECT count(*)::int AS n FROM records WHERE data_source_id = $1", [source]);
    expect(rows[0].n).toBe(0);
  });
});

describe("answering early (Prefer: respond-async)", () => {
  const asyncHeaders = { prefer: "respond-async" };
  const final = (id: string) => waitUntilFinal(() => readUpload(id));

  it("answers 202 once the file is in, then commits in the background; Location and fileUpload follow it", async () => {
    const source = await createSource("Async PUT");
    const release = await holdIngests(db);
    let id: string;
    let heldUntil: Date;
    try {
      const response = await put(source, "good.csv", { headers: asyncHeaders });
      expect(response.status).toBe(202);
      expect(response.headers.get("preference-applied")).toBe("respond-async");
      const { upload } = (await response.json()) as { upload: Record<string, any> };
      id = upload.id;
      // The whole file was read before the answer; nothing is committed yet.
      expect(upload).toMatchObject({ status: "PROCESSING", bytesRead: fixture("good.csv").length, rowsRead: 4, rowsIngested: 0, error: null });
      expect(response.headers.get("location")).toBe(`/uploads/${id}`);
      const monitor = await fetch(new URL(response.headers.get("location")!, t.url), { headers: { authorization: `Bearer ${analyst.token}` } });
      expect(monitor.status).toBe(200);
      expect(((await monitor.json()) as any).upload).toMatchObject({ id, status: "PROCESSING", rowsRead: 4 });
      expect(await readUpload(id)).toMatchObject({ status: "PROCESSING", rowsIngested: 0 });
      expect(await records(id)).toEqual([]);
      heldUntil = (await db.query<{ at: Date }>("SELECT clock_timestamp() AS at")).rows[0]!.at;
    } finally {
      await release();
    }
    expect(await final(id)).toMatchObject({ status: "COMPLETED", rowsRead: 4, rowsIngested: 4, rowsRejected: 0, error: null });
    // Stamped completed when it committed (after the hold), not when its transaction began (before the 202).
    const { rows: [stamps] } = await db.query<{ completed_at: Date }>("SELECT completed_at FROM uploaded_files WHERE id = $1", [id]);
    expect(stamps!.completed_at.getTime()).toBeGreaterThan(heldUntil!.getTime());
    expect((await records(id)).map((row) => row.external_id)).toEqual(["T-1", "T-2", "T-3", "T-4"]);
    const monitor = await fetch(new URL(`/uploads/${id}`, t.url), { headers: { authorization: `Bearer ${analyst.token}` } });
    expect(((await monitor.json()) as any).upload).toMatchObject({ status: "COMPLETED", rowsIngested: 4, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    // An upload one may not see reads as missing.
    const outsider = await t.createUser("ANALYST");
    expect((await fetch(new URL(`/uploads/${id}`, t.url), { headers: { authorization: `Bearer ${outsider.token}` } })).status).toBe(404);
  });

  it("with wait=<seconds>, answers the final upload if the ingest is over by then, else the 202 then", async () => {
    /** Resolves once the source's upload has its whole file in and is still PROCESSING (held). */
    const fileIn = async (source: string, size: number) => {
      for (;;) {
        const { rows } = await db.query("SELECT status, bytes_read FROM uploaded_files WHERE data_source_id = $1", [source]);
        if (rows[0]?.status === "PROCESSING" && Number(rows[0].bytes_read) === size) return;
      }
    };
    const size = fixture("good.csv").length;
    // A long wait: the ingest, held until the file is in, then let go, finishes within it: the answer is final.
    const patient = await createSource("Async wait PUT");
    let release = await holdIngests(db);
    const answer = put(patient, "good.csv", { headers: { prefer: "respond-async, wait=120" } });
    try {
      await fileIn(patient, size);
    } finally {
      await release();
    }
    const response = await answer;
    expect(response.status).toBe(200);
    expect(response.headers.get("preference-applied")).toBeNull();
    expect(((await response.json()) as any).upload).toMatchObject({ status: "COMPLETED", rowsIngested: 4 });
    // The same through the multipart mutation.
    const viaGraphQL = await createSource("Async wait multipart");
    release = await holdIngests(db);
    const mutation = multipart(UPLOAD, { source: viaGraphQL }, fixture("good.csv"), "good.csv", analyst.token, { prefer: "respond-async, wait=120" });
    try {
      await fileIn(viaGraphQL, size);
    } finally {
      await release();
    }
    const result = await mutation;
    expect(result.headers.get("preference-applied")).toBeNull();
    expect(ok(result).uploadDataSourceFile).toMatchObject({ status: "COMPLETED", rowsIngested: 4 });
    // A wait shorter than the hold: the 202 comes when it is up.
    const hurried = await createSource("Async short wait");
    release = await holdIngests(db);
    let id: string;
    try {
      const early = await put(hurried, "good.csv", { headers: { prefer: "respond-async; foo, wait=1" } });
      expect(early.status).toBe(202);
      expect(early.headers.get("preference-applied")).toBe("respond-async");
      id = (((await early.json()) as any).upload as { id: string }).id;
    } finally {
      await release();
    }
    expect(await final(id)).toMatchObject({ status: "COMPLETED", rowsIngested: 4 });
  });

  it("ends FAILED, with the line in its error, when the file turns out invalid after the 202 (REJECT_FILE)", async () => {
    const source = await createSource("Async reject");
    const good = (i: number) => `L-${i},${i}.00,EUR,2026-10-01,R${i},row ${i}\n`;
    const rows = Array.from({ length: 500 }, (_, i) => good(i)).join("");
    const content = Buffer.from(`id,amount,currency,date,reference,description\n${rows}L-bad,ten,EUR,2026-10-01,RX,bad amount\n${good(501)}`);
    const release = await holdIngests(db);
    let id: string;
    try {
      const response = await put(source, "late-error.csv", { content, policy: "REJECT_FILE", headers: asyncHeaders });
      expect(response.status).toBe(202);
      id = ((await response.json()) as any).upload.id;
    } finally {
      await release();
    }
    const upload = await final(id);
    expect(upload).toMatchObject({ status: "FAILED", rowsRead: 502, rowsIngested: 0, rowsRejected: 1, errorLine: 502 });
    expect(upload.error).toBe("1 invalid row(s): nothing was ingested (policy REJECT_FILE); the first is line 502, column amount: 'ten' is not a number; see rowErrors");
    expect(issuesOf(upload)).toEqual([{ line: 502, column: "amount", reason: "'ten' is not a number", severity: "ERROR" }]);
    expect(await records(id)).toEqual([]);
  });

  it("answers problems found while the file streams at once, as without the preference", async () => {
    const source = await createSource("Async broken");
    const response = await put(source, "unterminated-quote.csv", { headers: asyncHeaders });
    expect(response.status).toBe(422);
    expect(response.headers.get("preference-applied")).toBeNull();
    const body = (await response.json()) as any;
    expect(body.errors[0]).toMatchObject({ message: expect.stringMatching(/unterminated quoted field/), extensions: { code: "INVALID_FILE", line: 3 } });
    ok(await upload(source, "good.csv"));
    const duplicate = await put(source, "good.csv", { headers: asyncHeaders });
    expect(duplicate.status).toBe(409);
  });

  it("keeps the per-instance ingest limit until the ingest is over, not until the answer", async () => {
    const sources = [await createSource("Async limit 1"), await createSource("Async limit 2"), await createSource("Async limit 3")];
    const release = await holdIngests(db);
    const ids: string[] = [];
    try {
      for (const source of sources.slice(0, 2)) {
        const response = await put(source, "good.csv", { headers: asyncHeaders });
        expect(response.status).toBe(202);
        ids.push(((await response.json()) as any).upload.id);
      }
      // Both answered, both still ingesting: the limit (2) is reached.
      const refused = await put(sources[2], "good.csv", { headers: asyncHeaders });
      expect(refused.status).toBe(429);
      expect(((await refused.json()) as any).errors[0].extensions.code).toBe("TOO_MANY_INGESTS");
    } finally {
      await release();
    }
    for (const id of ids) expect(await final(id)).toMatchObject({ status: "COMPLETED", rowsIngested: 4 });
    const now = await put(sources[2], "good.csv", { headers: asyncHeaders });
    expect([200, 202]).toContain(now.status);
  });

  it("ingests the same file sent twice at once (a double submit) only once", async () => {
    const source = await createSource("Double submit");
    const release = await holdIngests(db);
    let first: string;
    let second: Promise<Response>;
    try {
      // The first is past its duplicate check (answered 202) and held before its rows are written.
      const answered = await put(source, "good.csv", { headers: asyncHeaders });
      expect(answered.status).toBe(202);
      first = ((await answered.json()) as any).upload.id;
      // The second arrives before the first commits; it is in, and waiting, once a second ingest waits on a lock.
      second = put(source, "good.csv", { headers: asyncHeaders });
      await expect
        .poll(async () => (await db.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).rows[0].n)
        .toBe(2);
    } finally {
      await release();
    }
    expect(await final(first)).toMatchObject({ status: "COMPLETED", rowsIngested: 4 });
    const refused = await second;
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as any).errors[0].extensions.code).toBe("DUPLICATE_FILE");
    const { rows } = await db.query("SELECT count(*)::int AS n FROM records WHERE data_source_id = $1", [source]);
    expect(rows[0].n).toBe(4);
  });

  it("answers the multipart mutation as soon as its file is in, saying so with Preference-Applied", async () => {
    const source = await createSource("Async multipart");
    const release = await holdIngests(db);
    let id: string;
    try {
      const response = await multipart(UPLOAD, { source }, fixture("good.csv"), "good.csv", analyst.token, asyncHeaders);
      expect(response.status).toBe(200);
      expect(response.headers.get("preference-applied")).toBe("respond-async");
      const answered = ok(response).uploadDataSourceFile;
      expect(answered).toMatchObject({ status: "PROCESSING", rowsRead: 4, rowsIngested: 0 });
      id = answered.id;
    } finally {
      await release();
    }
    expect(await final(id)).toMatchObject({ status: "COMPLETED", rowsIngested: 4 });
    // Without the preference, the mutation answers when the ingest is over, as before.
    const waited = await multipart(UPLOAD, { source, force: true }, fixture("good.csv"), "good.csv", analyst.token);
    expect(waited.headers.get("preference-applied")).toBeNull();
    expect(ok(waited).uploadDataSourceFile).toMatchObject({ status: "COMPLETED" });
  });

  it("ends FAILED, with nothing written, when the ingest's database connection is lost after the 202", async () => {
    const source = await createSource("Async lost");
    const release = await holdIngests(db);
    let id: string;
    try {
      const response = await put(source, "good.csv", { headers: asyncHeaders });
      expect(response.status).toBe(202);
      id = ((await response.json()) as any).upload.id;
      // The ingest waits on the held lock in its validating statement: cut its connection there.
      let pid: number | undefined;
      for (let tries = 0; !pid && tries < 100; tries++) {
        const { rows } = await db.query("SELECT pid FROM pg_locks WHERE relation = 'upload_row_issues'::regclass AND NOT granted");
        pid = rows[0]?.pid;
        if (!pid) await sleep(20);
      }
      expect(pid).toBeDefined();
      await db.query("SELECT pg_terminate_backend($1)", [pid]);
    } finally {
      await release();
    }
    const upload = await final(id);
    expect(upload).toMatchObject({ status: "FAILED", rowsIngested: 0 });
    expect(upload.error).toBe("The database cannot be reached; retry shortly (nothing of the file was ingested)");
    expect(await records(id)).toEqual([]);
    // Its slot was given back.
    ok(await upload_(source));
  });

  it("makes shutdown wait for ingests answered early", async () => {
    const second = await startTestApp({ LOG_LEVEL: "silent" }, { database: t.db });
    const source = await createSource("Async shutdown");
    const release = await holdIngests(db);
    let closed = false;
    let closing: Promise<void> | undefined;
    let id: string;
    try {
      const target = new URL(`/data-sources/${source}/file?name=good.csv`, second.url);
      const response = await fetch(target, { method: "PUT", headers: { authorization: `Bearer ${analyst.token}`, ...asyncHeaders }, body: new Uint8Array(fixture("good.csv")) });
      expect(response.status).toBe(202);
      id = ((await response.json()) as any).upload.id;
      closing = second.close().then(() => void (closed = true));
      await sleep(300);
      expect(closed).toBe(false);
    } finally {
      await release();
    }
    await closing;
    expect(await readUpload(id)).toMatchObject({ status: "COMPLETED", rowsIngested: 4 });
  });

  it("does not let recovery (on any instance) touch an ingest that is running, answered early or not", async () => {
    const source = await createSource("Async recovery");
    const release = await holdIngests(db);
    let id: string;
    try {
      const response = await put(source, "good.csv", { headers: asyncHeaders });
      id = ((await response.json()) as any).upload.id;
      await t.app.container.services.ingest.recoverInterrupted();
      expect(await readUpload(id)).toMatchObject({ status: "PROCESSING" });
    } finally {
      await release();
    }
    expect(await final(id)).toMatchObject({ status: "COMPLETED" });
  });
});

describe("crash recovery", () => {
  it("marks uploads whose ingest died as FAILED at start, and leaves a running one alone", async () => {
    const source = await createSource("Crashed");
    const insert = `INSERT INTO uploaded_files (id, project_id, data_source_id, uploaded_by, file_name, sha256, status)
      VALUES (gen_random_uuid(), $1, $2, $3, 'crashed.csv', '', 'PROCESSING') RETURNING id`;
    const dead = (await db.query(insert, [projectId, source, analyst.id])).rows[0].id;
    const alive = (await db.query(insert, [projectId, source, analyst.id])).rows[0].id;
    // A live ingest holds its upload's advisory lock while it runs (the ingest service holds it on its session).
    const live = await db.connect();
    await live.query("BEGIN");
    await live.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [`upload:${alive}`]);
    try {
      await t.app.container.services.ingest.recoverInterrupted();
    } finally {
      await live.query("ROLLBACK");
      live.release();
    }
    const { rows } = await db.query("SELECT id, status, error FROM uploaded_files WHERE id = ANY($1)", [[dead, alive]]);
    const byId = new Map(rows.map((row) => [row.id, row]));
    expect(byId.get(dead)).toMatchObject({ status: "FAILED", error: expect.stringContaining("interrupted") });
    expect(byId.get(alive)).toMatchObject({ status: "PROCESSING" });
  });
});
