/**
 * Automatic reconciliation runs and the statistics built on their results, through GraphQL against real
 * PostgreSQL: a schedule that runs on new uploads (a job runs by itself once both sources have one), the race of
 * two uploads completing at once on two instances (one job), skipping while a job of the pair is unfinished, the
 * cron trigger through the queue's scheduler tick, validation and rights; then `projectStats` read from the
 * response cache, a job completing, and fresh statistics.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { COLUMN_MAPPING, generateFiles } from "../../bench/reconcile-data.js";
import { errorCode, ok, startTestApp, type TestApp, type TestUser } from "../helpers/app.js";
import { uploadCsv } from "../helpers/jobs.js";

const SET = `mutation Set($p: ID!, $input: ReconciliationScheduleInput!) {
  setReconciliationSchedule(projectId: $p, input: $input) { onNewUploads cron timezone nextRunAt ruleSetName leftSource { id } rightSource { id } lastJob { id } lastSkipReason }
}`;
const JOBS = `query Jobs($p: ID!) { reconciliationJobs(projectId: $p) { totalCount edges { node { id status createdBy { id } } } } }`;
const SCHEDULE = `query Schedule($p: ID!) { project(id: $p) { reconciliationSchedule { nextRunAt lastJob { id } lastRunAt lastSkipReason lastSkippedAt } } }`;
const STATS = `query Stats($p: ID!) { projectStats(projectId: $p) {
  autoMatchRate openExceptions
  outcomes { outcome groups leftRecords rightRecords amounts { currency left right } }
  pairs { leftSource { id } rightSource { id } job { id } autoMatchRate openExceptions passes { pass name groups } outcomes { outcome groups } }
  autoMatchRateHistory { job { id } finishedAt autoMatchRate }
  ruleHits { rule groups }
  exceptionsByAge { label minDays maxDays groups records }
} project(id: $p) { summary { latestAutoMatchRate openExceptions latestCompletedJob { id } } } }`;

/** A project with two sources (ledger, bank) owned by `owner`. */
async function createProject(t: TestApp, owner: TestUser, name: string) {
  const projectId = ok(await t.graphql(`mutation($n: String!) { createProject(input: { name: $n }) { id } }`, { n: name }, owner.token)).createProject.id as string;
  const source = async (sourceName: string) =>
    ok(await t.graphql("mutation($p: ID!, $n: String!, $m: JSON) { createDataSource(input: { projectId: $p, name: $n, columnMapping: $m }) { id } }", { p: projectId, n: sourceName, m: COLUMN_MAPPING }, owner.token))
      .createDataSource.id as string;
  return { projectId, ledgerId: await source("Ledger"), bankId: await source("Bank") };
}

async function jobsOf(t: TestApp, token: string, projectId: string): Promise<{ totalCount: number; edges: { node: { id: string; status: string; createdBy: { id: string } } }[] }> {
  return ok(await t.graphql(JOBS, { p: projectId }, token)).reconciliationJobs;
}

/** Waits (polling the API) until the project has `count` jobs, all COMPLETED; returns them, newest first. */
async function completedJobs(t: TestApp, token: string, projectId: string, count: number) {
  return vi.waitFor(
    async () => {
      const jobs = await jobsOf(t, token, projectId);
      expect(jobs.totalCount).toBe(count);
      for (const edge of jobs.edges) expect(edge.node.status).toBe("COMPLETED");
      return jobs.edges.map((edge) => edge.node);
    },
    { timeout: 60_000, interval: 100 },
  );
}

