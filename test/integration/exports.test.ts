/**
 * Exports through the front door: a job produced by a real reconciliation (files uploaded, job run by a worker,
 * followed over graphql-ws) is exported through `exportJobResults` and its signed link over real HTTP; the CSV is
 * parsed back and compared with the results GraphQL gives, cells a spreadsheet would run as formulas come back
 * neutralized, and the link is refused to anyone but its viewer while they may read the job, once expired, or
 * when changed in any way.
 */
import { parseString } from "@fast-csv/parse";
import { createClient } from "graphql-ws";
import pg from "pg";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExportJobResultsDocument } from "../../operations/generated/graphql.js";
import { createExportLinks } from "../../src/auth/export-links.js";
import { EXPORT_COLUMNS, neutralize } from "../../src/modules/exports/export-csv.js";
import { errorCode, ok, persistedQuery, startTestApp, type TestApp, type TestUser } from "../helpers/app.js";
import { uploadCsv } from "../helpers/jobs.js";

/** startTestApp's RECON_JWT_SECRET: links signed with it are what the server would sign. */
const TEST_SECRET = "a-test-secret-that-is-long-enough-123456";

let t: TestApp;
let db: pg.Pool;
let analyst: TestUser;
let outsider: TestUser;
let projectId: string;
let jobId: string;

/** Ledger and bank lines with matches, splits, amount mismatches, unmatched lines and formula-like cells. */
function files(): { ledger: string; bank: string } {
  const header = "id,date,amount,currency,reference,description,counterparty";
  const ledger = [header];
  const bank = [header];
  const money = (cents: number) => `${cents < 0 ? "-" : ""}${Math.floor(Math.abs(cents) / 100)}.${String(Math.abs(cents) % 100).padStart(2, "0")}`;
  for (let i = 1; i <= 240; i++) {
    const date = `2026-03-${String(1 + (i % 28)).padStart(2, "0")}`;
    const cents = (i % 10 === 0 ? -1 : 1) * (1000 + i * 731);
    const reference = i === 7 ? "+SUM(1;2)" : `INV-${1000 + i}`;
    const description = i === 3 ? '=HYPERLINK("http://evil.example","click")' : i === 4 ? "\tindented" : `Invoice ${i}, "quoted"`;
    const counterparty = i === 5 ? "@SUM(A1:A9)" : i === 6 ? "-2+3" : `Customer ${i % 17}`;
    const quote = (text: string) => `"${text.replace(/"/g, '""')}"`;
    ledger.push([`L-${i}`, date, money(cents), "EUR", quote(reference), quote(description), quote(counterparty)].join(","));
    if (i % 20 === 0) continue; // unmatched on the left
    if (i % 25 === 0) {
      // split 1:2 by reference
      const first = Math.trunc(cents / 3);
      bank.push([`B-${i}a`, date, money(first), "EUR", quote(reference), "part 1", "Bank"].join(","));
      bank.push([`B-${i}b`, date, money(cents - first), "EUR", quote(reference), "part 2", "Bank"].join(","));
      continue;
    }
    const off = i % 15 === 0 ? 500 : 0; // five off: an amount mismatch
    bank.push([`B-${i}`, date, money(cents + off), "EUR", quote(reference), quote(description), quote(counterparty)].join(","));
  }
  for (let i = 1; i <= 6; i++) bank.push([`B-extra-${i}`, "2026-03-10", money(99_00 + i), "EUR", `UNKNOWN-${i}`, "=1+1", "Nobody"].join(","));
  return { ledger: ledger.join("\n") + "\n", bank: bank.join("\n") + "\n" };
}

