/**
 * The baseline of the N+1 benchmark: project fields resolved the way the old platform did, one query per row for
 * each per-row field. Only bench/api.ts uses them, as `resolverOverrides` of a second app; recon never does.
 */
import type { DbClient } from "../src/db/database.js";
import type { Resolvers } from "../src/graphql/resolver-types.js";

/**
 * `getPrisma` returns the naive app's own Prisma client (known only once that app has started), so its queries
 * run through the app's counting pool and show up in `extensions.sqlStatements` like recon's do.
 */
export function createNaiveResolvers(getPrisma: () => DbClient): Resolvers {
  return {
    Project: {
      // findFirst, not findUnique: Prisma batches concurrent findUnique calls into one query, hiding the N+1.
      owner: async (project) => (await getPrisma().user.findFirst({ where: { id: project.ownerId } }))!,
      jobCount: (project) => getPrisma().reconciliationJob.count({ where: { projectId: project.id } }),
      dataSourceCount: (project) => getPrisma().dataSource.count({ where: { projectId: project.id } }),
    },
  };
}