describe("automatic runs with a worker", () => {
  let t: TestApp;
  let db: pg.Pool;
  let owner: TestUser;
  let analyst: TestUser;
  let p: { projectId: string; ledgerId: string; bankId: string };

  beforeAll(async () => {
    t = await startTestApp({ RECON_WORKERS: "1", LOG_LEVEL: "error" });
    db = new pg.Pool({ connectionString: t.db.url, max: 2 });
    owner = await t.createUser("ANALYST");
    analyst = await t.createUser("ANALYST");
    p = await createProject(t, owner, "Automatic");
    ok(await t.graphql(`mutation($p: ID!, $u: ID!) { addProjectMember(projectId: $p, userId: $u, role: ANALYST) { id } }`, { p: p.projectId, u: analyst.id }, owner.token));
  });

  afterAll(async () => {
    await db?.end();
    await t?.close();
  });

  it("runs the project's rules by itself once both sources have a new completed upload", async () => {
    // Set by a member (not the owner): the runs still act for the owner.
    const set = ok(await t.graphql(SET, { p: p.projectId, input: { leftSourceId: p.ledgerId, rightSourceId: p.bankId, onNewUploads: true } }, analyst.token));
    expect(set.setReconciliationSchedule).toMatchObject({ onNewUploads: true, cron: null, timezone: "UTC", nextRunAt: null, leftSource: { id: p.ledgerId }, lastJob: null });
    const files = generateFiles(300, 11);
    await uploadCsv(t, analyst.token, p.ledgerId, files.ledger, "ledger-1.csv");
    // One side is not enough.
    expect((await jobsOf(t, analyst.token, p.projectId)).totalCount).toBe(0);
    await uploadCsv(t, analyst.token, p.bankId, files.bank, "bank-1.csv");
    const [job] = await completedJobs(t, analyst.token, p.projectId, 1);
    expect(job!.createdBy.id).toBe(owner.id);
    const schedule = ok(await t.graphql(SCHEDULE, { p: p.projectId }, analyst.token)).project.reconciliationSchedule;
    expect(schedule.lastJob.id).toBe(job!.id);
    expect(schedule.lastSkipReason).toBeNull();
    // Audited as the system (no actor), with why.
    const { rows } = await db.query(`SELECT user_id, reason FROM audit_events WHERE action = 'reconciliation.start' AND resource_id = $1`, [job!.id]);
    expect(rows).toEqual([{ user_id: null, reason: "automatic: new completed uploads in both sources" }]);
    const metrics = await (await fetch(t.url.replace(/\/graphql$/, "/metrics"))).text();
    expect(metrics).toMatch(/recon_triggered_jobs_total\{reason="uploads",result="queued"\} 1/);
  });

  it("answers projectStats from the cache, then fresh once another job completed", async () => {
    const first = await t.graphql(STATS, { p: p.projectId }, analyst.token);
    const cached = await t.graphql(STATS, { p: p.projectId }, analyst.token);
    expect(cached.headers.get("x-cache")).toBe("HIT");
    expect(cached.data).toEqual(first.data);
    const [job] = (await jobsOf(t, analyst.token, p.projectId)).edges.map((edge) => edge.node);
    const summary = ok(await t.graphql(`query($id: ID!) { reconciliationJob(id: $id) { summary { autoMatchRate outcomes { outcome groups } passes { pass name groups } } } }`, { id: job!.id }, analyst.token))
      .reconciliationJob.summary;
    const stats = first.data!.projectStats;
    expect(stats.pairs).toHaveLength(1);
    expect(stats.pairs[0]).toMatchObject({ leftSource: { id: p.ledgerId }, rightSource: { id: p.bankId }, job: { id: job!.id }, autoMatchRate: summary.autoMatchRate, passes: summary.passes });
    expect(stats.autoMatchRate).toBe(summary.autoMatchRate);
    expect(stats.autoMatchRateHistory).toEqual([expect.objectContaining({ job: { id: job!.id }, autoMatchRate: summary.autoMatchRate })]);
    const exceptions = summary.outcomes
      .filter((o: { outcome: string }) => o.outcome !== "MATCHED" && o.outcome !== "SUGGESTED")
      .reduce((sum: number, o: { groups: number }) => sum + o.groups, 0);
    expect(exceptions).toBeGreaterThan(0);
    expect(stats.openExceptions).toBe(exceptions);
    expect(stats.exceptionsByAge.map((bucket: { label: string }) => bucket.label)).toEqual(["0-7", "8-30", "31-60", "61-90", "91+"]);
    expect(stats.exceptionsByAge.reduce((sum: number, bucket: { groups: number }) => sum + bucket.groups, 0)).toBe(exceptions);
    expect(first.data!.project.summary).toEqual({ latestAutoMatchRate: summary.autoMatchRate, openExceptions: exceptions, latestCompletedJob: { id: job!.id } });
    for (const total of stats.outcomes) for (const amount of total.amounts) expect(amount.left).toMatch(/^-?\d+\.\d{4}$/);

    // Resolving an exception: it is no longer open, in the statistics (cached before) and the summary.
    const exceptionId = ok(await t.graphql(`query($p: ID!) { exceptions(projectId: $p, first: 1) { edges { node { id } } } }`, { p: p.projectId }, analyst.token))
      .exceptions.edges[0].node.id;
    ok(await t.graphql(`mutation($ids: [ID!]!) { resolveExceptions(ids: $ids, reason: "explained by the bank") { id } }`, { ids: [exceptionId] }, analyst.token));
    const afterResolve = ok(await t.graphql(STATS, { p: p.projectId }, analyst.token));
    expect([afterResolve.projectStats.openExceptions, afterResolve.project.summary.openExceptions, afterResolve.projectStats.pairs[0].openExceptions]).toEqual([exceptions - 1, exceptions - 1, exceptions - 1]);

    // New uploads on both sides: a second job runs by itself, and the statistics follow without a flush.
    const files = generateFiles(200, 12);
    await uploadCsv(t, analyst.token, p.ledgerId, files.ledger, "ledger-2.csv");
    await uploadCsv(t, analyst.token, p.bankId, files.bank, "bank-2.csv");
    const [second] = await completedJobs(t, analyst.token, p.projectId, 2);
    const fresh = ok(await t.graphql(STATS, { p: p.projectId }, analyst.token));
    expect(fresh.projectStats.pairs.map((pair: { job: { id: string } }) => pair.job.id)).toEqual([second!.id]);
    expect(fresh.projectStats.autoMatchRateHistory.map((point: { job: { id: string } }) => point.job.id)).toEqual([job!.id, second!.id]);
    expect(fresh.project.summary.latestCompletedJob.id).toBe(second!.id);
  });

  it("runs on its cron expression when the scheduler's tick finds it due", async () => {
    const set = ok(await t.graphql(SET, { p: p.projectId, input: { leftSourceId: p.ledgerId, rightSourceId: p.bankId, cron: "0 3 * * *" } }, owner.token));
    const next = new Date(set.setReconciliationSchedule.nextRunAt);
    expect(next.getTime()).toBeGreaterThan(Date.now());
    expect([next.getUTCHours(), next.getUTCMinutes()]).toEqual([3, 0]);
    // Every worker process keeps pg-boss's once-a-minute tick scheduled.
    const { rows: ticks } = await db.query(`SELECT cron, timezone FROM pgboss.schedule WHERE name = 'recon-schedule-tick'`);
    expect(ticks).toEqual([{ cron: "* * * * *", timezone: "UTC" }]);
    // Time passes (the clock is the outside world): the schedule is due. The tick goes through the queue.
    await db.query(`UPDATE reconciliation_schedules SET next_run_at = now() - interval '1 minute' WHERE project_id = $1`, [p.projectId]);
    await t.app.container.queue.send(t.app.container.scheduleTickTask, {});
    const [job] = await completedJobs(t, owner.token, p.projectId, 3);
    const { rows } = await db.query(`SELECT user_id, reason FROM audit_events WHERE action = 'reconciliation.start' AND resource_id = $1`, [job!.id]);
    expect(rows).toEqual([{ user_id: null, reason: `scheduled: cron "0 3 * * *" (UTC)` }]);
    const schedule = ok(await t.graphql(SCHEDULE, { p: p.projectId }, owner.token)).project.reconciliationSchedule;
    expect(schedule.lastJob.id).toBe(job!.id);
    expect(new Date(schedule.nextRunAt).getTime()).toBeGreaterThan(Date.now());
  });
});

