/**
 * Per-viewer rate limiting of GraphQL requests: a token bucket per signed-in user (per bearer token until the
 * token's user is known, per client address for anonymous requests), refilled at `perSecond` up to `burst`.
 * Checked synchronously in the request listener, before the response cache, so a cache hit costs no extra await
 * and a flood of hits is limited as well as one of executions. Buckets here live in this instance's memory
 * (bounded, least recently used dropped); with Redis, shared-rate-limit.ts puts a fleet-wide bucket behind them.
 */
import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";
import { LRUCache } from "lru-cache";

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms). */
  at: number;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

export interface RateLimiter {
  readonly enabled: boolean;
  /** The refill rate (requests a second), quoted in refusals. */
  readonly perSecond: number;
  /** Whether buckets are shared by every instance right now (Redis reachable), rather than this instance's own. */
  readonly fleetWide: boolean;
  /** Takes one token from `key`'s bucket at time `now` (ms); refused when it is empty. */
  take(key: string, now?: number): RateDecision;
  /** Resolves once every grant so far is accounted for wherever the buckets live (at once for memory). */
  settled(): Promise<void>;
  close(): Promise<void>;
}

export function createRateLimiter(options: { perSecond: number; burst: number; maxKeys?: number }): RateLimiter {
  const { perSecond, burst } = options;
  const nothingPending = async () => {};
  if (perSecond <= 0) return { enabled: false, perSecond, fleetWide: false, take: () => ({ ok: true }), settled: nothingPending, close: nothingPending };
  const buckets = new LRUCache<string, Bucket>({ max: options.maxKeys ?? 100_000 });
  return {
    enabled: true,
    perSecond,
    fleetWide: false,
    settled: nothingPending,
    close: nothingPending,
    take(key, now = Date.now()) {
      const bucket = buckets.get(key) ?? { tokens: burst, at: now };
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);
      bucket.at = now;
      buckets.set(key, bucket);
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return { ok: true };
      }
      return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond)) };
    },
  };
}

/** The bucket of a request: the known viewer, else the token (hashed: buckets never hold secrets), else the address. */
export function rateKey(viewerId: string | null | undefined, token: string | undefined, address: string | undefined): string {
  if (viewerId) return `user:${viewerId}`;
  if (token) return `token:${createHash("sha256").update(token).digest("base64url").slice(0, 22)}`;
  return `address:${address ?? "unknown"}`;
}

/** What a refused request is told, over HTTP (with its 429) and over WebSocket alike. */
export function rateLimitedMessage(retryAfterSeconds: number, perSecond: number): string {
  return `Too many requests: wait ${retryAfterSeconds} s (the limit is ${perSecond} a second)`;
}

/** Answers a refused request: 429, Retry-After, and a GraphQL-shaped RATE_LIMITED error. */
export function sendRateLimited(res: ServerResponse, requestId: string, retryAfterSeconds: number, perSecond: number): void {
  const body = JSON.stringify({
    errors: [{
      message: rateLimitedMessage(retryAfterSeconds, perSecond),
      extensions: { code: "RATE_LIMITED", retryAfterSeconds, requestId },
    }],
  });
  res.writeHead(429, { "content-type": "application/json; charset=utf-8", "retry-after": String(retryAfterSeconds), "x-request-id": requestId });
  res.end(body);
}

/**
 * Where a request is counted: in the request listener when its viewer is known (or it has no token), else — a
 * token seen for the first time — once the route has resolved the token's user, so that it counts against that
 * user's bucket like the user's other requests.
 */
export function countsInListener(token: string | undefined, knownViewer: unknown): boolean {
  return !token || knownViewer !== undefined;
}
