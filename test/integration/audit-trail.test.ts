/**
 * The tamper-evident audit trail, through the front door: mutations append events to one hash chain (also when
 * many run at once), the database refuses to change or remove an event, `verifyAuditChain` (ADMIN only, never
 * cached) finds the exact event where someone with superuser rights altered, deleted or reordered the log by
 * direct SQL, and the migration chains events that existed before it.
 */
import { cpSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLogDocument, CancelReconciliationDocument, VerifyAuditChainDocument } from "../../operations/generated/graphql.js";
import { applyMigrations, defaultSchemaPaths } from "../../src/db/schema-engine.js";
import { createEmptyDatabase } from "../helpers/database.js";
import { errorCode, ok, persistedQuery, startTestApp, type TestApp, type TestUser } from "../helpers/app.js";

let t: TestApp;
let db: pg.Pool;
let analyst: TestUser;

interface Verification {
  valid: boolean;
  eventsChecked: number;
  firstBrokenEventId: string | null;
  reason: string | null;
}

async function verify(token = t.admin.token): Promise<Verification> {
  return ok(await t.graphqlBody<{ verifyAuditChain: Verification }>({ extensions: persistedQuery(VerifyAuditChainDocument) }, token)).verifyAuditChain;
}

/**
 * Runs statements (text, or text and values) as a superuser with every trigger off (session_replication_role =
 * replica): what someone with full access to the database could do.
 */
async function tamper(statements: (string | [string, unknown[]])[]): Promise<void> {
  const client = await db.connect();
  try {
    await client.query("BEGIN");
    await client.query("SET LOCAL session_replication_role = replica");
    for (const statement of statements) await (typeof statement === "string" ? client.query(statement) : client.query(statement[0], statement[1]));
    await client.query("COMMIT");
  } finally {
    client.release();
  }
}

/** Inserts a row as it was read (all columns, from JSON). */
const RESTORE = "INSERT INTO audit_events SELECT * FROM jsonb_populate_record(NULL::audit_events, $1::jsonb)";

async function eventAt(seq: number): Promise<Record<string, any>> {
  const { rows } = await db.query("SELECT * FROM audit_events WHERE seq = $1", [seq]);
  return rows[0]!;
}

async function createProject(name: string, token = analyst.token): Promise<string> {
  return ok(await t.graphql(`mutation($n: String!) { createProject(input: { name: $n }) { id } }`, { n: name }, token)).createProject.id;
}

beforeAll(async () => {
  t = await startTestApp();
  db = new pg.Pool({ connectionString: t.db.url, max: 3 });
  analyst = await t.createUser("ANALYST");
  for (let i = 0; i < 5; i++) await createProject(`Audited ${i}`);
});

afterAll(async () => {
  await db?.end();
  await t?.close();
});

