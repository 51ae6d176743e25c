/** GraphQL resolvers for response-cache administration. */
import type { Resolvers } from "../../graphql/resolver-types.js";

export const cacheResolvers: Resolvers = {
  Query: {
    cacheStats: (_, __, ctx) => {
      // Figures change with every request: this answer is never stored.
      if (ctx.cacheNote) ctx.cacheNote.noStore = true;
      return ctx.services.cache.stats(ctx.viewer);
    },
  },
  Mutation: {
    flushResponseCache: (_, __, ctx) => ctx.services.cache.flush(ctx.viewer),
  },
};
