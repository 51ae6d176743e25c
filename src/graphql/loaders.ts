/**
 * The per-request DataLoaders: one per access path, created for each request (never shared between viewers,
 * since several of them filter by what the viewer may see). Each batch runs one query.
 */
import type DataLoader from "dataloader";
import type { Viewer } from "../auth/policy.js";
import type { ProjectRole } from "../generated/prisma/enums.js";
import type { Repositories } from "../container.js";
import type { PageRequest } from "./pagination.js";
import type { DataSource, Exception, ExceptionComment, MatchGroup, Project, ProjectMember, ReconciliationJob, RuleSet, SourceRecord, User } from "./models.js";
import { batchLoader, byId, groupBy, type LoaderMetrics } from "./batch-loader.js";
import type { ProjectCounts, RecordStatusCounts } from "../modules/projects/project-repository.js";
import { projectScope } from "../modules/scopes.js";
import type { JobStatus } from "../generated/prisma/enums.js";
import type { AgeBucketCount, RatePoint } from "../modules/stats/stats-repository.js";
import type { ReconciliationSchedule } from "../modules/schedules/schedule-repository.js";

export function createLoaders(repos: Repositories, viewer: Viewer | null, metrics: LoaderMetrics) {
  const scope = viewer ? projectScope(viewer) : null;
  const none = <T>() => null as T | null;

  /** Job pages depend on the page arguments, so there is one loader per distinct (first, after, status). */
  const jobPageLoaders = new Map<string, DataLoader<string, ReconciliationJob[]>>();
  const jobCountLoaders = new Map<string, DataLoader<string, number>>();
  const rateHistoryLoaders = new Map<number, DataLoader<string, RatePoint[]>>();

  return {
    userById: batchLoader<User | null>("userById", metrics, async (ids) => byId(await repos.users.findByIds(ids)), none),

    /** Projects by id, only those the viewer may see (others load as null). */
    projectById: batchLoader<Project | null>(
      "projectById",
      metrics,
      async (ids) => (scope ? byId(await repos.projects.findByIds(scope, ids)) : new Map()),
      none,
    ),

    projectCounts: batchLoader<ProjectCounts>("projectCounts", metrics, (ids) => repos.projects.countsByProject(ids), () => ({
      jobCount: 0,
      dataSourceCount: 0,
    })),

    /** The viewer's member role in each project (null when not a member). */
    viewerMemberRole: batchLoader<ProjectRole | null>(
      "viewerMemberRole",
      metrics,
      async (ids) => (viewer ? repos.projects.memberRoles(viewer.id, ids) : new Map()),
      none,
    ),

    membersByProject: batchLoader<ProjectMember[]>(
      "membersByProject",
      metrics,
      async (ids) => groupBy(ids, await repos.projects.membersByProject(ids), (m) => m.projectId),
      () => [],
    ),

    recordStatusCounts: batchLoader<RecordStatusCounts>(
      "recordStatusCounts",
      metrics,
      (ids) => repos.projects.recordStatusCounts(ids),
      () => ({ total: 0, matched: 0, suggested: 0, unmatched: 0 }),
    ),

    /** Projects each user owns or belongs to, counted among those the viewer may see. */
    projectCountByUser: batchLoader<number>(
      "projectCountByUser",
      metrics,
      async (ids) => (scope ? repos.projects.countsByUser(scope, ids) : new Map()),
      () => 0,
    ),

    dataSourcesByProject: batchLoader<DataSource[]>(
      "dataSourcesByProject",
      metrics,
      async (ids) => groupBy(ids, await repos.dataSources.listByProjects(ids), (d) => d.projectId),
      () => [],
    ),

    dataSourceById: batchLoader<DataSource | null>(
      "dataSourceById",
      metrics,
      async (ids) => byId(await repos.dataSources.findByIds(ids)),
      none,
    ),

    /** Jobs by id, unfiltered: the job service checks the job's project with `projectById` before showing one. */
    jobById: batchLoader<ReconciliationJob | null>("jobById", metrics, async (ids) => byId(await repos.jobs.findByIds(ids)), none),

    /** Records by id, unfiltered: reached only through the match groups of an authorized job. */
    recordById: batchLoader<SourceRecord | null>(
      "recordById",
      metrics,
      async (ids) => byId(await repos.jobs.recordsByIds(ids)),
      none,
    ),

    ruleSetById: batchLoader<RuleSet | null>(
      "ruleSetById",
      metrics,
      async (ids) => byId(await repos.jobs.findRuleSets(ids)),
      none,
    ),

    /** Exceptions by id, unfiltered: the exception service checks each one's project before showing it. */
    exceptionById: batchLoader<Exception | null>("exceptionById", metrics, async (ids) => byId(await repos.exceptions.findByIds(ids)), none),

    /** Comments of each exception, oldest first (reached only through an authorized exception). */
    commentsByException: batchLoader<ExceptionComment[]>(
      "commentsByException",
      metrics,
      async (ids) => groupBy(ids, await repos.exceptions.commentsOf(ids), (c) => c.exceptionId),
      () => [],
    ),

    /** Match groups by id (reached only through an authorized exception); null once taken apart. */
    matchGroupById: batchLoader<MatchGroup | null>("matchGroupById", metrics, async (ids) => byId(await repos.exceptions.findGroups(ids)), none),

    latestJobByProject: batchLoader<ReconciliationJob | null>(
      "latestJobByProject",
      metrics,
      (ids) => repos.jobs.latestByProject(ids),
      none,
    ),

    /** The latest COMPLETED non-dry-run job of each pair of sources of each project (statistics). */
    latestJobsPerPair: batchLoader<ReconciliationJob[]>("latestJobsPerPair", metrics, (ids) => repos.stats.latestJobsPerPair(ids), () => []),

    /** Open exceptions of those jobs by age bucket. */
    exceptionAges: batchLoader<AgeBucketCount[]>("exceptionAges", metrics, (ids) => repos.stats.exceptionAges(ids), () => []),
    /** Open exceptions of each job, by job id. */
    openExceptionsByJob: batchLoader<number>("openExceptionsByJob", metrics, (ids) => repos.stats.openExceptionsByJob(ids), () => 0),

    /** Each project's reconciliation schedule (null when it has none). */
    scheduleByProject: batchLoader<ReconciliationSchedule | null>(
      "scheduleByProject",
      metrics,
      async (ids) => new Map((await repos.schedules.findByProjects(ids)).map((schedule) => [schedule.projectId, schedule])),
      none,
    ),

    /** The auto-match rate of the last `limit` completed jobs of each project, oldest first. */
    rateHistory(limit: number): DataLoader<string, RatePoint[]> {
      let loader = rateHistoryLoaders.get(limit);
      if (!loader) {
        loader = batchLoader("rateHistory", metrics, (ids) => repos.stats.rateHistory(ids, limit), () => []);
        rateHistoryLoaders.set(limit, loader);
      }
      return loader;
    },

    jobPage(page: PageRequest, status: JobStatus | null): DataLoader<string, ReconciliationJob[]> {
      const key = JSON.stringify([page.limit, page.after, status]);
      let loader = jobPageLoaders.get(key);
      if (!loader) {
        loader = batchLoader("jobPage", metrics, (ids) => repos.jobs.pagesByProject(ids, page, status), () => []);
        jobPageLoaders.set(key, loader);
      }
      return loader;
    },

    jobCount(status: JobStatus | null): DataLoader<string, number> {
      const key = status ?? "";
      let loader = jobCountLoaders.get(key);
      if (!loader) {
        loader = batchLoader("jobCount", metrics, (ids) => repos.jobs.countsByProject(ids, status), () => 0);
        jobCountLoaders.set(key, loader);
      }
      return loader;
    },
  };
}

export type Loaders = ReturnType<typeof createLoaders>;
