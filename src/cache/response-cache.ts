/**
 * The response cache: whole GraphQL answers, keyed per viewer (request-key.ts), tagged with what they read
 * (tags.ts), invalidated by what is written (db/change-feed.ts).
 *
 *   L1  a bounded in-process LRU (entries and bytes capped) behind Keyv — every instance has its own
 *   L2  Redis through Keyv + @keyv/redis when REDIS_URL is set (redis-tier.ts), shared by every instance
 *
 * Staleness is ruled out by sequence numbers rather than timing. Each invalidation gets the next number and
 * marks its tags with it; a request notes the number current when it starts, and its answer is stored only if
 * none of its tags was marked later (in Redis atomically, by a script; in L1 before and after the write). So a
 * query that read the database before a mutation committed cannot store its answer after the mutation's
 * invalidation, on any instance. Invalidations reach the other instances' L1 over Redis pub/sub; without Redis,
 * over PostgreSQL NOTIFY (queue/job-events.ts, wired in app.ts), applied here as local invalidations (`invalidate`).
 *
 * When Redis is configured but unreachable or slow, the cache bypasses itself entirely (L1 too: it would miss
 * other instances' invalidations) and answers come from the database; when Redis returns, the cache flushes and
 * resumes. Without Redis the same holds for PostgreSQL's listening connection (`hearPeers`). Single-flight:
 * concurrent identical misses on one instance share one execution.
 */
import { decodeJwt } from "jose";
import { Keyv } from "keyv";
import { LRUCache } from "lru-cache";
import type { Viewer } from "../auth/policy.js";
import type { Change } from "../db/change-feed.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import { createRedisTier, type CoherenceMessage, type RedisTier, type StoredAnswer } from "./redis-tier.js";
import { createRequestKeys, type CacheablePlan } from "./request-key.js";
import { ttlFor, type CacheTtls } from "./tags.js";

export type { StoredAnswer } from "./redis-tier.js";

/** Answers of requests that started longer ago than this are not stored (tag marks are kept this long). */
const MAX_WRITE_BACK_MS = 30_000;
/** Operation names tracked individually in `cacheStats`; beyond, they are counted under "(other)". */
const MAX_TRACKED_OPERATIONS = 500;
/** Hot requests remembered for warming. */
const MAX_RECIPES = 200;
const WARM_COUNT = 50;

export interface ResponseCacheOptions {
  enabled: boolean;
  redisUrl?: string;
  namespace: string;
  maxEntries: number;
  maxBytes: number;
  ttls: CacheTtls;
  redisTimeoutMs: number;
  metrics: Metrics;
  logger: Logger;
}

/** How to replay a request for warming: what the client sent, and as whom. */
export interface WarmRecipe {
  query: string;
  operationName: string | null;
  variables: Record<string, unknown> | null;
  viewerId: string | null;
}

/** The moment a request started, as far as invalidations go. */
export interface Ticket {
  /** Invalidation number current at the start. */
  seq: number;
  /** Local flush count at the start: an answer never outlives a flush that happened while it ran. */
  epoch: number;
  /** The Redis generation at the start (0 without Redis). */
  gen: number;
  at: number;
}

export interface OperationCacheStats {
  operation: string;
  hits: number;
  misses: number;
  bypasses: number;
}

type Outcome = "hit" | "miss" | "bypass";