/** Resolves when the job's subscription reports it finished (no polling, no sleeps). */
async function finished(id: string, token: string): Promise<string> {
  const client = createClient({ url: t.url.replace(/^http/, "ws"), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  try {
    let status = "";
    for await (const result of client.iterate<{ jobProgress: { status: string } }>({ query: `subscription($id: ID!) { jobProgress(jobId: $id) { status } }`, variables: { id } })) {
      status = result.data!.jobProgress.status;
    }
    return status;
  } finally {
    await client.dispose();
  }
}

/** `token` "" sends none. */
async function exportLink(variables: Record<string, unknown>, token = analyst.token) {
  return t.graphqlBody<{ exportJobResults: { url: string; expiresAt: string } }>({ extensions: persistedQuery(ExportJobResultsDocument), variables }, token);
}

async function linkFor(variables: Record<string, unknown>, token = analyst.token): Promise<string> {
  return ok(await exportLink({ jobId, ...variables }, token)).exportJobResults.url;
}

const origin = () => new URL(t.url).origin;

async function download(url: string, init?: RequestInit): Promise<Response> {
  return fetch(origin() + url, init);
}

async function parseCsv(text: string): Promise<string[][]> {
  const rows: string[][] = [];
  await new Promise<void>((resolve, reject) =>
    parseString<string[], string[]>(text).on("data", (row: string[]) => rows.push(row)).on("error", reject).on("end", () => resolve()),
  );
  return rows;
}

const GROUP_FIELDS = `id outcome kind status confidence pass rule amountDelta dateDeltaDays
  leftRecords { id externalId amount currency bookedDate valueDate reference description counterparty }
  rightRecords { id externalId amount currency bookedDate valueDate reference description counterparty }`;

/** Every group of the job through GraphQL, in the API's (outcome, id) order, page after page. */
async function groupsThroughGraphQL(): Promise<Record<string, any>[]> {
  const all: Record<string, any>[] = [];
  for (const list of ["matches", "discrepancies", "unmatched(side: LEFT)", "unmatched(side: RIGHT)"]) {
    const [field, args] = list.includes("(") ? [list.slice(0, list.indexOf("(")), list.slice(list.indexOf("(") + 1, -1) + ", "] : [list, ""];
    let after: string | null = null;
    do {
      const data: any = ok(await t.graphql(`query($id: ID!, $after: String) { reconciliationJob(id: $id) { ${field}(${args}first: 100, after: $after) { pageInfo { hasNextPage endCursor } edges { node { ${GROUP_FIELDS} } } } } }`, { id: jobId, after }, analyst.token));
      const page = data.reconciliationJob[field];
      all.push(...page.edges.map((edge: any) => edge.node));
      after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
    } while (after);
  }
  return all;
}

/** The CSV rows GraphQL's groups should export as (text cells neutralized as the export does). */
function expectedRows(groups: Record<string, any>[]): string[][] {
  const text = (value: string | null) => neutralize(value ?? "");
  return groups.flatMap((group) =>
    (["LEFT", "RIGHT"] as const).flatMap((side) =>
      group[side === "LEFT" ? "leftRecords" : "rightRecords"].map((record: any) => [
        group.id,
        group.outcome,
        group.kind,
        group.status,
        Number(group.confidence).toFixed(4),
        String(group.pass),
        text(group.rule),
        group.amountDelta,
        String(group.dateDeltaDays),
        side,
        record.id,
        text(record.externalId),
        record.amount,
        text(record.currency),
        record.bookedDate,
        record.valueDate ?? "",
        text(record.reference),
        text(record.description),
        text(record.counterparty),
      ]),
    ),
  );
}

beforeAll(async () => {
  t = await startTestApp({ RECON_WORKERS: "1", LOG_LEVEL: "error" });
  db = new pg.Pool({ connectionString: t.db.url, max: 2 });
  analyst = await t.createUser("ANALYST");
  outsider = await t.createUser("ANALYST");
  projectId = ok(await t.graphql(`mutation { createProject(input: { name: "Exports" }) { id } }`, {}, analyst.token)).createProject.id;
  const source = async (name: string) =>
    ok(await t.graphql("mutation($p: ID!, $n: String!) { createDataSource(input: { projectId: $p, name: $n }) { id } }", { p: projectId, n: name }, analyst.token)).createDataSource.id as string;
  const [ledgerId, bankId] = [await source("Ledger"), await source("Bank")];
  const { ledger, bank } = files();
  await uploadCsv(t, analyst.token, ledgerId, ledger, "ledger.csv");
  await uploadCsv(t, analyst.token, bankId, bank, "bank.csv");
  jobId = ok(await t.graphql(`mutation($i: StartReconciliationInput!) { startReconciliation(input: $i) { id } }`, { i: { projectId, leftSourceId: ledgerId, rightSourceId: bankId } }, analyst.token)).startReconciliation.id;
  expect(await finished(jobId, analyst.token)).toBe("COMPLETED");
});

afterAll(async () => {
  await db?.end();
  await t?.close();
});

describe("exportJobResults", () => {
  it("streams every group of the job as CSV, one row per record, equal to what GraphQL gives", async () => {
    const link = ok(await exportLink({ jobId })).exportJobResults;
    expect(link.url).toMatch(new RegExp(`^/exports/job-results/${jobId}\\.csv\\?outcome=ALL&viewer=${analyst.id}&expires=\\d+&signature=`));
    expect(new Date(link.expiresAt).getTime()).toBeGreaterThan(Date.now());
    const response = await download(link.url);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(response.headers.get("content-disposition")).toBe(`attachment; filename="recon-job-${jobId}-all.csv"`);
    const rows = await parseCsv(await response.text());
    expect(rows[0]).toEqual([...EXPORT_COLUMNS]);

    const groups = await groupsThroughGraphQL();
    const outcomes = new Set(groups.map((group) => group.outcome));
    for (const outcome of ["MATCHED", "AMOUNT_MISMATCH", "UNMATCHED_LEFT", "UNMATCHED_RIGHT"]) expect(outcomes).toContain(outcome);
    expect(groups.some((group) => group.leftRecords.length + group.rightRecords.length > 2)).toBe(true);
    expect(rows.slice(1)).toEqual(expectedRows(groups));
    // Every record of both files is in exactly one row.
    expect(new Set(rows.slice(1).map((row) => row[10])).size).toBe(rows.length - 1);
    const records = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM records WHERE project_id = $1", [projectId]);
    expect(rows.length - 1).toBe(records.rows[0]!.n);
  });

  it("neutralizes text cells a spreadsheet would run as formulas, never the numbers", async () => {
    const rows = await parseCsv(await (await download(await linkFor({}))).text());
    const cells = rows.slice(1).flatMap((row) => [row[6], row[11], row[13], row[16], row[17], row[18]]);
    expect(cells).toContain(`'=HYPERLINK("http://evil.example","click")`);
    expect(cells).toContain("'@SUM(A1:A9)");
    expect(cells).toContain("'-2+3");
    expect(cells).toContain("'+SUM(1;2)");
    expect(cells).toContain("'=1+1");
    for (const cell of cells) expect(cell).not.toMatch(/^[=+\-@\t\r]/);
    const negative = rows.slice(1).filter((row) => row[12]!.startsWith("-"));
    expect(negative.length).toBeGreaterThan(10);
    for (const row of negative) expect(row[12]).toMatch(/^-\d+\.\d{4}$/);
    for (const row of rows.slice(1)) {
      expect(row[4]).toMatch(/^\d\.\d{4}$/);
      expect(row[7]).toMatch(/^-?\d+\.\d{4}$/);
      expect(row[8]).toMatch(/^-?\d+$/);
    }
  });

  it("filters by outcome", async () => {
    const unmatched = await parseCsv(await (await download(await linkFor({ outcome: "UNMATCHED" }))).text());
    expect(new Set(unmatched.slice(1).map((row) => row[1]))).toEqual(new Set(["UNMATCHED_LEFT", "UNMATCHED_RIGHT"]));
    const discrepancies = await parseCsv(await (await download(await linkFor({ outcome: "DISCREPANCIES" }))).text());
    expect(discrepancies.length).toBeGreaterThan(1);
    for (const row of discrepancies.slice(1)) expect(["AMOUNT_MISMATCH", "DATE_LAG", "REFERENCE_MISMATCH", "CURRENCY_MISMATCH", "DUPLICATE"]).toContain(row[1]);
    const matched = await download(await linkFor({ outcome: "MATCHED" }));
    expect(matched.headers.get("content-disposition")).toContain("-matched.csv");
    const rows = await parseCsv(await matched.text());
    expect(rows.length).toBeGreaterThan(100);
    for (const row of rows.slice(1)) expect(row[1]).toBe("MATCHED");
  });

  it("refuses bad input with BAD_USER_INPUT naming the field, and jobs the viewer may not see as NOT_FOUND", async () => {
    const badId = await exportLink({ jobId: "not-an-id" });
    expect(errorCode(badId)).toBe("BAD_USER_INPUT");
    expect(badId.errors![0]!.extensions!.field).toBe("jobId");
    const badOutcome = await exportLink({ jobId, outcome: "EVERYTHING" });
    expect(errorCode(badOutcome)).toBe("BAD_USER_INPUT");
    expect(badOutcome.errors![0]!.message).toContain("outcome");
    expect(errorCode(await exportLink({ jobId }, outsider.token))).toBe("NOT_FOUND");
    expect(errorCode(await exportLink({ jobId: "00000000-0000-4000-8000-000000000000" }))).toBe("NOT_FOUND");
    expect(errorCode(await exportLink({ jobId }, ""))).toBe("UNAUTHENTICATED");

    const queued = await db.query<{ id: string }>(
      `INSERT INTO reconciliation_jobs (id, project_id, left_source_id, right_source_id, created_by, dry_run, status)
       SELECT gen_random_uuid(), project_id, left_source_id, right_source_id, created_by, true, 'COMPLETED' FROM reconciliation_jobs WHERE id = $1 RETURNING id`,
      [jobId],
    );
    const dryRun = await exportLink({ jobId: queued.rows[0]!.id });
    expect(errorCode(dryRun)).toBe("BAD_USER_INPUT");
    expect(dryRun.errors![0]!.message).toBe("jobId: the job was a dry run: it kept only its summary, no groups to export");
  });
});

describe("the download link", () => {
  const links = createExportLinks(TEST_SECRET, 300);

  async function refusal(url: string): Promise<{ status: number; message: string; code: string }> {
    const response = await download(url);
    const body = (await response.json()) as { errors: { message: string; extensions: { code: string } }[] };
    return { status: response.status, message: body.errors[0]!.message, code: body.errors[0]!.extensions.code };
  }

  it("refuses a link whose parameters were changed, or that is forged", async () => {
    const url = await linkFor({ outcome: "MATCHED" });
    for (const changed of [
      url.replace("outcome=MATCHED", "outcome=ALL"),
      url.replace(`viewer=${analyst.id}`, `viewer=${outsider.id}`),
      url.replace(/expires=(\d+)/, (_, n) => `expires=${Number(n) + 3600}`),
      url.replace(/signature=([^&]+)/, (_, s: string) => `signature=${s.slice(0, -2)}${s.endsWith("AA") ? "BB" : "AA"}`),
      createExportLinks("another-secret-that-is-long-enough-000000", 300).sign({ viewerId: analyst.id, jobId, outcome: "ALL" }).url,
    ]) {
      expect(await refusal(changed)).toEqual({
        status: 403,
        code: "FORBIDDEN",
        message: "The export link's signature does not match it (changed or forged): ask for a new link (exportJobResults)",
      });
    }
  });

  it("refuses an expired link, and names a missing parameter", async () => {
    const expiresAt = new Date(Math.floor(Date.now() / 1000) * 1000 - 1000);
    const expired = links.sign({ viewerId: analyst.id, jobId, outcome: "ALL", expiresAt });
    expect(await refusal(expired.url)).toEqual({
      status: 403,
      code: "FORBIDDEN",
      message: `The export link expired at ${expiresAt.toISOString()}: ask for a new link (exportJobResults)`,
    });
    const url = await linkFor({});
    expect(await refusal(url.replace(/&signature=[^&]+/, ""))).toMatchObject({ status: 400, code: "BAD_USER_INPUT", message: expect.stringContaining("no signature parameter") });
    expect((await download(url, { method: "POST" })).status).toBe(405);
  });

  it("answers 404 for a job that does not exist", async () => {
    const missing = links.sign({ viewerId: analyst.id, jobId: "00000000-0000-4000-8000-000000000001", outcome: "ALL" });
    expect(await refusal(missing.url)).toMatchObject({ status: 404, code: "NOT_FOUND", message: "ReconciliationJob not found" });
  });

  it("is checked against the viewer's access when used: a removed member and a deactivated user are refused", async () => {
    const member = await t.createUser("ANALYST");
    const other = await t.createUser("ANALYST");
    for (const user of [member, other]) {
      ok(await t.graphql(`mutation($p: ID!, $u: ID!) { addProjectMember(projectId: $p, userId: $u, role: VIEWER) { id } }`, { p: projectId, u: user.id }, analyst.token));
    }
    const memberUrl = await linkFor({}, member.token);
    const otherUrl = await linkFor({}, other.token);
    expect((await download(memberUrl)).status).toBe(200);

    ok(await t.graphql(`mutation($p: ID!, $u: ID!) { removeProjectMember(projectId: $p, userId: $u) { id } }`, { p: projectId, u: member.id }, analyst.token));
    expect(await refusal(memberUrl)).toMatchObject({ status: 404, code: "NOT_FOUND" });
    expect(errorCode(await exportLink({ jobId }, member.token))).toBe("NOT_FOUND");

    ok(await t.graphql(`mutation($u: ID!) { deactivateUser(id: $u) { id } }`, { u: other.id }, t.admin.token));
    expect(await refusal(otherUrl)).toEqual({ status: 403, code: "FORBIDDEN", message: "The user this export link was issued to is deactivated or no longer exists" });
  });
});
