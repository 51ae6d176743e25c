/**
 * The only code that reads or writes projects and their members. List and batch queries are hand-written SQL
 * shaped for their indexes (keyset pages on `(created_at, id)`, one grouped query per batch of keys); simple
 * writes go through Prisma. Methods that write take an optional transaction.
 */
import type { Db, DbClient } from "../../db/database.js";
import type { ProjectRole, ProjectStatus } from "../../generated/prisma/enums.js";
import { type SqlReader, afterCursor, and, containsPattern, Prisma, raw, sql, type Sql, takeTotal } from "../../db/sql.js";
import type { Project } from "../../graphql/models.js";
import type { PageRequest } from "../../graphql/pagination.js";
import { readTags, readTagsOf, tags } from "../../cache/tags.js";


/** Whose projects a query may return: all (ADMIN) or those a user owns or belongs to. */
export type ProjectScope = { all: true } | { all: false; userId: string };

export interface ProjectFilter {
  status?: ProjectStatus | null;
  ownerId?: string | null;
  search?: string | null;
}

export interface ProjectCounts {
  jobCount: number;
  dataSourceCount: number;
}

export interface RecordStatusCounts {
  total: number;
  matched: number;
  suggested: number;
  unmatched: number;
}

const COLUMNS = raw(`p.id, p.name, p.description, p.status::text AS status, p.is_active AS "isActive", p.settings,
  p.owner_id AS "ownerId", p.created_at AS "createdAt", p.updated_at AS "updatedAt"`);

/**
 * SQL subquery: ids of the projects a scoped user may see (owned, or a member of). Both halves are index scans
 * (projects by owner, memberships by user), so visibility costs the size of the user's projects, not the table's.
 */
export function visibleProjectIds(scope: { userId: string }): Sql {
  return sql`(SELECT vp.id FROM projects vp WHERE vp.owner_id = ${scope.userId}::uuid
    UNION SELECT vm.project_id FROM project_members vm WHERE vm.user_id = ${scope.userId}::uuid)`;
}

/** SQL condition: project `p` is visible within `scope`. */
export function visibleProject(scope: ProjectScope, alias = "p"): Sql {
  return scope.all ? sql`TRUE` : sql`${raw(alias)}.id IN ${visibleProjectIds(scope)}`;
}

function filterConditions(filter: ProjectFilter): Sql[] {
  const conditions: Sql[] = [];
  if (filter.status) conditions.push(sql`p.status = ${filter.status}::"ProjectStatus"`);
  if (filter.ownerId) conditions.push(sql`p.owner_id = ${filter.ownerId}::uuid`);
  if (filter.search) conditions.push(sql`p.name ILIKE ${containsPattern(filter.search)}`);
  return conditions;
}