export async function createResponseCache(options: ResponseCacheOptions) {
  const { metrics, logger, ttls } = options;
  const maxTtl = Math.max(...Object.values(ttls));

  // ---- local coherence state -------------------------------------------------------------------------------
  /** The newest invalidation sequence number this instance knows of. */
  let seq = 0;
  /** Flushes applied here (a flush also resets `seq` to Redis's, which restarts from 0 if Redis lost its data). */
  let epoch = 0;
  /** Tag → sequence number and time of its latest invalidation seen here (pruned after MAX_WRITE_BACK_MS). */
  const marks = new Map<string, { seq: number; at: number }>();
  /**
   * Without Redis: whether other processes' writes reach this instance (PostgreSQL's listening connection is up).
   * While they do not, nothing is served or stored, as while Redis is down.
   */
  let peersHeard = true;

  // ---- L1 ------------------------------------------------------------------------------------------------
  /** Tag → keys of L1 entries carrying it. */
  const index = new Map<string, Set<string>>();
  /**
   * An L1 entry keeps the body encoded too, so a hit writes bytes without re-encoding the text, and its gzip and
   * brotli forms once a client asked for them (http/compression.ts; not counted in the byte cap: smaller still).
   */
  type LocalAnswer = StoredAnswer & { bytes: Buffer; gzip?: Buffer; br?: Buffer };
  const lru = new LRUCache<string, { value: LocalAnswer; expires?: number }>({
    max: options.maxEntries,
    maxSize: options.maxBytes,
    sizeCalculation: (entry) => Math.max(1, entry.value.bytes.length + 64 * entry.value.tags.length),
    dispose: (entry, key, reason) => {
      if (reason === "evict") metrics.cacheEvictionsTotal.inc({ layer: "l1" });
      if (reason !== "set") {
        for (const tag of entry.value.tags) {
          const keys = index.get(tag);
          keys?.delete(key);
          if (keys?.size === 0) index.delete(tag);
        }
      }
    },
  });
  // Keyv over the LRU, raw objects in and out (no serialization: L1 hands back the very string it was given).
  // Keyv checks expiry itself; the adapter only translates Keyv's `set(key, value, ttl)` to lru-cache's options.
  const l1Store = {
    get: (key: string) => lru.get(key),
    set: (key: string, value: { value: LocalAnswer; expires?: number }) => void lru.set(key, value),
    delete: (key: string) => lru.delete(key),
    clear: () => lru.clear(),
  };
  const l1 = new Keyv<LocalAnswer>({ store: l1Store, namespace: undefined, useKeyPrefix: false, serialize: undefined, deserialize: undefined });

  function updateGauges() {
    metrics.cacheEntries.set({ layer: "l1" }, lru.size);
    metrics.cacheBytes.set({ layer: "l1" }, lru.calculatedSize);
  }

  // ---- viewers -----------------------------------------------------------------------------------------------
  /** Verified bearer token → its active viewer, so a hit needs no database round trip; dropped on User:<id>. */
  const viewers = new LRUCache<string, { viewer: Viewer; expires: number }>({ max: 10_000 });
  const tokensByUser = new Map<string, Set<string>>();

  // ---- stats, recipes, flights -------------------------------------------------------------------------------
  const stats = new Map<string, OperationCacheStats>();
  /** Recently stored answers and how often they were hit since: the candidates for warming. */
  const recipes = new LRUCache<string, { recipe: WarmRecipe; hits: number }>({ max: MAX_RECIPES });
  const flights = new Map<string, Promise<StoredAnswer | null>>();
  const keys = createRequestKeys();
  let warmer: ((recipe: WarmRecipe) => Promise<void>) | null = null;
  let warmTimer: NodeJS.Timeout | null = null;
  /** Set when the app shuts down: no more warming (its replays would reach a stopping server). */
  let stopping = false;

  /** Label-bound counters, looked up once (a hit should not hash label objects). */
  const requestCounters = new Map<string, { inc(): void }>();
  function count(operation: string, layerResults: [string, string][], outcome: Outcome) {
    for (const [layer, result] of layerResults) {
      const name = `${layer}:${result}`;
      let counter = requestCounters.get(name);
      if (!counter) requestCounters.set(name, (counter = metrics.cacheRequestsTotal.labels(layer, result)));
      counter.inc();
    }
    if (outcome === "hit") metrics.cacheHitsTotal.inc();
    else if (outcome === "miss") metrics.cacheMissesTotal.inc();
    const name = stats.has(operation) || stats.size < MAX_TRACKED_OPERATIONS ? operation : "(other)";
    let entry = stats.get(name);
    if (!entry) stats.set(name, (entry = { operation: name, hits: 0, misses: 0, bypasses: 0 }));
    if (outcome === "hit") entry.hits += 1;
    else if (outcome === "miss") entry.misses += 1;
    else entry.bypasses += 1;
  }

  function dropLocal(tagsToDrop: Iterable<string>) {
    for (const tag of tagsToDrop) {
      const entryKeys = index.get(tag);
      if (entryKeys) for (const key of [...entryKeys]) lru.delete(key);
      if (tag.startsWith("User:")) {
        const userId = tag.slice("User:".length);
        for (const token of tokensByUser.get(userId) ?? []) viewers.delete(token);
        tokensByUser.delete(userId);
      }
    }
    updateGauges();
  }

  function clearLocal() {
    lru.clear();
    index.clear();
    viewers.clear();
    tokensByUser.clear();
    updateGauges();
  }

  /** Callers waiting for this instance to have seen an invalidation number (see `whenSeen`). */
  let seqWaiters: { seq: number; resolve: () => void }[] = [];
  /** Callers waiting for the Redis tier to become degraded or healthy (see `whenDegraded`). */
  let healthWaiters: { degraded: boolean; resolve: () => void }[] = [];

  /** Applies an invalidation or flush, whether made here or announced by another instance. */
  function apply(message: CoherenceMessage) {
    // Within an epoch, numbers only grow; a flush takes Redis's number as it is (it may have restarted empty).
    seq = message.kind === "flush" ? message.seq : Math.max(seq, message.seq);
    if (seqWaiters.length) {
      seqWaiters = seqWaiters.filter((waiter) => (waiter.seq <= seq ? (waiter.resolve(), false) : true));
    }
    if (message.kind === "flush") {
      epoch += 1;
      marks.clear();
      clearLocal();
      scheduleWarm();
      return;
    }
    const at = Date.now();
    for (const tag of message.tags) marks.set(tag, { seq: message.seq, at });
    dropLocal(message.tags);
  }

  /** True when an answer read under `ticket` may be stale: a tag it read was invalidated after it started. */
  function superseded(answerTags: string[], ticket: Ticket): boolean {
    if (ticket.epoch !== epoch || Date.now() - ticket.at > MAX_WRITE_BACK_MS) return true;
    for (const tag of answerTags) {
      const mark = marks.get(tag);
      if (mark && mark.seq > ticket.seq) return true;
    }
    return false;
  }

  // Hot requests are saved in Redis now and then, so that instances started later (or after a crash) warm them.
  const saveTimer = setInterval(() => void saveRecipes(), 60_000).unref();

  const pruneTimer = setInterval(() => {
    const cutoff = Date.now() - MAX_WRITE_BACK_MS;
    for (const [tag, mark] of marks) if (mark.at < cutoff) marks.delete(tag);
  }, 10_000).unref();

  let tier: RedisTier | null = null;
  if (options.enabled && options.redisUrl) {
    tier = await createRedisTier({
      url: options.redisUrl,
      namespace: options.namespace,
      timeoutMs: options.redisTimeoutMs,
      maxTtlSeconds: maxTtl,
      markTtlMs: MAX_WRITE_BACK_MS * 2,
      logger,
      onMessage: apply,
      onHealth: (degraded) => {
        if (degraded) clearLocal();
        metrics.cacheRedisUp.set(degraded ? 0 : 1);
        settleHealthWaiters();
      },
    });
  }

  /** Saves the hot requests in Redis, so that a restarted instance warms them too. */
  async function saveRecipes(): Promise<void> {
    if (!tier || tier.degraded || recipes.size === 0) return;
    const hot = [...recipes.values()].sort((x, y) => y.hits - x.hits).slice(0, WARM_COUNT).map((r) => r.recipe);
    await tier.writeJson("warm-recipes", hot, maxTtl).catch(() => {});
  }

  function currentTicket(): Ticket {
    return { seq, epoch, gen: tier?.gen ?? 0, at: Date.now() };
  }

  /** Whether the cache bypasses itself now: Redis is down, or (without Redis) other processes' writes go unheard. */
  function isDegraded(): boolean {
    return (tier?.degraded ?? false) || !peersHeard;
  }

  /** Whether answers may be served and stored now. */
  function usable(): boolean {
    return options.enabled && !isDegraded();
  }

  function settleHealthWaiters() {
    const degraded = isDegraded();
    healthWaiters = healthWaiters.filter((waiter) => (waiter.degraded === degraded ? (waiter.resolve(), false) : true));
  }

  /** Stores into L1 unless superseded, re-checking after Keyv's asynchronous write. */
  async function storeLocal(key: string, answer: StoredAnswer, ttlSeconds: number, ticket: Ticket) {
    if (superseded(answer.tags, ticket)) return;
    for (const tag of answer.tags) {
      let entryKeys = index.get(tag);
      if (!entryKeys) index.set(tag, (entryKeys = new Set()));
      entryKeys.add(key);
    }
    await l1.set(key, { ...answer, bytes: Buffer.from(answer.body) }, ttlSeconds * 1000);
    // An invalidation may have run while Keyv awaited: it found no entry to drop, so drop it here.
    if (superseded(answer.tags, ticket) || !usable()) lru.delete(key);
    updateGauges();
  }

  /** The warming under way or last done (tests and tools await it). */
  let warming: Promise<number> = Promise.resolve(0);

  /** Warms shortly after a flush (several flush notices in a row warm once). */
  /** Settles the scheduled warming without running it (when warming stops). */
  let cancelWarm: (() => void) | null = null;

  function scheduleWarm() {
    if (!warmer || warmTimer || stopping) return;
    warming = new Promise((resolve) => {
      cancelWarm = () => resolve(0);
      warmTimer = setTimeout(() => {
        warmTimer = null;
        cancelWarm = null;
        resolve(warm());
      }, 250);
      warmTimer.unref();
    });
  }

  /** Replays the most-used requests so that their next asker hits. */
  async function warm(): Promise<number> {
    if (!warmer || !usable() || stopping) return 0;
    let hot = [...recipes.values()].sort((a, b) => b.hits - a.hits).slice(0, WARM_COUNT);
    if (hot.length === 0 && tier) hot = ((await tier.readJson<WarmRecipe[]>("warm-recipes").catch(() => undefined)) ?? []).map((recipe) => ({ recipe, hits: 0 }));
    let warmed = 0;
    for (const { recipe } of hot) {
      if (stopping) break;
      await warmer(recipe).then(
        () => (warmed += 1),
        (error) => logger.debug({ err: (error as Error).message }, "response cache: warming request failed"),
      );
    }
    if (warmed) logger.info({ warmed }, "response cache: warmed the most-used queries");
    return warmed;
  }

  return {
    enabled: options.enabled,

    /** The viewer for a bearer token: from the viewer cache when usable, else `resolve` (and remembered). */
    /** The remembered viewer of a token, synchronously (undefined: not remembered, ask `viewerFor`). */
    knownViewer(token: string | undefined): Viewer | null | undefined {
      if (!token) return null;
      if (!usable()) return undefined;
      const cached = viewers.get(token);
      return cached && cached.expires > Date.now() ? cached.viewer : undefined;
    },

    async viewerFor(token: string | undefined, resolve: () => Promise<Viewer | null>): Promise<Viewer | null> {
      if (!token || !usable()) return resolve();
      const cached = viewers.get(token);
      if (cached && cached.expires > Date.now()) return cached.viewer;
      const ticket = currentTicket();
      const viewer = await resolve();
      if (viewer && !superseded([`User:${viewer.id}`], ticket) && usable()) {
        // Remembered for at most a minute, and never past the token's own expiry (`resolve` verified it).
        const tokenExpires = (decodeJwt(token).exp ?? Infinity) * 1000;
        viewers.set(token, { viewer, expires: Math.min(Date.now() + 60_000, tokenExpires) });
        let tokens = tokensByUser.get(viewer.id);
        if (!tokens) tokensByUser.set(viewer.id, (tokens = new Set()));
        tokens.add(token);
      }
      return viewer;
    },

    /** The request's key, or why it is not cached. */
    plan(params: { query?: unknown; operationName?: unknown; variables?: unknown; extensions?: unknown }, viewer: Viewer | null) {
      return usable() ? keys.plan(params, viewer) : ({ kind: "bypass", reason: "cache unavailable" } as const);
    },

    /** Documents to know before their first request (see RequestKeys.know). */
    knowDocuments: keys.know,

    /** Where invalidation stands as a request starts. */
    ticket: currentTicket,

    /**
     * The L1 answer for a plan, synchronously: the hot path reads the very store Keyv writes (same entries, same
     * expiry rule), sparing a hit the promises of Keyv's asynchronous API — a tenth of a hit's cost on this path.
     */
    peek(plan: CacheablePlan): (StoredAnswer & { bytes: Buffer }) | undefined {
      const entry = lru.get(plan.key);
      if (!entry) return undefined;
      if (entry.expires !== undefined && entry.expires < Date.now()) {
        lru.delete(plan.key);
        return undefined;
      }
      count(plan.operationName, [["l1", "hit"]], "hit");
      const recipe = recipes.get(plan.key, { updateAgeOnGet: false });
      if (recipe) recipe.hits += 1;
      return entry.value;
    },

    /** The stored answer for a plan after `peek` found none: L1 through Keyv, then L2 (which then fills L1). */
    async lookup(plan: CacheablePlan): Promise<StoredAnswer | undefined> {
      const local = await l1.get(plan.key);
      if (local) {
        count(plan.operationName, [["l1", "hit"]], "hit");
        return local;
      }
      if (!tier) {
        return undefined;
      }
      const ticket = currentTicket();
      let shared: StoredAnswer | undefined;
      try {
        shared = await tier.get(plan.key);
      } catch {
        count(plan.operationName, [["l1", "miss"], ["l2", "bypass"]], "bypass");
        throw new CacheBypass();
      }
      if (!shared) return undefined;
      count(plan.operationName, [["l1", "miss"], ["l2", "hit"]], "hit");
      await storeLocal(plan.key, shared, ttlFor(shared.tags, ttls), ticket);
      return shared;
    },

    /** Counts a miss (after `lookup` found nothing) or a bypass. */
    countMiss(plan: CacheablePlan) {
      count(plan.operationName, tier ? [["l1", "miss"], ["l2", "miss"]] : [["l1", "miss"]], "miss");
    },
    countBypass(operation: string) {
      count(operation, [["all", "bypass"]], "bypass");
    },

    /**
     * Runs `execute` once for concurrent identical misses: the first caller executes, the others wait for its
     * answer (null when it was not cacheable: they then execute on their own).
     */
    async singleFlight(plan: CacheablePlan, execute: () => Promise<StoredAnswer | null>): Promise<{ answer: StoredAnswer | null; shared: boolean }> {
      const running = flights.get(plan.key);
      // A failed leader is not the followers' failure: they then execute on their own.
      if (running) return { answer: await running.catch(() => null), shared: true };
      const flight = execute().finally(() => flights.delete(plan.key));
      flights.set(plan.key, flight);
      return { answer: await flight, shared: false };
    },

    /** Stores a fresh answer (unless an invalidation superseded it) in L2 and L1; remembers it for warming. */
    async store(plan: CacheablePlan, answer: StoredAnswer, ticket: Ticket, recipe: WarmRecipe | null): Promise<boolean> {
      if (!usable() || superseded(answer.tags, ticket)) return false;
      const ttl = ttlFor(answer.tags, ttls);
      if (tier) {
        const stored = await tier.store(plan.key, answer, ttl, ticket.seq, ticket.gen).catch(() => false);
        if (!stored) return false;
      }
      await storeLocal(plan.key, answer, ttl, ticket);
      if (recipe) recipes.set(plan.key, { recipe, hits: recipes.get(plan.key)?.hits ?? 0 });
      return true;
    },

    /** The change feed's listener: invalidates what a committed write changed, here and on every instance. */
    async invalidate(change: Change): Promise<void> {
      if (!options.enabled) return;
      metrics.cacheInvalidationsTotal.inc({ source: change.source });
      if ("all" in change) {
        await this.flush();
        return;
      }
      if (!tier) {
        apply({ kind: "invalidate", seq: seq + 1, tags: change.tags });
        return;
      }
      if (tier.degraded) return; // nothing is served while degraded, and recovery flushes
      try {
        apply({ kind: "invalidate", seq: await tier.invalidate(change.tags), tags: change.tags });
      } catch {
        // The tier is degraded now (it bypasses everything and flushes when Redis returns).
      }
    },

    /** Drops every cached answer on every instance, then warms the most-used ones again. */
    async flush(): Promise<void> {
      if (!options.enabled) return;
      if (tier) {
        await tier.flush().catch(() => {});
      } else {
        apply({ kind: "flush", seq, gen: 0 });
      }
    },

    /**
     * Without Redis, tells the cache whether other processes' writes reach it (PostgreSQL's listening connection,
     * queue/job-events.ts). Lost: it drops everything and bypasses itself, since an invalidation may be missed at
     * any moment. Back: it flushes (answers stored meanwhile may have missed one) and serves again. With Redis,
     * Redis keeps the instances coherent and this does nothing.
     */
    hearPeers(heard: boolean): void {
      if (tier || heard === peersHeard) return;
      peersHeard = heard;
      if (heard) apply({ kind: "flush", seq, gen: 0 });
      else clearLocal();
      settleHealthWaiters();
    },

    /** Sets how warming replays a request (the HTTP layer owns execution). */
    setWarmer(replay: (recipe: WarmRecipe) => Promise<void>) {
      warmer = replay;
    },
    warm,
    /** Resolves with the number of requests replayed by the latest warming, once it is done. */
    whenWarmed(): Promise<number> {
      return warming;
    },

    saveRecipes,

    /** Per-operation hit rates of this instance, and the state of both layers. */
    stats() {
      return {
        enabled: options.enabled,
        redis: (tier ? (tier.degraded ? "DEGRADED" : "UP") : "NOT_CONFIGURED") as "UP" | "DEGRADED" | "NOT_CONFIGURED",
        entries: lru.size,
        bytes: lru.calculatedSize,
        operations: [...stats.values()].sort((a, b) => b.hits + b.misses - (a.hits + a.misses)),
      };
    },

    /** For tests: whether the cache currently bypasses itself (Redis down, or other processes unheard). */
    get degraded() {
      return isDegraded();
    },

    /** The newest invalidation number seen here. */
    get sequence() {
      return seq;
    },

    /** Resolves once this instance has applied invalidation number `n` (an event, for tests and tools). */
    whenSeen(n: number): Promise<void> {
      if (seq >= n) return Promise.resolve();
      return new Promise((resolve) => seqWaiters.push({ seq: n, resolve }));
    },

    /** Resolves once the cache bypasses itself (true) or serves again (false); see `degraded`. */
    whenDegraded(degraded: boolean): Promise<void> {
      if (isDegraded() === degraded) return Promise.resolve();
      return new Promise((resolve) => healthWaiters.push({ degraded, resolve }));
    },

    /** Stops warming and resolves once a warming under way has ended (before the HTTP server closes). */
    async stopWarming(): Promise<void> {
      stopping = true;
      if (warmTimer) clearTimeout(warmTimer);
      warmTimer = null;
      cancelWarm?.();
      await warming;
    },

    async close(): Promise<void> {
      stopping = true;
      if (warmTimer) clearTimeout(warmTimer);
      cancelWarm?.();
      clearInterval(pruneTimer);
      clearInterval(saveTimer);
      if (warmTimer) clearTimeout(warmTimer);
      await saveRecipes();
      await tier?.close();
    },
  };
}

/** Thrown by `lookup` when Redis failed: the request runs uncached. */
export class CacheBypass extends Error {
  constructor() {
    super("response cache bypassed");
  }
}

export type ResponseCache = Awaited<ReturnType<typeof createResponseCache>>;
