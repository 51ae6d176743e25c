/** GraphQL resolvers for exceptions (their lifecycle, comments, labels) and manual work on match groups. */
import type { Resolvers } from "../../graphql/resolver-types.js";
import type { SourceRecord } from "../../graphql/models.js";
import type { GraphQLContext } from "../../graphql/context.js";

async function recordsOf(ids: string[], ctx: GraphQLContext): Promise<SourceRecord[]> {
  const rows = await ctx.loaders.recordById.loadMany(ids);
  return rows.filter((row): row is SourceRecord => row !== null && !(row instanceof Error));
}

export const exceptionResolvers: Resolvers = {
  Query: {
    exceptions: (_, args, ctx) => ctx.services.exceptions.list(ctx.viewer, args),
    exception: (_, { id }, ctx) => ctx.services.exceptions.get(ctx.viewer, id, ctx.loaders),
    matchDifference: (_, args, ctx) => ctx.services.matchWork.difference(ctx.viewer, args.jobId, args.leftRecordIds, args.rightRecordIds),
  },
  Mutation: {
    assignExceptions: (_, { ids, assigneeId, reason }, ctx) => ctx.services.exceptions.assign(ctx.viewer, ids, assigneeId, reason),
    markExceptionPending: (_, { id, reason }, ctx) => ctx.services.exceptions.markPending(ctx.viewer, id, reason),
    resolveExceptions: (_, { ids, reason }, ctx) => ctx.services.exceptions.resolve(ctx.viewer, ids, reason),
    reopenException: (_, { id, reason }, ctx) => ctx.services.exceptions.reopen(ctx.viewer, id, reason),
    writeOffException: (_, { id, input }, ctx) => ctx.services.exceptions.writeOff(ctx.viewer, id, input),
    setExceptionLabels: (_, { id, labels }, ctx) => ctx.services.exceptions.setLabels(ctx.viewer, id, labels),
    commentOnException: (_, { id, body }, ctx) => ctx.services.exceptions.comment(ctx.viewer, id, body),
    confirmMatch: (_, { groupId, reason }, ctx) => ctx.services.matchWork.confirm(ctx.viewer, groupId, reason),
    rejectMatch: (_, { groupId, reason }, ctx) => ctx.services.matchWork.reject(ctx.viewer, groupId, reason),
    unmatch: (_, { groupId, reason }, ctx) => ctx.services.matchWork.unmatch(ctx.viewer, groupId, reason),
    manualMatch: (_, args, ctx) => ctx.services.matchWork.manualMatch(ctx.viewer, args),
    forceMatch: (_, args, ctx) => ctx.services.matchWork.forceMatch(ctx.viewer, args),
  },
  Exception: {
    job: async (exception, _, ctx) => (await ctx.loaders.jobById.load(exception.jobId))!,
    overdue: (exception) => exception.status !== "RESOLVED" && exception.slaDueAt.getTime() < Date.now(),
    assignee: (exception, _, ctx) => (exception.assigneeId ? ctx.loaders.userById.load(exception.assigneeId) : null),
    resolvedBy: (exception, _, ctx) => (exception.resolvedById ? ctx.loaders.userById.load(exception.resolvedById) : null),
    resolutionGroup: (exception, _, ctx) => (exception.resolutionGroupId ? ctx.loaders.matchGroupById.load(exception.resolutionGroupId) : null),
    group: (exception, _, ctx) => ctx.loaders.matchGroupById.load(exception.id),
    leftRecords: (exception, _, ctx) => recordsOf(exception.leftRecordIds, ctx),
    rightRecords: (exception, _, ctx) => recordsOf(exception.rightRecordIds, ctx),
    comments: (exception, _, ctx) => ctx.loaders.commentsByException.load(exception.id),
  },
  ExceptionComment: {
    author: async (comment, _, ctx) => (await ctx.loaders.userById.load(comment.authorId))!,
  },
  ExceptionConnection: { totalCount: (connection) => connection.totalCount() },
};
