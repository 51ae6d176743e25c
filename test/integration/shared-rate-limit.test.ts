/**
 * The rate limit across instances that share Redis: a viewer's requests to any instance draw from one bucket.
 * First the limiters on their own against a real Redis (the protocol: what each instance knows when, and the
 * fall-back to per-instance buckets while Redis is down), then two real API instances over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createLogger } from "../../src/observability/logger.js";
import { createSharedRateLimiter } from "../../src/http/shared-rate-limit.js";
import type { RateLimiter } from "../../src/http/rate-limit.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { startTestRedis, type TestRedis } from "../helpers/redis.js";

let redis: TestRedis;
beforeAll(async () => (redis = await startTestRedis()));
afterAll(async () => redis?.kill());

describe("shared buckets", () => {
  // A refill of one token per 1,000 s: nothing refills while a test runs, so every count below is exact.
  const options = () => ({ perSecond: 0.001, burst: 6, url: redis.url, namespace: `rl-${Math.random()}`, timeoutMs: 200, logger: createLogger("silent") });
  let limiters: RateLimiter[] = [];
  afterAll(async () => {
    for (const limiter of limiters) await limiter.close();
  });
  async function pair(): Promise<[RateLimiter, RateLimiter]> {
    const shared = options();
    const a = await createSharedRateLimiter(shared);
    const b = await createSharedRateLimiter(shared);
    limiters.push(a, b);
    return [a, b];
  }
  async function take(limiter: RateLimiter, key: string): Promise<boolean> {
    const { ok } = limiter.take(key);
    await limiter.settled();
    return ok;
  }

  it("grants a viewer one burst across both instances (one more for the report lag), then refuses on both; other viewers have their own", async () => {
    const [a, b] = await pair();
    expect(a.fleetWide && b.fleetWide).toBe(true);
    const granted = [];
    for (let i = 0; i < 6; i++) granted.push(await take(i % 2 ? b : a, "user:1"));
    expect(granted).toEqual([true, true, true, true, true, true]);
    // A last heard from Redis before B's sixth grant: its view still holds that token, so it grants once more,
    // and its report of that grant tells it the bucket is empty. B's view already says so.
    expect(await take(a, "user:1")).toBe(true);
    expect(await take(b, "user:1")).toBe(false);
    expect(await take(a, "user:1")).toBe(false);
    expect(b.take("user:1")).toEqual({ ok: false, retryAfterSeconds: 1000 });
    expect(await take(b, "user:2")).toBe(true);
  });

  it("decides a viewer's first request on an instance by that instance's bucket, then by the fleet's", async () => {
    const [a, b] = await pair();
    for (let i = 0; i < 6; i++) expect(await take(a, "user:1")).toBe(true);
    expect(await take(a, "user:1")).toBe(false);
    // B has not seen this viewer: its own bucket grants while it learns the fleet's, which is empty.
    expect(await take(b, "user:1")).toBe(true);
    expect(await take(b, "user:1")).toBe(false);
  });

  it("limits per instance while Redis is down and across instances again once it is back", async () => {
    const [a, b] = await pair();
    for (let i = 0; i < 6; i++) expect(await take(a, "user:1")).toBe(true);
    await redis.kill();
    // The next report fails: each instance falls back to its own bucket (B's is full, A's is spent).
    expect(await take(a, "user:1")).toBe(false);
    await vi.waitFor(() => expect(a.fleetWide || b.fleetWide).toBe(false));
    expect(await take(b, "user:1")).toBe(true);
    expect(await take(a, "user:1")).toBe(false);
    await redis.start(); // empty: the fleet's buckets are full again
    await vi.waitFor(() => expect(a.fleetWide && b.fleetWide).toBe(true), { timeout: 10_000, interval: 50 });
    expect(await take(b, "user:9")).toBe(true);
    for (let i = 0; i < 5; i++) expect(await take(a, "user:9")).toBe(true);
    expect(await take(a, "user:9")).toBe(false);
    // B last heard of 5 tokens: one more grant (the report lag), whose report tells it the bucket is empty.
    expect(await take(b, "user:9")).toBe(true);
    expect(await take(b, "user:9")).toBe(false);
  });
});

describe("two API instances", () => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    const env = { REDIS_URL: redis.url, RESPONSE_CACHE_NAMESPACE: `rl-http-${process.pid}`, RECON_RATE_LIMIT_PER_SECOND: "1", RECON_RATE_LIMIT_BURST: "6" };
    a = await startTestApp(env);
    b = await startTestApp(env, { database: a.db });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it("refuses a viewer who spent the burst on one instance when they turn to the other, and not another viewer", async () => {
    const viewer = await a.createUser("ANALYST");
    const other = await a.createUser("ANALYST");
    const started = Date.now();
    let granted = 0;
    // Alternate instances, each grant reported before the next request (the report is what the other reads).
    for (let i = 0; i < 40; i++) {
      const app = i % 2 ? b : a;
      const response = await app.graphql("{ me { id } }", {}, viewer.token);
      await app.app.container.rateLimiter!.settled();
      if (response.status === 429) break;
      granted += 1;
    }
    // The burst, what the refill (1 a second) added meanwhile, and one more: the instance that asks Redis next to
    // last still counts the other's final grant as available (see "shared buckets" above).
    expect(granted).toBeGreaterThanOrEqual(6);
    expect(granted).toBeLessThanOrEqual(6 + 1 + Math.ceil((Date.now() - started) / 1000));
    expect(granted).toBeLessThan(12); // per-instance buckets would have granted 6 on each
    expect((await b.graphql("{ me { id } }", {}, other.token)).status).toBe(200);
  });
});
