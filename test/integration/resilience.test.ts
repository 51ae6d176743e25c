/**
 * What the server does when its dependencies fail: a database pool with no free connection, a PostgreSQL that
 * cannot be reached, Redis gone (readiness). Real PostgreSQL and Redis; failures are made, not simulated.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, CONNECT_RETRY_DELAYS_MS } from "../../src/db/database.js";
import { DatabaseUnavailableError } from "../../src/db/errors.js";
import { createMetrics } from "../../src/observability/metrics.js";
import { errorCode, ok, startTestApp, type TestApp } from "../helpers/app.js";
import { createTestDatabase } from "../helpers/database.js";
import { startTestRedis, type TestRedis } from "../helpers/redis.js";

const retries = async (app: TestApp) =>
  (await app.app.container.metrics.dbConnectRetriesTotal.get()).values.reduce((sum, value) => sum + value.value, 0);

describe("a database pool with no free connection", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ RESPONSE_CACHE: "off", DATABASE_POOL_SIZE: "2", DATABASE_ACQUIRE_TIMEOUT_MS: "50" });
  });
  afterAll(async () => t?.close());

  it("retries three times with backoff, then answers SERVICE_UNAVAILABLE; works again once a connection is free", async () => {
    const viewer = await t.createUser("ANALYST");
    const held = await Promise.all([t.app.container.database.pool.connect(), t.app.container.database.pool.connect()]);
    const before = await retries(t);
    const refused = await t.graphql("{ projects(first: 5) { totalCount } }", {}, viewer.token);
    expect(refused.status).toBe(503); // the viewer could not even be resolved
    expect(errorCode(refused)).toBe("SERVICE_UNAVAILABLE");
    expect(refused.headers.get("retry-after")).toBe("1");
    expect((await retries(t)) - before).toBe(CONNECT_RETRY_DELAYS_MS.length);
    const metrics = await (await fetch(t.url.replace(/\/graphql$/, "/metrics"))).text();
    expect(metrics).toMatch(/^recon_db_pool_connections\{state="in_use"\} 2$/m);
    for (const client of held) client.release();
    expect(ok(await t.graphql<{ projects: { totalCount: number } }>("{ projects(first: 5) { totalCount } }", {}, viewer.token)).projects.totalCount).toBe(0);
  });

  it("succeeds when a connection comes free during the retries", async () => {
    const viewer = await t.createUser("ANALYST");
    const held = await Promise.all([t.app.container.database.pool.connect(), t.app.container.database.pool.connect()]);
    const before = await retries(t);
    const pending = t.graphql<{ projects: { totalCount: number } }>("{ projects(first: 5) { totalCount } }", {}, viewer.token);
    // Free one connection as soon as the first retry is under way.
    await expect.poll(async () => (await retries(t)) - before).toBeGreaterThanOrEqual(1);
    held[0].release();
    expect(ok(await pending).projects.totalCount).toBe(0);
    held[1].release();
  });

  it("inside GraphQL execution, an exhausted pool is SERVICE_UNAVAILABLE too, never an internal error", async () => {
    const viewer = await t.createUser("ANALYST");
    ok(await t.graphql("{ me { id } }", {}, viewer.token)); // not remembered (cache off), but proves the token
    const pool = t.app.container.database.pool;
    // One connection left for the viewer lookup, then none for the resolvers.
    const first = await pool.connect();
    let second: pg.PoolClient | undefined;
    const originalQuery = t.app.container.repos.users.findById;
    t.app.container.repos.users.findById = async (id: string) => {
      const user = await originalQuery(id);
      second = await pool.connect();
      return user;
    };
    try {
      const response = await t.graphql("{ projects(first: 5) { totalCount } }", {}, viewer.token);
      expect(errorCode(response)).toBe("SERVICE_UNAVAILABLE");
      expect(response.errors?.[0]?.message).toMatch(/database is busy/);
      // Nothing of the answer succeeded: retryable at the HTTP level too.
      expect([response.status, response.headers.get("retry-after")]).toEqual([503, "1"]);
    } finally {
      t.app.container.repos.users.findById = originalQuery;
      first.release();
      second?.release();
    }
  });
});

describe("a PostgreSQL that cannot be reached", () => {
  it("fails with DatabaseUnavailableError after three retries", async () => {
    const metrics = createMetrics();
    const database = createDatabase({ url: "postgresql://postgres@127.0.0.1:9/none", poolSize: 1, acquireTimeoutMs: 200, metrics });
    try {
      await expect(database.pool.query("SELECT 1")).rejects.toBeInstanceOf(DatabaseUnavailableError);
      const counted = (await metrics.dbConnectRetriesTotal.get()).values.find((value) => value.labels.reason === "connection");
      expect(counted?.value).toBe(3);
    } finally {
      await database.close();
    }
  });
});

describe("connections PostgreSQL cuts (a restart, a failover)", () => {
  it("are reported, never end the process, idle or checked out between statements, and the pool reconnects", async () => {
    const db = await createTestDatabase();
    // Each cut connection reports PostgreSQL's message (and an idle one the pool's removal too).
    const terminated = new Set<number>();
    let allLost: () => void;
    const bothLost = new Promise<void>((resolve) => (allLost = resolve));
    const database = createDatabase({
      url: db.url,
      poolSize: 3,
      metrics: createMetrics(),
      onConnectionLost: (error) => {
        if (error.message === "terminating connection due to administrator command") terminated.add(terminated.size);
        if (terminated.size >= 2) allLost();
      },
    });
    try {
      const held = await database.pool.connect(); // checked out, between statements
      const idle = await database.pool.connect();
      const pids = [(await held.query("SELECT pg_backend_pid() AS pid")).rows[0].pid, (await idle.query("SELECT pg_backend_pid() AS pid")).rows[0].pid];
      idle.release();
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      await admin.query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", [pids]);
      await admin.end();
      // Without a listener on the checked-out connection this 'error' event would end the test process.
      await bothLost;
      const failed = await held.query("SELECT 1").then(() => null, (error: Error) => error);
      expect(failed).toBeInstanceOf(Error);
      held.release(failed!);
      expect((await database.pool.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    } finally {
      await database.close();
      await db.drop();
    }
  });
});

describe("a connection PostgreSQL cuts during a statement", () => {
  it("is SERVICE_UNAVAILABLE with Retry-After, never an internal error, and the next request works", async () => {
    let app: TestApp | undefined;
    const cut = {
      Query: {
        // Stands in for a PostgreSQL restart in the middle of a query: through pg, or through Prisma (which
        // reports the driver's error in its message only).
        searchProjects: async (_: unknown, { query }: { query: string }) => {
          const terminate = "SELECT pg_terminate_backend(pg_backend_pid())";
          if (query === "pg") await app!.app.container.database.pool.query(terminate);
          else await app!.app.container.database.prisma.$queryRawUnsafe(terminate);
          return [];
        },
      },
    };
    app = await startTestApp({ RESPONSE_CACHE: "off" }, { http: { resolverOverrides: [cut] } });
    try {
      for (const via of ["pg", "prisma"]) {
        const response = await app.graphql("query($q: String!) { searchProjects(query: $q) { id } }", { q: via }, app.admin.token);
        expect(errorCode(response)).toBe("SERVICE_UNAVAILABLE");
        expect(response.errors?.[0]?.message).toMatch(/cannot be reached; retry shortly/);
        expect(response.headers.get("retry-after")).toBe("1");
        ok(await app.graphql("{ me { id } }", {}, app.admin.token));
      }
    } finally {
      await app.close();
    }
  });
});

describe("/readyz", () => {
  let redis: TestRedis;
  let t: TestApp;
  beforeAll(async () => {
    redis = await startTestRedis();
    t = await startTestApp({ REDIS_URL: redis.url, RESPONSE_CACHE_NAMESPACE: `ready-${process.pid}` });
  });
  afterAll(async () => {
    await t?.close();
    await redis?.kill();
  });

  const readyz = async () => {
    const response = await fetch(t.url.replace(/\/graphql$/, "/readyz"));
    return [response.status, await response.json()];
  };

  it("is ready with PostgreSQL and Redis reachable, degraded but in rotation while Redis is gone, ready again after", async () => {
    expect(await readyz()).toEqual([200, { status: "ready", database: "ok", redis: "ok" }]);
    await redis.kill();
    await t.app.container.cache.whenDegraded(true);
    // Still answering (from the database): a load balancer must keep sending requests.
    expect(await readyz()).toEqual([200, { status: "degraded", database: "ok", redis: "unreachable" }]);
    ok(await t.graphql("{ me { id } }", {}, t.admin.token));
    await redis.start();
    await t.app.container.cache.whenDegraded(false);
    expect(await readyz()).toEqual([200, { status: "ready", database: "ok", redis: "ok" }]);
  });

  it("is unavailable while PostgreSQL refuses the instance, ready again after", async () => {
    const admin = new pg.Client({ connectionString: t.db.url.replace(/\/[^/?]+(\?|$)/, "/postgres$1") });
    await admin.connect();
    try {
      await admin.query(`ALTER DATABASE "${t.db.name}" ALLOW_CONNECTIONS false`);
      await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [t.db.name]);
      expect(await readyz()).toEqual([503, { status: "unavailable", database: "unreachable", redis: "ok" }]);
    } finally {
      await admin.query(`ALTER DATABASE "${t.db.name}" ALLOW_CONNECTIONS true`);
      await admin.end();
    }
    expect(await readyz()).toEqual([200, { status: "ready", database: "ok", redis: "ok" }]);
  });
});

describe("a statement that runs too long", () => {
  it("is stopped by PostgreSQL and answered as QUERY_TIMEOUT, and the connection is fine afterwards", async () => {
    let app: TestApp | undefined;
    const slow = {
      Query: {
        // Stands in for a pathological query: sleeps in PostgreSQL, past the timeout.
        searchProjects: async () => {
          await app!.app.container.database.pool.query("SELECT pg_sleep(2)");
          return [];
        },
      },
    };
    app = await startTestApp({ RESPONSE_CACHE: "off", DATABASE_POOL_SIZE: "1", DATABASE_STATEMENT_TIMEOUT_MS: "100" }, { http: { resolverOverrides: [slow] } });
    try {
      const response = await app.graphql('{ searchProjects(query: "slow") { id } }', {}, app.admin.token);
      expect(errorCode(response)).toBe("QUERY_TIMEOUT");
      expect(response.errors?.[0]?.message).toMatch(/took too long/);
      // The pool's only connection was not lost: the next request works.
      ok(await app.graphql("{ me { id } }", {}, app.admin.token));
    } finally {
      await app.close();
    }
  });
});
