/**
 * Exceptions and manual work, through GraphQL against real PostgreSQL: a job over two small hand-made files (one
 * record per situation) opens its exceptions; their lifecycle, comments, labels and write-offs; confirm, reject,
 * unmatch, manual and forced matches with their effect on groups and exceptions; a rejected pair not proposed by
 * the next job (engine and SQL pushdown, either orientation); each role's rights; and two people acting on the same
 * group or records at once, made to collide deterministically by holding the rows' lock until both wait on it.
 */
import pg from "pg";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorCode, ok, startTestApp, type GraphQLResponse, type TestApp, type TestUser } from "../helpers/app.js";
import { uploadCsv } from "../helpers/jobs.js";
import { TODAY_UTC, severityRankSql, SEVERITIES } from "../../src/modules/exceptions/severity.js";
import { MAX_AGE_DAYS } from "../../src/modules/exceptions/exception-service.js";

let t: TestApp;
let db: pg.Pool;
const clients: Client[] = [];
let owner: TestUser; // global ANALYST who created the project (OWNER)
let analyst: TestUser; // project ANALYST
let manager: TestUser; // global MANAGER, project ANALYST
let projectManager: TestUser; // global ANALYST, project MANAGER
let projectViewer: TestUser; // project VIEWER
let globalViewer: TestUser; // global VIEWER, project ANALYST
let outsider: TestUser; // ANALYST outside the project
let projectId: string;
let ledgerId: string;
let bankId: string;
let jobId: string;
/** Record ids by external id (L… ledger, B… bank). */
const records: Record<string, string> = {};

const day = (daysAgo: number) => new Date(Date.now() - daysAgo * 86_400_000).toISOString().slice(0, 10);
const csv = (rows: [string, number, string, string][]) =>
  "id,date,amount,currency,reference\n" + rows.map(([id, ago, amount, reference]) => `${id},${day(ago)},${amount},EUR,${reference}`).join("\n") + "\n";

const LEDGER = csv([
  ["L1", 5, "100.00", "INV-1"], // MATCHED with B1
  ["L2", 5, "100.00", "INV-2"], // AMOUNT_MISMATCH with B2
  ["L3", 5, "55.00", "INV-3"], // unmatched
  ["L4", 5, "80.00", ""], // SUGGESTED with B4
  ["L6", 5, "40.00", "ORD-6"], // unmatched; B7 + B8 sum to it
  ["L7", 100, "5000.00", "OLD-7"], // unmatched, old and large
  ["L8", 5, "60.00", ""], // SUGGESTED with B10
  ["L9", 5, "33.00", ""], // SUGGESTED with B11
  ["L10", 5, "21.00", ""], // SUGGESTED with B12
]);
const BANK = csv([
  ["B1", 5, "100.00", "INV-1"],
  ["B2", 5, "90.00", "INV-2"],
  ["B4", 4, "80.00", ""],
  ["B7", 30, "15.00", "PAY-A"],
  ["B8", 30, "25.00", "PAY-B"],
  ["B9", 5, "12.34", "FEE"],
  ["B10", 4, "60.00", ""],
  ["B11", 4, "33.00", ""],
  ["B12", 4, "21.00", ""],
]);

const EXCEPTION_FIELDS = `id jobId type status severity amount currency bookedDate ageDays slaDueAt overdue labels resolution resolutionAmount
  assignee { id } resolvedBy { id } resolutionGroup { id } group { id outcome status }
  leftRecords { externalId } rightRecords { externalId } comments { body author { id } }`;
const RESULT_FIELDS = `groups { id outcome status kind rule amountDelta leftRecords { externalId } rightRecords { externalId } }
  difference { currency left right difference }
  resolvedExceptions { id status resolution resolutionGroup { id } }
  openedExceptions { id status type leftRecords { externalId } rightRecords { externalId } }`;

