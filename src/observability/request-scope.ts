/**
 * Per-request bookkeeping that must follow a request through async code it does not own (Prisma, DataLoader,
 * pg): the request id, the number of SQL statements run and, for cacheable
 * answers, the cache tags of what was read. Carried by AsyncLocalStorage, entered once in the
 * HTTP handler.
 */
import { AsyncLocalStorage } from "node:async_hooks";

export interface RequestScope {
  requestId: string;
  sqlStatements: number;
  /** Time spent waiting for SQL statements to answer, in ms (summed: concurrent ones overlap). */
  sqlMs?: number;
  /** Response-cache tags of everything read so far, when the answer may be cached (cache/tags.ts). */
  cacheReads?: Set<string>;
}

const storage = new AsyncLocalStorage<RequestScope>();

/** Runs `fn` with `scope` as the current request scope. */
export function runInRequestScope<T>(scope: RequestScope, fn: () => T): T {
  return storage.run(scope, fn);
}

/** The scope of the request whose code is running now, if any. */
export function currentRequestScope(): RequestScope | undefined {
  return storage.getStore();
}
