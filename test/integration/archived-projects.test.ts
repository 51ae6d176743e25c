/**
 * An ARCHIVED project is read-only history, through every door: after `archiveProject`, each write that would change
 * its contents — uploads (PUT and multipart), the project itself, data sources, rule sets, runs, schedules,
 * exceptions and match work — is refused as BAD_USER_INPUT (reason CONFLICT) and changes nothing; its scheduled
 * runs do not start; everything in it can still be read; its members can still be managed, a job queued before it
 * was archived cancelled (by the archiving), and the project deleted by its owner.
 */
import pg from "pg";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { errorCode, ok, startTestApp, type GraphQLResponse, type TestApp, type TestUser } from "../helpers/app.js";
import { uploadCsv } from "../helpers/jobs.js";

let t: TestApp;
let db: pg.Pool;
let owner: TestUser; // global ANALYST who created the project (OWNER)
let manager: TestUser; // global ANALYST, project MANAGER
let projectId: string;
let ledgerId: string;
let bankId: string;
let jobId: string;
let queuedJobId: string;
let uploadId: string;
let exception: { id: string; group: { id: string } };

const CSV = "id,date,amount,currency,reference\nX1,2026-10-01,100.00,EUR,INV-1\nX2,2026-10-02,55.00,EUR,INV-2\n";
const BANK = "id,date,amount,currency,reference\nY1,2026-10-01,100.00,EUR,INV-1\nY3,2026-10-03,12.34,EUR,FEE\n";

const SCHEDULE = `query($p: ID!) { project(id: $p) { reconciliationSchedule { cron lastJob { id } lastSkipReason } } }`;

beforeAll(async () => {
  t = await startTestApp({ RECON_WORKERS: "1", LOG_LEVEL: "error" });
  db = new pg.Pool({ connectionString: t.db.url, max: 2 });
  [owner, manager] = await Promise.all([t.createUser("ANALYST", "Owner"), t.createUser("ANALYST", "Manager")]);
  projectId = ok(await t.graphql(`mutation { createProject(input: { name: "History" }) { id } }`, {}, owner.token)).createProject.id;
  ok(await t.graphql("mutation($p: ID!, $u: ID!) { addProjectMember(projectId: $p, userId: $u, role: MANAGER) { id } }", { p: projectId, u: manager.id }, owner.token));
  const source = async (name: string) =>
    ok(await t.graphql("mutation($p: ID!, $n: String!) { createDataSource(input: { projectId: $p, name: $n }) { id } }", { p: projectId, n: name }, owner.token)).createDataSource.id as string;
  ledgerId = await source("Ledger");
  bankId = await source("Bank");
  await uploadCsv(t, owner.token, ledgerId, CSV, "ledger.csv");
  await uploadCsv(t, owner.token, bankId, BANK, "bank.csv");
  uploadId = (await db.query("SELECT id FROM uploaded_files WHERE data_source_id = $1", [ledgerId])).rows[0].id;
  ok(await t.graphql(`mutation($p: ID!, $l: ID!, $r: ID!) { setReconciliationSchedule(projectId: $p, input: { leftSourceId: $l, rightSourceId: $r, cron: "0 3 * * *" }) { cron } }`, { p: projectId, l: ledgerId, r: bankId }, owner.token));
  const run = { projectId, leftSourceId: ledgerId, rightSourceId: bankId };
  jobId = ok(await t.graphql("mutation($input: StartReconciliationInput!) { startReconciliation(input: $input) { id } }", { input: run }, owner.token)).startReconciliation.id;
  await vi.waitFor(
    async () => expect(ok(await t.graphql("query($id: ID!) { reconciliationJob(id: $id) { status } }", { id: jobId }, owner.token)).reconciliationJob.status).toBe("COMPLETED"),
    { timeout: 60_000, interval: 100 },
  );
  exception = ok(await t.graphql("query($p: ID!) { exceptions(projectId: $p, first: 1) { edges { node { id group { id } } } } }", { p: projectId }, owner.token)).exceptions.edges[0].node;
  // A job queued just before the project is archived (recorded, not handed to the queue: no worker takes it).
  const queued = await t.app.container.database.prisma.reconciliationJob.create({ data: { projectId, leftSourceId: ledgerId, rightSourceId: bankId, createdById: owner.id } });
  queuedJobId = queued.id;
  const archived = ok(await t.graphql("mutation($id: ID!) { archiveProject(id: $id) { status } }", { id: projectId }, manager.token));
  expect(archived.archiveProject.status).toBe("ARCHIVED");
});

afterAll(async () => {
  await db?.end();
  await t?.close();
});

const ARCHIVED = () => `project ${projectId} is archived (read-only history): it can be read and deleted, not changed`;

