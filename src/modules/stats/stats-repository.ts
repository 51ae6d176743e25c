/**
 * The reads behind a project's reconciliation statistics, one statement per batch of projects. Their source is
 * the latest COMPLETED, non-dry-run job of each pair of data sources (left, right) of a project: its stored summary
 * (counts and per-currency amounts per outcome, per-pass hits, auto-match rate) and, for open exceptions, its rows in
 * `exceptions`. Every read registers `Project:<id>:stats` (invalidated by each job event of the project, by job and
 * match group writes), `Project:<id>:records` (by completed uploads) and `Project:<id>:exceptions` (exception work).
 */
import type { SqlReader } from "../../db/sql.js";
import { sql } from "../../db/sql.js";
import { readTagsOf, tags } from "../../cache/tags.js";
import type { ReconciliationJob } from "../../graphql/models.js";
import { COLUMNS as JOB_COLUMNS } from "../jobs/job-repository.js";
import { OUTCOME_ORDER } from "../jobs/group-scan.js";

/** Outcomes that are exceptions: discrepancies and records nothing matched (all but MATCHED and SUGGESTED). */
export const EXCEPTION_OUTCOMES = OUTCOME_ORDER.filter((outcome) => outcome !== "MATCHED" && outcome !== "SUGGESTED");

/** Age buckets of exceptions, in days: [min, max] (max null: and older). */
export const AGE_BUCKETS: readonly { label: string; minDays: number; maxDays: number | null }[] = [
  { label: "0-7", minDays: 0, maxDays: 7 },
  { label: "8-30", minDays: 8, maxDays: 30 },
  { label: "31-60", minDays: 31, maxDays: 60 },
  { label: "61-90", minDays: 61, maxDays: 90 },
  { label: "91+", minDays: 91, maxDays: null },
];

export interface AgeBucketCount {
  label: string;
  minDays: number;
  maxDays: number | null;
  groups: number;
  records: number;
}

/** A point of the auto-match rate's history: one completed job. */
export interface RatePoint {
  jobId: string;
  projectId: string;
  leftSourceId: string;
  rightSourceId: string;
  finishedAt: Date;
  autoMatchRate: number;
}

/** SQL: the latest COMPLETED non-dry-run job of each (project, left, right) among `projectIds`. */
function latestPerPair(projectIds: readonly string[]) {
  return sql`SELECT DISTINCT ON (j.project_id, j.left_source_id, j.right_source_id) ${JOB_COLUMNS}
    FROM reconciliation_jobs j
    WHERE j.project_id = ANY(${projectIds}::uuid[]) AND j.status = 'COMPLETED' AND NOT j.dry_run
    ORDER BY j.project_id, j.left_source_id, j.right_source_id, j.finished_at DESC, j.id DESC`;
}

function registerReads(projectIds: readonly string[]) {
  readTagsOf(tags.projectStats, projectIds);
  readTagsOf(tags.projectRecords, projectIds);
  readTagsOf(tags.projectExceptions, projectIds); // exception work changes open counts and ages
}

export function createStatsRepository({ read }: { read: SqlReader }) {
  return {
    /** The latest completed non-dry-run job of each pair of sources, per project (pairs by finish, newest first). */
    async latestJobsPerPair(projectIds: readonly string[]): Promise<Map<string, ReconciliationJob[]>> {
      registerReads(projectIds);
      const rows = await read<ReconciliationJob[]>(sql`SELECT * FROM (${latestPerPair(projectIds)}) latest ORDER BY "finishedAt" DESC, id DESC`);
      const byProject = new Map(projectIds.map((id) => [id, [] as ReconciliationJob[]]));
      for (const row of rows) byProject.get(row.projectId)?.push(row);
      return byProject;
    },

    /**
     * The auto-match rate of each project's last `limit` completed non-dry-run jobs, oldest first: a LATERAL walk
     * of the (project_id, status) index per project.
     */
    async rateHistory(projectIds: readonly string[], limit: number): Promise<Map<string, RatePoint[]>> {
      registerReads(projectIds);
      const rows = await read<RatePoint[]>(sql`
        SELECT h.* FROM unnest(${projectIds}::uuid[]) AS k(id)
        CROSS JOIN LATERAL (
          SELECT j.id AS "jobId", j.project_id AS "projectId", j.left_source_id AS "leftSourceId",
            j.right_source_id AS "rightSourceId", j.finished_at AS "finishedAt",
            COALESCE((j.summary->>'autoMatchRate')::float8, 0) AS "autoMatchRate"
          FROM reconciliation_jobs j
          WHERE j.project_id = k.id AND j.status = 'COMPLETED' AND NOT j.dry_run
          ORDER BY j.finished_at DESC, j.id DESC
          LIMIT ${limit}
        ) h
        ORDER BY h."finishedAt", h."jobId"`);
      const byProject = new Map(projectIds.map((id) => [id, [] as RatePoint[]]));
      for (const row of rows) byProject.get(row.projectId)?.push(row);
      return byProject;
    },

    /**
     * Open exceptions (not RESOLVED) of the latest job of each pair, by age: days from the exception's booked date
     * (the oldest of its records) to today (UTC). `groups` counts exceptions, `records` the records they hold.
     */
    async exceptionAges(projectIds: readonly string[]): Promise<Map<string, AgeBucketCount[]>> {
      registerReads(projectIds);
      const rows = await read<{ projectId: string; age: number; groups: number; records: number }[]>(sql`
        WITH latest AS (${latestPerPair(projectIds)})
        SELECT latest."projectId", (current_date - e.booked_date)::int AS age, count(*)::int AS groups,
          sum(COALESCE(cardinality(e.left_record_ids), 0) + COALESCE(cardinality(e.right_record_ids), 0))::int AS records
        FROM latest JOIN exceptions e ON e.job_id = latest.id
        WHERE e.status <> 'RESOLVED'
        GROUP BY latest."projectId", age`);
      const byProject = new Map(projectIds.map((id) => [id, AGE_BUCKETS.map((bucket) => ({ ...bucket, groups: 0, records: 0 }))]));
      for (const row of rows) {
        const buckets = byProject.get(row.projectId);
        const bucket = buckets?.find((b) => row.age <= (b.maxDays ?? Infinity)) ?? buckets?.[0];
        if (!bucket) continue;
        bucket.groups += row.groups;
        bucket.records += row.records;
      }
      return byProject;
    },

    /** Open exceptions (not RESOLVED) of each job (exception writes announce their job's tag). */
    async openExceptionsByJob(jobIds: readonly string[]): Promise<Map<string, number>> {
      readTagsOf(tags.job, jobIds);
      const rows = await read<{ jobId: string; open: number }[]>(sql`
        SELECT e.job_id AS "jobId", count(*)::int AS open FROM exceptions e
        WHERE e.job_id = ANY(${jobIds}::uuid[]) AND e.status <> 'RESOLVED'
        GROUP BY e.job_id`);
      return new Map(rows.map((row) => [row.jobId, row.open]));
    },
  };
}

export type StatsRepository = ReturnType<typeof createStatsRepository>;