function follow(id: string, token: string): Promise<string> {
  const client = createClient({ url: t.url.replace(/^http/, "ws"), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  clients.push(client);
  return (async () => {
    let status = "";
    for await (const result of client.iterate<{ jobProgress: { status: string } }>({ query: "subscription($id: ID!) { jobProgress(jobId: $id) { status } }", variables: { id } })) {
      status = result.data!.jobProgress.status;
    }
    return status;
  })();
}

/** Runs a job to completion (followed over graphql-ws) and returns its id. */
async function runJob(input: Record<string, unknown> = {}, token = owner.token): Promise<string> {
  const data = ok(
    await t.graphql("mutation($input: StartReconciliationInput!) { startReconciliation(input: $input) { id } }", { input: { projectId, leftSourceId: ledgerId, rightSourceId: bankId, ...input } }, token),
  );
  const id = data.startReconciliation.id as string;
  expect(await follow(id, token)).toBe("COMPLETED");
  return id;
}

/** Each group of a job as "OUTCOME STATUS left|right" with external ids. */
async function groupsOf(job: string): Promise<string[]> {
  const { rows } = await db.query<{ line: string }>(
    `SELECT g.outcome || ' ' || g.status || ' ' ||
       coalesce((SELECT string_agg(r.external_id, '+' ORDER BY r.external_id) FROM records r WHERE r.id = ANY(g.left_record_ids)), '') || '|' ||
       coalesce((SELECT string_agg(r.external_id, '+' ORDER BY r.external_id) FROM records r WHERE r.id = ANY(g.right_record_ids)), '') AS line
     FROM match_groups g WHERE g.job_id = $1 ORDER BY line`,
    [job],
  );
  return rows.map((row) => row.line);
}

/** The job's group holding a record (by external id). */
async function groupOf(job: string, externalId: string): Promise<{ id: string; outcome: string; status: string }> {
  const { rows } = await db.query(
    `SELECT g.id, g.outcome::text AS outcome, g.status::text AS status FROM match_groups g
     WHERE g.job_id = $1 AND $2::uuid = ANY(g.left_record_ids || g.right_record_ids)`,
    [job, records[externalId]],
  );
  expect(rows).toHaveLength(1);
  return rows[0];
}

/** The exception opened for the group now holding a record. */
async function exceptionOf(job: string, externalId: string): Promise<Record<string, any>> {
  const { id } = await groupOf(job, externalId);
  return ok(await t.graphql(`query($id: ID!) { exception(id: $id) { ${EXCEPTION_FIELDS} } }`, { id }, owner.token)).exception;
}

/** Every record of both sources is in exactly one group of the job. */
async function expectInvariant(job: string): Promise<void> {
  const { rows } = await db.query(
    `SELECT r.external_id, (SELECT count(*)::int FROM match_groups g WHERE g.job_id = $1 AND r.id = ANY(g.left_record_ids || g.right_record_ids)) AS n
     FROM records r WHERE r.data_source_id IN ($2, $3)`,
    [job, ledgerId, bankId],
  );
  expect(rows.filter((row) => row.n !== 1)).toEqual([]);
  expect(rows).toHaveLength(18);
}

const fail = (response: GraphQLResponse) => ({ code: errorCode(response), field: response.errors?.[0]?.extensions?.field, message: response.errors?.[0]?.message ?? "" });

async function audit(resourceId: string): Promise<Record<string, any>[]> {
  const log = ok(await t.graphql("query($id: ID) { auditLog(first: 20, filter: { resourceId: $id }) { edges { node { action before after reason actor { id } } } } }", { id: resourceId }, t.admin.token));
  return log.auditLog.edges.map((edge: any) => edge.node);
}

const ASSIGN = `mutation($ids: [ID!]!, $to: ID, $reason: String) { assignExceptions(ids: $ids, assigneeId: $to, reason: $reason) { ${EXCEPTION_FIELDS} } }`;
const PENDING = `mutation($id: ID!, $reason: String) { markExceptionPending(id: $id, reason: $reason) { ${EXCEPTION_FIELDS} } }`;
const RESOLVE = `mutation($ids: [ID!]!, $reason: String!) { resolveExceptions(ids: $ids, reason: $reason) { ${EXCEPTION_FIELDS} } }`;
const REOPEN = `mutation($id: ID!, $reason: String) { reopenException(id: $id, reason: $reason) { ${EXCEPTION_FIELDS} } }`;
const WRITE_OFF = `mutation($id: ID!, $input: WriteOffInput!) { writeOffException(id: $id, input: $input) { ${EXCEPTION_FIELDS} } }`;
const LABELS = `mutation($id: ID!, $labels: [String!]!) { setExceptionLabels(id: $id, labels: $labels) { ${EXCEPTION_FIELDS} } }`;
const COMMENT = `mutation($id: ID!, $body: String!) { commentOnException(id: $id, body: $body) { id body author { id } } }`;
const CONFIRM = `mutation($id: ID!, $reason: String) { confirmMatch(groupId: $id, reason: $reason) { ${RESULT_FIELDS} } }`;
const REJECT = `mutation($id: ID!, $reason: String) { rejectMatch(groupId: $id, reason: $reason) { ${RESULT_FIELDS} } }`;
const UNMATCH = `mutation($id: ID!, $reason: String) { unmatch(groupId: $id, reason: $reason) { ${RESULT_FIELDS} } }`;
const MANUAL = `mutation($job: ID!, $left: [ID!]!, $right: [ID!]!, $reason: String) { manualMatch(jobId: $job, leftRecordIds: $left, rightRecordIds: $right, reason: $reason) { ${RESULT_FIELDS} } }`;
const FORCE = `mutation($job: ID!, $left: [ID!]!, $right: [ID!]!, $code: ForceMatchReason!, $reason: String) { forceMatch(jobId: $job, leftRecordIds: $left, rightRecordIds: $right, reasonCode: $code, reason: $reason) { ${RESULT_FIELDS} } }`;
const DIFFERENCE = "query($job: ID!, $l: [ID!]!, $r: [ID!]!) { matchDifference(jobId: $job, leftRecordIds: $l, rightRecordIds: $r) { currency left right difference } }";
const LIST = `query($p: ID!, $f: ExceptionFilter, $first: Int, $after: String) { exceptions(projectId: $p, filter: $f, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { ${EXCEPTION_FIELDS} } } } }`;

const ids = (...externalIds: string[]) => externalIds.map((id) => records[id]!);

async function list(filter: Record<string, unknown>, token = owner.token) {
  const data = ok(await t.graphql(LIST, { p: projectId, f: { jobId, ...filter }, first: 100 }, token));
  return { total: data.exceptions.totalCount as number, nodes: data.exceptions.edges.map((edge: any) => edge.node) as Record<string, any>[] };
}
const externalIdsOf = (node: Record<string, any>) => [...node.leftRecords, ...node.rightRecords].map((r: any) => r.externalId).join("+");

beforeAll(async () => {
  t = await startTestApp({ RECON_WORKERS: "1", LOG_LEVEL: "error" });
  db = new pg.Pool({ connectionString: t.db.url, max: 4 });
  [owner, analyst, manager, projectManager, projectViewer, globalViewer, outsider] = await Promise.all([
    t.createUser("ANALYST", "Owner"),
    t.createUser("ANALYST", "Analyst"),
    t.createUser("MANAGER", "Manager"),
    t.createUser("ANALYST", "Project manager"),
    t.createUser("ANALYST", "Project viewer"),
    t.createUser("VIEWER", "Global viewer"),
    t.createUser("ANALYST", "Outsider"),
  ]);
  projectId = ok(await t.graphql(`mutation { createProject(input: { name: "Exceptions" }) { id } }`, {}, owner.token)).createProject.id;
  for (const [user, role] of [[analyst, "ANALYST"], [manager, "ANALYST"], [projectManager, "MANAGER"], [projectViewer, "VIEWER"], [globalViewer, "ANALYST"]] as const) {
    ok(await t.graphql("mutation($p: ID!, $u: ID!, $r: ProjectRole!) { addProjectMember(projectId: $p, userId: $u, role: $r) { id } }", { p: projectId, u: user.id, r: role }, owner.token));
  }
  const source = async (name: string) =>
    ok(await t.graphql("mutation($p: ID!, $n: String!) { createDataSource(input: { projectId: $p, name: $n }) { id } }", { p: projectId, n: name }, owner.token)).createDataSource.id as string;
  ledgerId = await source("Ledger");
  bankId = await source("Bank");
  await uploadCsv(t, owner.token, ledgerId, LEDGER, "ledger.csv");
  await uploadCsv(t, owner.token, bankId, BANK, "bank.csv");
  const { rows } = await db.query<{ id: string; external_id: string }>("SELECT id, external_id FROM records");
  for (const row of rows) records[row.external_id] = row.id;
  jobId = await runJob();
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.dispose()));
  await db?.end();
  await t?.close();
});