describe("the audit chain", () => {
  it("links every event to the one before it, and verifyAuditChain checks them all", async () => {
    const { rows } = await db.query<{ seq: string; n: string }>("SELECT max(seq)::text AS seq, count(*)::text AS n FROM audit_events");
    expect(rows[0]!.seq).toBe(rows[0]!.n);
    expect(await verify()).toEqual({ valid: true, eventsChecked: Number(rows[0]!.n), firstBrokenEventId: null, reason: null });
  });

  it("stays one linear chain when many transactions append at once", async () => {
    const before = await verify();
    await Promise.all(Array.from({ length: 24 }, (_, i) => createProject(`Concurrent ${i}`)));
    const { rows } = await db.query<{ seq: string }>("SELECT seq::text AS seq FROM audit_events a ORDER BY a.seq");
    expect(rows.map((row) => Number(row.seq))).toEqual(rows.map((_, index) => index + 1));
    expect(await verify()).toMatchObject({ valid: true, eventsChecked: before.eventsChecked + 24 });
  });

  it("shows each event's place, hash, reason and actor id in auditLog, which is never stale after a new event", async () => {
    const first = ok(await t.graphqlBody<any>({ extensions: persistedQuery(AuditLogDocument), variables: { first: 1 } }, t.admin.token));
    const projectId = await createProject("Cancelled work");
    const sources = await Promise.all(
      ["Left", "Right"].map(async (name) => ok(await t.graphql(`mutation($p: ID!, $n: String!) { createDataSource(input: { projectId: $p, name: $n }) { id } }`, { p: projectId, n: name }, analyst.token)).createDataSource.id),
    );
    const jobId = ok(await t.graphql(`mutation($i: StartReconciliationInput!) { startReconciliation(input: $i) { id } }`, { i: { projectId, leftSourceId: sources[0], rightSourceId: sources[1] } }, analyst.token)).startReconciliation.id;
    const tooLong = await t.graphqlBody({ extensions: persistedQuery(CancelReconciliationDocument), variables: { jobId, reason: "x".repeat(1001) } }, analyst.token);
    expect(errorCode(tooLong)).toBe("BAD_USER_INPUT");
    expect(tooLong.errors![0]!.message).toBe("reason: must be at most 1000 characters");
    ok(await t.graphqlBody({ extensions: persistedQuery(CancelReconciliationDocument), variables: { jobId, reason: "  started on the wrong sources  " } }, analyst.token));

    const latest = ok(await t.graphqlBody<any>({ extensions: persistedQuery(AuditLogDocument), variables: { first: 1 } }, t.admin.token)).auditLog;
    expect(latest.totalCount).toBe(first.auditLog.totalCount + 5);
    const event = latest.edges[0].node;
    const row = await db.query("SELECT seq::text, hash FROM audit_events WHERE id = $1", [event.id]);
    expect(event).toMatchObject({
      action: "reconciliation.cancel",
      resourceId: jobId,
      reason: "started on the wrong sources",
      actorId: analyst.id,
      actor: { id: analyst.id },
      sequence: row.rows[0].seq,
      hash: row.rows[0].hash,
    });
    expect(event.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("is verified by ADMINs only", async () => {
    const denied = await t.graphqlBody({ extensions: persistedQuery(VerifyAuditChainDocument) }, analyst.token);
    expect(errorCode(denied)).toBe("FORBIDDEN");
    expect(errorCode(await t.graphqlBody({ extensions: persistedQuery(VerifyAuditChainDocument) }))).toBe("UNAUTHENTICATED");
  });

  it("refuses UPDATE, DELETE and TRUNCATE of audit events, even from a superuser", async () => {
    const event = await eventAt(2);
    await expect(db.query("UPDATE audit_events SET after = '{}' WHERE id = $1", [event.id])).rejects.toThrow("audit_events is append-only: UPDATE refused");
    await expect(db.query("DELETE FROM audit_events WHERE id = $1", [event.id])).rejects.toThrow("audit_events is append-only: DELETE refused");
    await expect(db.query("TRUNCATE audit_events")).rejects.toThrow("audit_events is append-only: TRUNCATE refused");
    // An event sent with its own place and hash gets the chain's instead.
    await db.query(`INSERT INTO audit_events (id, action, resource_type, resource_id, seq, hash) VALUES (gen_random_uuid(), 'forged', 'T', 'x', 1, 'forged')`);
    const { rows } = await db.query("SELECT seq::text, hash FROM audit_events WHERE action = 'forged'");
    expect(rows[0].hash).toMatch(/^[0-9a-f]{64}$/);
    expect(Number(rows[0].seq)).toBeGreaterThan(1);
    expect((await verify()).valid).toBe(true);
  });

  it("keeps a deleted user's events as recorded, and still verifies", async () => {
    const leaving = await t.createUser("ANALYST");
    const projectId = await createProject("Left behind", leaving.token);
    await db.query("DELETE FROM projects WHERE id = $1", [projectId]);
    await db.query("DELETE FROM users WHERE id = $1", [leaving.id]);
    const { rows } = await db.query("SELECT user_id FROM audit_events WHERE resource_id = $1", [projectId]);
    expect(rows).toEqual([{ user_id: leaving.id }]);
    const log = ok(await t.graphqlBody<any>({ extensions: persistedQuery(AuditLogDocument), variables: { filter: { resourceId: projectId } } }, t.admin.token));
    expect(log.auditLog.edges[0].node).toMatchObject({ actorId: leaving.id, actor: null });
    expect((await verify()).valid).toBe(true);
  });
});

describe("verifyAuditChain after tampering by direct SQL", () => {
  it("finds an event whose `after` was altered, and the chain is whole again once it is restored", async () => {
    const event = await eventAt(4);
    expect((await verify()).valid).toBe(true);
    await tamper([`UPDATE audit_events SET after = coalesce(after, '{}') || '{"name": "Renamed quietly"}' WHERE id = '${event.id}'`]);
    const found = await verify();
    expect(found).toMatchObject({ valid: false, firstBrokenEventId: event.id, eventsChecked: 4 });
    expect(found.reason).toContain("its hash does not match its fields and the event before it");
    await tamper([["UPDATE audit_events SET after = $1::jsonb WHERE id = $2", [event.after === null ? null : JSON.stringify(event.after), event.id]]]);
    expect((await verify()).valid).toBe(true);
  });

  it("finds the event after one that was deleted", async () => {
    const deleted = await eventAt(5);
    const next = await eventAt(6);
    await tamper([`DELETE FROM audit_events WHERE id = '${deleted.id}'`]);
    const found = await verify();
    expect(found).toMatchObject({ valid: false, firstBrokenEventId: next.id, eventsChecked: 5 });
    expect(found.reason).toBe(`event ${next.id} (seq 6): expected seq 5: event 5 is missing from the chain`);
    // Put back as it was (triggers off: the row keeps its own place and hash).
    await tamper([[RESTORE, [JSON.stringify(deleted)]]]);
    expect((await verify()).valid).toBe(true);
  });

  it("finds the first of two events whose places were swapped", async () => {
    const [a, b] = [await eventAt(7), await eventAt(8)];
    const swap = [
      `UPDATE audit_events SET seq = -1 WHERE id = '${a.id}'`,
      `UPDATE audit_events SET seq = 7 WHERE id = '${b.id}'`,
      `UPDATE audit_events SET seq = 8 WHERE id = '${a.id}'`,
    ];
    await tamper(swap);
    expect(await verify()).toMatchObject({ valid: false, firstBrokenEventId: b.id, eventsChecked: 7 });
    await tamper([`UPDATE audit_events SET seq = -1 WHERE id = '${b.id}'`, `UPDATE audit_events SET seq = 7 WHERE id = '${a.id}'`, `UPDATE audit_events SET seq = 8 WHERE id = '${b.id}'`]);
    expect((await verify()).valid).toBe(true);
  });

  it("finds a changed timestamp, and events deleted from the end of the chain", async () => {
    const event = await eventAt(3);
    await tamper([`UPDATE audit_events SET created_at = created_at - interval '1 day' WHERE id = '${event.id}'`]);
    expect(await verify()).toMatchObject({ valid: false, firstBrokenEventId: event.id });
    await tamper([`UPDATE audit_events SET created_at = created_at + interval '1 day' WHERE id = '${event.id}'`]);

    const { rows } = await db.query<{ n: string }>("SELECT max(seq)::text AS n FROM audit_events");
    const total = Number(rows[0]!.n);
    const last = await eventAt(total);
    await tamper([`DELETE FROM audit_events WHERE id = '${last.id}'`]);
    expect(await verify()).toEqual({
      valid: false,
      eventsChecked: total - 1,
      firstBrokenEventId: null,
      reason: `the chain ends at seq ${total - 1} but ${total} events were recorded: the last 1 were deleted`,
    });
    await tamper([[RESTORE, [JSON.stringify(last)]]]);
    expect((await verify()).valid).toBe(true);
  });
});

describe("the migration", () => {
  it("chains the events that existed before it, in (created_at, id) order", async () => {
    const migration = "20261124025000_audit_hash_chain";
    const earlier = mkdtempSync(join(tmpdir(), "recon-migrations-"));
    const database = await createEmptyDatabase();
    try {
      for (const name of readdirSync(defaultSchemaPaths.migrationsDir)) {
        if (name < migration || name === "migration_lock.toml") cpSync(join(defaultSchemaPaths.migrationsDir, name), join(earlier, name), { recursive: true });
      }
      await applyMigrations(database.url, { ...defaultSchemaPaths, migrationsDir: earlier });
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      // Out of time order on purpose, with two events at the same instant (then ordered by id).
      await client.query(`INSERT INTO audit_events (id, action, resource_type, resource_id, after, created_at) VALUES
        ('00000000-0000-4000-8000-000000000003', 'c', 'T', '3', '{"n": 3}', '2026-01-02T00:00:00Z'),
        ('00000000-0000-4000-8000-000000000001', 'a', 'T', '1', '{"n": 1}', '2026-01-01T00:00:00Z'),
        ('00000000-0000-4000-8000-000000000002', 'b', 'T', '2', NULL, '2026-01-02T00:00:00Z')`);
      await applyMigrations(database.url);
      const { rows } = await client.query("SELECT a.action, a.seq::text AS seq FROM audit_events a ORDER BY a.seq");
      expect(rows).toEqual([{ action: "a", seq: "1" }, { action: "b", seq: "2" }, { action: "c", seq: "3" }]);
      await client.end();

      const app = await startTestApp({}, { database });
      try {
        // The first admin's creation (if recorded) follows them; the chain verifies as a whole.
        expect(await app.graphqlBody({ extensions: persistedQuery(VerifyAuditChainDocument) }, app.admin.token).then(ok)).toMatchObject({
          verifyAuditChain: { valid: true, firstBrokenEventId: null },
        });
      } finally {
        await app.close();
      }
    } finally {
      rmSync(earlier, { recursive: true, force: true });
      await database.drop();
    }
  });
});
