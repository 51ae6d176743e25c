/** The only code that reads reconciliation jobs (the engine that writes them arrives with the reconciliation issue). */
import type { DbClient } from "../../db/database.js";
import type { JobStatus } from "../../generated/prisma/enums.js";
import { type SqlReader, afterCursor, and, raw, sql } from "../../db/sql.js";
import type { ReconciliationJob } from "../../graphql/models.js";
import type { PageRequest } from "../../graphql/pagination.js";
import { readTags, readTagsOf, tags } from "../../cache/tags.js";

const COLUMNS = raw(`j.id, j.project_id AS "projectId", j.left_source_id AS "leftSourceId",
  j.right_source_id AS "rightSourceId", j.created_by AS "createdById", j.rules, j.status::text AS status, j.phase,
  j.progress, j.matched_count AS "matchedCount", j.suggested_count AS "suggestedCount",
  j.discrepancy_count AS "discrepancyCount", j.unmatched_left_count AS "unmatchedLeftCount",
  j.unmatched_right_count AS "unmatchedRightCount", j.summary, j.error, j.dry_run AS "dryRun",
  j.created_at AS "createdAt", j.started_at AS "startedAt", j.finished_at AS "finishedAt"`);

export function createJobRepository({ prisma, read }: { prisma: DbClient; read: SqlReader }) {
  return {
    /**
     * A page of jobs for each project (newest first), in one query: a LATERAL subquery per project walks the
     * (project_id, created_at) index, so a list of projects each showing its jobs is still one statement.
     */
    async pagesByProject(
      projectIds: readonly string[],
      page: PageRequest,
      status: JobStatus | null,
    ): Promise<Map<string, ReconciliationJob[]>> {
      readTagsOf(tags.projectJobs, projectIds);
      const rows = await read<ReconciliationJob[]>(sql`
        SELECT page.* FROM unnest(${projectIds}::uuid[]) AS k(id)
        CROSS JOIN LATERAL (
          SELECT ${COLUMNS} FROM reconciliation_jobs j
          WHERE ${and([sql`j.project_id = k.id`, status && sql`j.status = ${status}::"JobStatus"`, afterCursor("j", page)])}
          ORDER BY j.created_at DESC, j.id DESC
          LIMIT ${page.limit + 1}
        ) page`);
      const pages = new Map<string, ReconciliationJob[]>(projectIds.map((id) => [id, []]));
      for (const row of rows) pages.get(row.projectId)!.push(row);
      return pages;
    },

    /** Number of jobs (optionally in one status) of each project, in one grouped query. */
    async countsByProject(projectIds: readonly string[], status: JobStatus | null): Promise<Map<string, number>> {
      readTagsOf(tags.projectJobs, projectIds);
      const rows = await read<{ projectId: string; n: number }[]>(sql`
        SELECT project_id AS "projectId", count(*)::int AS n FROM reconciliation_jobs
        WHERE ${and([sql`project_id = ANY(${projectIds}::uuid[])`, status && sql`status = ${status}::"JobStatus"`])}
        GROUP BY project_id`);
      const counts = new Map(projectIds.map((id) => [id, 0]));
      for (const row of rows) counts.set(row.projectId, row.n);
      return counts;
    },

    /** The newest job of each project, in one query. */
    async latestByProject(projectIds: readonly string[]): Promise<Map<string, ReconciliationJob>> {
      readTagsOf(tags.projectJobs, projectIds);
      const rows = await read<ReconciliationJob[]>(sql`
        SELECT DISTINCT ON (j.project_id) ${COLUMNS} FROM reconciliation_jobs j
        WHERE j.project_id = ANY(${projectIds}::uuid[])
        ORDER BY j.project_id, j.created_at DESC, j.id DESC`);
      return new Map(rows.map((row) => [row.projectId, row]));
    },
  };
}

export type JobRepository = ReturnType<typeof createJobRepository>;
