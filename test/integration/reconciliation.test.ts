/**
 * Reconciliation end to end: two generated files with known ground truth go through the multipart upload, a job
 * is started through GraphQL, followed with a real graphql-ws client, and its results are read back through the
 * API and checked against the truth, against the engine run directly on the same records, and for the invariant
 * that every record ends in exactly one group.
 */
import pg from "pg";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { COLUMN_MAPPING, generateFiles, type Truth } from "../../bench/reconcile-data.js";
import { reconcile } from "../../src/reconcile/engine.js";
import { DEFAULT_RULE_SET } from "../../src/reconcile/rules.js";
import type { EngineRecord } from "../../src/reconcile/types.js";
import { scaledAmount } from "../../src/modules/jobs/record-text.js";
import { errorCode, ok, startTestApp, type TestApp, type TestUser } from "../helpers/app.js";
import { uploadCsv } from "../helpers/jobs.js";

let t: TestApp;
let db: pg.Pool;
let analyst: TestUser;
let outsider: TestUser;
let projectId: string;
let ledgerId: string;
let bankId: string;
let truth: Truth;
const clients: Client[] = [];

const START = `mutation Start($input: StartReconciliationInput!) { startReconciliation(input: $input) { id status } }`;
const JOB_FIELDS = `id status phase processed total attempts error matchedCount suggestedCount discrepancyCount unmatchedLeftCount unmatchedRightCount
  summary { leftRecords rightRecords autoMatchRate outcomes { outcome groups leftRecords rightRecords amounts { currency left right } } passes { pass name groups } }`;

function wsClient(token: string | null): Client {
  const client = createClient({
    url: t.url.replace(/^http/, "ws"),
    webSocketImpl: WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
  });
  clients.push(client);
  return client;
}

/** Every state `jobProgress` delivers for `jobId`, until the subscription completes (or its error). */
async function follow(jobId: string, token: string, onEvent?: (job: Record<string, any>) => void): Promise<{ events: Record<string, any>[]; errors?: unknown }> {
  const events: Record<string, any>[] = [];
  const subscription = wsClient(token).iterate<{ jobProgress: Record<string, any> }>({
    query: `subscription($id: ID!) { jobProgress(jobId: $id) { ${JOB_FIELDS} } }`,
    variables: { id: jobId },
  });
  try {
    for await (const result of subscription) {
      if (result.errors) return { events, errors: result.errors };
      events.push(result.data!.jobProgress);
      onEvent?.(result.data!.jobProgress);
    }
  } catch (error) {
    return { events, errors: error };
  }
  return { events };
}

async function startJob(input: Record<string, unknown>, token = analyst.token): Promise<string> {
  const data = ok(await t.graphql(START, { input: { projectId, leftSourceId: ledgerId, rightSourceId: bankId, ...input } }, token));
  return data.startReconciliation.id;
}

/** The job's groups as comparable strings: outcome + sorted external ids of each side. */
async function groupsOf(jobId: string): Promise<string[]> {
  const { rows } = await db.query<{ outcome: string; left: string[] | null; right: string[] | null }>(
    `SELECT g.outcome::text AS outcome,
       (SELECT array_agg(r.external_id ORDER BY r.external_id) FROM records r WHERE r.id = ANY(g.left_record_ids)) AS left,
       (SELECT array_agg(r.external_id ORDER BY r.external_id) FROM records r WHERE r.id = ANY(g.right_record_ids)) AS right
     FROM match_groups g WHERE g.job_id = $1`,
    [jobId],
  );
  return rows.map((row) => `${row.outcome}|${(row.left ?? []).join(",")}|${(row.right ?? []).join(",")}`).sort();
}