/** The refusal every change to the archived project gets: BAD_USER_INPUT, reason CONFLICT, naming `field`. */
function refused(response: GraphQLResponse, field: string, what: string) {
  expect(errorCode(response), what).toBe("BAD_USER_INPUT");
  expect(response.errors![0]!.extensions, what).toMatchObject({ field, reason: "CONFLICT" });
  expect(response.errors![0]!.message, what).toBe(`${field}: ${ARCHIVED()}`);
}

/** What a change could have changed: counted before and after the attempts. */
async function contents() {
  const { rows } = await db.query(
    `SELECT (SELECT name FROM projects WHERE id = $1) AS name,
       (SELECT count(*)::int FROM data_sources WHERE project_id = $1) AS sources,
       (SELECT count(*)::int FROM uploaded_files WHERE project_id = $1) AS uploads,
       (SELECT count(*)::int FROM reconciliation_jobs WHERE project_id = $1) AS jobs,
       (SELECT count(*)::int FROM rule_sets WHERE project_id = $1) AS "ruleSets",
       (SELECT count(*)::int FROM reconciliation_schedules WHERE project_id = $1) AS schedules,
       (SELECT count(*)::int FROM audit_events WHERE project_id = $1) AS "auditEvents",
       (SELECT string_agg(status::text, ',' ORDER BY id) FROM exceptions WHERE project_id = $1) AS exceptions,
       (SELECT string_agg(g.status::text, ',' ORDER BY g.id) FROM match_groups g JOIN reconciliation_jobs j ON j.id = g.job_id WHERE j.project_id = $1) AS groups`,
    [projectId],
  );
  return rows[0];
}

it("refuses every change to its contents, through GraphQL and the PUT route, and changes nothing", async () => {
  const before = await contents();
  const g = (query: string, variables: Record<string, unknown>) => t.graphql(query, variables, owner.token);
  const rules = ok(await g("{ defaultRules }", {})).defaultRules;
  const attempts: [string, Promise<GraphQLResponse>, string][] = [
    ["updateProject", g(`mutation($id: ID!) { updateProject(id: $id, input: { name: "Renamed" }) { id } }`, { id: projectId }), "id"],
    ["archiveProject again", g(`mutation($id: ID!) { archiveProject(id: $id) { id } }`, { id: projectId }), "id"],
    ["createDataSource", g(`mutation($p: ID!) { createDataSource(input: { projectId: $p, name: "New" }) { id } }`, { p: projectId }), "input.projectId"],
    ["updateDataSource", g(`mutation($id: ID!) { updateDataSource(id: $id, input: { isActive: false }) { id } }`, { id: ledgerId }), "id"],
    ["saveRuleSet", g(`mutation($p: ID!, $r: JSON!) { saveRuleSet(input: { projectId: $p, name: "Daily", rules: $r }) { id } }`, { p: projectId, r: rules }), "input.projectId"],
    ["startReconciliation", g(`mutation($p: ID!, $l: ID!, $r: ID!) { startReconciliation(input: { projectId: $p, leftSourceId: $l, rightSourceId: $r }) { id } }`, { p: projectId, l: ledgerId, r: bankId }), "input.projectId"],
    ["setReconciliationSchedule", g(`mutation($p: ID!, $l: ID!, $r: ID!) { setReconciliationSchedule(projectId: $p, input: { leftSourceId: $l, rightSourceId: $r, onNewUploads: true }) { cron } }`, { p: projectId, l: ledgerId, r: bankId }), "projectId"],
    ["commentOnException", g(`mutation($id: ID!) { commentOnException(id: $id, body: "late") { id } }`, { id: exception.id }), "id"],
    ["resolveExceptions", g(`mutation($ids: [ID!]!) { resolveExceptions(ids: $ids, reason: "late") { id } }`, { ids: [exception.id] }), "id"],
    ["unmatch", g(`mutation($id: ID!) { unmatch(groupId: $id) { groups { id } } }`, { id: exception.group.id }), "id"],
  ];
  for (const [what, response, field] of attempts) refused(await response, field, what);

  const form = new FormData();
  form.append("operations", JSON.stringify({ query: `mutation($s: ID!, $f: Upload!) { uploadDataSourceFile(dataSourceId: $s, file: $f) { id } }`, variables: { s: ledgerId, f: null } }));
  form.append("map", JSON.stringify({ 0: ["variables.f"] }));
  form.append("0", new Blob(["id,date,amount,currency\nZ1,2026-10-09,1.00,EUR\n"], { type: "text/csv" }), "late.csv");
  const multipart = await fetch(t.url, { method: "POST", headers: { authorization: `Bearer ${owner.token}`, "apollo-require-preflight": "true" }, body: form });
  refused({ status: multipart.status, headers: multipart.headers, ...((await multipart.json()) as object) }, "dataSourceId", "uploadDataSourceFile");

  const put = await fetch(new URL(`/data-sources/${ledgerId}/file?name=late.csv`, t.url), {
    method: "PUT",
    headers: { authorization: `Bearer ${owner.token}`, "content-type": "text/csv" },
    body: "id,date,amount,currency\nZ2,2026-10-09,2.00,EUR\n",
  });
  expect(put.status).toBe(400);
  refused({ status: put.status, headers: put.headers, ...((await put.json()) as object) }, "dataSourceId", "PUT /data-sources/<id>/file");

  expect(await contents()).toEqual(before);
});