describe("a completed job's exceptions", () => {
  it("the job's groups are the ones the data was made for", async () => {
    expect(await groupsOf(jobId)).toEqual([
      "AMOUNT_MISMATCH PROPOSED L2|B2",
      "MATCHED CONFIRMED L1|B1",
      "SUGGESTED PROPOSED L10|B12",
      "SUGGESTED PROPOSED L4|B4",
      "SUGGESTED PROPOSED L8|B10",
      "SUGGESTED PROPOSED L9|B11",
      "UNMATCHED_LEFT PROPOSED L3|",
      "UNMATCHED_LEFT PROPOSED L6|",
      "UNMATCHED_LEFT PROPOSED L7|",
      "UNMATCHED_RIGHT PROPOSED |B7",
      "UNMATCHED_RIGHT PROPOSED |B8",
      "UNMATCHED_RIGHT PROPOSED |B9",
    ]);
  });
});

describe("exceptions of a job", () => {
  it("one per discrepancy and unmatched record, OPEN, with exposure, currency, age, severity and an SLA from it", async () => {
    const { total, nodes } = await list({});
    expect(total).toBe(7);
    const byRecords = Object.fromEntries(nodes.map((node) => [externalIdsOf(node), node]));
    expect(Object.keys(byRecords).sort()).toEqual(["B7", "B8", "B9", "L2+B2", "L3", "L6", "L7"]);
    expect(nodes.every((node) => node.status === "OPEN" && node.assignee === null && node.jobId === jobId)).toBe(true);
    expect(byRecords["L2+B2"]).toMatchObject({ type: "AMOUNT_MISMATCH", amount: "10.0000", currency: "EUR", severity: "LOW", ageDays: 5 });
    expect(byRecords["L7"]).toMatchObject({ type: "UNMATCHED_LEFT", amount: "5000.0000", ageDays: 100, bookedDate: day(100), severity: "CRITICAL" });
    expect(byRecords["B7"]).toMatchObject({ type: "UNMATCHED_RIGHT", amount: "15.0000", ageDays: 30, severity: "MEDIUM" });
    // The SLA was set at opening from the severity then: CRITICAL one day, LOW 14 days.
    const slaDays = (node: Record<string, any>) => Math.round((Date.parse(node.slaDueAt) - Date.now()) / 86_400_000);
    expect(slaDays(byRecords["L7"]!)).toBe(1);
    expect(slaDays(byRecords["L3"]!)).toBe(14);
    expect(nodes.every((node) => node.overdue === false)).toBe(true);
    // The group of an exception is its job's group; a match or suggestion has none.
    expect(byRecords["L2+B2"]!.group).toMatchObject({ id: byRecords["L2+B2"]!.id, outcome: "AMOUNT_MISMATCH", status: "PROPOSED" });
  });

  it("filters by status, type, amount range, age, severity, currency and assignee, and pages", async () => {
    const count = async (filter: Record<string, unknown>) => (await list(filter)).total;
    expect(await count({ status: ["OPEN"] })).toBe(7);
    expect(await count({ status: ["RESOLVED"] })).toBe(0);
    expect(await count({ type: ["UNMATCHED_LEFT"] })).toBe(3);
    expect(await count({ type: ["UNMATCHED_RIGHT", "AMOUNT_MISMATCH"] })).toBe(4);
    expect(await count({ minAmount: "40.00", maxAmount: "55.00" })).toBe(2);
    expect(await count({ minAmount: "1000" })).toBe(1);
    expect(await count({ minAgeDays: 30 })).toBe(3);
    expect(await count({ maxAgeDays: 10 })).toBe(4);
    expect(await count({ severity: ["CRITICAL"] })).toBe(1);
    expect(await count({ severity: ["LOW", "MEDIUM"] })).toBe(6);
    expect(await count({ currency: "EUR" })).toBe(7);
    expect(await count({ currency: "USD" })).toBe(0);
    expect(await count({ unassigned: true })).toBe(7);
    expect(await count({ assigneeId: analyst.id })).toBe(0);
    expect(await count({ overdue: true })).toBe(0);
    // Two pages of 4 and 3, newest first, nothing twice.
    const first = ok(await t.graphql(LIST, { p: projectId, f: { jobId }, first: 4 }, owner.token)).exceptions;
    const second = ok(await t.graphql(LIST, { p: projectId, f: { jobId }, first: 4, after: first.pageInfo.endCursor }, owner.token)).exceptions;
    expect(first.pageInfo.hasNextPage).toBe(true);
    expect(second.edges).toHaveLength(3);
    expect(new Set([...first.edges, ...second.edges].map((edge: any) => edge.node.id)).size).toBe(7);
    expect(fail(await t.graphql(LIST, { p: projectId, f: { currency: "euro" } }, owner.token))).toMatchObject({ code: "BAD_USER_INPUT", field: "filter.currency" });
    expect(fail(await t.graphql(LIST, { p: projectId, f: { minAgeDays: -1 } }, owner.token))).toMatchObject({ code: "BAD_USER_INPUT", field: "filter.minAgeDays" });
  });

  it("takes ages up to a century, and refuses more naming the field", async () => {
    expect((await list({ minAgeDays: 0, maxAgeDays: MAX_AGE_DAYS })).total).toBe(7);
    for (const field of ["minAgeDays", "maxAgeDays"]) {
      for (const days of [MAX_AGE_DAYS + 1, 3_000_000]) {
        expect(fail(await t.graphql(LIST, { p: projectId, f: { [field]: days } }, owner.token))).toMatchObject({ code: "BAD_USER_INPUT", field: `filter.${field}` });
      }
    }
  });

  it("severity, as PostgreSQL computes it: per-currency amount tiers, raised by age", async () => {
    const rank = severityRankSql("$1::numeric", "$2::text", `(${TODAY_UTC} - $3::int)`);
    const severity = async (amount: string, currency: string, ageDays: number) =>
      SEVERITIES[(await db.query(`SELECT ${rank} AS r`, [amount, currency, ageDays])).rows[0].r as number];
    const cases: [string, string, number, string][] = [
      ["999.9999", "EUR", 0, "LOW"],
      ["1000", "EUR", 0, "MEDIUM"],
      ["10000", "USD", 29, "HIGH"],
      ["100000", "GBP", 0, "CRITICAL"],
      ["99999", "JPY", 0, "LOW"],
      ["100000", "JPY", 0, "MEDIUM"],
      ["10", "EUR", 30, "MEDIUM"],
      ["10", "EUR", 90, "HIGH"],
      ["10000", "EUR", 90, "CRITICAL"],
    ];
    for (const [amount, currency, age, expected] of cases) expect([amount, currency, age, await severity(amount, currency, age)]).toEqual([amount, currency, age, expected]);
  });

  it("a dry run has no exceptions", async () => {
    const dry = await runJob({ dryRun: true });
    expect((await list({ jobId: dry })).total).toBe(0);
  });
});