async function engineRecords(sourceId: string): Promise<EngineRecord[]> {
  const { rows } = await db.query(
    `SELECT id, external_id, amount::text, currency, booked_date - DATE '1970-01-01' AS booked, value_date - DATE '1970-01-01' AS value,
       reference, description, counterparty FROM records WHERE data_source_id = $1`,
    [sourceId],
  );
  return rows.map((row) => ({
    id: row.id,
    externalId: row.external_id,
    amount: scaledAmount(row.amount),
    currency: row.currency,
    bookedDate: row.booked,
    valueDate: row.value,
    reference: row.reference,
    description: row.description,
    counterparty: row.counterparty,
  }));
}

beforeAll(async () => {
  // Small engine blocks, so that a few thousand records cross many block boundaries (carry-over is exercised).
  t = await startTestApp({ RECON_WORKERS: "1", RECON_JOB_BLOCK_RECORDS: "1000", LOG_LEVEL: "error" });
  db = new pg.Pool({ connectionString: t.db.url, max: 2 });
  analyst = await t.createUser("ANALYST");
  outsider = await t.createUser("ANALYST");
  projectId = ok(await t.graphql(`mutation { createProject(input: { name: "Reconcile" }) { id } }`, {}, analyst.token)).createProject.id;
  const source = async (name: string) =>
    ok(await t.graphql("mutation($p: ID!, $n: String!, $m: JSON) { createDataSource(input: { projectId: $p, name: $n, columnMapping: $m }) { id } }", { p: projectId, n: name, m: COLUMN_MAPPING }, analyst.token))
      .createDataSource.id as string;
  ledgerId = await source("Ledger");
  bankId = await source("Bank");
  const files = generateFiles(3000, 7);
  truth = files.truth;
  await uploadCsv(t, analyst.token, ledgerId, files.ledger, "ledger.csv");
  await uploadCsv(t, analyst.token, bankId, files.bank, "bank.csv");
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.dispose()));
  await db?.end();
  await t?.close();
});

