/**
 * The change feed: every committed write announces the cache tags it affects (cache/tags.ts), and whoever keeps
 * derived copies of the data (the response cache) listens. Responsible for announcing a write only once it is
 * committed: writes inside `collect` (a transaction) are held until it resolves, writes outside any are
 * announced as soon as their statement returns (autocommit). A rolled-back transaction announces nothing.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { currentRequestScope } from "../observability/request-scope.js";

/** What changed: these tags, or everything (a write whose rows could not be told). */
export type Change = { tags: string[]; source: string } | { all: true; source: string };
export type ChangeListener = (change: Change) => Promise<void>;

interface Pending {
  tags: Set<string>;
  all: boolean;
}

/** The transaction being collected, if the running code is inside one (context only; feeds are per database). */
const pendingStorage = new AsyncLocalStorage<Pending>();

export function createChangeFeed() {
  const listeners: ChangeListener[] = [];

  async function announce(change: Change): Promise<void> {
    if ("tags" in change && change.tags.length === 0) return;
    await Promise.all(listeners.map((listener) => listener(change)));
  }

  /** Where a change came from, for metrics: a request's writes or background work. */
  function defaultSource(): string {
    return currentRequestScope() ? "mutation" : "background";
  }

  return {
    subscribe(listener: ChangeListener): void {
      listeners.push(listener);
    },

    /** A write happened (`null`: of rows it cannot name). Announced now, or when the enclosing transaction commits. */
    async wrote(tags: string[] | null, source = defaultSource()): Promise<void> {
      const pending = pendingStorage.getStore();
      if (pending) {
        if (tags) for (const tag of tags) pending.tags.add(tag);
        else pending.all = true;
        return;
      }
      await announce(tags ? { tags, source } : { all: true, source });
    },

    /** Runs `fn` (which commits or rolls back a transaction) and announces its writes once it has resolved. */
    async collect<T>(fn: () => Promise<T>, source = defaultSource()): Promise<T> {
      // Inside another collection, the outer one announces (its commit is the one that counts).
      if (pendingStorage.getStore()) return fn();
      const pending: Pending = { tags: new Set(), all: false };
      const result = await pendingStorage.run(pending, fn);
      await announce(pending.all ? { all: true, source } : { tags: [...pending.tags], source });
      return result;
    },
  };
}

export type ChangeFeed = ReturnType<typeof createChangeFeed>;
