/**
 * A query that cannot get a connection must reach clients as SERVICE_UNAVAILABLE whichever way it was sent: raw SQL
 * gets the pool's DatabaseUnavailableError itself, but Prisma wraps it in an error of its own (keeping its code and
 * message, not the error), which the GraphQL error formatter must still recognise (bench:load saw two such answers
 * as INTERNAL_SERVER_ERROR while PostgreSQL restarted).
 */
import { afterAll, describe, expect, it } from "vitest";
import { createDatabase } from "../../src/db/database.js";
import { DatabaseUnavailableError, findDatabaseUnavailable } from "../../src/db/errors.js";
import { createMetrics } from "../../src/observability/metrics.js";

describe("a database that cannot be reached", () => {
  // The discard port, where nothing listens: every connection attempt is refused, retried, then given up.
  const db = createDatabase({ url: "postgresql://postgres@127.0.0.1:9/none", poolSize: 2, metrics: createMetrics() });
  afterAll(() => db.close());

  it("fails raw SQL with DatabaseUnavailableError", async () => {
    const error = await db.pool.query("SELECT 1").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatabaseUnavailableError);
    expect(findDatabaseUnavailable(error)?.reason).toBe("connection");
  });

  it("is recognised behind Prisma's own error", async () => {
    const error = await db.prisma.projectMember.findMany({ where: { userId: "00000000-0000-0000-0000-000000000000" } }).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(DatabaseUnavailableError);
    const unavailable = findDatabaseUnavailable(error);
    expect(unavailable?.code).toBe("SERVICE_UNAVAILABLE");
    expect(unavailable?.reason).toBe("connection");
  });

  it("keeps a busy pool's reason when Prisma copied only the code and message", () => {
    const busy = new DatabaseUnavailableError("acquire-timeout", null);
    const copied = Object.assign(new Error(busy.message), { code: busy.code });
    expect(findDatabaseUnavailable(copied)?.reason).toBe("acquire-timeout");
  });
});