export function createProjectRepository({ prisma, read }: { prisma: DbClient; read: SqlReader }) {
  return {
    /** One page of visible projects, newest first; with `withTotal` on a first page, the total comes along. */
    async list(scope: ProjectScope, filter: ProjectFilter, page: PageRequest, withTotal: boolean) {
      readTags(tags.projectList);
      const windowTotal = withTotal && !page.after;
      const rows = await read<(Project & { total?: string })[]>(sql`
        SELECT ${COLUMNS} ${windowTotal ? sql`, count(*) OVER () AS total` : sql``}
        FROM projects p
        WHERE ${and([visibleProject(scope), ...filterConditions(filter), afterCursor("p", page)])}
        ORDER BY p.created_at DESC, p.id DESC
        LIMIT ${page.limit + 1}`);
      const { rows: projects, total } = takeTotal(rows);
      return { rows: projects as Project[], total: windowTotal ? (total ?? 0) : undefined };
    },

    async count(scope: ProjectScope, filter: ProjectFilter): Promise<number> {
      readTags(tags.projectList);
      const [row] = await read<{ n: number }[]>(sql`
        SELECT count(*)::int AS n FROM projects p WHERE ${and([visibleProject(scope), ...filterConditions(filter)])}`);
      return row.n;
    },

    /** Visible projects among `ids` (any order). */
    async findByIds(scope: ProjectScope, ids: readonly string[]): Promise<Project[]> {
      readTagsOf(tags.project, ids);
      return read<Project[]>(sql`
        SELECT ${COLUMNS} FROM projects p WHERE p.id = ANY(${ids}::uuid[]) AND ${visibleProject(scope)}`);
    },

    /** A project with the role `userId` holds in it as a member (null if none); null if it does not exist. */
    async findWithMemberRole(id: string, userId: string) {
      readTags(tags.project(id));
      const [row] = await read<(Project & { memberRole: ProjectRole | null })[]>(sql`
        SELECT ${COLUMNS}, m.role::text AS "memberRole"
        FROM projects p LEFT JOIN project_members m ON m.project_id = p.id AND m.user_id = ${userId}::uuid
        WHERE p.id = ${id}::uuid`);
      return row ?? null;
    },

    /**
     * Visible projects whose name resembles `text` (trigram similarity or substring), nearest first. Ordering by
     * trigram distance `<->` lets the GiST index return the nearest names directly (a KNN scan) instead of
     * scoring every similar row and sorting.
     */
    async search(scope: ProjectScope, text: string, limit: number): Promise<Project[]> {
      readTags(tags.projectList);
      return read<Project[]>(sql`
        SELECT ${COLUMNS} FROM projects p
        WHERE (p.name % ${text} OR p.name ILIKE ${containsPattern(text)}) AND ${visibleProject(scope)}
        ORDER BY p.name <-> ${text}
        LIMIT ${limit}`);
    },

    /** Projects `userId` owns or belongs to, within `scope`, newest first. */
    async listForUser(scope: ProjectScope, userId: string, page: PageRequest) {
      readTags(tags.projectList);
      return read<Project[]>(sql`
        SELECT ${COLUMNS} FROM projects p
        WHERE ${and([
          sql`(p.owner_id = ${userId}::uuid OR p.id IN (SELECT project_id FROM project_members WHERE user_id = ${userId}::uuid))`,
          visibleProject(scope),
          afterCursor("p", page),
        ])}
        ORDER BY p.created_at DESC, p.id DESC
        LIMIT ${page.limit + 1}`);
    },

    /** Job and data-source counts of each project, in one grouped query; zeros for projects with none. */
    async countsByProject(ids: readonly string[]): Promise<Map<string, ProjectCounts>> {
      readTagsOf(tags.projectJobs, ids);
      readTagsOf(tags.projectDataSources, ids);
      const rows = await read<{ projectId: string; jobCount: number; dataSourceCount: number }[]>(sql`
        SELECT x.project_id AS "projectId",
               count(*) FILTER (WHERE x.kind = 'job')::int AS "jobCount",
               count(*) FILTER (WHERE x.kind = 'source')::int AS "dataSourceCount"
        FROM (
          SELECT project_id, 'job' AS kind FROM reconciliation_jobs WHERE project_id = ANY(${ids}::uuid[])
          UNION ALL
          SELECT project_id, 'source' AS kind FROM data_sources WHERE project_id = ANY(${ids}::uuid[])
        ) x
        GROUP BY x.project_id`);
      const counts = new Map(ids.map((id) => [id, { jobCount: 0, dataSourceCount: 0 }]));
      for (const row of rows) counts.set(row.projectId, { jobCount: row.jobCount, dataSourceCount: row.dataSourceCount });
      return counts;
    },

    /**
     * How many projects (within `scope`) each user owns or belongs to, in one statement: a LATERAL count per user
     * probes the owner and membership indexes, so its cost follows the users' own projects, never the table.
     */
    async countsByUser(scope: ProjectScope, userIds: readonly string[]): Promise<Map<string, number>> {
      readTags(tags.projectList);
      const rows = await read<{ userId: string; n: number }[]>(sql`
        SELECT k.id AS "userId", c.n
        FROM unnest(${userIds}::uuid[]) AS k(id)
        CROSS JOIN LATERAL (
          SELECT count(*)::int AS n FROM (
            SELECT p.id FROM projects p WHERE p.owner_id = k.id
            UNION
            SELECT m.project_id FROM project_members m WHERE m.user_id = k.id
          ) mine
          ${scope.all ? sql`` : sql`WHERE mine.id IN ${visibleProjectIds(scope)}`}
        ) c`);
      return new Map(rows.map((row) => [row.userId, row.n]));
    },

    /** The role `userId` holds in each of `projectIds` (absent when not a member). */
    async memberRoles(userId: string, projectIds: readonly string[]): Promise<Map<string, ProjectRole>> {
      readTagsOf(tags.project, projectIds);
      const rows = await prisma.projectMember.findMany({
        where: { userId, projectId: { in: [...projectIds] } },
        select: { projectId: true, role: true },
      });
      return new Map(rows.map((row) => [row.projectId, row.role]));
    },

    /** Members of each project, by the time they were added. */
    async membersByProject(projectIds: readonly string[]) {
      readTagsOf(tags.project, projectIds);
      return prisma.projectMember.findMany({
        where: { projectId: { in: [...projectIds] } },
        orderBy: [{ createdAt: "asc" }, { userId: "asc" }],
      });
    },

    /** Records per status for each project, from the (project_id, status) index. */
    async recordStatusCounts(projectIds: readonly string[]): Promise<Map<string, RecordStatusCounts>> {
      readTagsOf(tags.projectRecords, projectIds);
      const rows = await read<{ projectId: string; status: string; n: number }[]>(sql`
        SELECT project_id AS "projectId", status::text AS status, count(*)::int AS n
        FROM records WHERE project_id = ANY(${projectIds}::uuid[])
        GROUP BY project_id, status`);
      const counts = new Map(projectIds.map((id) => [id, { total: 0, matched: 0, suggested: 0, unmatched: 0 }]));
      for (const row of rows) {
        const entry = counts.get(row.projectId)!;
        entry.total += row.n;
        if (row.status === "MATCHED") entry.matched += row.n;
        else if (row.status === "SUGGESTED") entry.suggested += row.n;
        else if (row.status === "UNMATCHED") entry.unmatched += row.n;
      }
      return counts;
    },

    create(data: { name: string; description: string; settings: object; ownerId: string }, db: Db = prisma) {
      return db.project.create({ data });
    },

    update(id: string, data: Prisma.ProjectUpdateInput, db: Db = prisma) {
      return db.project.update({ where: { id }, data });
    },

    async delete(id: string, db: Db = prisma): Promise<void> {
      await db.project.delete({ where: { id } });
    },

    upsertMember(projectId: string, userId: string, role: ProjectRole, db: Db = prisma) {
      return db.projectMember.upsert({
        where: { projectId_userId: { projectId, userId } },
        create: { projectId, userId, role },
        update: { role },
      });
    },

    /** Removes a membership; false when there was none. */
    async removeMember(projectId: string, userId: string, db: Db = prisma): Promise<boolean> {
      const { count } = await db.projectMember.deleteMany({ where: { projectId, userId } });
      return count > 0;
    },
  };
}

export type ProjectRepository = ReturnType<typeof createProjectRepository>;