describe("a reconciliation job", () => {
  let jobId: string;
  let events: Record<string, any>[];

  beforeAll(async () => {
    jobId = await startJob({});
    ({ events } = await follow(jobId, analyst.token));
  });

  it("is followed over graphql-ws from its state at subscription to COMPLETED, with progress in between", () => {
    expect(events.length).toBeGreaterThan(1);
    const last = events.at(-1)!;
    expect(last.status).toBe("COMPLETED");
    expect(last.error).toBeNull();
    expect(last.attempts).toBe(1);
    expect(last.processed).toBe(last.total);
    const processed = events.map((event) => event.processed);
    expect([...processed].sort((a, b) => a - b)).toEqual(processed);
  });

  it("puts every record of both sources in exactly one group", async () => {
    const { rows } = await db.query(
      `SELECT count(*)::int AS slots, count(DISTINCT id)::int AS distinct_ids FROM (
         SELECT unnest(left_record_ids || right_record_ids) AS id FROM match_groups WHERE job_id = $1) ids`,
      [jobId],
    );
    const { rows: records } = await db.query(`SELECT count(*)::int AS n FROM records WHERE data_source_id IN ($1, $2)`, [ledgerId, bankId]);
    expect(rows[0].slots).toBe(records[0].n);
    expect(rows[0].distinct_ids).toBe(records[0].n);
  });

  it("opens exactly one exception per discrepancy or unmatched group, block after block, with the group's records", async () => {
    // Exceptions are opened after each block's groups are written (many blocks here): none missing, none twice.
    const { rows } = await db.query(
      `SELECT g.id AS group_id, e.id AS exception_id, e.type = g.outcome AS same_type,
         e.left_record_ids = g.left_record_ids AND e.right_record_ids = g.right_record_ids AS same_records
       FROM match_groups g FULL JOIN (SELECT * FROM exceptions WHERE job_id = $1) e ON e.id = g.id
       WHERE (g.job_id = $1 AND g.outcome NOT IN ('MATCHED', 'SUGGESTED')) OR e.id IS NOT NULL`,
      [jobId],
    );
    expect(rows.length).toBeGreaterThan(100);
    expect(rows.filter((row) => !row.group_id || !row.exception_id || !row.same_type || !row.same_records)).toEqual([]);
    // The engine computed each exception's exposure, currency and date from the records it held: the same as the
    // records say (the formula manual work's exceptions are opened with, exception-sql.ts openExceptionsSql).
    const { rows: facts } = await db.query(
      `SELECT e.id, e.amount::text = x.amount::text AS same_amount, e.currency = x.currency AS same_currency, e.booked_date = x.booked AS same_date
       FROM exceptions e JOIN match_groups g ON g.id = e.id
       CROSS JOIN LATERAL (
         SELECT CASE WHEN g.outcome = 'AMOUNT_MISMATCH' THEN abs(g.amount_delta)
                  ELSE greatest(abs(coalesce(sum(r.amount) FILTER (WHERE r.id = ANY(g.left_record_ids)), 0)),
                                abs(coalesce(sum(r.amount) FILTER (WHERE r.id = ANY(g.right_record_ids)), 0))) END AS amount,
           (array_agg(r.currency ORDER BY (r.id = ANY(g.left_record_ids)) DESC, r.id))[1] AS currency, min(r.booked_date) AS booked
         FROM records r WHERE r.id = ANY(g.left_record_ids || g.right_record_ids)
       ) x
       WHERE e.job_id = $1`,
      [jobId],
    );
    expect(facts.length).toBe(rows.length);
    expect(facts.filter((row) => !row.same_amount || !row.same_currency || !row.same_date)).toEqual([]);
  });

  it("finds the generated truth: auto matches are right, and nearly all matchable pairs are found", async () => {
    const groups = await groupsOf(jobId);
    let correct = 0;
    let wrong = 0;
    for (const group of groups) {
      const [outcome, left, right] = group.split("|");
      if (outcome !== "MATCHED") continue;
      const lefts = left!.split(",");
      const rights = right!.split(",").sort();
      const expected = lefts.flatMap((id) => truth.bankOf.get(id) ?? []).sort();
      if (lefts.length === 1 && expected.join() === rights.join()) correct++;
      else wrong++;
    }
    const matchable = [...truth.categoryOf.values()].filter((category) => category !== "onlyLeft" && category !== "mismatch").length;
    expect(wrong / (correct + wrong)).toBeLessThanOrEqual(0.005);
    expect(correct / matchable).toBeGreaterThanOrEqual(0.99);
    // Amount mismatches are typed as such, with the bank's delta.
    const mismatches = groups.filter((group) => group.startsWith("AMOUNT_MISMATCH|"));
    const expectedMismatches = [...truth.categoryOf].filter(([, category]) => category === "mismatch").length;
    expect(mismatches.length).toBeGreaterThanOrEqual(Math.floor(expectedMismatches * 0.9));
  });

  it("gives the same groups as the engine run on all records at once (blocks and carry-over change nothing here)", async () => {
    const left = await engineRecords(ledgerId);
    const right = await engineRecords(bankId);
    const direct = reconcile(left, right, DEFAULT_RULE_SET);
    const externalId = new Map([...left, ...right].map((record) => [record.id, record.externalId]));
    const expected = direct.groups
      .map((group) => `${group.outcome}|${group.leftIds.map((id) => externalId.get(id)).sort().join(",")}|${group.rightIds.map((id) => externalId.get(id)).sort().join(",")}`)
      .sort();
    expect(await groupsOf(jobId)).toEqual(expected);
  });

  it("summarizes counts and per-currency amounts per outcome, and per-pass hits", async () => {
    const job = ok(await t.graphql(`query($id: ID!) { reconciliationJob(id: $id) { ${JOB_FIELDS} } }`, { id: jobId }, analyst.token)).reconciliationJob;
    const { rows } = await db.query(`SELECT count(*)::int AS n FROM records WHERE data_source_id = $1`, [ledgerId]);
    expect(job.summary.leftRecords).toBe(rows[0].n);
    const matched = job.summary.outcomes.find((o: any) => o.outcome === "MATCHED");
    expect(matched.groups).toBe(job.matchedCount);
    const hits = job.summary.passes.reduce((sum: number, pass: any) => sum + pass.groups, 0);
    expect(hits).toBe(job.matchedCount + job.suggestedCount + job.summary.outcomes.filter((o: any) => o.outcome === "REFERENCE_MISMATCH").reduce((s: number, o: any) => s + o.groups, 0));
    // Exact-amount groups balance per currency: the sums are exact decimals.
    for (const amount of matched.amounts) expect(amount.left).toMatch(/^-?\d+\.\d{4}$/);
    // Every outcome's sums per currency and side are those of its groups' records (the pushed-down pairs' included,
    // which the summary learns only at the end of the job).
    const { rows: sums } = await db.query(
      `SELECT g.outcome || '|' || r.currency || '|' || coalesce(sum(r.amount) FILTER (WHERE s.side = 'L'), 0)::numeric(20,4)
         || '|' || coalesce(sum(r.amount) FILTER (WHERE s.side = 'R'), 0)::numeric(20,4) AS line
       FROM match_groups g
       CROSS JOIN LATERAL (SELECT 'L' AS side, unnest(g.left_record_ids) AS id UNION ALL SELECT 'R', unnest(g.right_record_ids)) s
       JOIN records r ON r.id = s.id
       WHERE g.job_id = $1 GROUP BY g.outcome, r.currency`,
      [jobId],
    );
    const summarized = job.summary.outcomes.flatMap((o: any) => o.amounts.map((a: any) => `${o.outcome}|${a.currency}|${a.left}|${a.right}`));
    expect(summarized.sort()).toEqual(sums.map((row: { line: string }) => row.line).sort());
    expect(job.summary.passes[0].groups).toBeGreaterThan(0);
    const unmatchedLeft = job.summary.outcomes.find((o: any) => o.outcome === "UNMATCHED_LEFT");
    expect(unmatchedLeft.leftRecords).toBe(job.unmatchedLeftCount);
  });

  it("is stamped finished when it finished, not when its results' transaction began", async () => {
    const job = ok(await t.graphql(`query($id: ID!) { reconciliationJob(id: $id) { startedAt finishedAt summary { phaseMillis } } }`, { id: jobId }, analyst.token))
      .reconciliationJob;
    // The exact pass, the reading of blocks and the wait for the last writes follow each other on the job's own
    // timeline, between its start and its finish (the last two inside the transaction that commits its results).
    const { exact, parse, persistWait } = job.summary.phaseMillis;
    expect(parse).toBeGreaterThan(0);
    expect(Date.parse(job.finishedAt) - Date.parse(job.startedAt)).toBeGreaterThanOrEqual(Math.floor(exact + parse + persistWait));
  });

  it("pages matches, unmatched records and discrepancies with their records and score breakdown", async () => {
    const page = async (after: string | null) =>
      ok(
        await t.graphql(
          `query($id: ID!, $after: String) { reconciliationJob(id: $id) {
             matches(first: 50, after: $after, minConfidence: 0.5) { totalCount pageInfo { hasNextPage endCursor }
               edges { node { id outcome kind confidence pass rule amountDelta leftRecords { externalId amount } rightRecords { externalId amount }
                 scoreBreakdown { comparator similarity weight passed detail } } } }
             unmatched(side: LEFT, first: 5) { totalCount edges { node { outcome kind leftRecords { externalId } rightRecords { id } } } }
             discrepancies(type: AMOUNT_MISMATCH, first: 5) { totalCount edges { node { outcome amountDelta leftRecords { amount } rightRecords { amount } } } }
           } }`,
          { id: jobId, after },
          analyst.token,
        ),
      ).reconciliationJob;
    const first = await page(null);
    const second = await page(first.matches.pageInfo.endCursor);
    const ids = [...first.matches.edges, ...second.matches.edges].map((edge: any) => edge.node.id);
    expect(new Set(ids).size).toBe(100);
    const node = first.matches.edges[0].node;
    expect(node.leftRecords.length).toBeGreaterThan(0);
    expect(node.rightRecords.length).toBeGreaterThan(0);
    expect(node.scoreBreakdown.length).toBeGreaterThan(0);
    expect(first.unmatched.edges.every((edge: any) => edge.node.outcome === "UNMATCHED_LEFT" && edge.node.rightRecords.length === 0)).toBe(true);
    expect(first.unmatched.totalCount).toBeGreaterThan(0);
    for (const edge of first.discrepancies.edges) {
      const { amountDelta, leftRecords, rightRecords } = edge.node;
      const delta = Number(rightRecords[0].amount) * 10_000 - Number(leftRecords[0].amount) * 10_000;
      expect(Math.round(delta)).toBe(Math.round(Number(amountDelta) * 10_000));
    }
  });

  it("pages every match once in (outcome, id) order, the pairs PostgreSQL made and the engine's groups alike", async () => {
    const pages = async (status: string | null) => {
      const ids: string[] = [];
      let after: string | null = null;
      let totalCount = 0;
      do {
        const matches: any = ok(
          await t.graphql(
            `query($id: ID!, $after: String, $status: MatchOutcome) { reconciliationJob(id: $id) {
               matches(first: 100, after: $after, status: $status) { totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } } }`,
            { id: jobId, after, status },
            analyst.token,
          ),
        ).reconciliationJob.matches;
        ids.push(...matches.edges.map((edge: any) => edge.node.id));
        totalCount = matches.totalCount;
        after = matches.pageInfo.hasNextPage ? matches.pageInfo.endCursor : null;
      } while (after);
      return { ids, totalCount };
    };
    const stored = async (outcomes: string[]) =>
      (await db.query<{ id: string }>("SELECT id FROM match_groups WHERE job_id = $1 AND outcome::text = ANY($2) ORDER BY outcome, id", [jobId, outcomes])).rows.map((row) => row.id);
    const all = await pages(null);
    expect(all.ids).toEqual(await stored(["MATCHED", "SUGGESTED"]));
    expect(all.totalCount).toBe(all.ids.length);
    const matched = await pages("MATCHED");
    expect(matched.ids).toEqual(await stored(["MATCHED"]));
    expect(matched.totalCount).toBe(matched.ids.length);
    // Both places a job's groups are read from hold some: the pushed-down pairs (ids …-0000-…, left out of the
    // (job_id, outcome, id) index) and the engine's groups (…-0001-…).
    const pushed = matched.ids.filter((id) => id.slice(19, 23) === "0000").length;
    expect(pushed).toBeGreaterThan(0);
    expect(matched.ids.length - pushed).toBeGreaterThan(0);
  });

  it("is invisible to someone outside the project: null, NOT_FOUND on cancel, and no subscription", async () => {
    const seen = await t.graphql(`query($id: ID!) { reconciliationJob(id: $id) { id } }`, { id: jobId }, outsider.token);
    expect(seen.data!.reconciliationJob).toBeNull();
    expect(errorCode(await t.graphql(`mutation($id: ID!) { cancelReconciliation(jobId: $id) { id } }`, { id: jobId }, outsider.token))).toBe("NOT_FOUND");
    const followed = await follow(jobId, outsider.token);
    expect(followed.events).toEqual([]);
    expect(JSON.stringify(followed.errors)).toContain("NOT_FOUND");
  });
});

