/**
 * Reconciliation jobs, their results and the project's saved rule sets, as the API offers them. Responsible for
 * authorization (through the job's project: a job one may not see is indistinguishable from a missing one), for
 * validating rules before anything is queued, and for handing jobs to the durable queue. Talks to the job
 * repository, the queue and the job-event bus; the work itself is the reconcile task's.
 */
import { policy, type Viewer } from "../../auth/policy.js";
import type { Database } from "../../db/database.js";
import { BadUserInputError, ForbiddenError, NotFoundError } from "../../graphql/errors.js";
import type { Loaders } from "../../graphql/loaders.js";
import type { MatchGroup, MatchOutcomeName, ReconciliationJob, RuleSet } from "../../graphql/models.js";
import { pageRequest, pageSize, toConnection, toConnectionBy } from "../../graphql/pagination.js";
import { isId, requireId, requireText } from "../../graphql/validate.js";
import type { JobStatus } from "../../generated/prisma/enums.js";
import type { JobEvents } from "../../queue/job-events.js";
import type { Queue } from "../../queue/queue.js";
import { DEFAULT_RULE_SET, parseRuleSet, RuleSetError, type RuleSet as Rules } from "../../reconcile/rules.js";
import { optionalReason, type AuditService } from "../audit/audit-service.js";
import type { ProjectService } from "../projects/project-service.js";
import type { DataSourceRepository } from "../data-sources/data-source-repository.js";
import { OUTCOME_ORDER, type GroupFilter, type GroupPosition, type JobRepository } from "./job-repository.js";
import type { ReconcileTaskData } from "./reconcile-task.js";
import type { Task } from "../../queue/queue.js";

const DISCREPANCIES: readonly MatchOutcomeName[] = [
  "AMOUNT_MISMATCH",
  "DATE_LAG",
  "REFERENCE_MISMATCH",
  "CURRENCY_MISMATCH",
  "DUPLICATE",
];

/** Rules as sent, checked against the engine's schema; mistakes name the exact setting (`input.rules.passes[1]…`). */
function requireRules(value: unknown, field: string): Rules {
  try {
    return parseRuleSet(value);
  } catch (error) {
    if (error instanceof RuleSetError) throw new BadUserInputError(field, error.message);
    throw error;
  }
}

function groupCursor(group: Pick<MatchGroup, "outcome" | "id">): string {
  return Buffer.from(JSON.stringify([group.outcome, group.id])).toString("base64url");
}

function parseGroupCursor(cursor: string | null | undefined): GroupPosition | null {
  if (!cursor) return null;
  try {
    const [outcome, id] = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as [MatchOutcomeName, string];
    if (OUTCOME_ORDER.includes(outcome) && isId(id)) return { outcome, id };
  } catch {
    // falls through to the error below
  }
  throw new BadUserInputError("after", "is not a cursor from this list (use pageInfo.endCursor)");
}

