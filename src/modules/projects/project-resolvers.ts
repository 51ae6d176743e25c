/**
 * GraphQL resolvers for projects. Per-row fields (owner, counts, sources, jobs, members, stats) go through the
 * request's DataLoaders, so a page of projects costs a fixed number of queries whatever its size.
 */
import type { Resolvers } from "../../graphql/resolver-types.js";
import { pageRequest, selects, toConnection } from "../../graphql/pagination.js";

export const projectResolvers: Resolvers = {
  Query: {
    projects: (_, args, ctx, info) => ctx.services.projects.list(ctx.viewer, args, selects(info, "totalCount")),
    project: (_, { id }, ctx) => ctx.services.projects.get(ctx.viewer, id),
    searchProjects: (_, { query, first }, ctx) => ctx.services.projects.search(ctx.viewer, query, first),
    projectStats: async (_, { projectId }, ctx) => {
      const project = await ctx.services.projects.get(ctx.viewer, projectId);
      return project && { projectId: project.id };
    },
  },
  Mutation: {
    createProject: (_, { input }, ctx) => ctx.services.projects.create(ctx.viewer, input),
    updateProject: (_, { id, input }, ctx) => ctx.services.projects.update(ctx.viewer, id, input),
    archiveProject: (_, { id }, ctx) => ctx.services.projects.archive(ctx.viewer, id),
    deleteProject: (_, { id }, ctx) => ctx.services.projects.delete(ctx.viewer, id),
    addProjectMember: (_, { projectId, userId, role }, ctx) =>
      ctx.services.projects.addMember(ctx.viewer, projectId, userId, role),
    removeProjectMember: (_, { projectId, userId }, ctx) =>
      ctx.services.projects.removeMember(ctx.viewer, projectId, userId),
  },
  Project: {
    settings: (project) => project.settings ?? {},
    owner: async (project, _, ctx) => (await ctx.loaders.userById.load(project.ownerId))!,
    jobCount: async (project, _, ctx) => (await ctx.loaders.projectCounts.load(project.id)).jobCount,
    dataSourceCount: async (project, _, ctx) => (await ctx.loaders.projectCounts.load(project.id)).dataSourceCount,
    dataSources: (project, _, ctx) => ctx.loaders.dataSourcesByProject.load(project.id),
    jobs: async (project, args, ctx) => {
      const page = pageRequest(args);
      const status = args.status ?? null;
      const rows = await ctx.loaders.jobPage(page, status).load(project.id);
      return toConnection(rows, page, () => ctx.loaders.jobCount(status).load(project.id));
    },
    latestJob: (project, _, ctx) => ctx.loaders.latestJobByProject.load(project.id),
    members: (project, _, ctx) => ctx.loaders.membersByProject.load(project.id),
    stats: (project) => ({ projectId: project.id }),
    viewerRole: async (project, _, ctx) =>
      ctx.services.projects.viewerRole(ctx.viewer!, project, await ctx.loaders.viewerMemberRole.load(project.id)),
  },
  ProjectMember: {
    user: async (member, _, ctx) => (await ctx.loaders.userById.load(member.userId))!,
    addedAt: (member) => member.createdAt,
  },
  ProjectStats: {
    recordCount: async ({ projectId }, _, ctx) => (await ctx.loaders.recordStatusCounts.load(projectId)).total,
    recordsBySource: async ({ projectId }, _, ctx) =>
      (await ctx.loaders.dataSourcesByProject.load(projectId)).map((dataSource) => ({
        dataSource,
        recordCount: dataSource.recordCount,
      })),
    matchedRecords: async ({ projectId }, _, ctx) => (await ctx.loaders.recordStatusCounts.load(projectId)).matched,
    suggestedRecords: async ({ projectId }, _, ctx) => (await ctx.loaders.recordStatusCounts.load(projectId)).suggested,
    unmatchedRecords: async ({ projectId }, _, ctx) => (await ctx.loaders.recordStatusCounts.load(projectId)).unmatched,
    matchRate: async ({ projectId }, _, ctx) => {
      const counts = await ctx.loaders.recordStatusCounts.load(projectId);
      return counts.total === 0 ? 0 : counts.matched / counts.total;
    },
    lastJob: ({ projectId }, _, ctx) => ctx.loaders.latestJobByProject.load(projectId),
  },
  ProjectConnection: { totalCount: (connection) => connection.totalCount() },
  ReconciliationJobConnection: { totalCount: (connection) => connection.totalCount() },
  ReconciliationJob: {
    leftSource: async (job, _, ctx) => (await ctx.loaders.dataSourceById.load(job.leftSourceId))!,
    rightSource: async (job, _, ctx) => (await ctx.loaders.dataSourceById.load(job.rightSourceId))!,
    createdBy: async (job, _, ctx) => (await ctx.loaders.userById.load(job.createdById))!,
  },
};
