import { describe, expect, it } from "vitest";
import { encodeCursor, pageRequest, toConnection } from "../../src/graphql/pagination.js";

describe("pagination", () => {
  const row = (i: number) => ({ id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`, createdAt: new Date(Date.UTC(2026, 0, i)) });

  it("round-trips a cursor", () => {
    const cursor = encodeCursor(row(3));
    expect(pageRequest({ first: 5, after: cursor })).toEqual({ limit: 5, after: row(3) });
  });

  it.each([0, -1, 101, 2.5])("refuses first = %s, naming the field", (first) => {
    expect(() => pageRequest({ first })).toThrow(/^first: must be between 1 and 100/);
  });

  it.each(["", "garbage", Buffer.from('["not a date","x"]').toString("base64url")])("refuses cursor %j", (after) => {
    if (after === "") expect(pageRequest({ after }).after).toBeNull();
    else expect(() => pageRequest({ after })).toThrow(/^after: /);
  });

  const cursorOf = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  it.each([
    ["an id of dashes", cursorOf(["2026-11-24T22:28:32.658Z", "-".repeat(36)])],
    ["a 36-digit hex id without dashes", cursorOf(["2026-11-24T22:28:32.658Z", "0123456789abcdef0123456789abcdef0123"])],
    ["a time before year 1", cursorOf(["-271821-04-20T00:00:00.000Z", row(3).id])],
    ["a time not written as toISOString writes it", cursorOf(["-271821-04-20T00:00:00Z", row(3).id])],
    ["a third element", cursorOf([row(3).createdAt.toISOString(), row(3).id, 1])],
    ["padding", `${encodeCursor(row(3))}=`],
  ])("refuses a cursor with %s, as any other bad cursor", (_, after) => {
    expect(() => pageRequest({ after })).toThrow("after: is not a cursor from this list (use pageInfo.endCursor)");
  });

  it("accepts cursors at the earliest and latest times a cursor may hold", () => {
    for (const createdAt of [new Date("0001-01-01T00:00:00.000Z"), new Date(8.64e15)]) {
      expect(pageRequest({ after: encodeCursor({ createdAt, id: row(3).id }) }).after).toEqual({ createdAt, id: row(3).id });
    }
  });

  it("uses the extra row only to know that a next page exists", async () => {
    const page = pageRequest({ first: 2 });
    const connection = toConnection([row(3), row(2), row(1)], page, async () => 99);
    expect(connection.edges.map((edge) => edge.node.id)).toEqual([row(3).id, row(2).id]);
    expect(connection.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false, endCursor: encodeCursor(row(2)) });
    expect(await connection.totalCount()).toBe(99);
    expect(await toConnection([], page, async () => 99, 7).totalCount()).toBe(7);
  });
});