it("keeps everything in it readable", async () => {
  const read = ok(
    await t.graphql(
      `query($p: ID!, $job: ID!, $upload: ID!) {
        project(id: $p) { status name dataSources { id } jobs { totalCount } }
        reconciliationJob(id: $job) { status }
        exceptions(projectId: $p) { totalCount }
        fileUpload(id: $upload) { status rowsIngested }
      }`,
      { p: projectId, job: jobId, upload: uploadId },
      owner.token,
    ),
  );
  expect(read).toMatchObject({
    project: { status: "ARCHIVED", name: "History", jobs: { totalCount: 2 } },
    reconciliationJob: { status: "COMPLETED" },
    fileUpload: { status: "COMPLETED", rowsIngested: 2 },
  });
  expect(read.project.dataSources).toHaveLength(2);
  expect(read.exceptions.totalCount).toBeGreaterThan(0);
  const monitor = await fetch(new URL(`/uploads/${uploadId}`, t.url), { headers: { authorization: `Bearer ${owner.token}` } });
  expect(monitor.status).toBe(200);
  expect(((await monitor.json()) as { upload: { status: string } }).upload.status).toBe("COMPLETED");
});

it("does not start its scheduled runs, records why, and lets its schedule be cleared", async () => {
  // Time passes (the clock is the outside world): the schedule is due.
  await db.query(`UPDATE reconciliation_schedules SET next_run_at = now() - interval '1 minute' WHERE project_id = $1`, [projectId]);
  expect(await t.app.container.services.schedules.runDue()).toBe(0);
  const schedule = ok(await t.graphql(SCHEDULE, { p: projectId }, owner.token)).project.reconciliationSchedule;
  expect(schedule).toMatchObject({ cron: "0 3 * * *", lastJob: null, lastSkipReason: "the project is archived" });
  const { rows } = await db.query("SELECT count(*)::int AS n FROM reconciliation_jobs WHERE project_id = $1", [projectId]);
  expect(rows[0].n).toBe(2);
  // Its automation can be removed (that changes none of its history), so that its ticks stop.
  expect(ok(await t.graphql(`mutation($p: ID!) { clearReconciliationSchedule(projectId: $p) }`, { p: projectId }, owner.token)).clearReconciliationSchedule).toBe(true);
  expect(ok(await t.graphql(SCHEDULE, { p: projectId }, owner.token)).project.reconciliationSchedule).toBeNull();
});

it("cancelled the job not finished when it was archived, saying why, and left the finished one as it was", async () => {
  const status = async (id: string) => ok(await t.graphql("query($id: ID!) { reconciliationJob(id: $id) { status } }", { id }, owner.token)).reconciliationJob.status;
  expect(await status(queuedJobId)).toBe("CANCELLED");
  expect(await status(jobId)).toBe("COMPLETED");
  const log = ok(await t.graphql("query($id: ID!) { auditLog(filter: { resourceId: $id }) { edges { node { action reason actorId } } } }", { id: queuedJobId }, manager.token));
  expect(log.auditLog.edges.map((edge: { node: unknown }) => edge.node)).toEqual([{ action: "reconciliation.cancel", reason: "the project was archived", actorId: manager.id }]);
});

it("lets its members be managed", async () => {
  const reader = await t.createUser("ANALYST", "Auditor");
  ok(await t.graphql("mutation($p: ID!, $u: ID!) { addProjectMember(projectId: $p, userId: $u, role: VIEWER) { id } }", { p: projectId, u: reader.id }, manager.token));
  expect(ok(await t.graphql("query($p: ID!) { project(id: $p) { name } }", { p: projectId }, reader.token)).project.name).toBe("History");
  ok(await t.graphql("mutation($p: ID!, $u: ID!) { removeProjectMember(projectId: $p, userId: $u) { id } }", { p: projectId, u: reader.id }, manager.token));
  expect(ok(await t.graphql("query($p: ID!) { project(id: $p) { name } }", { p: projectId }, reader.token)).project).toBeNull();
});

it("can still be deleted, by those who may delete it", async () => {
  expect(errorCode(await t.graphql("mutation($id: ID!) { deleteProject(id: $id) }", { id: projectId }, manager.token))).toBe("FORBIDDEN");
  expect(ok(await t.graphql("mutation($id: ID!) { deleteProject(id: $id) }", { id: projectId }, owner.token)).deleteProject).toBe(projectId);
  expect(ok(await t.graphql("query($p: ID!) { project(id: $p) { id } }", { p: projectId }, owner.token)).project).toBeNull();
});