describe("starting a job", () => {
  it("refuses rules with a mistake, naming the setting", async () => {
    const rules = { passes: [{ name: "bad", mode: "AUTO", comparators: [{ field: "amount", type: "absolute", tolerance: "a lot" }] }] };
    const result = await t.graphql(START, { input: { projectId, leftSourceId: ledgerId, rightSourceId: bankId, rules } }, analyst.token);
    expect(errorCode(result)).toBe("BAD_USER_INPUT");
    expect(JSON.stringify(result.errors)).toMatch(/passes\[0\]\.comparators\[0\]\.tolerance/);
  });

  it("refuses the same source on both sides and sources of another project", async () => {
    const same = await t.graphql(START, { input: { projectId, leftSourceId: ledgerId, rightSourceId: ledgerId } }, analyst.token);
    expect(errorCode(same)).toBe("BAD_USER_INPUT");
    const other = ok(await t.graphql(`mutation { createProject(input: { name: "Other" }) { id } }`, {}, outsider.token)).createProject.id;
    const foreign = await t.graphql(START, { input: { projectId: other, leftSourceId: ledgerId, rightSourceId: bankId } }, outsider.token);
    expect(errorCode(foreign)).toBe("BAD_USER_INPUT");
  });

  it("runs a saved rule set version and keeps a snapshot of it on the job", async () => {
    const rules = { passes: [{ name: "exact only", mode: "AUTO", comparators: [{ field: "reference", type: "exact" }, { field: "amount", type: "exact" }, { field: "currency", type: "equal" }] }] };
    const save = `mutation($input: SaveRuleSetInput!) { saveRuleSet(input: $input) { id name version } }`;
    const v1 = ok(await t.graphql(save, { input: { projectId, name: "strict", rules } }, analyst.token)).saveRuleSet;
    const v2 = ok(await t.graphql(save, { input: { projectId, name: "strict", rules } }, analyst.token)).saveRuleSet;
    expect([v1.version, v2.version]).toEqual([1, 2]);
    const listed = ok(await t.graphql(`query($p: ID!) { ruleSets(projectId: $p) { id version } }`, { p: projectId }, analyst.token)).ruleSets;
    expect(listed).toEqual([{ id: v2.id, version: 2 }]);
    const jobId = await startJob({ ruleSetId: v1.id, dryRun: true });
    const { events } = await follow(jobId, analyst.token);
    expect(events.at(-1)!.status).toBe("COMPLETED");
    const job = ok(await t.graphql(`query($id: ID!) { reconciliationJob(id: $id) { rules ruleSet { id version } summary { passes { name groups } } matches { totalCount } } }`, { id: jobId }, analyst.token)).reconciliationJob;
    expect(job.ruleSet).toEqual({ id: v1.id, version: 1 });
    expect(job.rules.passes[0].name).toBe("exact only");
    expect(job.summary.passes).toHaveLength(1);
    expect(job.summary.passes[0].groups).toBeGreaterThan(0);
    // A dry run keeps the summary, not the groups.
    expect(job.matches.totalCount).toBe(0);
  });
});