describe("the exception lifecycle", () => {
  it("OPEN → ASSIGNED → PENDING → ASSIGNED → RESOLVED → reopened, each step audited with before, after and reason", async () => {
    const { id } = await exceptionOf(jobId, "L3");
    const step = async (query: string, variables: Record<string, unknown>, token = analyst.token) => {
      const data = ok(await t.graphql(query, variables, token));
      const value = Object.values(data)[0];
      return Array.isArray(value) ? value[0] : value;
    };
    expect(await step(ASSIGN, { ids: [id], to: analyst.id, reason: "mine" })).toMatchObject({ status: "ASSIGNED", assignee: { id: analyst.id } });
    expect(await step(PENDING, { id, reason: "asked the bank" })).toMatchObject({ status: "PENDING" });
    expect(await step(ASSIGN, { ids: [id], to: analyst.id, reason: "bank answered" })).toMatchObject({ status: "ASSIGNED" });
    expect(await step(RESOLVE, { ids: [id], reason: "timing difference, clears in December" })).toMatchObject({
      status: "RESOLVED",
      resolution: "EXPLAINED",
      resolvedBy: { id: analyst.id },
    });
    expect(await step(REOPEN, { id, reason: "did not clear" })).toMatchObject({ status: "ASSIGNED", resolution: null, resolvedBy: null, assignee: { id: analyst.id } });
    expect(await step(ASSIGN, { ids: [id], to: null })).toMatchObject({ status: "OPEN", assignee: null });

    const events = await audit(id);
    expect(events.map((event) => event.action)).toEqual([
      "exception.unassign",
      "exception.reopen",
      "exception.resolve",
      "exception.assign",
      "exception.pending",
      "exception.assign",
    ]);
    expect(events[2]).toMatchObject({
      reason: "timing difference, clears in December",
      before: { status: "ASSIGNED", resolution: null },
      after: { status: "RESOLVED", resolution: "EXPLAINED" },
      actor: { id: analyst.id },
    });
    expect(events[4]).toMatchObject({ before: { status: "ASSIGNED" }, after: { status: "PENDING" }, reason: "asked the bank" });
  });

  it("refuses an illegal transition with BAD_USER_INPUT naming the field and the current status, and changes nothing", async () => {
    const l6 = (await exceptionOf(jobId, "L6")).id;
    const b7 = (await exceptionOf(jobId, "B7")).id;
    expect(fail(await t.graphql(PENDING, { id: l6 }, analyst.token))).toMatchObject({ code: "BAD_USER_INPUT", field: "id", message: expect.stringContaining("is OPEN: assign it before marking it PENDING") });
    expect(fail(await t.graphql(REOPEN, { id: l6 }, analyst.token))).toMatchObject({ code: "BAD_USER_INPUT", field: "id", message: expect.stringContaining("is OPEN") });
    ok(await t.graphql(RESOLVE, { ids: [b7], reason: "explained" }, analyst.token));
    // All or none: the first is OPEN and could be assigned, the second is RESOLVED.
    const response = await t.graphql(ASSIGN, { ids: [l6, b7], to: analyst.id }, analyst.token);
    expect(fail(response)).toMatchObject({ code: "BAD_USER_INPUT", field: "ids[1]", message: expect.stringContaining(`exception ${b7} is RESOLVED`) });
    expect((await exceptionOf(jobId, "L6")).status).toBe("OPEN");
    ok(await t.graphql(REOPEN, { id: b7 }, analyst.token));
    expect(fail(await t.graphql(RESOLVE, { ids: [l6], reason: "  " }, analyst.token))).toMatchObject({ code: "BAD_USER_INPUT", field: "reason" });
    expect(fail(await t.graphql(ASSIGN, { ids: [l6], to: projectViewer.id }, analyst.token))).toMatchObject({ code: "BAD_USER_INPUT", field: "assigneeId" });
    expect(fail(await t.graphql(ASSIGN, { ids: [], to: analyst.id }, analyst.token))).toMatchObject({ code: "BAD_USER_INPUT", field: "ids" });
  });

  it("bulk assign and bulk resolve, then filters by assignee and status see it", async () => {
    const b8 = (await exceptionOf(jobId, "B8")).id;
    const b9 = (await exceptionOf(jobId, "B9")).id;
    const before = await list({ assigneeId: manager.id });
    expect(before.total).toBe(0);
    const assigned = ok(await t.graphql(ASSIGN, { ids: [b8, b9], to: manager.id, reason: "month end" }, owner.token)).assignExceptions;
    expect(assigned.map((e: any) => [e.id, e.status, e.assignee.id])).toEqual([[b8, "ASSIGNED", manager.id], [b9, "ASSIGNED", manager.id]]);
    // The cached list was invalidated by the change.
    expect((await list({ assigneeId: manager.id })).total).toBe(2);
    const resolved = ok(await t.graphql(RESOLVE, { ids: [b8, b9], reason: "bank fees, booked next month" }, manager.token)).resolveExceptions;
    expect(resolved.map((e: any) => e.status)).toEqual(["RESOLVED", "RESOLVED"]);
    expect((await list({ assigneeId: manager.id, status: ["RESOLVED"] })).total).toBe(2);
    for (const id of [b8, b9]) ok(await t.graphql(REOPEN, { id }, manager.token));
  });

  it("comments and labels", async () => {
    const { id } = await exceptionOf(jobId, "L6");
    const comment = ok(await t.graphql(COMMENT, { id, body: "Looks like a split payment" }, analyst.token)).commentOnException;
    expect(comment).toMatchObject({ body: "Looks like a split payment", author: { id: analyst.id } });
    ok(await t.graphql(COMMENT, { id, body: "Agreed" }, owner.token));
    const labelled = ok(await t.graphql(LABELS, { id, labels: [" split ", "customer-x", "split"] }, analyst.token)).setExceptionLabels;
    expect(labelled.labels).toEqual(["split", "customer-x"]);
    expect(labelled.comments.map((c: any) => c.body)).toEqual(["Looks like a split payment", "Agreed"]);
    expect((await list({ label: "split" })).nodes.map((node) => node.id)).toEqual([id]);
    expect(fail(await t.graphql(LABELS, { id, labels: ["x".repeat(51)] }, analyst.token))).toMatchObject({ code: "BAD_USER_INPUT", field: "labels[0]" });
    expect(fail(await t.graphql(COMMENT, { id, body: "" }, analyst.token))).toMatchObject({ code: "BAD_USER_INPUT", field: "body" });
    expect((await audit(id)).map((event) => event.action)).toEqual(["exception.label", "exception.comment", "exception.comment"]);
  });

  it("write-off and adjustment: MANAGER/ADMIN only, with a reason; reopening one too", async () => {
    const l7 = (await exceptionOf(jobId, "L7")).id;
    const input = { kind: "WRITE_OFF", reason: "unrecoverable, approved by CFO" };
    expect(fail(await t.graphql(WRITE_OFF, { id: l7, input }, analyst.token))).toMatchObject({ code: "FORBIDDEN" });
    expect(fail(await t.graphql(WRITE_OFF, { id: l7, input }, owner.token))).toMatchObject({ code: "FORBIDDEN" });
    expect(fail(await t.graphql(WRITE_OFF, { id: l7, input: { kind: "WRITE_OFF", reason: "" } }, manager.token))).toMatchObject({ code: "BAD_USER_INPUT", field: "input.reason" });
    const written = ok(await t.graphql(WRITE_OFF, { id: l7, input }, manager.token)).writeOffException;
    expect(written).toMatchObject({ status: "RESOLVED", resolution: "WRITTEN_OFF", resolutionAmount: "5000.0000", resolvedBy: { id: manager.id } });
    expect(fail(await t.graphql(REOPEN, { id: l7 }, analyst.token))).toMatchObject({ code: "FORBIDDEN" });
    ok(await t.graphql(REOPEN, { id: l7, reason: "CFO changed their mind" }, projectManager.token));
    const adjusted = ok(await t.graphql(WRITE_OFF, { id: l7, input: { kind: "ADJUSTMENT", amount: "4999.99", reason: "adjusting entry J-17" } }, t.admin.token)).writeOffException;
    expect(adjusted).toMatchObject({ status: "RESOLVED", resolution: "ADJUSTED", resolutionAmount: "4999.9900" });
    const [event] = await audit(l7);
    expect(event).toMatchObject({ action: "exception.adjust", reason: "adjusting entry J-17", after: { resolution: "ADJUSTED", resolutionAmount: "4999.99" } });
  });
});

