/**
 * Relay cursor connections over keyset pagination. Every list is ordered newest first by `(created_at, id)`;
 * a cursor is that pair, opaque to clients. Pages are fetched with one row more than asked, to know whether
 * another page follows; `totalCount` is computed only when a client selects it.
 */
import type { GraphQLResolveInfo } from "graphql";
import { BadUserInputError } from "./errors.js";
import { isId } from "./validate.js";

export const MAX_PAGE_SIZE = 100;

export interface Position {
  createdAt: Date;
  id: string;
}

export interface Connection<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
  totalCount: () => Promise<number>;
}

/** Page arguments after validation: `limit` rows wanted, starting after `after` (null: from the start). */
export interface PageRequest {
  limit: number;
  after: Position | null;
}

export function encodeCursor(row: Position): string {
  return Buffer.from(JSON.stringify([row.createdAt.toISOString(), row.id])).toString("base64url");
}

/**
 * Cursors hold creation times: none is before year 1 (PostgreSQL itself refuses timestamps before 4714 BC, which
 * JavaScript dates reach; its latest, in 294276, is beyond theirs).
 */
const EARLIEST_CURSOR_TIME = Date.parse("0001-01-01T00:00:00.000Z");

/**
 * The position of a cursor made by `encodeCursor`, and of nothing else: a time PostgreSQL holds, a uuid, and the
 * cursor exactly as `encodeCursor` writes them, so that a tampered cursor is the client's mistake rather than a
 * statement PostgreSQL refuses.
 */
function decodeCursor(cursor: string): Position {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as [string, string];
    const position = { createdAt: new Date(createdAt), id };
    const wellFormed = position.createdAt.getTime() >= EARLIEST_CURSOR_TIME && typeof id === "string" && isId(id);
    if (wellFormed && encodeCursor(position) === cursor) return position;
  } catch {
    // falls through to the error below
  }
  throw new BadUserInputError("after", "is not a cursor from this list (use pageInfo.endCursor)");
}

/** Validates a page size (`first`, default 20). */
export function pageSize(first: number | null | undefined): number {
  const size = first ?? 20;
  if (!Number.isInteger(size) || size < 1 || size > MAX_PAGE_SIZE) {
    throw new BadUserInputError("first", `must be between 1 and ${MAX_PAGE_SIZE}`);
  }
  return size;
}

/** Validates `first` and `after`. */
export function pageRequest(args: { first?: number | null; after?: string | null }): PageRequest {
  return { limit: pageSize(args.first), after: args.after ? decodeCursor(args.after) : null };
}

/** Whether the client selected `field` directly on the object this resolver returns (e.g. `totalCount`). */
export function selects(info: GraphQLResolveInfo, field: string): boolean {
  return info.fieldNodes.some((node) =>
    node.selectionSet?.selections.some((selection) => selection.kind === "Field" && selection.name.value === field),
  );
}

/**
 * Builds a connection from rows fetched with `limit + 1`. `knownTotal` is used when the page query could compute
 * it (the first page, with a window count); otherwise `countTotal` runs when totalCount is resolved.
 */
export function toConnection<T extends Position>(
  rows: T[],
  page: PageRequest,
  countTotal: () => Promise<number>,
  knownTotal?: number,
): Connection<T> {
  return toConnectionBy(rows, page, encodeCursor, countTotal, knownTotal);
}

/** The same for lists in another order than `(created_at, id)`, given how to make a row's cursor. */
export function toConnectionBy<T>(
  rows: T[],
  page: { limit: number; after: unknown },
  cursorOf: (row: T) => string,
  countTotal: () => Promise<number>,
  knownTotal?: number,
): Connection<T> {
  const hasNextPage = rows.length > page.limit;
  const nodes = hasNextPage ? rows.slice(0, page.limit) : rows;
  const edges = nodes.map((node) => ({ cursor: cursorOf(node), node }));
  let total: Promise<number> | undefined = knownTotal === undefined ? undefined : Promise.resolve(knownTotal);
  return {
    edges,
    pageInfo: {
      hasNextPage,
      hasPreviousPage: page.after !== null,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
    totalCount: () => (total ??= countTotal()),
  };
}