export function createJobService(deps: {
  transaction: Database["transaction"];
  pool: Database["pool"];
  jobs: JobRepository;
  dataSources: Pick<DataSourceRepository, "findById">;
  projects: Pick<ProjectService, "authorize" | "get">;
  audit: AuditService;
  queue: Pick<Queue, "send">;
  events: Pick<JobEvents, "publish" | "subscribe">;
  task: Task<ReconcileTaskData>;
}) {
  const { transaction, pool, jobs, dataSources, projects, audit, queue, events, task } = deps;

  /** The project of `projectId` if the viewer may start and cancel jobs there. */
  async function authorizeWork(viewer: Viewer | null, projectId: string, field: string) {
    const { actor, project, relation } = await projects.authorize(viewer, projectId, field);
    if (!policy.editProject(actor, relation)) throw new ForbiddenError("Your role in this project does not allow you to run reconciliations");
    return { actor, project };
  }

  async function requireSource(projectId: string, rawId: string, field: string) {
    const id = requireId(rawId, field);
    const source = await dataSources.findById(id);
    if (!source || source.projectId !== projectId) throw new BadUserInputError(field, "is not a data source of this project");
    if (!source.isActive) throw new BadUserInputError(field, "is an inactive data source");
    return source;
  }

  /** A page of the job's groups with the given outcomes. */
  async function groups(
    job: ReconciliationJob,
    filter: GroupFilter,
    args: { first?: number | null; after?: string | null },
  ) {
    const page = { limit: pageSize(args.first), after: parseGroupCursor(args.after) };
    const rows = await jobs.groupPage(job.id, filter, page.limit, page.after);
    return toConnectionBy(rows, page, groupCursor, () => jobs.countGroups(job.id, filter));
  }

  return {
    /** The job, or null if it does not exist or the viewer may not see its project. */
    async get(viewer: Viewer | null, id: string, loaders: Loaders): Promise<ReconciliationJob | null> {
      if (!viewer || !isId(id)) return null;
      const job = await loaders.jobById.load(id.toLowerCase());
      if (!job) return null;
      return (await loaders.projectById.load(job.projectId)) ? job : null;
    },

    /** Jobs of a project the viewer may see, newest first. */
    async list(
      viewer: Viewer | null,
      args: { projectId: string; status?: JobStatus | null; first?: number | null; after?: string | null },
      loaders: Loaders,
    ) {
      const page = pageRequest(args);
      const status = args.status ?? null;
      const project = await projects.get(viewer, args.projectId);
      if (!project) return toConnection<ReconciliationJob>([], page, async () => 0, 0);
      const rows = await loaders.jobPage(page, status).load(project.id);
      return toConnection(rows, page, () => loaders.jobCount(status).load(project.id));
    },

    /**
     * Validates the request, records the job (QUEUED) with a snapshot of its rules and an audit event, then queues
     * it. Any worker of any instance may run it.
     */
    async start(
      viewer: Viewer | null,
      input: { projectId: string; leftSourceId: string; rightSourceId: string; ruleSetId?: string | null; rules?: unknown; dryRun?: boolean | null },
    ): Promise<ReconciliationJob> {
      const { actor, project } = await authorizeWork(viewer, input.projectId, "input.projectId");
      const left = await requireSource(project.id, input.leftSourceId, "input.leftSourceId");
      const right = await requireSource(project.id, input.rightSourceId, "input.rightSourceId");
      if (left.id === right.id) throw new BadUserInputError("input.rightSourceId", "must be a different data source than the left one");
      if (input.ruleSetId != null && input.rules != null) {
        throw new BadUserInputError("input.rules", "give either ruleSetId or rules, not both");
      }
      let ruleSetId: string | null = null;
      let rules: Rules = DEFAULT_RULE_SET;
      if (input.ruleSetId != null) {
        const id = requireId(input.ruleSetId, "input.ruleSetId");
        const [saved] = await jobs.findRuleSets([id]);
        if (!saved || saved.projectId !== project.id) throw new BadUserInputError("input.ruleSetId", "is not a rule set of this project");
        ruleSetId = saved.id;
        rules = requireRules(saved.rules, "input.ruleSetId");
      } else if (input.rules != null) {
        rules = requireRules(input.rules, "input.rules");
      }
      const job = await transaction(async (tx) => {
        const created = await jobs.create(
          { projectId: project.id, leftSourceId: left.id, rightSourceId: right.id, createdById: actor.id, ruleSetId, rules, dryRun: input.dryRun ?? false },
          tx,
        );
        await audit.record(tx, {
          userId: actor.id,
          projectId: project.id,
          action: "reconciliation.start",
          resourceType: "ReconciliationJob",
          resourceId: created.id,
          after: { leftSourceId: left.id, rightSourceId: right.id, ruleSetId, dryRun: created.dryRun },
        });
        return created;
      });
      try {
        await queue.send(task, { jobId: job.id });
      } catch (error) {
        // Never leave a QUEUED job nobody will run.
        await jobs.cancel(job.id);
        throw error;
      }
      return job;
    },

    /** Stops a queued or running job; nothing it computed is kept. `reason` goes into the audit event. */
    async cancel(viewer: Viewer | null, rawId: string, rawReason?: string | null): Promise<ReconciliationJob> {
      const id = requireId(rawId, "jobId");
      const reason = optionalReason(rawReason);
      const job = await jobs.findById(id);
      if (!job) throw new NotFoundError("ReconciliationJob");
      const { actor } = await authorizeWork(viewer, job.projectId, "jobId").catch((error) => {
        throw error instanceof NotFoundError ? new NotFoundError("ReconciliationJob") : error;
      });
      if (job.status !== "QUEUED" && job.status !== "RUNNING") {
        throw new BadUserInputError("jobId", `the job has already finished (${job.status})`);
      }
      const cancelled = await transaction(async (tx) => {
        const row = await jobs.cancel(id, tx);
        if (!row) throw new BadUserInputError("jobId", "the job has already finished");
        await audit.record(tx, {
          userId: actor.id,
          projectId: job.projectId,
          action: "reconciliation.cancel",
          resourceType: "ReconciliationJob",
          resourceId: id,
          before: { status: job.status },
          after: { status: "CANCELLED" },
          reason,
        });
        return row;
      });
      await events.publish(pool, id, job.projectId);
      return cancelled;
    },

    /** MATCHED and SUGGESTED groups of an (already authorized) job. */
    matches(job: ReconciliationJob, args: { first?: number | null; after?: string | null; status?: MatchOutcomeName | null; minConfidence?: number | null }) {
      if (args.status && args.status !== "MATCHED" && args.status !== "SUGGESTED") {
        throw new BadUserInputError("status", "must be MATCHED or SUGGESTED (see discrepancies and unmatched for the rest)");
      }
      const minConfidence = args.minConfidence ?? null;
      if (minConfidence !== null && !(minConfidence >= 0 && minConfidence <= 1)) throw new BadUserInputError("minConfidence", "must be between 0 and 1");
      return groups(job, { outcomes: args.status ? [args.status] : ["MATCHED", "SUGGESTED"], minConfidence }, args);
    },

    unmatched(job: ReconciliationJob, args: { side: "LEFT" | "RIGHT"; first?: number | null; after?: string | null }) {
      return groups(job, { outcomes: [args.side === "LEFT" ? "UNMATCHED_LEFT" : "UNMATCHED_RIGHT"], minConfidence: null }, args);
    },

    discrepancies(job: ReconciliationJob, args: { type?: MatchOutcomeName | null; first?: number | null; after?: string | null }) {
      return groups(job, { outcomes: args.type ? [args.type] : DISCREPANCIES, minConfidence: null }, args);
    },

    /** The newest version of each rule set of a project the viewer may see. */
    async ruleSets(viewer: Viewer | null, projectId: string): Promise<RuleSet[]> {
      const project = await projects.get(viewer, projectId);
      return project ? jobs.latestRuleSets(project.id) : [];
    },

    async saveRuleSet(viewer: Viewer | null, input: { projectId: string; name: string; rules: unknown }): Promise<RuleSet> {
      const { actor, project } = await authorizeWork(viewer, input.projectId, "input.projectId");
      const name = requireText(input.name, "input.name", { max: 100 });
      const rules = requireRules(input.rules, "input.rules");
      return transaction(async (tx) => {
        const saved = await jobs.saveRuleSet({ projectId: project.id, name, rules, createdById: actor.id }, tx);
        await audit.record(tx, {
          userId: actor.id,
          projectId: project.id,
          action: "ruleSet.save",
          resourceType: "RuleSet",
          resourceId: saved.id,
          after: { name, version: saved.version },
        });
        return saved;
      });
    },

    defaultRules: (): Rules => DEFAULT_RULE_SET,

    /**
     * The job's state now and after every change announced on the job-event bus (from whichever instance runs
     * it), until it completes, fails or is cancelled. Authorized once, when the subscription starts.
     */
    async follow(viewer: Viewer | null, id: string, loaders: Loaders): Promise<AsyncIterable<ReconciliationJob>> {
      const job = await this.get(viewer, id, loaders);
      if (!job) throw new NotFoundError("ReconciliationJob");
      return followJob(job.id, jobs, events);
    },
  };
}

const FINISHED = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

/** Re-reads the job on each announced change; yields only when something visible changed. */
async function* followJob(id: string, jobs: Pick<JobRepository, "findById">, events: Pick<JobEvents, "subscribe">): AsyncGenerator<ReconciliationJob> {
  let changed = true;
  let wake: (() => void) | null = null;
  const unsubscribe = events.subscribe(id, () => {
    changed = true;
    wake?.();
  });
  try {
    let last = "";
    for (;;) {
      if (!changed) await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
      changed = false;
      const job = await jobs.findById(id);
      if (!job) return;
      const state = JSON.stringify([job.status, job.phase, job.processed, job.matchedCount, job.suggestedCount, job.discrepancyCount, job.unmatchedLeftCount, job.unmatchedRightCount]);
      if (state !== last) {
        last = state;
        yield job;
      }
      if (FINISHED.has(job.status)) return;
    }
  } finally {
    unsubscribe();
  }
}

export type JobService = ReturnType<typeof createJobService>;
