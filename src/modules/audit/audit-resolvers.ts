/** GraphQL resolvers for the audit log. */
import type { Resolvers } from "../../graphql/resolver-types.js";
import { selects } from "../../graphql/pagination.js";

export const auditResolvers: Resolvers = {
  Query: {
    auditLog: (_, args, ctx, info) => ctx.services.audit.list(ctx.viewer, args, selects(info, "totalCount")),
    verifyAuditChain: (_, __, ctx) => {
      // Tampering happens outside the application, which announces nothing: a stored answer could hide it.
      if (ctx.cacheNote) ctx.cacheNote.noStore = true;
      return ctx.services.audit.verify(ctx.viewer);
    },
  },
  AuditEvent: {
    actor: (event, _, ctx) => (event.userId ? ctx.loaders.userById.load(event.userId) : null),
    actorId: (event) => event.userId,
    sequence: (event) => String(event.seq),
  },
  AuditEventConnection: { totalCount: (connection) => connection.totalCount() },
};
