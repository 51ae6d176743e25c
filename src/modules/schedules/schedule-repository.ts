/**
 * The only code that reads and writes reconciliation schedules (`reconciliation_schedules`, one per project), and
 * the reads the triggers decide on: completed uploads per source, a pair's unfinished jobs. The statements that
 * decide whether an automatic run starts take the schedule row's lock (`FOR UPDATE`) in the caller's transaction.
 */
import type { ChangeFeed } from "../../db/change-feed.js";
import type { Db, DbClient, DbTransaction } from "../../db/database.js";
import { sql } from "../../db/sql.js";
import { readTagsOf, tags } from "../../cache/tags.js";
import type { ReconciliationSchedule } from "../../generated/prisma/client.js";

export type { ReconciliationSchedule };

/** A schedule with what the triggers need of its project. */
export interface LockedSchedule extends ReconciliationSchedule {
  ownerId: string;
  projectStatus: string;
}

const COLUMNS = sql`s.project_id AS "projectId", s.left_source_id AS "leftSourceId", s.right_source_id AS "rightSourceId",
  s.rule_set_id AS "ruleSetId", s.rule_set_name AS "ruleSetName", s.on_new_uploads AS "onNewUploads", s.cron, s.timezone,
  s.next_run_at AS "nextRunAt", s.left_uploads_seen AS "leftUploadsSeen", s.right_uploads_seen AS "rightUploadsSeen",
  s.last_job_id AS "lastJobId", s.last_run_at AS "lastRunAt", s.last_skip_reason AS "lastSkipReason",
  s.last_skipped_at AS "lastSkippedAt", s.created_at AS "createdAt", s.updated_at AS "updatedAt",
  p.owner_id AS "ownerId", p.status::text AS "projectStatus"`;

export interface ScheduleData {
  leftSourceId: string;
  rightSourceId: string;
  ruleSetId: string | null;
  ruleSetName: string | null;
  onNewUploads: boolean;
  cron: string | null;
  timezone: string;
  nextRunAt: Date | null;
  leftUploadsSeen: number;
  rightUploadsSeen: number;
}

