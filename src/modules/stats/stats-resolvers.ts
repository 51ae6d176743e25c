/**
 * GraphQL resolvers for a project's reconciliation statistics (`ProjectStats`' job-based fields, `Project.summary`)
 * and what they list. Figures come from the request's loaders (one statement per batch of projects) and the pure
 * functions of project-stats.ts; the project was authorized where `ProjectStats` was reached.
 */
import { BadUserInputError } from "../../graphql/errors.js";
import type { Resolvers } from "../../graphql/resolver-types.js";
import type { AgeBucketCount } from "./stats-repository.js";
import { combinedAutoMatchRate, combineOutcomes, ruleHits, summaryOf } from "./project-stats.js";

/** Open exceptions in all age buckets. */
const openExceptions = (buckets: readonly AgeBucketCount[]) => buckets.reduce((sum, bucket) => sum + bucket.groups, 0);

export const statsResolvers: Resolvers = {
  Project: {
    summary: (project) => ({ projectId: project.id }),
  },
  ProjectStats: {
    pairs: ({ projectId }, _, ctx) => ctx.loaders.latestJobsPerPair.load(projectId),
    outcomes: async ({ projectId }, _, ctx) => combineOutcomes(await ctx.loaders.latestJobsPerPair.load(projectId)),
    autoMatchRate: async ({ projectId }, _, ctx) => combinedAutoMatchRate(await ctx.loaders.latestJobsPerPair.load(projectId)),
    autoMatchRateHistory: ({ projectId }, { last }, ctx) => {
      const limit = last ?? 30;
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new BadUserInputError("last", "must be between 1 and 100");
      return ctx.loaders.rateHistory(limit).load(projectId);
    },
    ruleHits: async ({ projectId }, _, ctx) => ruleHits(await ctx.loaders.latestJobsPerPair.load(projectId)),
    exceptionsByAge: ({ projectId }, _, ctx) => ctx.loaders.exceptionAges.load(projectId),
    openExceptions: async ({ projectId }, _, ctx) => openExceptions(await ctx.loaders.exceptionAges.load(projectId)),
  },
  SourcePairStats: {
    leftSource: async (job, _, ctx) => (await ctx.loaders.dataSourceById.load(job.leftSourceId))!,
    rightSource: async (job, _, ctx) => (await ctx.loaders.dataSourceById.load(job.rightSourceId))!,
    job: (job) => job,
    autoMatchRate: (job) => summaryOf(job).autoMatchRate,
    outcomes: (job) => summaryOf(job).outcomes,
    passes: (job) => summaryOf(job).passes,
    openExceptions: (job, _, ctx) => ctx.loaders.openExceptionsByJob.load(job.id),
  },
  AutoMatchRatePoint: {
    job: async (point, _, ctx) => (await ctx.loaders.jobById.load(point.jobId))!,
  },
  ProjectSummary: {
    latestCompletedJob: async ({ projectId }, _, ctx) => (await ctx.loaders.latestJobsPerPair.load(projectId))[0] ?? null,
    latestAutoMatchRate: async ({ projectId }, _, ctx) => {
      const [latest] = await ctx.loaders.latestJobsPerPair.load(projectId);
      return latest ? summaryOf(latest).autoMatchRate : null;
    },
    openExceptions: async ({ projectId }, _, ctx) => openExceptions(await ctx.loaders.exceptionAges.load(projectId)),
  },
};
