/**
 * Reconciliation jobs, their results and the project's saved rule sets, as the API offers them. Responsible for
 * authorization (through the job's project: a job one may not see is indistinguishable from a missing one), for
 * validating rules before anything is queued, and for handing jobs to the durable queue. Talks to the job
 * repository, the queue and the job-event bus; the work itself is the reconcile task's.
 */
import { policy, type Viewer } from "../../auth/policy.js";
import type { Database, DbTransaction } from "../../db/database.js";
import { BadUserInputError, ForbiddenError, NotFoundError } from "../../graphql/errors.js";
import type { Loaders } from "../../graphql/loaders.js";
import type { DataSource, MatchGroup, MatchOutcomeName, ReconciliationJob, RuleSet } from "../../graphql/models.js";
import { pageRequest, pageSize, toConnection, toConnectionBy } from "../../graphql/pagination.js";
import { isId, requireId, requireText } from "../../graphql/validate.js";
import type { JobStatus } from "../../generated/prisma/enums.js";
import type { JobEvents } from "../../queue/job-events.js";
import type { Queue } from "../../queue/queue.js";
import { DEFAULT_RULE_SET, parseRuleSet, RuleSetError, type RuleSet as Rules } from "../../reconcile/rules.js";
import { optionalReason, type AuditService } from "../audit/audit-service.js";
import type { ProjectService } from "../projects/project-service.js";
import type { DataSourceRepository } from "../data-sources/data-source-repository.js";
import type { GroupFilter, JobRepository } from "./job-repository.js";
import { OUTCOME_ORDER, type GroupPosition } from "./group-scan.js";
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

/** Which sources and rules a run uses, as asked (ids unchecked). */
export interface RunSelection {
  leftSourceId: string;
  rightSourceId: string;
  ruleSetId?: string | null;
  ruleSetName?: string | null;
  rules?: unknown;
}

/** A run's sources and rules, checked. */
export interface PreparedRun {
  left: DataSource;
  right: DataSource;
  ruleSetId: string | null;
  rules: Rules;
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

