/** GraphQL resolvers for data sources. */
import type { Resolvers } from "../../graphql/resolver-types.js";

export const dataSourceResolvers: Resolvers = {
  Query: {
    dataSources: async (_, { projectId }, ctx) => {
      const visible = await ctx.services.dataSources.visibleProjectId(ctx.viewer, projectId);
      return visible ? ctx.loaders.dataSourcesByProject.load(visible) : [];
    },
  },
  Mutation: {
    createDataSource: (_, { input }, ctx) => ctx.services.dataSources.create(ctx.viewer, input),
    updateDataSource: (_, { id, input }, ctx) => ctx.services.dataSources.update(ctx.viewer, id, input),
  },
  DataSource: {
    columnMapping: (source) => source.columnMapping ?? {},
  },
};
