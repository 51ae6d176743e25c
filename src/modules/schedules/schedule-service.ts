/**
 * Automatic reconciliation runs of a project: its schedule (which pair of sources, which rules, on new uploads of
 * both and/or on a cron expression), and the two triggers that start jobs from it. Responsible for who may set a
 * schedule (the project's owner, managers and analysts, ADMIN), for deciding exactly once whether a run is due —
 * under the schedule row's lock, in the transaction that records the job — and for skipping (and recording why)
 * a run while a job of the same pair is QUEUED or RUNNING. Jobs are recorded and queued by the job service, as
 * `startReconciliation` does; an automatic run is created on behalf of the project's owner, with a system audit
 * event (no actor) whose reason says what triggered it.
 */
import { policy, type Viewer } from "../../auth/policy.js";
import type { Database, DbTransaction } from "../../db/database.js";
import { BadUserInputError, ForbiddenError } from "../../graphql/errors.js";
import type { ReconciliationJob } from "../../graphql/models.js";
import { requireText } from "../../graphql/validate.js";
import type { Logger } from "../../observability/logger.js";
import type { Metrics } from "../../observability/metrics.js";
import type { AuditService } from "../audit/audit-service.js";
import type { JobService } from "../jobs/job-service.js";
import type { ProjectService } from "../projects/project-service.js";
import type { UserRepository } from "../users/user-repository.js";
import { nextRun, requireCron, requireTimezone } from "./cron.js";
import type { LockedSchedule, ReconciliationSchedule, ScheduleRepository } from "./schedule-repository.js";

export interface ScheduleInput {
  leftSourceId: string;
  rightSourceId: string;
  ruleSetId?: string | null;
  ruleSetName?: string | null;
  onNewUploads?: boolean | null;
  cron?: string | null;
  timezone?: string | null;
}

/** What triggered a run: both sources got a new upload, or the cron expression fired. */
type Trigger = "uploads" | "schedule";

function snapshot(schedule: ReconciliationSchedule) {
  const { leftSourceId, rightSourceId, ruleSetId, ruleSetName, onNewUploads, cron, timezone } = schedule;
  return { leftSourceId, rightSourceId, ruleSetId, ruleSetName, onNewUploads, cron, timezone };
}

