/** GraphQL resolvers for signing in. */
import type { Resolvers } from "../../graphql/resolver-types.js";

export const authResolvers: Resolvers = {
  Mutation: {
    login: (_, { email, password }, ctx) => ctx.services.auth.login(email, password, ctx.clientAddress ?? null),
  },
};
