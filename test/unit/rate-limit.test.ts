/** The token bucket: a burst, then the refill rate; buckets are per key; off at 0. */
import { describe, expect, it } from "vitest";
import { createRateLimiter, rateKey } from "../../src/http/rate-limit.js";

describe("rate limiter", () => {
  it("grants the burst at once, then one request per 1/rate seconds, saying how long to wait", () => {
    const limiter = createRateLimiter({ perSecond: 2, burst: 3 });
    const t = 1_000_000;
    expect([1, 2, 3].map(() => limiter.take("a", t).ok)).toEqual([true, true, true]);
    expect(limiter.take("a", t)).toEqual({ ok: false, retryAfterSeconds: 1 });
    expect(limiter.take("a", t + 499).ok).toBe(false);
    expect(limiter.take("a", t + 500).ok).toBe(true); // half a second refills one token at 2/s
    expect(limiter.take("a", t + 500).ok).toBe(false);
    // Never more than the burst, however long the pause.
    expect([1, 2, 3, 4].map(() => limiter.take("a", t + 3_600_000).ok)).toEqual([true, true, true, false]);
  });

  it("keeps one bucket per key", () => {
    const limiter = createRateLimiter({ perSecond: 1, burst: 1 });
    expect(limiter.take("a", 0).ok).toBe(true);
    expect(limiter.take("a", 0).ok).toBe(false);
    expect(limiter.take("b", 0).ok).toBe(true);
  });

  it("is off at 0 a second", () => {
    const limiter = createRateLimiter({ perSecond: 0, burst: 1 });
    expect(limiter.enabled).toBe(false);
    expect(Array.from({ length: 1000 }, () => limiter.take("a").ok).every(Boolean)).toBe(true);
  });

  it("keys a request by viewer, else by a hash of its token (never the token), else by address", () => {
    expect(rateKey("u1", "secret-token", "10.0.0.1")).toBe("user:u1");
    const byToken = rateKey(null, "secret-token", "10.0.0.1");
    expect(byToken).toMatch(/^token:/);
    expect(byToken).not.toContain("secret-token");
    expect(rateKey(undefined, undefined, "10.0.0.1")).toBe("address:10.0.0.1");
  });
});
