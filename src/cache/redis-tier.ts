/**
 * The response cache's shared tier in Redis (L2), through Keyv and `@keyv/redis`, plus what keeps every
 * instance coherent:
 *
 *   entries      <ns>::<gen>:<key>          Keyv-format JSON, with a TTL
 *   tag indexes  <ns>::idx:<gen>:<tag>      set of entry keys carrying the tag, expiring after the longest TTL
 *   tag marks    <ns>::inv:<tag>            sequence number of the tag's last invalidation (short-lived)
 *   sequence     <ns>::seq                  invalidation counter, shared by all instances
 *   generation   <ns>::gen                  bumped to flush everything (old entries become unreachable)
 *
 * Invalidation and conditional write-back are Lua scripts, so each is atomic: an invalidation raises the sequence,
 * marks its tags, deletes the indexed entries and publishes itself on a channel every instance listens to (their
 * L1 drops the same tags); a write-back stores an answer only if none of its tags was invalidated after the
 * request started — a slow query that read before a mutation can never store its stale answer over the
 * invalidation. No KEYS or SCAN anywhere.
 *
 * Every call has a short timeout. Any failure, or a lost connection, puts the tier in `degraded` mode (the cache
 * bypasses itself: answers come from the database); once Redis answers again the tier flushes (an invalidation
 * may have been lost meanwhile), then resumes.
 */
import KeyvRedis from "@keyv/redis";
import { createClient } from "@redis/client";
import { createHash } from "node:crypto";
import { Keyv } from "keyv";
import type { Logger } from "../observability/logger.js";
import { createScriptRunner, RedisTimeoutError } from "../redis/scripts.js";

/** A cached answer as stored: the response body, the tags it read, and which operation it answers. */
export interface StoredAnswer {
  body: string;
  tags: string[];
  operation: string;
}

/** What another instance (or this one) announced on the channel. */
export type CoherenceMessage = { kind: "invalidate"; seq: number; tags: string[] } | { kind: "flush"; gen: number; seq: number };

const INVALIDATE = `
local ns, gen, markMs = ARGV[1], ARGV[2], ARGV[3]
local seq = redis.call('INCR', ns .. '::seq')
local deleted = 0
for i = 4, #ARGV do
  local tag = ARGV[i]
  redis.call('SET', ns .. '::inv:' .. tag, seq, 'PX', markMs)
  local index = ns .. '::idx:' .. gen .. ':' .. tag
  local members = redis.call('SMEMBERS', index)
  for j = 1, #members do deleted = deleted + redis.call('DEL', ns .. '::' .. members[j]) end
  redis.call('DEL', index)
end
redis.call('PUBLISH', ns .. '::coherence', 'i\\n' .. seq .. '\\n' .. table.concat(ARGV, '\\n', 4))
return {seq, deleted}`;

const STORE = `
local ns, gen, startSeq, key, value, ttlMs, indexMs = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if (redis.call('GET', ns .. '::gen') or '0') ~= gen then return 0 end
for i = 8, #ARGV do
  local mark = redis.call('GET', ns .. '::inv:' .. ARGV[i])
  if mark and tonumber(mark) > startSeq then return 0 end
end
redis.call('SET', ns .. '::' .. key, value, 'PX', ttlMs)
for i = 8, #ARGV do
  local index = ns .. '::idx:' .. gen .. ':' .. ARGV[i]
  redis.call('SADD', index, key)
  if redis.call('PTTL', index) < tonumber(indexMs) then redis.call('PEXPIRE', index, indexMs) end
end
return 1`;

const FLUSH = `
local ns = ARGV[1]
local gen = redis.call('INCR', ns .. '::gen')
local seq = redis.call('INCR', ns .. '::seq')
redis.call('PUBLISH', ns .. '::coherence', 'g\\n' .. gen .. '\\n' .. seq)
return {gen, seq}`;