describe("manual work on a job's groups", () => {
  it("confirmMatch accepts a balanced proposal; a discrepancy with a difference is refused", async () => {
    const s2 = await groupOf(jobId, "L8");
    const confirmed = ok(await t.graphql(CONFIRM, { id: s2.id, reason: "checked the remittance" }, analyst.token)).confirmMatch;
    expect(confirmed.groups).toMatchObject([{ id: s2.id, outcome: "SUGGESTED", status: "CONFIRMED" }]);
    expect(confirmed.difference).toEqual([{ currency: "EUR", left: "60.0000", right: "60.0000", difference: "0.0000" }]);
    expect(fail(await t.graphql(CONFIRM, { id: s2.id }, analyst.token))).toMatchObject({ code: "BAD_USER_INPUT", field: "groupId", message: expect.stringContaining("is CONFIRMED") });
    const mismatch = await groupOf(jobId, "L2");
    expect(fail(await t.graphql(CONFIRM, { id: mismatch.id }, analyst.token))).toMatchObject({
      code: "BAD_USER_INPUT",
      field: "groupId",
      message: expect.stringContaining("difference of EUR 10.0000"),
    });
    expect((await audit(s2.id))[0]).toMatchObject({ action: "match.confirm", reason: "checked the remittance", before: { status: "PROPOSED" }, after: { status: "CONFIRMED" } });
  });

  it("manualMatch ties N:M records into a new CONFIRMED group and resolves their exceptions", async () => {
    const before = await Promise.all(["L6", "B7", "B8"].map((id) => exceptionOf(jobId, id)));
    const result = ok(await t.graphql(MANUAL, { job: jobId, left: ids("L6"), right: ids("B7", "B8"), reason: "split payment" }, analyst.token)).manualMatch;
    const [group] = result.groups;
    expect(group).toMatchObject({ outcome: "MATCHED", status: "CONFIRMED", kind: "ONE_TO_MANY", rule: "manual", amountDelta: "0.0000" });
    expect(group.leftRecords.map((r: any) => r.externalId)).toEqual(["L6"]);
    expect(group.rightRecords.map((r: any) => r.externalId)).toEqual(["B7", "B8"]);
    expect(result.difference).toEqual([{ currency: "EUR", left: "40.0000", right: "40.0000", difference: "0.0000" }]);
    expect(result.openedExceptions).toEqual([]);
    expect(result.resolvedExceptions.map((e: any) => e.id).sort()).toEqual(before.map((e) => e.id).sort());
    expect(result.resolvedExceptions.every((e: any) => e.status === "RESOLVED" && e.resolution === "MATCHED" && e.resolutionGroup.id === group.id)).toBe(true);
    // Group ids ascend within the job and stay out of the pushed (from 1) and engine (from 2^48) ranges.
    expect(group.id.replace(/-/g, "").slice(0, 16)).toBe(jobId.replace(/-/g, "").slice(0, 16));
    expect(group.id.replace(/-/g, "").slice(16)).toMatch(/^4000/);
    expect((await groupOf(jobId, "L6")).id).toBe(group.id);
    expect(ok(await t.graphql(`query($id: ID!) { exception(id: $id) { group { id } status } }`, { id: before[0]!.id }, owner.token)).exception).toEqual({ group: null, status: "RESOLVED" });
    const [event] = await audit(group.id);
    expect(event).toMatchObject({ action: "match.manual", reason: "split payment", after: { groupId: group.id, difference: result.difference } });
    expect(event!.before.groups).toHaveLength(3);
    await expectInvariant(jobId);
  });

  it("a difference is shown, refused by manualMatch, and accepted by forceMatch for MANAGER/ADMIN with a reason code", async () => {
    const difference = ok(await t.graphql(DIFFERENCE, { job: jobId, l: ids("L3"), r: ids("B9") }, analyst.token)).matchDifference;
    expect(difference).toEqual([{ currency: "EUR", left: "55.0000", right: "12.3400", difference: "42.6600" }]);
    expect(fail(await t.graphql(MANUAL, { job: jobId, left: ids("L3"), right: ids("B9") }, analyst.token))).toMatchObject({
      code: "BAD_USER_INPUT",
      field: "rightRecordIds",
      message: expect.stringContaining("difference of EUR 42.6600"),
    });
    const force = { job: jobId, left: ids("L3"), right: ids("B9"), code: "BANK_FEE", reason: "fee deducted by the bank" };
    expect(fail(await t.graphql(FORCE, force, analyst.token))).toMatchObject({ code: "FORBIDDEN" });
    expect(fail(await t.graphql(FORCE, force, owner.token))).toMatchObject({ code: "FORBIDDEN" });
    expect(fail(await t.graphql(FORCE, { ...force, code: "OTHER", reason: null }, manager.token))).toMatchObject({ code: "BAD_USER_INPUT", field: "reason" });
    const result = ok(await t.graphql(FORCE, force, manager.token)).forceMatch;
    expect(result.groups[0]).toMatchObject({ outcome: "MATCHED", status: "CONFIRMED", kind: "ONE_TO_ONE", rule: "forced (BANK_FEE)", amountDelta: "-42.6600" });
    expect(result.difference).toEqual(difference);
    expect(result.resolvedExceptions).toHaveLength(2);
    expect((await audit(result.groups[0].id))[0]).toMatchObject({ action: "match.force", reason: "fee deducted by the bank", after: { reasonCode: "BANK_FEE" } });
    await expectInvariant(jobId);
  });

  it("taking some records of a group dissolves it: the rest come back unmatched with new exceptions", async () => {
    const mismatch = await exceptionOf(jobId, "L2");
    const result = ok(await t.graphql(FORCE, { job: jobId, left: ids("L2"), right: ids("B12"), code: "PARTIAL_PAYMENT" }, t.admin.token)).forceMatch;
    expect(result.groups[0]).toMatchObject({ rule: "forced (PARTIAL_PAYMENT)", leftRecords: [{ externalId: "L2" }], rightRecords: [{ externalId: "B12" }] });
    expect(result.resolvedExceptions).toEqual([{ id: mismatch.id, status: "RESOLVED", resolution: "SUPERSEDED", resolutionGroup: null }]);
    expect(result.openedExceptions.map((e: any) => [e.type, e.status, externalIdsOf(e)])).toEqual([
      ["UNMATCHED_LEFT", "OPEN", "L10"],
      ["UNMATCHED_RIGHT", "OPEN", "B2"],
    ]);
    expect(result.groups.slice(1).map((g: any) => g.outcome)).toEqual(["UNMATCHED_LEFT", "UNMATCHED_RIGHT"]);
    await expectInvariant(jobId);
  });

  it("refuses records in a confirmed match, written off or adjusted, of the wrong side, or named twice", async () => {
    const refused = async (left: string[], right: string[]) => fail(await t.graphql(MANUAL, { job: jobId, left: ids(...left), right: ids(...right) }, analyst.token));
    expect(await refused(["L1"], ["B1"])).toMatchObject({ field: "leftRecordIds[0]", message: expect.stringContaining("in a confirmed match of this job (unmatch that first)") });
    expect(await refused(["L8"], ["B10"])).toMatchObject({ field: "leftRecordIds[0]", message: expect.stringContaining("which is CONFIRMED (unmatch it first)") });
    expect(await refused(["L7"], ["B2"])).toMatchObject({ code: "BAD_USER_INPUT", field: "leftRecordIds[0]", message: expect.stringContaining("was adjusted") });
    expect(await refused(["B2"], ["L10"])).toMatchObject({ field: "leftRecordIds[0]", message: expect.stringContaining("not a record of the job's left data source") });
    expect(await refused(["L10", "L10"], ["B2"])).toMatchObject({ field: "leftRecordIds[1]", message: expect.stringContaining("named twice") });
    expect(await refused([], ["B2"])).toMatchObject({ field: "leftRecordIds" });
    expect(fail(await t.graphql(MANUAL, { job: jobId, left: ["nope"], right: ids("B2") }, analyst.token))).toMatchObject({ field: "leftRecordIds[0]" });
  });

  it("matchDifference refuses the ids manualMatch refuses, as manualMatch does, rather than leaving them out", async () => {
    const other = ok(await t.graphql(`mutation($p: ID!) { createDataSource(input: { projectId: $p, name: "Other" }) { id } }`, { p: projectId }, owner.token)).createDataSource.id;
    await uploadCsv(t, owner.token, other, csv([["X1", 5, "12.34", "FEE"]]), "other.csv");
    const { rows: [x1] } = await db.query<{ id: string }>("SELECT id FROM records WHERE data_source_id = $1", [other]);
    const refusals: [string, string[], string[]][] = [
      ["a right record named as left", ids("B9"), ids("L3")],
      ["a record of a source the job did not reconcile", ids("L3"), [x1!.id]],
      ["a record named twice", ids("L3", "L3"), ids("B9")],
      ["an invalid id", ids("L3"), ["nope"]],
    ];
    for (const [what, left, right] of refusals) {
      const manual = fail(await t.graphql(MANUAL, { job: jobId, left, right }, analyst.token));
      expect(manual.code, what).toBe("BAD_USER_INPUT");
      expect(fail(await t.graphql(DIFFERENCE, { job: jobId, l: left, r: right }, analyst.token)), what).toEqual(manual);
    }
    // A selection still being made: one side may be empty.
    expect(ok(await t.graphql(DIFFERENCE, { job: jobId, l: ids("L3"), r: [] }, analyst.token)).matchDifference).toEqual([
      { currency: "EUR", left: "55.0000", right: "0.0000", difference: "55.0000" },
    ]);
  });

  it("unmatch takes an automatic match apart into unmatched records with exceptions; a single record cannot be unmatched", async () => {
    const matched = await groupOf(jobId, "L1");
    const result = ok(await t.graphql(UNMATCH, { id: matched.id, reason: "wrong invoice" }, analyst.token)).unmatch;
    expect(result.groups.map((g: any) => [g.outcome, g.status, g.kind])).toEqual([
      ["UNMATCHED_LEFT", "PROPOSED", "SINGLE"],
      ["UNMATCHED_RIGHT", "PROPOSED", "SINGLE"],
    ]);
    expect(result.openedExceptions.map((e: any) => [e.type, externalIdsOf(e)])).toEqual([["UNMATCHED_LEFT", "L1"], ["UNMATCHED_RIGHT", "B1"]]);
    expect((await audit(matched.id))[0]).toMatchObject({ action: "match.unmatch", reason: "wrong invoice", before: { outcome: "MATCHED", status: "CONFIRMED" } });
    expect(fail(await t.graphql(UNMATCH, { id: result.groups[0].id }, analyst.token))).toMatchObject({ code: "BAD_USER_INPUT", field: "groupId" });
    expect(fail(await t.graphql(UNMATCH, { id: matched.id }, analyst.token))).toMatchObject({ code: "NOT_FOUND" });
    await expectInvariant(jobId);
  });
});

