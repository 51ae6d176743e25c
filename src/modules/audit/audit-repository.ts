/** The only code that touches the audit log; it only ever appends and reads. */
import type { Db, DbClient } from "../../db/database.js";
import { type SqlReader, afterCursor, and, Prisma, raw, sql, type Sql, takeTotal } from "../../db/sql.js";
import type { AuditEvent } from "../../graphql/models.js";
import type { PageRequest } from "../../graphql/pagination.js";
import { readTags, tags } from "../../cache/tags.js";


export interface AuditEntry {
  userId: string | null;
  projectId: string | null;
  action: string;
  resourceType: string;
  resourceId: string;
  before?: unknown;
  after?: unknown;
  requestId: string | null;
}

export interface AuditFilter {
  resourceType?: string | null;
  resourceId?: string | null;
  projectId?: string | null;
  userId?: string | null;
  action?: string | null;
}

/** Which events a query may return: all, or those of the given projects. */
export type AuditScope = { all: true } | { all: false; managedBy: string };

const COLUMNS = raw(`a.id, a.user_id AS "userId", a.project_id AS "projectId", a.action,
  a.resource_type AS "resourceType", a.resource_id AS "resourceId", a.before, a.after, a.request_id AS "requestId",
  a.created_at AS "createdAt"`);

/** JSON-safe copy: dates become ISO strings, BigInt and Decimal become strings. */
function toJson(value: unknown): Prisma.InputJsonValue | typeof Prisma.DbNull {
  if (value === undefined || value === null) return Prisma.DbNull;
  return JSON.parse(JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v)));
}

function conditions(scope: AuditScope, filter: AuditFilter): Sql[] {
  const list: Sql[] = [];
  if (!scope.all) {
    list.push(sql`a.project_id IN (
      SELECT p.id FROM projects p WHERE p.owner_id = ${scope.managedBy}::uuid
      UNION SELECT m.project_id FROM project_members m WHERE m.user_id = ${scope.managedBy}::uuid AND m.role = 'MANAGER')`);
  }
  if (filter.resourceType) list.push(sql`a.resource_type = ${filter.resourceType}`);
  if (filter.resourceId) list.push(sql`a.resource_id = ${filter.resourceId}`);
  if (filter.projectId) list.push(sql`a.project_id = ${filter.projectId}::uuid`);
  if (filter.userId) list.push(sql`a.user_id = ${filter.userId}::uuid`);
  if (filter.action) list.push(sql`a.action = ${filter.action}`);
  return list;
}

export function createAuditRepository({ prisma, read }: { prisma: DbClient; read: SqlReader }) {
  return {
    async append(entry: AuditEntry, db: Db = prisma): Promise<void> {
      await db.auditEvent.create({
        data: { ...entry, before: toJson(entry.before), after: toJson(entry.after) },
      });
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
