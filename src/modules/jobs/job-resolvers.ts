/** GraphQL resolvers for reconciliation jobs, their results, rule sets and the job-progress subscription. */
import type { Resolvers } from "../../graphql/resolver-types.js";
import type { SourceRecord } from "../../graphql/models.js";
import type { GraphQLContext } from "../../graphql/context.js";
import { parseRuleSet } from "../../reconcile/rules.js";

/** The breakdown of a group whose every comparator held exactly (similarity 1), from the pass's definition. */
function exactBreakdown(rules: unknown, pass: number) {
  const definition = parseRuleSet(rules).passes[pass - 1];
  return (definition?.comparators ?? []).map((comparator) => ({
    comparator: `${comparator.field}:${comparator.type}`,
    similarity: 1,
    weight: comparator.weight,
    passed: true,
    detail: "held exactly",
  }));
}

async function recordsOf(ids: string[], ctx: GraphQLContext): Promise<SourceRecord[]> {
  const rows = await ctx.loaders.recordById.loadMany(ids);
  return rows.filter((row): row is SourceRecord => row !== null && !(row instanceof Error));
}

export const jobResolvers: Resolvers = {
  Query: {
    reconciliationJob: (_, { id }, ctx) => ctx.services.jobs.get(ctx.viewer, id, ctx.loaders),
    reconciliationJobs: (_, args, ctx) => ctx.services.jobs.list(ctx.viewer, args, ctx.loaders),
    ruleSets: (_, { projectId }, ctx) => ctx.services.jobs.ruleSets(ctx.viewer, projectId),
    defaultRules: (_, __, ctx) => ctx.services.jobs.defaultRules(),
  },
  Mutation: {
    startReconciliation: (_, { input }, ctx) => ctx.services.jobs.start(ctx.viewer, input),
    cancelReconciliation: (_, { jobId, reason }, ctx) => ctx.services.jobs.cancel(ctx.viewer, jobId, reason),
    saveRuleSet: (_, { input }, ctx) => ctx.services.jobs.saveRuleSet(ctx.viewer, input),
  },
  Subscription: {
    jobProgress: {
      subscribe: (_, { jobId }, ctx) => ctx.services.jobs.follow(ctx.viewer, jobId, ctx.loaders),
      resolve: (job: unknown) => job as never,
    },
  },
  ReconciliationJob: {
    ruleSet: (job, _, ctx) => (job.ruleSetId ? ctx.loaders.ruleSetById.load(job.ruleSetId) : null),
    summary: (job) => (job.status === "COMPLETED" ? (job.summary as never) : null),
    matches: (job, args, ctx) => ctx.services.jobs.matches(job, args),
    unmatched: (job, args, ctx) => ctx.services.jobs.unmatched(job, args),
    discrepancies: (job, args, ctx) => ctx.services.jobs.discrepancies(job, args),
  },
  MatchGroup: {
    confidence: (group) => Number(group.confidence),
    leftRecords: (group, _, ctx) => recordsOf(group.leftRecordIds, ctx),
    rightRecords: (group, _, ctx) => recordsOf(group.rightRecordIds, ctx),
    duplicateOf: (group, _, ctx) => (group.duplicateOf ? ctx.loaders.recordById.load(group.duplicateOf) : null),
    scoreBreakdown: async (group, _, ctx) => {
      if (group.scoreBreakdown) return group.scoreBreakdown;
      // Not stored: every comparator of the pass held exactly. List them from the rules the job ran.
      const job = await ctx.loaders.jobById.load(group.jobId);
      return job ? exactBreakdown(job.rules, group.pass) : [];
    },
  },
  MatchGroupConnection: { totalCount: (connection) => connection.totalCount() },
  RuleSet: {
    createdBy: async (ruleSet, _, ctx) => (await ctx.loaders.userById.load(ruleSet.createdById))!,
  },
};
