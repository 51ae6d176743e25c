/**
 * The response cache against the truth: two cached instances sharing one database and one Redis (a Redis of the
 * test's own, so it can be killed), and an uncached third instance (`RESPONSE_CACHE=off`) on the same database
 * whose answers are what every cached answer must equal (the game of random steps: helpers/cache-coherence.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Resolvers } from "../../src/graphql/resolver-types.js";
import { projectResolvers } from "../../src/modules/projects/project-resolvers.js";
import { ok, startTestApp, type TestApp } from "../helpers/app.js";
import { comparable, playCoherenceGame, QUERIES, random } from "../helpers/cache-coherence.js";
import { startTestRedis, type TestRedis } from "../helpers/redis.js";

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

/**
 * Pauses the `projects` query after it has read the database, while armed: lets a test hold an execution between
 * its read and its write-back.
 */
function createGate() {
  const gate = {
    armed: false,
    executions: 0,
    reached: deferred(),
    release: deferred(),
    arm() {
      gate.armed = true;
      gate.reached = deferred();
      gate.release = deferred();
    },
  };
  const resolvers: Resolvers = {
    Query: {
      projects: async (parent, args, ctx, info) => {
        const result = await (projectResolvers.Query!.projects as (...a: unknown[]) => Promise<unknown>)(parent, args, ctx, info);
        gate.executions += 1;
        if (gate.armed) {
          gate.reached.resolve();
          await gate.release.promise;
        }
        return result as never;
      },
    },
  };
  return { gate, resolvers };
}

let redis: TestRedis;
let a: TestApp;
let b: TestApp;
let truth: TestApp;
const { gate, resolvers: gatedResolvers } = createGate();

beforeAll(async () => {
  redis = await startTestRedis();
  const env = { REDIS_URL: redis.url, RESPONSE_CACHE_NAMESPACE: `test-${process.pid}` };
  a = await startTestApp(env, { http: { resolverOverrides: [gatedResolvers] } });
  b = await startTestApp(env, { database: a.db });
  truth = await startTestApp({ RESPONSE_CACHE: "off" }, { database: a.db });
}, 60_000);

afterAll(async () => {
  await truth?.close();
  await b?.close();
  await a?.close();
  await redis?.kill();
});

/** Waits until both instances have applied every invalidation either has made (pub/sub delivery is an event). */
async function settled() {
  const target = Math.max(a.app.container.cache.sequence, b.app.container.cache.sequence);
  await Promise.all([a.app.container.cache.whenSeen(target), b.app.container.cache.whenSeen(target)]);
}

describe("coherence: random queries and writes over two instances", () => {
  it.each([20261123, 4242])("after every step, every cached answer equals a fresh uncached execution (2,000 steps, seed %i)", async (seed) => {
    const { differences, compared } = await playCoherenceGame({ a, b, truth, seed, steps: 2000, settled });
    expect(differences).toEqual([]);
    // The run must have exercised the cache, not bypassed it.
    const stats = ok(await a.graphql<{ cacheStats: { hitRate: number; redis: string } }>("{ cacheStats { hitRate redis } }", {}, a.admin.token));
    expect(stats.cacheStats.redis).toBe("UP");
    expect(stats.cacheStats.hitRate).toBeGreaterThan(0.3);
    expect(compared).toBeGreaterThan(2000);
  }, 600_000);
});