  /**
   * The project of `projectId` if the viewer may start and cancel jobs there (and save rule sets). Not in an
   * archived project (see ProjectService.authorize), unless `allowArchived`: cancelling a job queued or running
   * when the project was archived keeps its results out of the read-only history.
   */
  async function authorizeWork(viewer: Viewer | null, projectId: string, field: string, options: { allowArchived?: boolean } = {}) {
    const { actor, project, relation } = await projects.authorize(viewer, projectId, field, options);
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

  /** Sources and rules of a run, validated; mistakes name `<prefix>.<field>`. */
  async function resolveRun(projectId: string, selection: RunSelection, prefix: string): Promise<PreparedRun> {
    const left = await requireSource(projectId, selection.leftSourceId, `${prefix}.leftSourceId`);
    const right = await requireSource(projectId, selection.rightSourceId, `${prefix}.rightSourceId`);
    if (left.id === right.id) throw new BadUserInputError(`${prefix}.rightSourceId`, "must be a different data source than the left one");
    const given = [selection.ruleSetId, selection.ruleSetName, selection.rules].filter((value) => value != null).length;
    if (given > 1) throw new BadUserInputError(`${prefix}.rules`, "give one of ruleSetId, ruleSetName or rules, not several");
    if (selection.ruleSetId != null) {
      const id = requireId(selection.ruleSetId, `${prefix}.ruleSetId`);
      const [saved] = await jobs.findRuleSets([id]);
      if (!saved || saved.projectId !== projectId) throw new BadUserInputError(`${prefix}.ruleSetId`, "is not a rule set of this project");
      return { left, right, ruleSetId: saved.id, rules: requireRules(saved.rules, `${prefix}.ruleSetId`) };
    }
    if (selection.ruleSetName != null) {
      const saved = (await jobs.latestRuleSets(projectId)).find((ruleSet) => ruleSet.name === selection.ruleSetName);
      if (!saved) throw new BadUserInputError(`${prefix}.ruleSetName`, "no rule set of this project has this name");
      return { left, right, ruleSetId: saved.id, rules: requireRules(saved.rules, `${prefix}.ruleSetName`) };
    }
    return { left, right, ruleSetId: null, rules: selection.rules != null ? requireRules(selection.rules, `${prefix}.rules`) : DEFAULT_RULE_SET };
  }

  /** The job row (QUEUED, with its rules' snapshot) and its audit event, in `tx`. */
  async function recordJob(
    tx: DbTransaction,
    args: { projectId: string; createdById: string; auditUserId: string | null; run: PreparedRun; dryRun: boolean; reason?: string },
  ): Promise<ReconciliationJob> {
    const { left, right, ruleSetId, rules } = args.run;
    const created = await jobs.create(
      { projectId: args.projectId, leftSourceId: left.id, rightSourceId: right.id, createdById: args.createdById, ruleSetId, rules, dryRun: args.dryRun },
      tx,
    );
    await audit.record(tx, {
      userId: args.auditUserId,
      projectId: args.projectId,
      action: "reconciliation.start",
      resourceType: "ReconciliationJob",
      resourceId: created.id,
      after: { leftSourceId: left.id, rightSourceId: right.id, ruleSetId, dryRun: created.dryRun },
      reason: args.reason ?? null,
    });
    return created;
  }

  /** Hands a recorded job to the durable queue; a job that cannot be queued is cancelled (never left QUEUED). */
  async function enqueue(job: ReconciliationJob): Promise<void> {
    try {
      await queue.send(task, { jobId: job.id });
    } catch (error) {
      await jobs.cancel(job.id);
      throw error;
    }
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
      const run = await resolveRun(project.id, input, "input");
      const job = await transaction((tx) => recordJob(tx, { projectId: project.id, createdById: actor.id, auditUserId: actor.id, run, dryRun: input.dryRun ?? false }));
      await enqueue(job);
      return job;
    },

    /**
     * What an automatic run of `projectId` would run (schedules: src/modules/schedules/): sources and rules checked
     * as `start` checks them, mistakes named `<prefix>.leftSourceId` and so on. `ruleSetName` runs the newest
     * version of that name. Authorization is the caller's.
     */
    prepareRun: (projectId: string, selection: RunSelection, prefix: string) => resolveRun(projectId, selection, prefix),

    /**
     * Records an automatic run's job (QUEUED) inside the caller's transaction (the schedule's lock is held there),
     * created by `createdById` (the project's owner) with a system audit event (no actor) giving `reason`. Queue it
     * with `enqueue` once the transaction has committed.
     */
    recordAutomatic(tx: DbTransaction, args: { projectId: string; createdById: string; run: PreparedRun; reason: string }) {
      return recordJob(tx, { projectId: args.projectId, createdById: args.createdById, auditUserId: null, run: args.run, dryRun: false, reason: args.reason });
    },

    enqueue,

    /** Stops a queued or running job; nothing it computed is kept. `reason` goes into the audit event. */
    async cancel(viewer: Viewer | null, rawId: string, rawReason?: string | null): Promise<ReconciliationJob> {
      const id = requireId(rawId, "jobId");
      const reason = optionalReason(rawReason);
      const job = await jobs.findById(id);
      if (!job) throw new NotFoundError("ReconciliationJob");
      const { actor } = await authorizeWork(viewer, job.projectId, "jobId", { allowArchived: true }).catch((error) => {
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
     * it), until it completes, fails or is cancelled. Authorized when the subscription starts and again before
     * every later event (a viewer removed from the project meanwhile gets no more: the subscription ends).
     */
    async follow(viewer: Viewer | null, id: string, loaders: Loaders): Promise<AsyncIterable<ReconciliationJob>> {
      const job = await this.get(viewer, id, loaders);
      if (!job) throw new NotFoundError("ReconciliationJob");
      // Not through `loaders`: they remember the project as it was when the subscription started.
      const stillVisible = async () => (await projects.get(viewer, job.projectId)) !== null;
      return followJob(job.id, jobs, events, stillVisible);
    },
  };
}

const FINISHED = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

/**
 * Re-reads the job on each announced change; yields only when something visible changed, and only while
 * `stillVisible` (asked before every event but the first, which the caller has just authorized) says so.
 */
async function* followJob(
  id: string,
  jobs: Pick<JobRepository, "findById">,
  events: Pick<JobEvents, "subscribe">,
  stillVisible: () => Promise<boolean>,
): AsyncGenerator<ReconciliationJob> {
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
        if (last !== "" && !(await stillVisible())) return;
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