describe("amounts at NUMERIC(20,4)'s limit", () => {
  it("keeps the exact difference and exposure of two records whose amounts differ by more than a record can hold", async () => {
    const project = ok(await t.graphql(`mutation { createProject(input: { name: "Limits" }) { id } }`, {}, analyst.token)).createProject.id;
    const source = async (name: string) =>
      ok(await t.graphql("mutation($p: ID!, $n: String!) { createDataSource(input: { projectId: $p, name: $n }) { id } }", { p: project, n: name }, analyst.token)).createDataSource.id as string;
    const [left, right] = [await source("Ledger"), await source("Bank")];
    const max = "9999999999999999.9999";
    await uploadCsv(t, analyst.token, left, `id,amount,currency,date,reference\nL-1,${max},EUR,2026-11-02,BIG-1\n`);
    await uploadCsv(t, analyst.token, right, `id,amount,currency,date,reference\nB-1,-${max},EUR,2026-11-02,BIG-1\n`);
    const jobId = ok(await t.graphql(START, { input: { projectId: project, leftSourceId: left, rightSourceId: right } }, analyst.token)).startReconciliation.id;
    const { events } = await follow(jobId, analyst.token);
    expect(events.at(-1)).toMatchObject({ status: "COMPLETED", error: null, discrepancyCount: 1 });
    const mismatch = ok(await t.graphql(`query($id: ID!) { reconciliationJob(id: $id) { discrepancies(type: AMOUNT_MISMATCH, first: 5) { edges { node { amountDelta } } } } }`, { id: jobId }, analyst.token));
    expect(mismatch.reconciliationJob.discrepancies.edges.map((edge: any) => edge.node.amountDelta)).toEqual(["-19999999999999999.9998"]);
    const opened = ok(await t.graphql(`query($p: ID!) { exceptions(projectId: $p, first: 5) { edges { node { id type amount } } } }`, { p: project }, analyst.token));
    const [exception] = opened.exceptions.edges.map((edge: any) => edge.node);
    expect(exception).toMatchObject({ type: "AMOUNT_MISMATCH", amount: "19999999999999999.9998" });
    // Written off (by an ADMIN: writing off is a manager's call) at its own amount, which a record could not hold either.
    const written = ok(await t.graphql(`mutation($id: ID!) { writeOffException(id: $id, input: { kind: WRITE_OFF, reason: "test" }) { status resolutionAmount } }`, { id: exception.id }, t.admin.token));
    expect(written.writeOffException).toEqual({ status: "RESOLVED", resolutionAmount: "19999999999999999.9998" });
  });
});

