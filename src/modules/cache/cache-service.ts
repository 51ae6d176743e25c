/** Administration of the response cache: its figures and a flush, for ADMINs only. */
import { requireViewer, type Viewer } from "../../auth/policy.js";
import type { ResponseCache } from "../../cache/response-cache.js";
import type { ChangeFeed } from "../../db/change-feed.js";
import { ForbiddenError } from "../../graphql/errors.js";

const rate = (hits: number, misses: number) => (hits + misses === 0 ? 0 : hits / (hits + misses));

export function createCacheService({ cache, changes }: { cache: ResponseCache; changes: ChangeFeed }) {
  function requireAdmin(viewer: Viewer | null) {
    if (requireViewer(viewer).role !== "ADMIN") throw new ForbiddenError("Only an ADMIN may see or flush the response cache");
  }

  return {
    stats(viewer: Viewer | null) {
      requireAdmin(viewer);
      const stats = cache.stats();
      const hits = stats.operations.reduce((sum, op) => sum + op.hits, 0);
      const misses = stats.operations.reduce((sum, op) => sum + op.misses, 0);
      return {
        ...stats,
        hitRate: rate(hits, misses),
        operations: stats.operations.map((op) => ({ ...op, hitRate: rate(op.hits, op.misses) })),
      };
    },

    async flush(viewer: Viewer | null): Promise<boolean> {
      requireAdmin(viewer);
      // As a write of everything: the change feed flushes this instance's cache and tells every other (app.ts).
      await changes.wrote(null, "flush");
      return true;
    },
  };
}

export type CacheService = ReturnType<typeof createCacheService>;
