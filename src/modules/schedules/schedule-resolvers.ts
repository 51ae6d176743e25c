/** GraphQL resolvers for reconciliation schedules (automatic runs): the project's schedule, setting and clearing it. */
import type { Resolvers } from "../../graphql/resolver-types.js";

export const scheduleResolvers: Resolvers = {
  Mutation: {
    setReconciliationSchedule: (_, { projectId, input }, ctx) => ctx.services.schedules.set(ctx.viewer, projectId, input),
    clearReconciliationSchedule: (_, { projectId }, ctx) => ctx.services.schedules.clear(ctx.viewer, projectId),
  },
  Project: {
    reconciliationSchedule: (project, _, ctx) => ctx.loaders.scheduleByProject.load(project.id),
  },
  ReconciliationSchedule: {
    leftSource: async (schedule, _, ctx) => (await ctx.loaders.dataSourceById.load(schedule.leftSourceId))!,
    rightSource: async (schedule, _, ctx) => (await ctx.loaders.dataSourceById.load(schedule.rightSourceId))!,
    ruleSet: (schedule, _, ctx) => (schedule.ruleSetId ? ctx.loaders.ruleSetById.load(schedule.ruleSetId) : null),
    // Jobs are read through the project already authorized here; a deleted job reads as null.
    lastJob: (schedule, _, ctx) => (schedule.lastJobId ? ctx.loaders.jobById.load(schedule.lastJobId) : null),
  },
};