describe("metrics", () => {
  it("count the pairs PostgreSQL made in the exact first pass like the engine's groups", async () => {
    const { metrics } = t.app.container;
    const value = async (counter: { get(): Promise<{ values: { labels: Record<string, unknown>; value: number }[] }> }, outcome?: string) =>
      (await counter.get()).values.filter((v) => outcome === undefined || v.labels.outcome === outcome).reduce((sum, v) => sum + v.value, 0);
    const before = { records: await value(metrics.reconcileRecordsTotal), matched: await value(metrics.reconcileGroupsTotal, "MATCHED") };
    const project = ok(await t.graphql(`mutation { createProject(input: { name: "Metrics" }) { id } }`, {}, analyst.token)).createProject.id;
    const source = async (name: string) =>
      ok(await t.graphql("mutation($p: ID!, $n: String!) { createDataSource(input: { projectId: $p, name: $n }) { id } }", { p: project, n: name }, analyst.token)).createDataSource.id as string;
    const [left, right] = [await source("Ledger"), await source("Bank")];
    await uploadCsv(t, analyst.token, left, "id,amount,currency,date,reference\nL1,10.00,EUR,2026-11-02,A-1\nL2,20.00,EUR,2026-11-02,A-2\nL3,30.00,EUR,2026-11-02,A-3\n");
    await uploadCsv(t, analyst.token, right, "id,amount,currency,date,reference\nB1,10.00,EUR,2026-11-02,A-1\nB2,20.00,EUR,2026-11-03,A-2\nB9,99.00,EUR,2026-11-02,Z-9\n");
    const jobId = ok(await t.graphql(START, { input: { projectId: project, leftSourceId: left, rightSourceId: right } }, analyst.token)).startReconciliation.id;
    const last = (await follow(jobId, analyst.token)).events.at(-1)!;
    expect(last).toMatchObject({ status: "COMPLETED", matchedCount: 2 });
    // Both pairs were made in SQL (exact reference, amount and currency); the engine saw only L3 and B9.
    const passes = ok(await t.graphql(`query($id: ID!) { reconciliationJob(id: $id) { summary { passes { pass groups } } } }`, { id: jobId }, analyst.token));
    expect(passes.reconciliationJob.summary.passes[0]).toMatchObject({ pass: 1, groups: 2 });
    expect(await value(metrics.reconcileGroupsTotal, "MATCHED")).toBe(before.matched + 2);
    expect(await value(metrics.reconcileRecordsTotal)).toBe(before.records + 6);
  });
});

