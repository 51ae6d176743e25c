/**
 * The connection to PostgreSQL: one pg pool shared by Prisma (through its pg driver adapter) and by the raw SQL
 * the repositories run. Responsible for counting every SQL statement, globally (a metric) and per request
 * (the request scope), which is how "no N+1" is measured rather than promised.
 */
import { PrismaPg } from "@prisma/adapter-pg";
import { AsyncResource } from "node:async_hooks";
import pg from "pg";
import { createSqlReader, type SqlReader } from "./sql.js";
import { createChangeFeed, type ChangeFeed } from "./change-feed.js";
import { DatabaseUnavailableError, isNeverSent, transientConnectReason } from "./errors.js";
import { WRITE_OPERATIONS, writeTags } from "../cache/write-tags.js";
import { PrismaClient } from "../generated/prisma/client.js";
import type { Metrics } from "../observability/metrics.js";
import { currentRequestScope } from "../observability/request-scope.js";

function createPrismaClient(pool: pg.Pool, changes: ChangeFeed) {
  // Password hashes are never read unless a query asks for them by name (sign-in).
  return new PrismaClient({ adapter: new PrismaPg(pool), omit: { user: { passwordHash: true } } }).$extends({
    name: "change-feed",
    // Every ORM write announces the cache tags of the rows it wrote (cache/write-tags.ts), once committed.
    query: {
      $allModels: {
        async $allOperations({ model, operation, args, query }) {
          const result = await query(args);
          if (WRITE_OPERATIONS.has(operation)) await changes.wrote(writeTags(model, operation, args, result));
          return result;
        },
      },
    },
  });
}

/** The Prisma client as configured here (its types know password hashes are omitted). */
export type DbClient = ReturnType<typeof createPrismaClient>;
/** The client inside an interactive transaction. */
export type DbTransaction = Omit<DbClient, "$connect" | "$disconnect" | "$on" | "$transaction" | "$extends">;
/** Either: repository methods that write take one, defaulting to the client. */
export type Db = DbClient | DbTransaction;

export interface Database {
  pool: pg.Pool;
  prisma: DbClient;
  /** Committed writes and the cache tags they affect. */
  changes: ChangeFeed;
  /**
   * An interactive Prisma transaction whose writes are announced on `changes` after it commits. Services use
   * this, never `prisma.$transaction` directly (whose writes would be announced before the commit).
   */
  transaction<T>(fn: (tx: DbTransaction) => Promise<T>, options?: { timeout?: number }): Promise<T>;
  /** Runs raw SQL (built with `sql` from db/sql.ts) on the pool. */
  read: SqlReader;
  close(): Promise<void>;
}

// Calendar dates (DATE columns) stay 'YYYY-MM-DD' strings: pg would otherwise make them local-time Dates.
const DATE_OID = 1082;
pg.types.setTypeParser(DATE_OID, (value: string) => value);

/** Waits before the 1st, 2nd and 3rd retry of a connection that could not be had (then: SERVICE_UNAVAILABLE). */
export const CONNECT_RETRY_DELAYS_MS = [10, 20, 40];

type ConnectCallback = (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: unknown) => void) => void;

/**
 * The pool recon uses. Responsible for two things pg-pool does not do:
 * - waiting callers resume in their own async context (pg-pool hands a freed connection to a queued caller from
 *   inside the releasing caller's callback, so a statement that waited would be counted against the wrong request);
 * - a connection that cannot be had — acquire timeout, refused or dropped connection — is retried with backoff
 *   (10, 20, 40 ms), then fails with DatabaseUnavailableError (SERVICE_UNAVAILABLE to clients).
 */
class ResilientPool extends pg.Pool {
  onRetry: (reason: string) => void = () => {};

  private async connectWithRetry(): Promise<pg.PoolClient> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await super.connect();
      } catch (error) {
        const reason = transientConnectReason(error);
        if (!reason) throw error;
        if (attempt >= CONNECT_RETRY_DELAYS_MS.length) throw new DatabaseUnavailableError(reason, error);
        this.onRetry(reason);
        await new Promise((resolve) => setTimeout(resolve, CONNECT_RETRY_DELAYS_MS[attempt]));
      }
    }
  }

  /**
   * A statement handed a connection that was cut while idle (its error event and the hand-over raced) fails
   * without reaching PostgreSQL: it is sent again on a fresh connection, once per connection the pool held.
   * Statements that reached PostgreSQL are never resent here (a write's outcome would be unknown).
   */
  override query(...args: unknown[]): never {
    const send = () => (super.query as (...a: unknown[]) => Promise<unknown>).apply(this, args);
    if (typeof args[args.length - 1] === "function" || typeof (args[0] as { submit?: unknown })?.submit === "function") return send() as never;
    const attempt = async (retriesLeft: number): Promise<unknown> => {
      try {
        return await send();
      } catch (error) {
        if (retriesLeft > 0 && isNeverSent(error)) return attempt(retriesLeft - 1);
        throw error;
      }
    };
    return attempt(this.options.max ?? 10) as never;
  }

  override connect(callback?: ConnectCallback): never {
    const connecting = this.connectWithRetry();
    if (!callback) return connecting as never;
    const resume = AsyncResource.bind(callback);
    connecting.then(
      (client) => resume(undefined, client, (release) => client.release(release as Error | boolean | undefined)),
      (error: Error) => resume(error, undefined, () => {}),
    );
    return undefined as never;
  }
}

