/** The only code that reads or writes users. Password hashes leave it only through `findCredentials`. */
import type { Db, DbClient } from "../../db/database.js";
import type { Role } from "../../generated/prisma/enums.js";
import { type SqlReader, afterCursor, and, containsPattern, Prisma, raw, sql, type Sql, takeTotal } from "../../db/sql.js";
import type { User } from "../../graphql/models.js";
import type { PageRequest } from "../../graphql/pagination.js";
import { visibleProjectIds, type ProjectScope } from "../projects/project-repository.js";
import { readTags, readTagsOf, tags } from "../../cache/tags.js";


/** Whose user records a query may return: everyone, or a user and the people sharing a visible project. */
export type UserScope = { all: true } | { all: false; userId: string; projects: ProjectScope };

export interface UserFilter {
  role?: Role | null;
  isActive?: boolean | null;
  search?: string | null;
}

const COLUMNS = raw(`u.id, u.email, u.name, u.role::text AS role, u.is_active AS "isActive",
  u.token_version AS "tokenVersion", u.last_login_at AS "lastLoginAt", u.created_at AS "createdAt", u.updated_at AS "updatedAt"`);

function visibleUser(scope: UserScope): Sql {
  if (scope.all) return sql`TRUE`;
  const projectIds = scope.projects.all ? sql`(SELECT id FROM projects)` : visibleProjectIds(scope.projects);
  return sql`(u.id = ${scope.userId}::uuid
    OR u.id IN (SELECT p.owner_id FROM projects p WHERE p.id IN ${projectIds})
    OR u.id IN (SELECT m.user_id FROM project_members m WHERE m.project_id IN ${projectIds}))`;
}

function filterConditions(filter: UserFilter): Sql[] {
  const conditions: Sql[] = [];
  if (filter.role) conditions.push(sql`u.role = ${filter.role}::"Role"`);
  if (filter.isActive !== undefined && filter.isActive !== null) conditions.push(sql`u.is_active = ${filter.isActive}`);
  if (filter.search) {
    const pattern = containsPattern(filter.search);
    conditions.push(sql`(u.name ILIKE ${pattern} OR u.email ILIKE ${pattern})`);
  }
  return conditions;
}

export function createUserRepository({ prisma, read }: { prisma: DbClient; read: SqlReader }) {
  return {
    async list(scope: UserScope, filter: UserFilter, page: PageRequest, withTotal: boolean) {
      readTags(tags.userList);
      const windowTotal = withTotal && !page.after;
      const rows = await read<(User & { total?: string })[]>(sql`
        SELECT ${COLUMNS} ${windowTotal ? sql`, count(*) OVER () AS total` : sql``}
        FROM users u
        WHERE ${and([visibleUser(scope), ...filterConditions(filter), afterCursor("u", page)])}
        ORDER BY u.created_at DESC, u.id DESC
        LIMIT ${page.limit + 1}`);
      const { rows: users, total } = takeTotal(rows);
      return { rows: users as User[], total: windowTotal ? (total ?? 0) : undefined };
    },

    async count(scope: UserScope, filter: UserFilter): Promise<number> {
      readTags(tags.userList);
      const [row] = await read<{ n: number }[]>(sql`
        SELECT count(*)::int AS n FROM users u WHERE ${and([visibleUser(scope), ...filterConditions(filter)])}`);
      return row.n;
    },

    /** Users among `ids`, whoever may see them: callers reach them through something already authorized. */
    findByIds(ids: readonly string[]): Promise<User[]> {
      readTagsOf(tags.user, ids);
      return read<User[]>(sql`SELECT ${COLUMNS} FROM users u WHERE u.id = ANY(${ids}::uuid[])`);
    },

    /** The user `id` if visible within `scope`. */
    async findVisible(scope: UserScope, id: string): Promise<User | null> {
      // Visibility follows shared projects, which only a list-wide change (membership, deletion) alters.
      readTags(tags.user(id), tags.userList);
      const [row] = await read<User[]>(sql`
        SELECT ${COLUMNS} FROM users u WHERE u.id = ${id}::uuid AND ${visibleUser(scope)}`);
      return row ?? null;
    },

    /** One user by id (read on every request to resolve the viewer, hence plain SQL). */
    async findById(id: string): Promise<User | null> {
      readTags(tags.user(id));
      const [row] = await read<User[]>(sql`SELECT ${COLUMNS} FROM users u WHERE u.id = ${id}::uuid`);
      return row ?? null;
    },

    /** The sign-in record for an email, with its password hash. */
    findCredentials(email: string) {
      return prisma.user.findUnique({ where: { email }, omit: { passwordHash: false } });
    },

    create(data: { email: string; name: string; role: Role; passwordHash: string }, db: Db = prisma): Promise<User> {
      return db.user.create({ data });
    },

    update(id: string, data: Prisma.UserUpdateInput, db: Db = prisma): Promise<User> {
      return db.user.update({ where: { id }, data });
    },

    countAll(): Promise<number> {
      return prisma.user.count();
    },
  };
}

export type UserRepository = ReturnType<typeof createUserRepository>;