describe("a first pass keyed without the amount or the currency", () => {
  // PostgreSQL runs an exact first pass only when its key holds the amount and the currency (its pairs are stored
  // as equal); keyed on less, the engine runs it and keeps each pair's own difference and each side's own sums.
  it.each([
    // L1 100 EUR / B1 150 EUR paired by reference and currency: a difference of 50 (it was stored as 0, and B1 summed as 100).
    ["the amount", "amount", { MATCHED: { EUR: ["350.0000", "400.0000"], USD: ["100.0000", "100.0000"] } }, ["L1", "50.0000"]],
    // L2 100 USD / B2 100 EUR paired by reference and amount: each side's sum in its own currency (B2 was summed as USD).
    ["the currency", "currency", { MATCHED: { EUR: ["250.0000", "350.0000"], USD: ["100.0000", "0.0000"] } }, ["L2", "0.0000"]],
  ])("leaves out %s: differences and sums per currency are the records' own", async (_, field, sums, [externalId, delta]) => {
    const project = ok(await t.graphql(`mutation { createProject(input: { name: "Key" }) { id } }`, {}, analyst.token)).createProject.id;
    const source = async (name: string) =>
      ok(await t.graphql("mutation($p: ID!, $n: String!) { createDataSource(input: { projectId: $p, name: $n }) { id } }", { p: project, n: name }, analyst.token)).createDataSource.id as string;
    const [left, right] = [await source("Ledger"), await source("Bank")];
    await uploadCsv(t, analyst.token, left, "id,amount,currency,date,reference\nL1,100.00,EUR,2024-03-01,INV-1\nL2,100.00,USD,2024-03-01,INV-2\nL3,250.00,EUR,2024-03-02,INV-3\n");
    const bankCurrency = field === "currency" ? "EUR" : "USD";
    await uploadCsv(t, analyst.token, right, `id,amount,currency,date,reference\nB1,150.00,EUR,2024-03-01,INV-1\nB2,100.00,${bankCurrency},2024-03-01,INV-2\nB3,250.00,EUR,2024-03-02,INV-3\n`);
    const first = DEFAULT_RULE_SET.passes[0]!;
    const rules = { ...DEFAULT_RULE_SET, passes: [{ ...first, comparators: first.comparators.filter((comparator) => comparator.field !== field) }] };
    const jobId = ok(await t.graphql(START, { input: { projectId: project, leftSourceId: left, rightSourceId: right, rules } }, analyst.token)).startReconciliation.id;
    expect((await follow(jobId, analyst.token)).events.at(-1)).toMatchObject({ status: "COMPLETED" });
    const job = ok(await t.graphql(`query($id: ID!) { reconciliationJob(id: $id) {
      summary { outcomes { outcome amounts { currency left right } } }
      matches(first: 10) { edges { node { amountDelta leftRecords { externalId } } } } } }`, { id: jobId }, analyst.token)).reconciliationJob;
    const outcomes = Object.fromEntries(job.summary.outcomes.map((o: any) => [o.outcome, Object.fromEntries(o.amounts.map((a: any) => [a.currency, [a.left, a.right]]))]));
    expect(outcomes).toMatchObject(sums);
    const deltas = Object.fromEntries(job.matches.edges.map((edge: any) => [edge.node.leftRecords[0].externalId, edge.node.amountDelta]));
    expect(deltas[externalId!]).toBe(delta);
  });
});

describe("deleting", () => {
  it("deleting the project deletes its jobs' groups (the statement trigger stands in for the foreign key)", async () => {
    const { rows: before } = await db.query(`SELECT count(*)::int AS n FROM match_groups WHERE project_id = $1`, [projectId]);
    expect(before[0].n).toBeGreaterThan(0);
    ok(await t.graphql(`mutation($id: ID!) { deleteProject(id: $id) }`, { id: projectId }, analyst.token));
    const { rows: after } = await db.query(`SELECT count(*)::int AS n FROM match_groups WHERE project_id = $1`, [projectId]);
    expect(after[0].n).toBe(0);
  });
});
