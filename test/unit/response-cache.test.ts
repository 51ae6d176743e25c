import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { Viewer } from "../../src/auth/policy.js";
import { createResponseCache } from "../../src/cache/response-cache.js";
import { canonicalJson, createRequestKeys } from "../../src/cache/request-key.js";
import { parseTtls, ttlFor, DEFAULT_TTLS } from "../../src/cache/tags.js";
import { writeTags } from "../../src/cache/write-tags.js";
import { createLogger } from "../../src/observability/logger.js";
import { createMetrics } from "../../src/observability/metrics.js";

const viewer: Viewer = { id: "u1", email: "a@x", name: "A", role: "ANALYST" };

describe("request keys", () => {
  const keys = createRequestKeys();
  const key = (params: Record<string, unknown>, who: Viewer | null = viewer) => {
    const plan = keys.plan(params, who);
    return plan.kind === "cacheable" ? plan.key : plan.reason;
  };

  it("ignores whitespace and comments in the document, and the order of variables", () => {
    expect(key({ query: "{ me { id } }" })).toBe(key({ query: "query {\n  me { id } # who am I\n}" }));
    expect(key({ query: "query($a: Int, $b: Int) { me { id } }", variables: { a: 1, b: 2 } })).toBe(
      key({ query: "query($a: Int, $b: Int) { me { id } }", variables: { b: 2, a: 1 } }),
    );
    expect(canonicalJson({ b: [{ d: 1, c: 2 }], a: null })).toBe('{"a":null,"b":[{"c":2,"d":1}]}');
  });

  it("keys each viewer and role apart, and anonymous requests apart from all", () => {
    const query = { query: "{ me { id } }" };
    const keysSeen = new Set([key(query), key(query, { ...viewer, role: "ADMIN" }), key(query, { ...viewer, id: "u2" }), key(query, null)]);
    expect(keysSeen.size).toBe(4);
  });

  it("never plans mutations or unparsable documents, and finds a persisted hash once its text was seen", () => {
    expect(key({ query: "mutation { login(email: \"a\", password: \"b\") { token } }" })).toBe("mutation");
    expect(key({ query: "{ me { " })).toBe("unparsable");
    const text = "query Me { me { id } }";
    const hash = "8d1b3b5a1c6b1c0c6e1f8b9f3a3c3d3e3f3a3b3c3d3e3f3a3b3c3d3e3f3a3b3c";
    expect(keys.plan({ extensions: { persistedQuery: { sha256Hash: hash } } }, viewer)).toMatchObject({ kind: "cacheable", knownQuery: false });
    const real = createHash("sha256").update(text).digest("hex");
    const byText = keys.plan({ query: text }, viewer);
    const byHash = keys.plan({ extensions: { persistedQuery: { sha256Hash: real } } }, viewer);
    expect(byHash).toMatchObject({ kind: "cacheable", knownQuery: true });
    expect(byHash.kind === "cacheable" && byText.kind === "cacheable" && byHash.key === byText.key).toBe(true);
  });
});

describe("tags", () => {
  it("gives an answer the shortest TTL of what it read, configurable per class", () => {
    expect(ttlFor(["List:Project", "Project:p1", "Project:p1:jobs"], DEFAULT_TTLS)).toBe(120);
    expect(ttlFor(["Project:p1:records"], DEFAULT_TTLS)).toBe(1800);
    expect(ttlFor(["User:u1"], parseTtls("users=42"))).toBe(42);
    expect(() => parseTtls("projects=5")).toThrow(/unknown class "projects"/);
  });

  it("derives a write's tags from the row, its parent's lists and counts, and cascades on delete", () => {
    expect(writeTags("DataSource", "create", {}, { id: "d1", projectId: "p1" })).toEqual(["DataSource:d1", "Project:p1:dataSources"]);
    expect(writeTags("Project", "delete", {}, { id: "p1" })).toEqual(
      expect.arrayContaining(["Project:p1", "List:Project", "List:User", "Project:p1:jobs", "Project:p1:dataSources", "Project:p1:records"]),
    );
    expect(writeTags("ProjectMember", "deleteMany", { where: { projectId: "p1", userId: "u1" } }, { count: 1 })).toEqual(
      expect.arrayContaining(["Project:p1", "List:Project", "List:User", "User:u1"]),
    );
    // A bulk write whose rows cannot be named flushes everything.
    expect(writeTags("ReconciliationJob", "updateMany", { where: { status: "RUNNING" } }, { count: 3 })).toBeNull();
    expect(writeTags("SomethingNew", "create", {}, { id: "x" })).toBeNull();
  });
});

describe("L1 bounds", () => {
  it("holds at most its entry cap, counting evictions", async () => {
    const metrics = createMetrics();
    const cache = await createResponseCache({
      enabled: true, namespace: "t", maxEntries: 5, maxBytes: 1 << 20, ttls: DEFAULT_TTLS, redisTimeoutMs: 100, metrics, logger: createLogger("silent"),
    });
    const keys = createRequestKeys();
    for (let i = 0; i < 50; i++) {
      const plan = keys.plan({ query: `query Q${i} { me { id } }` }, viewer);
      if (plan.kind !== "cacheable") throw new Error(plan.reason);
      expect(await cache.store(plan, { body: "x".repeat(100), tags: [`User:${i}`], operation: "Q" }, cache.ticket(), null)).toBe(true);
    }
    expect(cache.stats().entries).toBe(5);
    expect((await metrics.cacheEvictionsTotal.get()).values[0].value).toBe(45);
    await cache.close();
  });

  it("holds at most its byte cap", async () => {
    const metrics = createMetrics();
    const cache = await createResponseCache({
      enabled: true, namespace: "t", maxEntries: 1000, maxBytes: 10_000, ttls: DEFAULT_TTLS, redisTimeoutMs: 100, metrics, logger: createLogger("silent"),
    });
    const keys = createRequestKeys();
    for (let i = 0; i < 100; i++) {
      const plan = keys.plan({ query: `query Q${i} { me { id } }` }, viewer);
      if (plan.kind === "cacheable") await cache.store(plan, { body: "y".repeat(1000), tags: [], operation: "Q" }, cache.ticket(), null);
    }
    expect(cache.stats().bytes).toBeLessThanOrEqual(10_000);
    expect(cache.stats().entries).toBe(10); // 1,000 bytes each
    await cache.close();
  });
});
