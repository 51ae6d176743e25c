/**
 * The only code that touches the audit log; it only ever appends and reads. The chain fields (`seq`, `hash`) are
 * set by the database as an event is inserted (see audit-chain.ts); this reads them back for verification.
 */
import type pg from "pg";
import type { Db, DbClient } from "../../db/database.js";
import { type SqlReader, afterCursor, and, join, Prisma, raw, sql, type Sql, takeTotal } from "../../db/sql.js";
import type { ProjectRole } from "../../generated/prisma/enums.js";
import type { AuditEvent } from "../../graphql/models.js";
import type { PageRequest } from "../../graphql/pagination.js";
import { readTags, tags } from "../../cache/tags.js";
import type { ChainHead, ChainLink } from "./audit-chain.js";

export interface AuditEntry {
  userId: string | null;
  projectId: string | null;
  action: string;
  resourceType: string;
  resourceId: string;
  before?: unknown;
  after?: unknown;
  /** Why, in the words of the person making the change (optional). */
  reason?: string | null;
  requestId: string | null;
}

export interface AuditFilter {
  resourceType?: string | null;
  resourceId?: string | null;
  projectId?: string | null;
  userId?: string | null;
  action?: string | null;
}

/**
 * Which events a query may return: all, or those of the projects user `userId` owns (when `asOwner`) or is a member
 * of with one of `memberRoles`.
 */
export type AuditScope = { all: true } | { all: false; userId: string; asOwner: boolean; memberRoles: ProjectRole[] };

const COLUMNS = raw(`a.id, a.user_id AS "userId", a.project_id AS "projectId", a.action,
  a.resource_type AS "resourceType", a.resource_id AS "resourceId", a.before, a.after, a.reason,
  a.request_id AS "requestId", a.created_at AS "createdAt", a.seq::text AS seq, a.hash`);

/** Events read per statement when the chain is verified: memory stays bounded however long the chain is. */
const CHAIN_BATCH = 1000;

/** JSON-safe copy: dates become ISO strings, BigInt and Decimal become strings. */
function toJson(value: unknown): Prisma.InputJsonValue | typeof Prisma.DbNull {
  if (value === undefined || value === null) return Prisma.DbNull;
  return JSON.parse(JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v)));
}

/** The condition "the event is of a project in the scope" (FALSE when the scope holds none). */
function inScope(scope: Extract<AuditScope, { all: false }>): Sql {
  const projects: Sql[] = [];
  if (scope.asOwner) projects.push(sql`SELECT p.id FROM projects p WHERE p.owner_id = ${scope.userId}::uuid`);
  if (scope.memberRoles.length) {
    projects.push(sql`SELECT m.project_id FROM project_members m
      WHERE m.user_id = ${scope.userId}::uuid AND m.role::text = ANY(${scope.memberRoles}::text[])`);
  }
  return projects.length ? sql`a.project_id IN (${join(projects, " UNION ")})` : sql`FALSE`;
}

function conditions(scope: AuditScope, filter: AuditFilter): Sql[] {
  const list: Sql[] = [];
  if (!scope.all) list.push(inScope(scope));
  if (filter.resourceType) list.push(sql`a.resource_type = ${filter.resourceType}`);
  if (filter.resourceId) list.push(sql`a.resource_id = ${filter.resourceId}`);
  if (filter.projectId) list.push(sql`a.project_id = ${filter.projectId}::uuid`);
  if (filter.userId) list.push(sql`a.user_id = ${filter.userId}::uuid`);
  if (filter.action) list.push(sql`a.action = ${filter.action}`);
  return list;
}

export function createAuditRepository({ prisma, read, pool }: { prisma: DbClient; read: SqlReader; pool: pg.Pool }) {
  return {
    /** Appends an event; the insert trigger gives it its place in the chain (announced as List:AuditEvent). */
    async append(entry: AuditEntry, db: Db = prisma): Promise<void> {
      await db.auditEvent.create({
        data: { ...entry, reason: entry.reason ?? null, before: toJson(entry.before), after: toJson(entry.after) },
      });
    },

    /**
     * Runs `walk` over the whole chain, in seq order, in batches of CHAIN_BATCH events, with the chain's head — all
     * in one REPEATABLE READ snapshot on one connection, so events appended meanwhile are not half seen. Each
     * event comes with its canonical text as the database serializes it (`audit_event_canonical`).
     */
    async walkChain<T>(walk: (batches: AsyncIterable<ChainLink[]>, head: ChainHead | null) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      try {
        await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        const { rows: heads } = await client.query<ChainHead>(`SELECT seq::text AS seq, hash FROM audit_chain_head WHERE id = 1`);
        async function* batches(): AsyncGenerator<ChainLink[]> {
          let after = "0";
          for (;;) {
            const { rows } = await client.query<ChainLink>(
              `SELECT a.id, a.seq::text AS seq, a.hash, audit_event_canonical(a) AS canonical
               FROM audit_events a WHERE a.seq > $1::bigint ORDER BY a.seq LIMIT ${CHAIN_BATCH}`,
              [after],
            );
            if (rows.length === 0) return;
            yield rows;
            if (rows.length < CHAIN_BATCH) return;
            after = rows.at(-1)!.seq;
          }
        }
        const result = await walk(batches(), heads[0] ?? null);
        await client.query("COMMIT");
        client.release();
        return result;
      } catch (error) {
        client.release(error as Error);
        throw error;
      }
    },

    async list(scope: AuditScope, filter: AuditFilter, page: PageRequest, withTotal: boolean) {
      readTags(tags.auditLog);
      const windowTotal = withTotal && !page.after;
      const rows = await read<(AuditEvent & { total?: string })[]>(sql`
        SELECT ${COLUMNS} ${windowTotal ? sql`, count(*) OVER () AS total` : sql``}
        FROM audit_events a
        WHERE ${and([...conditions(scope, filter), afterCursor("a", page)])}
        ORDER BY a.created_at DESC, a.id DESC
        LIMIT ${page.limit + 1}`);
      const { rows: events, total } = takeTotal(rows);
      return { rows: events as AuditEvent[], total: windowTotal ? (total ?? 0) : undefined };
    },

    async count(scope: AuditScope, filter: AuditFilter): Promise<number> {
      readTags(tags.auditLog);
      const [row] = await read<{ n: number }[]>(sql`
        SELECT count(*)::int AS n FROM audit_events a WHERE ${and(conditions(scope, filter))}`);
      return row.n;
    },
  };
}

export type AuditRepository = ReturnType<typeof createAuditRepository>;
