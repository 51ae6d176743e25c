/**
 * Raw-SQL helpers shared by repositories. Statements are built with Prisma's tagged templates (every value is a
 * bind parameter) and read straight through the pg pool: on hot read paths this costs a third of going through
 * Prisma's raw-query layer. pg's own types apply: int4 → number, int8 and numeric → string (exact), json → object,
 * timestamptz → Date; enums are cast to text in the SQL.
 */
import type pg from "pg";
import { Prisma } from "../generated/prisma/client.js";
import type { PageRequest } from "../graphql/pagination.js";

export { Prisma };
export type Sql = Prisma.Sql;
export const sql = Prisma.sql;
export const join = Prisma.join;
export const empty = Prisma.empty;
export const raw = Prisma.raw;

/** `a AND b AND …` of the present conditions; TRUE when there are none. */
export function and(conditions: (Sql | undefined | null | false)[]): Sql {
  const present = conditions.filter((c): c is Sql => Boolean(c));
  return present.length ? join(present, " AND ") : sql`TRUE`;
}

/** The keyset condition for "rows after this cursor" in `created_at DESC, id DESC` order, for table alias `t`. */
export function afterCursor(alias: string, page: PageRequest): Sql | undefined {
  if (!page.after) return undefined;
  return sql`(${raw(alias)}.created_at, ${raw(alias)}.id) < (${page.after.createdAt}::timestamptz, ${page.after.id}::uuid)`;
}

/** `ILIKE` pattern matching `text` anywhere, with LIKE's wildcards in `text` taken literally. */
export function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** Runs a statement built with `sql` and resolves to its rows. */
export type SqlReader = <R extends unknown[]>(statement: Sql) => Promise<R>;

export function createSqlReader(pool: pg.Pool): SqlReader {
  return async <R extends unknown[]>(statement: Sql) => (await pool.query(statement.text, statement.values)).rows as R;
}

/** Splits rows fetched with a window `total` column into rows and the total (undefined when no rows). */
export function takeTotal<T extends { total?: string | number }>(rows: T[]): { rows: Omit<T, "total">[]; total?: number } {
  const total = rows[0]?.total;
  return {
    rows: rows.map(({ total: _, ...row }) => row),
    total: total === undefined ? undefined : Number(total),
  };
}