export function createScheduleRepository({ prisma, changes }: { prisma: DbClient; changes: ChangeFeed }) {
  /** A raw write of a schedule row: announced when the caller's transaction commits. */
  const wrote = (projectId: string) => changes.wrote([tags.projectSchedule(projectId)]);

  return {
    /** The schedules of `projectIds` (absent for projects without one). */
    async findByProjects(projectIds: readonly string[]): Promise<ReconciliationSchedule[]> {
      readTagsOf(tags.projectSchedule, projectIds);
      return prisma.reconciliationSchedule.findMany({ where: { projectId: { in: [...projectIds] } } });
    },

    /** Creates or replaces the project's schedule (a Prisma write: tagged by cache/write-tags.ts). */
    upsert(projectId: string, data: ScheduleData, db: Db = prisma): Promise<ReconciliationSchedule> {
      const reset = { lastSkipReason: null, lastSkippedAt: null };
      return db.reconciliationSchedule.upsert({ where: { projectId }, create: { projectId, ...data }, update: { ...data, ...reset } });
    },

    /** Removes the project's schedule; the removed row, or null when there was none. */
    async delete(projectId: string, db: Db = prisma): Promise<ReconciliationSchedule | null> {
      const found = await db.reconciliationSchedule.findUnique({ where: { projectId } });
      if (!found) return null;
      await db.reconciliationSchedule.delete({ where: { projectId } });
      return found;
    },

    /** Locks the project's schedule if it runs on new uploads (null otherwise); held until `tx` ends. */
    async lockForUploads(tx: DbTransaction, projectId: string): Promise<LockedSchedule | null> {
      const [row] = await tx.$queryRaw<LockedSchedule[]>(sql`
        SELECT ${COLUMNS} FROM reconciliation_schedules s JOIN projects p ON p.id = s.project_id
        WHERE s.project_id = ${projectId}::uuid AND s.on_new_uploads
        FOR UPDATE OF s`);
      return row ?? null;
    },

    /**
     * Locks the schedule due soonest (cron time passed), skipping schedules another transaction holds: concurrent
     * ticks, on any instance, each take a different one. Null when none is due.
     */
    async lockNextDue(tx: DbTransaction): Promise<LockedSchedule | null> {
      const [row] = await tx.$queryRaw<LockedSchedule[]>(sql`
        SELECT ${COLUMNS} FROM reconciliation_schedules s JOIN projects p ON p.id = s.project_id
        WHERE s.next_run_at <= now()
        ORDER BY s.next_run_at
        LIMIT 1
        FOR UPDATE OF s SKIP LOCKED`);
      return row ?? null;
    },

    /**
     * COMPLETED uploads of each of two sources, counted now (a statement run after the schedule's lock was taken:
     * it sees every upload committed before that).
     */
    async completedUploads(tx: DbTransaction, leftSourceId: string, rightSourceId: string): Promise<{ left: number; right: number }> {
      const [row] = await tx.$queryRaw<{ left: number; right: number }[]>(sql`
        SELECT count(*) FILTER (WHERE data_source_id = ${leftSourceId}::uuid)::int AS left,
               count(*) FILTER (WHERE data_source_id = ${rightSourceId}::uuid)::int AS right
        FROM uploaded_files
        WHERE data_source_id IN (${leftSourceId}::uuid, ${rightSourceId}::uuid) AND status = 'COMPLETED'`);
      return row!;
    },

    /** A QUEUED or RUNNING job over the same pair of sources (either way round), if there is one. */
    async unfinishedJobOfPair(tx: DbTransaction, projectId: string, leftSourceId: string, rightSourceId: string): Promise<{ id: string; status: string } | null> {
      const [row] = await tx.$queryRaw<{ id: string; status: string }[]>(sql`
        SELECT id, status::text AS status FROM reconciliation_jobs
        WHERE project_id = ${projectId}::uuid AND status IN ('QUEUED', 'RUNNING')
          AND ((left_source_id = ${leftSourceId}::uuid AND right_source_id = ${rightSourceId}::uuid)
            OR (left_source_id = ${rightSourceId}::uuid AND right_source_id = ${leftSourceId}::uuid))
        LIMIT 1`);
      return row ?? null;
    },

    /** After an automatic run was queued: the job, and (on new uploads) the upload counts it consumed. */
    async recordRun(
      tx: DbTransaction,
      projectId: string,
      run: { jobId: string; uploadsSeen?: { left: number; right: number }; nextRunAt?: Date | null },
    ): Promise<void> {
      await tx.$executeRaw(sql`
        UPDATE reconciliation_schedules SET last_job_id = ${run.jobId}::uuid, last_run_at = now(),
          left_uploads_seen = COALESCE(${run.uploadsSeen?.left ?? null}::int, left_uploads_seen),
          right_uploads_seen = COALESCE(${run.uploadsSeen?.right ?? null}::int, right_uploads_seen),
          next_run_at = CASE WHEN ${run.nextRunAt !== undefined} THEN ${run.nextRunAt ?? null}::timestamptz ELSE next_run_at END,
          -- A run started: no longer "why the last run that was due did not start".
          last_skip_reason = NULL, last_skipped_at = NULL,
          updated_at = now()
        WHERE project_id = ${projectId}::uuid`);
      await wrote(projectId);
    },

    /** A run that was due did not start: why (and, for cron, the next time). */
    async recordSkip(tx: DbTransaction, projectId: string, reason: string, nextRunAt?: Date | null): Promise<void> {
      await tx.$executeRaw(sql`
        UPDATE reconciliation_schedules SET last_skip_reason = ${reason}, last_skipped_at = now(),
          next_run_at = CASE WHEN ${nextRunAt !== undefined} THEN ${nextRunAt ?? null}::timestamptz ELSE next_run_at END,
          updated_at = now()
        WHERE project_id = ${projectId}::uuid`);
      await wrote(projectId);
    },
  };
}

export type ScheduleRepository = ReturnType<typeof createScheduleRepository>;