/** One SQL statement as sent to PostgreSQL, with how long it took to answer. */
export interface StatementEvent {
  text: string;
  values: unknown[];
  durationMs: number;
  failed: boolean;
}

export interface DatabaseOptions {
  url: string;
  poolSize: number;
  /** Longest wait for a free pooled connection before a retry (and, after three, SERVICE_UNAVAILABLE). */
  acquireTimeoutMs?: number;
  /** PostgreSQL cancels any statement running longer (0: never); long jobs lift it for their transaction. */
  statementTimeoutMs?: number;
  metrics: Pick<Metrics, "sqlStatementsTotal"> & Partial<Pick<Metrics, "dbConnectRetriesTotal" | "dbPoolConnections">>;
  /** Called (at most every 10 s) while more than 80% of the pool's connections are in use. */
  onPoolPressure?: (inUse: number, size: number) => void;
  /** Called after each statement completes (the app logs slow ones). */
  onStatement?: (statement: StatementEvent) => void;
  /** Called when a pooled connection is cut (a PostgreSQL restart or failover, a network fault). */
  onConnectionLost?: (error: Error) => void;
}

type Callback = (error: Error | null, result?: unknown) => void;

/** Normalises pg's query() arguments: (text, values?, cb?) or ({ text, values }, cb?). */
function describe(args: unknown[]): { text: string; values: unknown[] } | null {
  const [first, second] = args;
  if (typeof first === "string") return { text: first, values: Array.isArray(second) ? second : [] };
  if (first && typeof first === "object" && typeof (first as { text?: unknown }).text === "string") {
    const config = first as { text: string; values?: unknown[] };
    // A submittable (e.g. a COPY stream) has no simple completion to time.
    if (typeof (first as { submit?: unknown }).submit === "function") return null;
    return { text: config.text, values: Array.isArray(second) ? second : (config.values ?? []) };
  }
  return null;
}

export function createDatabase({ url, poolSize, acquireTimeoutMs = 5000, statementTimeoutMs = 0, metrics, onStatement, onPoolPressure, onConnectionLost }: DatabaseOptions): Database {
  /** A pg client that counts each statement it sends, and reports it with its duration when it completes. */
  /** Connections not yet closed, so `close()` can wait until every socket is really gone. */
  const openClients = new Set<pg.Client>();

  class CountingClient extends pg.Client {
    constructor(config?: string | pg.ClientConfig) {
      super(config);
      openClients.add(this);
      this.once("end", () => openClients.delete(this));
      // pg-pool listens for errors only while a connection is idle. One cut while checked out between two
      // statements (a transaction's application code, a job's advisory-lock session) would otherwise be an
      // unhandled 'error' event and end the process; here it is reported, and the connection's next statement
      // fails, its holder releases it with the error, and the pool discards it.
      this.on("error", (error) => onConnectionLost?.(error));
    }

    // pg's query() has many overloads; counting does not care which one is used.
    override query(...args: unknown[]): never {
      metrics.sqlStatementsTotal.inc();
      const scope = currentRequestScope();
      if (scope) scope.sqlStatements += 1;
      const send = () => (super.query as (...a: unknown[]) => never)(...args);
      const statement = onStatement && describe(args);
      if (!statement) return send();
      const started = performance.now();
      const report = (failed: boolean) => {
        const durationMs = performance.now() - started;
        if (scope) scope.sqlMs = (scope.sqlMs ?? 0) + durationMs;
        onStatement!({ ...statement, durationMs, failed });
      };
      const last = args.at(-1);
      if (typeof last === "function") {
        args[args.length - 1] = ((error, result) => {
          report(Boolean(error));
          (last as Callback)(error, result);
        }) as Callback;
        return send();
      }
      return (send() as unknown as Promise<unknown>).then(
        (result) => (report(false), result),
        (error) => {
          report(true);
          throw error;
        },
      ) as never;
    }
  }

  const pool = new ResilientPool({
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: acquireTimeoutMs,
    ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {}),
    Client: CountingClient,
  });
  pool.onRetry = (reason) => metrics.dbConnectRetriesTotal?.inc({ reason });
  // An idle connection cut: pg-pool removes it and emits this (unhandled, it would end the process).
  pool.on("error", (error) => onConnectionLost?.(error));
  // Pool use as gauges, and a warning while it runs above 80% (the old platform's threshold).
  let lastPressureWarning = 0;
  const observePool = () => {
    const inUse = pool.totalCount - pool.idleCount;
    metrics.dbPoolConnections?.set({ state: "in_use" }, inUse);
    metrics.dbPoolConnections?.set({ state: "idle" }, pool.idleCount);
    metrics.dbPoolConnections?.set({ state: "waiting" }, pool.waitingCount);
    if (inUse > 0.8 * poolSize && Date.now() - lastPressureWarning > 10_000) {
      lastPressureWarning = Date.now();
      onPoolPressure?.(inUse, poolSize);
    }
  };
  pool.on("acquire", observePool);
  pool.on("release", observePool);
  pool.on("remove", observePool);
  const changes = createChangeFeed();
  const prisma = createPrismaClient(pool, changes);
  return {
    pool,
    prisma,
    changes,
    transaction: (fn, options) => changes.collect(() => prisma.$transaction(fn, options)),
    read: createSqlReader(pool),
    async close() {
      await prisma.$disconnect();
      // pool.end() resolves once connections are asked to close, not once they are closed.
      const closed = [...openClients].map((client) => new Promise((resolve) => client.once("end", resolve)));
      await pool.end();
      await Promise.all(closed);
    },
  };
}