describe("who may do what", () => {
  it("project VIEWERs and global VIEWERs are refused every change; outsiders do not see the exception, group or job", async () => {
    const exception = (await exceptionOf(jobId, "B2")).id;
    const group = (await groupOf(jobId, "L9")).id;
    const attempts: [string, Record<string, unknown>][] = [
      [ASSIGN, { ids: [exception], to: analyst.id }],
      [PENDING, { id: exception }],
      [RESOLVE, { ids: [exception], reason: "x" }],
      [REOPEN, { id: exception }],
      [WRITE_OFF, { id: exception, input: { kind: "WRITE_OFF", reason: "x" } }],
      [LABELS, { id: exception, labels: ["x"] }],
      [COMMENT, { id: exception, body: "x" }],
      [CONFIRM, { id: group }],
      [REJECT, { id: group }],
      [UNMATCH, { id: group }],
      [MANUAL, { job: jobId, left: ids("L9"), right: ids("B11") }],
      [FORCE, { job: jobId, left: ids("L9"), right: ids("B11"), code: "ROUNDING" }],
    ];
    for (const [user, code] of [[projectViewer, "FORBIDDEN"], [globalViewer, "FORBIDDEN"], [outsider, "NOT_FOUND"]] as const) {
      for (const [query, variables] of attempts) {
        expect({ user: user.email, query: query.slice(0, 40), ...fail(await t.graphql(query, variables, user.token)) }).toMatchObject({ code });
      }
    }
    expect((await exceptionOf(jobId, "B2")).status).toBe("OPEN");
    expect((await groupOf(jobId, "L9")).status).toBe("PROPOSED");
    // Reading: members (VIEWERs too) see the exceptions; an outsider sees none.
    expect((await list({}, projectViewer.token)).total).toBeGreaterThan(0);
    expect((await list({}, outsider.token)).total).toBe(0);
    expect(ok(await t.graphql(`query($id: ID!) { exception(id: $id) { id } }`, { id: exception }, outsider.token)).exception).toBeNull();
    expect(ok(await t.graphql(`query($id: ID!) { exception(id: $id) { id } }`, { id: exception }, projectViewer.token)).exception).toEqual({ id: exception });
  });

  it("ANALYSTs work exceptions and groups; MANAGERs (global or in the project) and ADMINs also force and write off", async () => {
    const exception = (await exceptionOf(jobId, "B2")).id;
    for (const user of [analyst, owner, manager, projectManager, t.admin]) {
      expect(ok(await t.graphql(COMMENT, { id: exception, body: `seen by ${user.email}` }, user.token)).commentOnException.author.id).toBe(user.id);
    }
    for (const user of [analyst, owner]) {
      expect(fail(await t.graphql(WRITE_OFF, { id: exception, input: { kind: "WRITE_OFF", reason: "x" } }, user.token))).toMatchObject({ code: "FORBIDDEN" });
    }
    const written = ok(await t.graphql(WRITE_OFF, { id: exception, input: { kind: "WRITE_OFF", amount: "90.00", reason: "unknown credit" } }, projectManager.token)).writeOffException;
    expect(written).toMatchObject({ resolution: "WRITTEN_OFF", resolutionAmount: "90.0000" });
    ok(await t.graphql(REOPEN, { id: exception }, manager.token));
  });
});

