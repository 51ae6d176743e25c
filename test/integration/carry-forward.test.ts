/**
 * Carry-forward of exceptions between jobs of the same pair of sources, through GraphQL against real PostgreSQL:
 * a record still unmatched in the next job keeps its exception's work (status, assignee, labels, comments, first
 * opening), a record the next job matches thanks to late-arriving data gets its old exception resolved as MATCHED,
 * and the open-exception statistics and the audit log follow.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { ok, startTestApp, type TestApp, type TestUser } from "../helpers/app.js";
import { uploadCsv } from "../helpers/jobs.js";

let t: TestApp;
let owner: TestUser;
let analyst: TestUser;
let projectId: string;
let ledgerId: string;
let bankId: string;

const day = (daysAgo: number) => new Date(Date.now() - daysAgo * 86_400_000).toISOString().slice(0, 10);
const csv = (rows: [string, number, string, string][]) =>
  "id,date,amount,currency,reference\n" + rows.map(([id, ago, amount, reference]) => `${id},${day(ago)},${amount},EUR,${reference}`).join("\n") + "\n";

const EXCEPTION = `id jobId status resolution assignee { id } labels comments { body } carriedFromId firstOpenedAt openDays createdAt
  leftRecords { externalId }`;

beforeAll(async () => {
  t = await startTestApp({ RECON_WORKERS: "1" });
  owner = await t.createUser("ANALYST");
  analyst = await t.createUser("ANALYST");
  projectId = ok(await t.graphql(`mutation { createProject(input: { name: "Carry" }) { id } }`, {}, owner.token)).createProject.id;
  ok(await t.graphql(`mutation($p: ID!, $u: ID!) { addProjectMember(projectId: $p, userId: $u, role: ANALYST) { id } }`, { p: projectId, u: analyst.id }, owner.token));
  const source = async (name: string) =>
    ok(await t.graphql(`mutation($p: ID!, $n: String!) { createDataSource(input: { projectId: $p, name: $n }) { id } }`, { p: projectId, n: name }, owner.token)).createDataSource.id as string;
  [ledgerId, bankId] = [await source("Ledger"), await source("Bank")];
  await uploadCsv(t, owner.token, ledgerId, csv([
    ["L1", 5, "100.00", "INV-1"], // matched by the first job
    ["L2", 5, "55.00", "INV-2"], // unmatched in both jobs: its exception is carried
    ["L3", 5, "70.00", "INV-3"], // unmatched until the bank's late line arrives
  ]));
  await uploadCsv(t, owner.token, bankId, csv([["B1", 5, "100.00", "INV-1"]]));
});
afterAll(() => t?.close());

async function runJob(): Promise<string> {
  const id = ok(await t.graphql("mutation($input: StartReconciliationInput!) { startReconciliation(input: $input) { id } }", { input: { projectId, leftSourceId: ledgerId, rightSourceId: bankId } }, owner.token))
    .startReconciliation.id as string;
  // Polling the job's state (not a sleep): the worker runs it in the background.
  for (;;) {
    const status = ok(await t.graphql("query($id: ID!) { reconciliationJob(id: $id) { status } }", { id }, owner.token)).reconciliationJob.status;
    if (status === "COMPLETED") return id;
    expect(["QUEUED", "RUNNING"]).toContain(status);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function exceptionsOf(jobId: string) {
  const data = ok(await t.graphql(`query($p: ID!, $j: ID) { exceptions(projectId: $p, filter: { jobId: $j }, first: 50) { edges { node { ${EXCEPTION} } } } }`, { p: projectId, j: jobId }, owner.token));
  const byRecord = new Map<string, any>();
  for (const { node } of data.exceptions.edges) byRecord.set(node.leftRecords.map((r: { externalId: string }) => r.externalId).join("+"), node);
  return byRecord;
}

const openExceptions = async () =>
  ok(await t.graphql(`query($p: ID!) { projectStats(projectId: $p) { openExceptions } }`, { p: projectId }, owner.token)).projectStats.openExceptions as number;

it("continues a still-open exception in the next job and resolves the one whose records late data matched", async () => {
  const first = await runJob();
  const before = await exceptionsOf(first);
  expect([...before.keys()].sort()).toEqual(["L2", "L3"]);
  const l2 = before.get("L2");
  expect(l2).toMatchObject({ status: "OPEN", carriedFromId: null, openDays: 0 });
  expect(new Date(l2.firstOpenedAt).getTime()).toBe(new Date(l2.createdAt).getTime());
  ok(await t.graphql(`mutation($ids: [ID!]!, $a: ID) { assignExceptions(ids: $ids, assigneeId: $a, reason: "bank to confirm") { id } }`, { ids: [l2.id], a: analyst.id }, owner.token));
  ok(await t.graphql(`mutation($id: ID!) { setExceptionLabels(id: $id, labels: ["late"]) { id } }`, { id: l2.id }, owner.token));
  ok(await t.graphql(`mutation($id: ID!) { commentOnException(id: $id, body: "asked the bank") { id } }`, { id: l2.id }, analyst.token));
  expect(await openExceptions()).toBe(2);

  // The bank's line for L3 arrives late; the next job matches it.
  await uploadCsv(t, owner.token, bankId, csv([["B3", 4, "70.00", "INV-3"]]), "bank-2.csv");
  const second = await runJob();

  const after = await exceptionsOf(second);
  expect([...after.keys()]).toEqual(["L2"]);
  expect(after.get("L2")).toMatchObject({
    jobId: second,
    status: "ASSIGNED",
    assignee: { id: analyst.id },
    labels: ["late"],
    comments: [{ body: "asked the bank" }],
    carriedFromId: l2.id,
    firstOpenedAt: l2.firstOpenedAt,
  });
  const earlier = await exceptionsOf(first);
  expect(earlier.get("L2")).toMatchObject({ status: "RESOLVED", resolution: "SUPERSEDED", comments: [] });
  expect(earlier.get("L3")).toMatchObject({ status: "RESOLVED", resolution: "MATCHED" });
  expect(await openExceptions()).toBe(1);

  const audit = ok(await t.graphql(`query($p: ID!) { auditLog(first: 5, filter: { projectId: $p, action: "exceptions.carryForward" }) { edges { node { resourceId after reason } } } }`, { p: projectId }, t.admin.token));
  expect(audit.auditLog.edges.map((edge: { node: unknown }) => edge.node)).toEqual([
    { resourceId: second, after: { carried: 1, settled: 1 }, reason: "carry-forward when the job completed" },
  ]);
});
