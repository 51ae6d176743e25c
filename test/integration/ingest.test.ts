/**
 * CSV ingest end to end: files go through the real GraphQL multipart protocol into PostgreSQL, and the stored
 * records, row issues and upload states are read back. One fixture per case in test/fixtures/ingest/.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorCode, ok, startTestApp, type GraphQLResponse, type TestApp, type TestUser } from "../helpers/app.js";

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
async function multipart(query: string, variables: Record<string, unknown>, content: Buffer, fileName: string, token: string): Promise<GraphQLResponse> {
  const form = new FormData();
  form.append("operations", JSON.stringify({ query, variables: { ...variables, file: null } }));
  form.append("map", JSON.stringify({ 0: ["variables.file"] }));
  form.append("0", new Blob([new Uint8Array(content)], { type: "text/csv" }), fileName);
  const response = await fetch(t.url, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "apollo-require-preflight": "true" },
    body: form,
  });
  return { status: response.status, headers: response.headers, ...((await response.json()) as object) };
}

const upload = (source: string, name: string, options: { content?: Buffer; policy?: string; force?: boolean; token?: string } = {}) =>
  multipart(UPLOAD, { source, policy: options.policy, force: options.force }, options.content ?? fixture(name), name, options.token ?? analyst.token);

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

describe("crash recovery", () => {
  it("marks uploads whose ingest died as FAILED at start, and leaves a running one alone", async () => {
    const source = await createSource("Crashed");
    const insert = `INSERT INTO uploaded_files (id, project_id, data_source_id, uploaded_by, file_name, sha256, status)
      VALUES (gen_random_uuid(), $1, $2, $3, 'crashed.csv', '', 'PROCESSING') RETURNING id`;
    const dead = (await db.query(insert, [projectId, source, analyst.id])).rows[0].id;
    const alive = (await db.query(insert, [projectId, source, analyst.id])).rows[0].id;
    // A live ingest holds its upload's advisory lock for its whole transaction (as ingestFile does).
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
