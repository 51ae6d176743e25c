/** GraphQL resolvers for the audit log. */
import type { Resolvers } from "../../graphql/resolver-types.js";
import { selects } from "../../graphql/pagination.js";

export const auditResolvers: Resolvers = {
  Query: {
    auditLog: (_, args, ctx, info) => ctx.services.audit.list(ctx.viewer, args, selects(info, "totalCount")),
  },
  AuditEvent: {
    actor: (event, _, ctx) => (event.userId ? ctx.loaders.userById.load(event.userId) : null),
  },
  AuditEventConnection: { totalCount: (connection) => connection.totalCount() },
};