export function createScheduleService(deps: {
  transaction: Database["transaction"];
  schedules: ScheduleRepository;
  users: Pick<UserRepository, "findById">;
  projects: Pick<ProjectService, "authorize">;
  jobs: Pick<JobService, "prepareRun" | "recordAutomatic" | "enqueue">;
  audit: AuditService;
  metrics: Pick<Metrics, "triggeredJobsTotal">;
  logger: Logger;
}) {
  const { transaction, schedules, users, projects, jobs, audit, metrics, logger } = deps;

  /**
   * Why the owner cannot run this project's reconciliations now (null: they can). Automatic runs act for the
   * owner, so they stop when the owner could not start the job by hand.
   */
  async function ownerRefusal(schedule: LockedSchedule): Promise<string | null> {
    if (schedule.projectStatus !== "ACTIVE") return "the project is archived";
    const owner = await users.findById(schedule.ownerId);
    if (!owner || !owner.isActive) return "the project's owner is deactivated";
    return policy.editProject(owner, "OWNER") ? null : "the project's owner may not run reconciliations";
  }

  /**
   * Inside `tx`, with the schedule locked and the run due: records the job, or why it was skipped. Either way the
   * schedule's next cron time moves on (when `nextRunAt` is given).
   */
  async function runLocked(
    tx: DbTransaction,
    schedule: LockedSchedule,
    trigger: Trigger,
    uploads: { left: number; right: number },
    nextRunAt?: Date | null,
  ): Promise<ReconciliationJob | null> {
    const skip = async (reason: string) => {
      await schedules.recordSkip(tx, schedule.projectId, reason, nextRunAt);
      metrics.triggeredJobsTotal.inc({ reason: trigger, result: "skipped" });
      logger.info({ projectId: schedule.projectId, trigger, reason }, "automatic reconciliation skipped");
      return null;
    };
    const refusal = await ownerRefusal(schedule);
    if (refusal) return skip(refusal);
    const unfinished = await schedules.unfinishedJobOfPair(tx, schedule.projectId, schedule.leftSourceId, schedule.rightSourceId);
    if (unfinished) return skip(`job ${unfinished.id} of this pair of sources is still ${unfinished.status}`);
    let run;
    try {
      run = await jobs.prepareRun(schedule.projectId, schedule, "schedule");
    } catch (error) {
      // A source deactivated or a rule set renamed since the schedule was set: the owner must fix the schedule.
      if (error instanceof BadUserInputError) return skip(error.message);
      throw error;
    }
    const reason =
      trigger === "uploads"
        ? "automatic: new completed uploads in both sources"
        : `scheduled: cron "${schedule.cron}" (${schedule.timezone})`;
    const job = await jobs.recordAutomatic(tx, { projectId: schedule.projectId, createdById: schedule.ownerId, run, reason });
    await schedules.recordRun(tx, schedule.projectId, { jobId: job.id, uploadsSeen: uploads, nextRunAt });
    return job;
  }

  /** Queues a job recorded by a committed transaction, and counts it. */
  async function dispatch(job: ReconciliationJob | null, trigger: Trigger): Promise<ReconciliationJob | null> {
    if (!job) return null;
    await jobs.enqueue(job);
    metrics.triggeredJobsTotal.inc({ reason: trigger, result: "queued" });
    logger.info({ projectId: job.projectId, jobId: job.id, trigger }, "automatic reconciliation queued");
    return job;
  }

  return {
    /**
     * Sets (creates or replaces) the project's schedule. Sources and rules are checked as `startReconciliation`
     * checks them; uploads completed before now do not count as new. The cron expression (five fields) is read in
     * `timezone` (default UTC).
     */
    async set(viewer: Viewer | null, rawProjectId: string, input: ScheduleInput): Promise<ReconciliationSchedule> {
      const { actor, project, relation } = await projects.authorize(viewer, rawProjectId, "projectId");
      if (!policy.editProject(actor, relation)) throw new ForbiddenError("Your role in this project does not allow you to schedule reconciliations");
      const timezone = requireTimezone(input.timezone ?? "UTC", "input.timezone");
      const cron = input.cron == null || input.cron.trim() === "" ? null : requireCron(input.cron, "input.cron", timezone);
      const onNewUploads = input.onNewUploads ?? false;
      if (!cron && !onNewUploads) {
        throw new BadUserInputError("input.cron", "give a cron expression, or onNewUploads: true (clearReconciliationSchedule removes a schedule)");
      }
      const ruleSetName = input.ruleSetName == null ? null : requireText(input.ruleSetName, "input.ruleSetName", { max: 100 });
      const run = await jobs.prepareRun(project.id, { ...input, ruleSetName }, "input");
      return transaction(async (tx) => {
        const uploads = await schedules.completedUploads(tx, run.left.id, run.right.id);
        const before = (await schedules.findByProjects([project.id]))[0] ?? null;
        const saved = await schedules.upsert(
          project.id,
          {
            leftSourceId: run.left.id,
            rightSourceId: run.right.id,
            // A name runs its newest version at each run; an id, exactly that version.
            ruleSetId: ruleSetName ? null : run.ruleSetId,
            ruleSetName,
            onNewUploads,
            cron,
            timezone,
            nextRunAt: cron ? nextRun(cron, timezone, new Date()) : null,
            leftUploadsSeen: uploads.left,
            rightUploadsSeen: uploads.right,
          },
          tx,
        );
        await audit.record(tx, {
          userId: actor.id,
          projectId: project.id,
          action: "reconciliation.schedule.set",
          resourceType: "ReconciliationSchedule",
          resourceId: project.id,
          before: before && snapshot(before),
          after: snapshot(saved),
        });
        return saved;
      });
    },

    /** Removes the project's schedule (same rights as setting it); false when it had none. */
    async clear(viewer: Viewer | null, rawProjectId: string): Promise<boolean> {
      // Allowed on an archived project: removing its automation changes none of its history (and its ticks stop).
      const { actor, project, relation } = await projects.authorize(viewer, rawProjectId, "projectId", { allowArchived: true });
      if (!policy.editProject(actor, relation)) throw new ForbiddenError("Your role in this project does not allow you to schedule reconciliations");
      return transaction(async (tx) => {
        const removed = await schedules.delete(project.id, tx);
        if (!removed) return false;
        await audit.record(tx, {
          userId: actor.id,
          projectId: project.id,
          action: "reconciliation.schedule.clear",
          resourceType: "ReconciliationSchedule",
          resourceId: project.id,
          before: snapshot(removed),
        });
        return true;
      });
    },

    /**
     * Called after an upload into `projectId` committed (any instance). Queues a run when the project's schedule
     * runs on new uploads and both of its sources have more COMPLETED uploads than when its last automatic run was
     * queued (or the schedule set). The schedule row's lock makes two uploads completing at once, here or on
     * another instance, queue one job: the second to take the lock sees the counts the first consumed.
     */
    async uploadCompleted(projectId: string, dataSourceId: string): Promise<ReconciliationJob | null> {
      const job = await transaction(async (tx) => {
        const schedule = await schedules.lockForUploads(tx, projectId);
        if (!schedule || (schedule.leftSourceId !== dataSourceId && schedule.rightSourceId !== dataSourceId)) return null;
        // Counted after the lock was granted: every upload committed before the lock holder before us is seen.
        const uploads = await schedules.completedUploads(tx, schedule.leftSourceId, schedule.rightSourceId);
        if (uploads.left <= schedule.leftUploadsSeen || uploads.right <= schedule.rightUploadsSeen) return null;
        return runLocked(tx, schedule, "uploads", uploads);
      });
      return dispatch(job, "uploads");
    },

    /**
     * The scheduler's tick (once a minute, src/modules/schedules/schedule-task.ts): runs every schedule whose cron
     * time has passed, one transaction each (`FOR UPDATE SKIP LOCKED`: concurrent ticks share the work), and moves
     * its next time on. A schedule whose time passed several times while nothing ticked runs once.
     */
    async runDue(): Promise<number> {
      let queued = 0;
      for (;;) {
        const outcome = await transaction(async (tx) => {
          const schedule = await schedules.lockNextDue(tx);
          if (!schedule) return { done: true as const, job: null };
          const next = schedule.cron ? nextRun(schedule.cron, schedule.timezone, new Date()) : null;
          const uploads = await schedules.completedUploads(tx, schedule.leftSourceId, schedule.rightSourceId);
          return { done: false as const, job: await runLocked(tx, schedule, "schedule", uploads, next) };
        });
        if (outcome.done) return queued;
        if (await dispatch(outcome.job, "schedule")) queued += 1;
      }
    },
  };
}

export type ScheduleService = ReturnType<typeof createScheduleService>;