describe("race: a query that read before a write never stores its stale answer", () => {
  const list = "query Projects { projects(first: 50) { totalCount edges { node { id name } } } }";

  it("holds a query between its read and its write-back while another instance creates a project", async () => {
    const owner = await a.createUser("ANALYST");
    ok(await a.graphql("mutation { createProject(input: { name: \"before the race\" }) { id } }", {}, owner.token));
    await settled();
    gate.arm();
    const slow = a.graphql<{ projects: { totalCount: number } }>(list, {}, owner.token);
    await gate.reached.promise; // the slow query has read the database
    const created = ok(await b.graphql<{ createProject: { id: string } }>("mutation { createProject(input: { name: \"during the race\" }) { id } }", {}, owner.token));
    await settled();
    gate.armed = false;
    gate.release.resolve();
    const stale = await slow;
    expect(stale.headers.get("x-cache")).toBe("MISS");
    expect(ok(stale).projects.totalCount).toBe(1); // it did read before the write...

    // ...and did not store that: both instances now answer with the new project.
    for (const app of [a, b]) {
      const answer = await app.graphql<{ projects: { totalCount: number; edges: { node: { id: string } }[] } }>(list, {}, owner.token);
      expect(ok(answer).projects.totalCount).toBe(2);
      expect(ok(answer).projects.edges.map((edge) => edge.node.id)).toContain(created.createProject.id);
    }
  });

  it("runs identical concurrent misses once (single-flight) and gives every caller the same answer", async () => {
    const owner = await a.createUser("ANALYST");
    ok(await a.graphql("mutation { createProject(input: { name: \"flight\" }) { id } }", {}, owner.token));
    await settled();
    gate.arm();
    const before = gate.executions;
    const first = a.graphql(list, {}, owner.token);
    await gate.reached.promise;
    const followers = Array.from({ length: 9 }, () => a.graphql(list, {}, owner.token));
    // Release once all nine are waiting on the flight: each counted its miss just before joining it.
    const metrics = a.app.container.metrics.cacheMissesTotal;
    const missesBefore = (await metrics.get()).values[0]?.value ?? 0;
    await expect.poll(async () => ((await metrics.get()).values[0]?.value ?? 0) - missesBefore).toBeGreaterThanOrEqual(9);
    gate.armed = false;
    gate.release.resolve();
    const answers = await Promise.all([first, ...followers]);
    expect(gate.executions - before).toBe(1);
    const bodies = new Set(answers.map((answer) => JSON.stringify(answer.data)));
    expect(bodies.size).toBe(1);
    expect(answers.filter((answer) => answer.headers.get("x-cache") === "HIT")).toHaveLength(9);
  });
});

describe("privacy: viewers with different access never get each other's answers", () => {
  it("serves each of many viewers exactly what an uncached execution gives them", async () => {
    const rng = random(7);
    const viewers = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).createUser(rng.pick(["ANALYST", "VIEWER", "MANAGER"] as const))));
    const projectIds: string[] = [];
    for (let i = 0; i < 6; i++) {
      const owner = rng.pick(viewers.filter((viewer) => viewer.role !== "VIEWER"));
      projectIds.push(ok(await a.graphql<{ createProject: { id: string } }>("mutation($n: String!) { createProject(input: { name: $n }) { id } }", { n: `private ${i}` }, owner.token)).createProject.id);
    }
    for (const viewer of viewers) {
      if (rng.next() < 0.5) {
        await b.graphql("mutation($p: ID!, $u: ID!) { addProjectMember(projectId: $p, userId: $u, role: VIEWER) { id } }", { p: rng.pick(projectIds), u: viewer.id }, a.admin.token);
      }
    }
    await settled();
    // Everyone asks the same questions, twice, on both instances, concurrently: the second round is served from cache.
    for (let round = 0; round < 2; round++) {
      const requests = viewers.flatMap((viewer) =>
        [a, b].flatMap((app) => [
          { app, viewer, query: QUERIES.projects, vars: {} },
          { app, viewer, query: QUERIES.users, vars: {} },
          { app, viewer, query: QUERIES.project, vars: { id: rng.pick(projectIds) } },
        ]),
      );
      const answers = await Promise.all(requests.map((r) => r.app.graphql(r.query, r.vars, r.viewer.token)));
      const expected = await Promise.all(requests.map((r) => truth.graphql(r.query, r.vars, r.viewer.token)));
      answers.forEach((answer, i) => expect(comparable(answer), `${requests[i].viewer.email}`).toEqual(comparable(expected[i])));
      if (round === 1) expect(answers.filter((answer) => answer.headers.get("x-cache") === "HIT").length).toBeGreaterThan(requests.length / 2);
    }
  });

  it("never stores answers with errors, and keys anonymous requests apart from signed-in ones", async () => {
    const viewer = await a.createUser("ANALYST");
    const failing = "query { project(id: \"not-a-uuid\") { id } projectStats(projectId: \"00000000-0000-0000-0000-000000000000\") { recordCount } users(first: 1000) { totalCount } }";
    const first = await a.graphql(failing, {}, viewer.token);
    const second = await a.graphql(failing, {}, viewer.token);
    expect(first.errors?.length).toBeGreaterThan(0);
    expect(second.headers.get("x-cache")).toBe("MISS");
    await a.graphql(QUERIES.me, {}, viewer.token);
    const anonymous = await a.graphql<{ me: null }>(QUERIES.me);
    expect(anonymous.data?.me).toBeNull();
  });
});

