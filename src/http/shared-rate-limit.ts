/**
 * The per-viewer rate limit across a fleet of instances: one token bucket per viewer in Redis, so a viewer gets
 * `perSecond` (after a burst) from all instances together, not from each.
 *
 * Requests are still decided synchronously in the request listener (a cache hit must not wait for Redis): each
 * instance keeps a view of every active bucket — its tokens as Redis reported them after this instance's last
 * report, refilled locally since — and grants a request when that view, less what it granted since, still holds
 * a token. What it granted is reported shortly after (one script per bucket, batched every few milliseconds), and
 * the reply refreshes the view with what the other instances took meanwhile. So an instance may grant what
 * other instances took since its last report once more — a viewer spreading requests over N instances can get
 * ahead of the limit by what N-1 instances grant in one report's time (milliseconds at a steady rate) — and the
 * limit never refuses a request the fleet's bucket would grant.
 *
 * A bucket an instance has no view of yet (a viewer's first request there) is decided by the instance's own
 * bucket while its view is fetched, and so are all requests while Redis is unreachable: the limit then holds per
 * instance, as without Redis, and goes fleet-wide again once Redis answers. The instance's own buckets are
 * charged for every grant, so they are up to date when they take over.
 */
import { createClient } from "@redis/client";
import { LRUCache } from "lru-cache";
import type { Logger } from "../observability/logger.js";
import { createScriptRunner } from "../redis/scripts.js";
import { createRateLimiter, type RateDecision, type RateLimiter } from "./rate-limit.js";

/**
 * Takes `used` tokens from a bucket (a hash: tokens, at) after refilling it by Redis's own clock (instances'
 * clocks may differ), and answers the tokens left as a string (Lua numbers would be truncated to integers).
 * Tokens do not go below zero: an overshoot is the fleet's error, not a debt the viewer repays by waiting.
 * The bucket expires once it would be full again anyway.
 */
const TAKE = `
local key, rate, burst, used = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) / 1000 * rate) - used
if tokens < 0 then tokens = 0 end
redis.call('HSET', key, 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', key, math.ceil((burst - tokens) / rate * 1000) + 1000)
return tostring(tokens)`;

/** An instance's view of one fleet bucket. */
interface FleetView {
  /** Tokens Redis reported, and when (local ms); NaN until the first report. */
  tokens: number;
  at: number;
  /** Granted here and not yet reported. */
  pending: number;
  /** Reported, reply not yet back. */
  reporting: number;
}

/** How long granted requests wait to be reported: reports of all buckets go together. */
const REPORT_DELAY_MS = 5;

export interface SharedRateLimiterOptions {
  perSecond: number;
  burst: number;
  url: string;
  /** Prefix of the buckets' Redis keys (instances sharing it share the buckets). */
  namespace: string;
  /** Longest wait for Redis before the instance falls back to its own buckets. */
  timeoutMs: number;
  logger: Logger;
  maxKeys?: number;
}

export async function createSharedRateLimiter(options: SharedRateLimiterOptions): Promise<RateLimiter> {
  const { perSecond, burst, namespace, logger } = options;
  const local = createRateLimiter({ perSecond, burst, maxKeys: options.maxKeys });
  if (!local.enabled) return local;
  const client = createClient({
    url: options.url,
    disableOfflineQueue: true,
    socket: { connectTimeout: Math.max(options.timeoutMs * 10, 1000), reconnectStrategy: (retries) => Math.min(50 * 2 ** retries, 2000) },
  });
  const redis = createScriptRunner(client, options.timeoutMs);
  const views = new LRUCache<string, FleetView>({ max: options.maxKeys ?? 100_000 });
  const dirty = new Set<string>();
  let reachable = false;
  let timer: NodeJS.Timeout | undefined;
  let reporting: Promise<void> = Promise.resolve();
  let closed = false;

  /** Redis lost: every view may be stale, so all of them go; the instance's own buckets decide meanwhile. */
  function unreachable(reason: unknown): void {
    if (reachable) logger.warn({ err: reason instanceof Error ? reason.message : String(reason) }, "rate limit: Redis unavailable, limiting per instance");
    reachable = false;
    views.clear();
    dirty.clear();
  }
  client.on("error", unreachable);
  client.on("end", () => unreachable("connection closed"));
  client.on("ready", () => {
    if (!reachable) logger.info("rate limit: Redis reachable, limiting across instances");
    reachable = true;
  });
  const connecting = client.connect();
  connecting.catch(() => {}); // node-redis keeps reconnecting; readiness is then the "ready" event
  await redis.withTimeout(connecting).catch((error: unknown) => unreachable(error));

  function scheduleReport(key: string): void {
    dirty.add(key);
    timer ??= setTimeout(() => {
      timer = undefined;
      reporting = reporting.then(report);
    }, REPORT_DELAY_MS);
  }

  /** Reports what was granted since the last report, bucket by bucket (node-redis pipelines them), and refreshes the views. */
  async function report(): Promise<void> {
    const batch = [...dirty].flatMap((key) => {
      const view = views.get(key);
      if (!view) return [];
      const used = view.pending;
      view.pending = 0;
      view.reporting += used;
      return [{ key, view, used }];
    });
    dirty.clear();
    await Promise.all(batch.map(async ({ key, view, used }) => {
      try {
        const tokens = Number(await redis.run<string>(TAKE, [`${namespace}::rate:${key}`, perSecond, burst, used]));
        view.tokens = tokens;
        view.at = Date.now();
      } catch (error) {
        unreachable(error);
      } finally {
        view.reporting -= used;
      }
    }));
  }

  function take(key: string, now = Date.now()): RateDecision {
    if (!reachable) return local.take(key, now);
    let view = views.get(key);
    if (!view || Number.isNaN(view.tokens)) {
      // No fleet view yet: this instance's own bucket decides until Redis has answered.
      const decision = local.take(key, now);
      if (decision.ok) {
        if (!view) views.set(key, (view = { tokens: Number.NaN, at: now, pending: 0, reporting: 0 }));
        view.pending += 1;
        scheduleReport(key);
      }
      return decision;
    }
    const available = Math.min(burst, view.tokens + (Math.max(0, now - view.at) / 1000) * perSecond) - view.pending - view.reporting;
    if (available < 1) return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - available) / perSecond)) };
    local.take(key, now); // kept in step for when Redis is lost (the fleet's answer is the one that counts)
    view.pending += 1;
    scheduleReport(key);
    return { ok: true };
  }

  /** Resolves once everything granted so far is reported and the replies are in. */
  async function settled(): Promise<void> {
    while (timer || dirty.size) {
      if (timer) {
        clearTimeout(timer);
        timer = undefined;
        reporting = reporting.then(report);
      }
      await reporting;
    }
    await reporting;
  }

  return {
    enabled: true,
    perSecond,
    get fleetWide() {
      return reachable;
    },
    take,
    settled,
    async close() {
      if (closed) return;
      closed = true;
      await settled();
      client.removeAllListeners("error");
      client.on("error", () => {});
      if (client.isOpen) await client.close().catch(() => client.destroy());
    },
  };
}