const STATE = `return {tonumber(redis.call('GET', ARGV[1] .. '::gen') or '0'), tonumber(redis.call('GET', ARGV[1] .. '::seq') or '0')}`;

export interface RedisTierOptions {
  url: string;
  namespace: string;
  /** Longest wait for any Redis call before the cache bypasses itself. */
  timeoutMs: number;
  /** The longest entry TTL: tag indexes live that long after their last entry was added. */
  maxTtlSeconds: number;
  /** How long tag marks live: longer than any request may run before writing back. */
  markTtlMs: number;
  logger: Logger;
  /** Called for every message on the channel, in order. */
  onMessage(message: CoherenceMessage): void;
  /** Called when the tier becomes degraded (true) or healthy again (false), after its recovery flush. */
  onHealth(degraded: boolean): void;
}

/** Redis keys hold a request key's SHA-256, not the key itself (which holds the query's variables). */
const digest = (key: string) => createHash("sha256").update(key).digest("base64url");

export async function createRedisTier(options: RedisTierOptions) {
  const { namespace: ns, timeoutMs, logger } = options;
  // Fail fast while disconnected (no offline queue); reconnect with capped backoff forever.
  const client = createClient({
    url: options.url,
    disableOfflineQueue: true,
    socket: { connectTimeout: Math.max(timeoutMs * 10, 1000), reconnectStrategy: (retries) => Math.min(50 * 2 ** retries, 2000) },
  });
  const subscriber = client.duplicate();
  const store = new KeyvRedis(client as never, { namespace: ns, throwOnConnectError: false, throwOnErrors: true });
  const l2 = new Keyv<StoredAnswer>({
    store,
    namespace: ns,
    useKeyPrefix: false,
    throwOnErrors: true,
    // Plain JSON: the body is already a JSON string; Keyv's default reviver would walk it character by character.
    serialize: JSON.stringify,
    deserialize: (text) => JSON.parse(text as string),
  });
  l2.on("error", () => {}); // surfaced through throwOnErrors instead

  let gen = 0;
  let degraded = true;
  let recovering: Promise<void> | null = null;
  let closed = false;
  /** While the first connection is made, readiness is handled by start() itself. */
  let starting = true;

  const { run: script, withTimeout } = createScriptRunner(client, timeoutMs);

  function degrade(reason: unknown): void {
    if (closed) return;
    if (!degraded) {
      degraded = true;
      logger.warn({ err: reason instanceof Error ? reason.message : String(reason) }, "response cache: Redis unavailable, bypassing the cache");
      options.onHealth(true);
    }
    if (!starting) scheduleRecovery();
  }

  /** Once both connections are up: flush (an invalidation may have been lost), learn gen and seq, resume. */
  function scheduleRecovery(): void {
    if (recovering || closed) return;
    recovering = (async () => {
      while (!closed) {
        if (client.isReady && subscriber.isReady) {
          try {
            await subscribe();
            [gen] = await script<[number, number]>(FLUSH, [ns]);
            const [, seq] = await script<[number, number]>(STATE, [ns]);
            degraded = false;
            options.onMessage({ kind: "flush", gen, seq });
            options.onHealth(false);
            logger.info("response cache: Redis reachable again; flushed and resumed");
            return;
          } catch (error) {
            logger.debug({ err: (error as Error).message }, "response cache: recovery attempt failed");
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 200).unref());
      }
    })().finally(() => (recovering = null));
  }

  for (const connection of [client, subscriber]) {
    connection.on("error", (error: Error) => degrade(error));
    connection.on("end", () => degrade("connection closed"));
    connection.on("reconnecting", () => degrade("reconnecting"));
    connection.on("ready", () => degraded && !starting && scheduleRecovery());
  }

  function parse(text: string): CoherenceMessage | null {
    const [kind, first, ...rest] = text.split("\n");
    if (kind === "i") return { kind: "invalidate", seq: Number(first), tags: rest };
    if (kind === "g") return { kind: "flush", gen: Number(first), seq: Number(rest[0]) };
    return null;
  }

  let subscribed = false;
  /** Listens on the channel (once: node-redis resubscribes by itself after a reconnect). */
  async function subscribe(): Promise<void> {
    if (subscribed) return;
    await subscriber.subscribe(`${ns}::coherence`, (text: string) => {
      const message = parse(text);
      if (!message) return;
      if (message.kind === "flush") gen = message.gen;
      options.onMessage(message);
    });
    subscribed = true;
  }

  async function start(): Promise<void> {
    try {
      const connecting = Promise.all([client.connect(), subscriber.connect()]);
      connecting.catch(() => {}); // node-redis keeps trying after our timeout; readiness is then an event
      await Promise.race([connecting, new Promise((_, reject) => setTimeout(reject, 2000, new RedisTimeoutError("Redis connect timed out")).unref())]);
      await subscribe();
      const [currentGen, seq] = await script<[number, number]>(STATE, [ns]);
      gen = currentGen;
      degraded = false;
      starting = false;
      options.onMessage({ kind: "flush", gen, seq });
      options.onHealth(false);
    } catch (error) {
      // Start degraded; the recovery loop resumes once Redis is reachable (node-redis keeps reconnecting).
      starting = false;
      degrade(error);
    }
  }
  await start();

  return {
    get degraded() {
      return degraded;
    },

    /** The generation entries are read and written under now. */
    get gen() {
      return gen;
    },

    /** The stored answer under `key`, or undefined; throws (after degrading) if Redis fails. */
    async get(key: string): Promise<StoredAnswer | undefined> {
      try {
        return await withTimeout(l2.get(`${gen}:${digest(key)}`));
      } catch (error) {
        if (!(error instanceof RedisTimeoutError)) degrade(error);
        throw error;
      }
    },

    /** Stores `answer` unless its generation is over or one of its tags was invalidated after `startSeq`. */
    async store(key: string, answer: StoredAnswer, ttlSeconds: number, startSeq: number, startGen: number): Promise<boolean> {
      const value = JSON.stringify({ value: answer, expires: Date.now() + ttlSeconds * 1000 });
      const stored = await script<number>(STORE, [
        ns, startGen, startSeq, `${startGen}:${digest(key)}`, value, ttlSeconds * 1000, options.maxTtlSeconds * 1000, ...answer.tags,
      ]);
      return stored === 1;
    },

    /** Invalidates `tags` everywhere; resolves with the new sequence number. Degrades (and throws) on failure. */
    async invalidate(tags: string[]): Promise<number> {
      try {
        const [seq] = await script<[number, number]>(INVALIDATE, [ns, gen, options.markTtlMs, ...tags]);
        return seq;
      } catch (error) {
        degrade(error);
        throw error;
      }
    },

    /** Makes every stored answer unreachable (a new generation), on every instance. */
    async flush(): Promise<void> {
      try {
        const [newGen, seq] = await script<[number, number]>(FLUSH, [ns]);
        gen = newGen;
        options.onMessage({ kind: "flush", gen, seq });
      } catch (error) {
        degrade(error);
        throw error;
      }
    },

    /** Reads a small JSON value kept beside the cache (warming recipes). */
    async readJson<T>(name: string): Promise<T | undefined> {
      const text = await withTimeout(client.get(`${ns}::${name}`));
      return text ? (JSON.parse(text) as T) : undefined;
    },

    async writeJson(name: string, value: unknown, ttlSeconds: number): Promise<void> {
      await withTimeout(client.set(`${ns}::${name}`, JSON.stringify(value), { EX: ttlSeconds }));
    },

    async close(): Promise<void> {
      closed = true;
      await Promise.allSettled([recovering]);
      for (const connection of [subscriber, client]) {
        connection.removeAllListeners("error");
        connection.on("error", () => {});
        if (connection.isOpen) await connection.close().catch(() => connection.destroy());
      }
    },
  };
}

export type RedisTier = Awaited<ReturnType<typeof createRedisTier>>;