describe("remembered viewers", () => {
  it("forgets a viewer the moment their user changes, on every instance", async () => {
    const user = await a.createUser("ADMIN");
    const all = "query All { projects(first: 1) { totalCount } }";
    const asAdmin = ok(await a.graphql<{ projects: { totalCount: number } }>(all, {}, user.token)).projects.totalCount;
    expect(asAdmin).toBeGreaterThan(0); // an ADMIN sees every project
    expect((await a.graphql(all, {}, user.token)).headers.get("x-cache")).toBe("HIT");
    ok(await b.graphql("mutation($id: ID!) { updateUser(id: $id, input: { role: ANALYST }) { id } }", { id: user.id }, b.admin.token));
    await settled();
    // Demoted on B: on A the same token is now an ANALYST with no project of their own.
    expect(ok(await a.graphql<{ projects: { totalCount: number } }>(all, {}, user.token)).projects.totalCount).toBe(0);
    ok(await b.graphql("mutation($id: ID!) { deactivateUser(id: $id) { id } }", { id: user.id }, b.admin.token));
    await settled();
    const refused = await a.graphql(all, {}, user.token);
    expect(refused.status).toBe(401);
    expect(refused.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
  });
});

describe("warming", () => {
  it("replays the most-used queries after a flush, so their next asker hits", async () => {
    const solo = await startTestApp();
    try {
      const viewer = await solo.createUser("ANALYST");
      const list = "query Warm { projects(first: 7) { totalCount } }";
      await solo.graphql(list, {}, viewer.token);
      expect((await solo.graphql(list, {}, viewer.token)).headers.get("x-cache")).toBe("HIT");
      ok(await solo.graphql("mutation { flushResponseCache }", {}, solo.admin.token));
      expect(await solo.app.container.cache.whenWarmed()).toBeGreaterThan(0);
      expect((await solo.graphql(list, {}, viewer.token)).headers.get("x-cache")).toBe("HIT");
    } finally {
      await solo.close();
    }
  });
});

describe("faults: Redis dies and comes back", () => {
  it("keeps answering from the database while Redis is down, then caches again, without stale answers", async () => {
    const viewer = await a.createUser("ANALYST");
    const list = "query Mine { projects(first: 50) { totalCount edges { node { name } } } }";
    ok(await a.graphql("mutation { createProject(input: { name: \"before the outage\" }) { id } }", {}, viewer.token));
    await settled();
    await a.graphql(list, {}, viewer.token);
    expect((await a.graphql(list, {}, viewer.token)).headers.get("x-cache")).toBe("HIT");
    expect((await b.graphql(list, {}, viewer.token)).headers.get("x-cache")).toBe("HIT"); // shared through L2

    await redis.kill();
    await Promise.all([a.app.container.cache.whenDegraded(true), b.app.container.cache.whenDegraded(true)]);
    // Reads and writes keep working, uncached; nothing is held in memory meanwhile.
    const during = await a.graphql<{ projects: { totalCount: number } }>(list, {}, viewer.token);
    expect(during.headers.get("x-cache")).toBe("BYPASS");
    expect(ok(during).projects.totalCount).toBe(1);
    ok(await b.graphql("mutation { createProject(input: { name: \"during the outage\" }) { id } }", {}, viewer.token));
    for (let i = 0; i < 20; i++) expect((await a.graphql(list, {}, viewer.token)).status).toBe(200);
    expect(a.app.container.cache.stats().entries).toBe(0);

    await redis.start();
    await Promise.all([a.app.container.cache.whenDegraded(false), b.app.container.cache.whenDegraded(false)]);
    // The write made during the outage is seen by both instances, then cached again.
    for (const app of [a, b]) {
      const after = await app.graphql<{ projects: { totalCount: number } }>(list, {}, viewer.token);
      expect(ok(after).projects.totalCount).toBe(2);
    }
    expect((await a.graphql(list, {}, viewer.token)).headers.get("x-cache")).toBe("HIT");
  }, 60_000);
});

describe("in-process cache alone (no REDIS_URL, the zero-setup default)", () => {
  it("invalidates on writes, refuses a write-back a write superseded, and reports itself", async () => {
    const local = createGate();
    const solo = await startTestApp({}, { http: { resolverOverrides: [local.resolvers] } });
    try {
      const owner = await solo.createUser("ANALYST");
      const list = "query Projects { projects(first: 10) { totalCount } }";
      expect(ok(await solo.graphql<{ projects: { totalCount: number } }>(list, {}, owner.token)).projects.totalCount).toBe(0);
      expect((await solo.graphql(list, {}, owner.token)).headers.get("x-cache")).toBe("HIT");
      ok(await solo.graphql("mutation { createProject(input: { name: \"one\" }) { id } }", {}, owner.token));
      const after = await solo.graphql<{ projects: { totalCount: number } }>(list, {}, owner.token);
      expect(after.headers.get("x-cache")).toBe("MISS");
      expect(ok(after).projects.totalCount).toBe(1);

      // A query not cached yet, held between its read and its write-back while a project is created.
      const held = "query Held { projects(first: 11) { totalCount } }";
      local.gate.arm();
      const slow = solo.graphql(held, {}, owner.token);
      await local.gate.reached.promise;
      ok(await solo.graphql("mutation { createProject(input: { name: \"two\" }) { id } }", {}, owner.token));
      local.gate.armed = false;
      local.gate.release.resolve();
      expect((await slow).data).toEqual({ projects: { totalCount: 1 } });
      const fresh = await solo.graphql<{ projects: { totalCount: number } }>(held, {}, owner.token);
      expect(fresh.headers.get("x-cache")).toBe("MISS");
      expect(ok(fresh).projects.totalCount).toBe(2);

      const stats = ok(await solo.graphql<{ cacheStats: { redis: string; enabled: boolean } }>("{ cacheStats { redis enabled } }", {}, solo.admin.token));
      expect(stats.cacheStats).toEqual({ redis: "NOT_CONFIGURED", enabled: true });
      const metrics = await (await fetch(solo.url.replace(/\/graphql$/, "/metrics"))).text();
      expect(metrics).toMatch(/^cache_hits_total [1-9]/m);
      expect(metrics).toMatch(/^recon_cache_requests_total\{layer="l1",result="hit"\} [1-9]/m);
      expect(metrics).toMatch(/^recon_cache_invalidations_total\{source="mutation"\} [1-9]/m);
    } finally {
      await solo.close();
    }
  });

  it("with RESPONSE_CACHE=off answers every request by executing it", async () => {
    const viewer = await truth.createUser("ANALYST");
    const first = await truth.graphql(QUERIES.me, {}, viewer.token);
    const second = await truth.graphql(QUERIES.me, {}, viewer.token);
    expect([first.headers.get("x-cache"), second.headers.get("x-cache")]).toEqual(["BYPASS", "BYPASS"]);
  });
});