describe("two people acting at once", () => {
  /** Holds the row locks of `groups` while `actions` start, until all of them wait on it; then lets them race. */
  async function collide(groups: string[], actions: (() => Promise<GraphQLResponse>)[]): Promise<GraphQLResponse[]> {
    const holder = await db.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT 1 FROM match_groups WHERE id = ANY($1::uuid[]) FOR UPDATE", [groups]);
      const running = actions.map((action) => action());
      for (;;) {
        const { rows } = await holder.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
        );
        if (rows[0]!.n >= actions.length) break;
      }
      await holder.query("ROLLBACK");
      return await Promise.all(running);
    } finally {
      holder.release();
    }
  }

  it("confirm and reject of the same proposal: exactly one succeeds", async () => {
    const group = (await groupOf(jobId, "L9")).id;
    const results = await collide([group], [() => t.graphql(CONFIRM, { id: group }, analyst.token), () => t.graphql(REJECT, { id: group }, owner.token)]);
    const succeeded = results.filter((result) => !result.errors);
    expect(succeeded).toHaveLength(1);
    const loser = results.find((result) => result.errors)!;
    expect(["BAD_USER_INPUT", "NOT_FOUND"]).toContain(errorCode(loser));
    await expectInvariant(jobId);
  });

  it("two manual matches of the same records: exactly one succeeds, the other is told the records are taken", async () => {
    const groups = [(await groupOf(jobId, "L1")).id, (await groupOf(jobId, "B1")).id];
    const match = (user: TestUser) => () => t.graphql(MANUAL, { job: jobId, left: ids("L1"), right: ids("B1") }, user.token);
    const results = await collide(groups, [match(analyst), match(owner)]);
    expect(results.filter((result) => !result.errors)).toHaveLength(1);
    const loser = fail(results.find((result) => result.errors)!);
    expect(loser).toMatchObject({ code: "BAD_USER_INPUT", field: "leftRecordIds[0]", message: expect.stringContaining("not available") });
    expect(await groupsOf(jobId)).toContain("MATCHED CONFIRMED L1|B1");
    await expectInvariant(jobId);
  });
});