describe("automatic runs without a worker (jobs stay QUEUED)", () => {
  let a: TestApp;
  let b: TestApp;
  let db: pg.Pool;
  let owner: TestUser;

  beforeAll(async () => {
    a = await startTestApp({ LOG_LEVEL: "error" });
    b = await startTestApp({ LOG_LEVEL: "error" }, { database: a.db });
    db = new pg.Pool({ connectionString: a.db.url, max: 2 });
    owner = await a.createUser("ANALYST");
  });

  afterAll(async () => {
    await db?.end();
    await b?.close();
    await a?.close();
  });

  it("queues exactly one job when both uploads complete at once on two instances", async () => {
    const p = await createProject(a, owner, "Race");
    ok(await a.graphql(SET, { p: p.projectId, input: { leftSourceId: p.ledgerId, rightSourceId: p.bankId, onNewUploads: true } }, owner.token));
    const files = generateFiles(200, 21);
    await Promise.all([uploadCsv(a, owner.token, p.ledgerId, files.ledger, "ledger.csv"), uploadCsv(b, owner.token, p.bankId, files.bank, "bank.csv")]);
    // And the trigger asked again and again, concurrently, on both instances: the schedule's lock decides once.
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).app.container.services.schedules.uploadCompleted(p.projectId, i % 4 < 2 ? p.ledgerId : p.bankId)),
    );
    const { rows } = await db.query(`SELECT status::text FROM reconciliation_jobs WHERE project_id = $1`, [p.projectId]);
    expect(rows).toEqual([{ status: "QUEUED" }]);
  });

  it("skips a run while a job of the pair is unfinished, records why, and runs at the next upload after it ended", async () => {
    const p = await createProject(a, owner, "Busy");
    ok(await a.graphql(SET, { p: p.projectId, input: { leftSourceId: p.ledgerId, rightSourceId: p.bankId, onNewUploads: true } }, owner.token));
    const round = async (seed: number) => {
      const files = generateFiles(100, seed);
      await uploadCsv(a, owner.token, p.ledgerId, files.ledger, `ledger-${seed}.csv`);
      await uploadCsv(a, owner.token, p.bankId, files.bank, `bank-${seed}.csv`);
    };
    await round(31);
    const [queued] = (await jobsOf(a, owner.token, p.projectId)).edges.map((edge) => edge.node);
    expect(queued!.status).toBe("QUEUED");
    await round(32);
    expect((await jobsOf(a, owner.token, p.projectId)).totalCount).toBe(1);
    const schedule = ok(await a.graphql(SCHEDULE, { p: p.projectId }, owner.token)).project.reconciliationSchedule;
    expect(schedule.lastSkipReason).toBe(`job ${queued!.id} of this pair of sources is still QUEUED`);
    expect(schedule.lastSkippedAt).not.toBeNull();
    // The skipped uploads were not consumed: once the job is over, the next upload of either side runs them.
    ok(await a.graphql(`mutation($id: ID!) { cancelReconciliation(jobId: $id) { id } }`, { id: queued!.id }, owner.token));
    await uploadCsv(a, owner.token, p.ledgerId, generateFiles(100, 33).ledger, "ledger-33.csv");
    const jobs = await jobsOf(a, owner.token, p.projectId);
    expect(jobs.edges.map((edge) => edge.node.status)).toEqual(["QUEUED", "CANCELLED"]);
    // The run started: the skip before it is no longer why the last due run did not start.
    const after = ok(await a.graphql(SCHEDULE, { p: p.projectId }, owner.token)).project.reconciliationSchedule;
    expect(after).toMatchObject({ lastJob: { id: jobs.edges[0]!.node.id }, lastSkipReason: null, lastSkippedAt: null });
  });

  it("does nothing once the schedule is cleared", async () => {
    const p = await createProject(a, owner, "Cleared");
    ok(await a.graphql(SET, { p: p.projectId, input: { leftSourceId: p.ledgerId, rightSourceId: p.bankId, onNewUploads: true } }, owner.token));
    expect(ok(await a.graphql(`mutation($p: ID!) { clearReconciliationSchedule(projectId: $p) }`, { p: p.projectId }, owner.token)).clearReconciliationSchedule).toBe(true);
    expect(ok(await a.graphql(SCHEDULE, { p: p.projectId }, owner.token)).project.reconciliationSchedule).toBeNull();
    const files = generateFiles(100, 41);
    await uploadCsv(a, owner.token, p.ledgerId, files.ledger);
    await uploadCsv(a, owner.token, p.bankId, files.bank);
    expect((await jobsOf(a, owner.token, p.projectId)).totalCount).toBe(0);
    expect(ok(await a.graphql(`mutation($p: ID!) { clearReconciliationSchedule(projectId: $p) }`, { p: p.projectId }, owner.token)).clearReconciliationSchedule).toBe(false);
  });

  it("refuses a schedule with a mistake, naming the field, and a viewer without the right", async () => {
    const p = await createProject(a, owner, "Validation");
    const base = { leftSourceId: p.ledgerId, rightSourceId: p.bankId };
    const attempt = (input: Record<string, unknown>, token = owner.token) => a.graphql(SET, { p: p.projectId, input: { ...base, ...input } }, token);
    const cases: [Record<string, unknown>, string][] = [
      [{ cron: "every day at six" }, "input.cron"],
      [{ cron: "0 0 6 * * *" }, "input.cron"],
      [{ cron: "61 * * * *" }, "input.cron"],
      [{ cron: "0 0 31 2,4 *" }, "input.cron"], // well formed, never due (it was an internal error)
      [{ cron: "0 6 * * *", timezone: "Mars/Olympus" }, "input.timezone"],
      [{}, "input.cron"],
      [{ onNewUploads: true, rightSourceId: p.ledgerId }, "input.rightSourceId"],
      [{ onNewUploads: true, ruleSetName: "nope" }, "input.ruleSetName"],
    ];
    for (const [input, field] of cases) {
      const response = await attempt(input);
      expect(errorCode(response), JSON.stringify(input)).toBe("BAD_USER_INPUT");
      expect(response.errors![0]!.extensions!.field, JSON.stringify(input)).toBe(field);
    }
    const viewer = await a.createUser("ANALYST");
    ok(await a.graphql(`mutation($p: ID!, $u: ID!) { addProjectMember(projectId: $p, userId: $u, role: VIEWER) { id } }`, { p: p.projectId, u: viewer.id }, owner.token));
    expect(errorCode(await attempt({ onNewUploads: true }, viewer.token))).toBe("FORBIDDEN");
    const outsider = await a.createUser("ANALYST");
    expect(errorCode(await attempt({ onNewUploads: true }, outsider.token))).toBe("NOT_FOUND");
    // A valid one, in another time zone: the next run is 06:00 in Paris.
    const set = ok(await attempt({ cron: "0 6 * * 1-5", timezone: "Europe/Paris" })).setReconciliationSchedule;
    const hour = new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/Paris", hour: "2-digit", minute: "2-digit" }).format(new Date(set.nextRunAt));
    expect(hour).toBe("06:00");
  });
});
