/** GraphQL resolvers for users: translate arguments, call the service or a loader, nothing more. */
import type { Resolvers } from "../../graphql/resolver-types.js";
import { selects } from "../../graphql/pagination.js";

export const userResolvers: Resolvers = {
  Query: {
    me: (_, __, ctx) => ctx.services.users.me(ctx.viewer),
    users: (_, args, ctx, info) => ctx.services.users.list(ctx.viewer, args, selects(info, "totalCount")),
    user: (_, { id }, ctx) => ctx.services.users.get(ctx.viewer, id),
  },
  Mutation: {
    createUser: (_, { input }, ctx) => ctx.services.users.create(ctx.viewer, input),
    updateUser: (_, { id, input }, ctx) => ctx.services.users.update(ctx.viewer, id, input),
    deactivateUser: (_, { id }, ctx) => ctx.services.users.deactivate(ctx.viewer, id),
  },
  User: {
    projectCount: (user, _, ctx) => ctx.loaders.projectCountByUser.load(user.id),
    projects: (user, args, ctx) => ctx.services.projects.listForUser(ctx.viewer, user.id, args),
  },
  UserConnection: { totalCount: (connection) => connection.totalCount() },
};
