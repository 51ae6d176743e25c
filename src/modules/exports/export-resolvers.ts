/** GraphQL resolvers for exports: they hand out signed download links (the download itself is HTTP). */
import type { Resolvers } from "../../graphql/resolver-types.js";

export const exportResolvers: Resolvers = {
  Query: {
    exportJobResults: (_, args, ctx) => {
      // Every answer is a new link with its own expiry: a stored one would hand out links about to expire.
      if (ctx.cacheNote) ctx.cacheNote.noStore = true;
      return ctx.services.exports.jobResultsLink(ctx.viewer, args);
    },
  },
};