// Last before deleting: the jobs this runs carry forward (and so resolve) the first job's open exceptions.
describe("rejected pairs", () => {
  it("rejectMatch puts the records back as unmatched and the next jobs never propose the pair again", async () => {
    const s1 = await groupOf(jobId, "L4");
    const result = ok(await t.graphql(REJECT, { id: s1.id, reason: "different customers" }, analyst.token)).rejectMatch;
    expect(result.openedExceptions.map((e: any) => [e.type, externalIdsOf(e)])).toEqual([["UNMATCHED_LEFT", "L4"], ["UNMATCHED_RIGHT", "B4"]]);
    expect((await audit(s1.id))[0]).toMatchObject({ action: "match.reject", reason: "different customers", after: { status: "REJECTED", rejectedPairs: 1 } });
    expect(fail(await t.graphql(REJECT, { id: (await groupOf(jobId, "L8")).id }, analyst.token))).toMatchObject({ code: "BAD_USER_INPUT", message: expect.stringContaining("is CONFIRMED") });
    await expectInvariant(jobId);

    // The same rules again: the engine does not suggest L4/B4; the other suggestions stay.
    const again = await groupsOf(await runJob());
    expect(again).toContain("UNMATCHED_LEFT PROPOSED L4|");
    expect(again).toContain("UNMATCHED_RIGHT PROPOSED |B4");
    // (L9/B11 may have been rejected by the race test above: whichever of confirm and reject won.)
    expect(again).toContain("SUGGESTED PROPOSED L10|B12");
    // An exact amount-and-currency first pass runs in PostgreSQL: the pair is left out there too (60.00 is still paired).
    const exact = { passes: [{ name: "amount", mode: "AUTO", comparators: [{ field: "amount", type: "exact" }, { field: "currency", type: "equal" }] }] };
    const pushed = await groupsOf(await runJob({ rules: exact }));
    expect(pushed).toContain("MATCHED CONFIRMED L8|B10");
    expect(pushed).toContain("UNMATCHED_LEFT PROPOSED L4|");
    expect(pushed).toContain("UNMATCHED_RIGHT PROPOSED |B4");
    // Sources swapped (the bank on the left): still not proposed.
    const swapped = await groupsOf(await runJob({ leftSourceId: bankId, rightSourceId: ledgerId }));
    expect(swapped).toContain("UNMATCHED_LEFT PROPOSED B4|");
    expect(swapped).toContain("UNMATCHED_RIGHT PROPOSED |L4");
  });
});

describe("deleting", () => {
  it("the project deletes its jobs' exceptions, comments and rejected pairs", async () => {
    const count = async (table: string) => (await db.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n as number;
    expect(await count("exceptions")).toBeGreaterThan(0);
    expect(await count("exception_comments")).toBeGreaterThan(0);
    expect(await count("rejected_pairs")).toBeGreaterThan(0);
    ok(await t.graphql("mutation($id: ID!) { deleteProject(id: $id) }", { id: projectId }, owner.token));
    expect([await count("exceptions"), await count("exception_comments"), await count("rejected_pairs"), await count("match_groups")]).toEqual([0, 0, 0, 0]);
  });
});
