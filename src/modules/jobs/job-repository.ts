/**
 * The only code that reads and writes reconciliation jobs, their saved rule sets and their match groups through
 * the API (the job runner streams records and writes groups itself, with COPY: modules/jobs/reconcile-task.ts).
 */
import type { ChangeFeed } from "../../db/change-feed.js";
import type { Db, DbClient, DbTransaction } from "../../db/database.js";
import type { JobStatus } from "../../generated/prisma/enums.js";
import { type SqlReader, afterCursor, and, raw, sql } from "../../db/sql.js";
import type { MatchGroup, MatchOutcomeName, ReconciliationJob, RuleSet, SourceRecord } from "../../graphql/models.js";
import type { PageRequest } from "../../graphql/pagination.js";
import { readTags, readTagsOf, tags } from "../../cache/tags.js";
import { type GroupPosition, groupCountSql, groupPageSql } from "./group-scan.js";

/** A job's columns as the API reads them, for alias `j` (the statistics read jobs with them too). */
export const COLUMNS = raw(`j.id, j.project_id AS "projectId", j.left_source_id AS "leftSourceId",
  j.right_source_id AS "rightSourceId", j.created_by AS "createdById", j.rule_set_id AS "ruleSetId", j.rules,
  j.status::text AS status, j.phase, j.progress, j.processed, j.total, j.attempts, j.matched_count AS "matchedCount", j.suggested_count AS "suggestedCount",
  j.discrepancy_count AS "discrepancyCount", j.unmatched_left_count AS "unmatchedLeftCount",
  j.unmatched_right_count AS "unmatchedRightCount", j.summary, j.error, j.dry_run AS "dryRun",
  j.created_at AS "createdAt", j.started_at AS "startedAt", j.finished_at AS "finishedAt"`);

/** The columns of a `MatchGroup` (models.ts) from `match_groups g`. */
export const GROUP_COLUMNS = raw(`g.id, g.job_id AS "jobId", g.project_id AS "projectId", g.left_record_ids AS "leftRecordIds",
  g.right_record_ids AS "rightRecordIds", g.kind::text AS kind, g.outcome::text AS outcome, g.status::text AS status,
  g.confidence::text AS confidence, g.ambiguous, g.rule, g.pass, g.amount_delta::text AS "amountDelta",
  g.date_delta_days AS "dateDeltaDays", g.duplicate_of AS "duplicateOf", g.score_breakdown AS "scoreBreakdown"`);

const RECORD_COLUMNS = raw(`r.id, r.project_id AS "projectId", r.data_source_id AS "dataSourceId",
  r.external_id AS "externalId", r.amount::text AS amount, r.currency, r.booked_date AS "bookedDate",
  r.value_date AS "valueDate", r.reference, r.description, r.counterparty, r.row_number AS "rowNumber"`);

/** Which groups of a job a page lists. `outcomes` must be non-empty. */
export interface GroupFilter {
  outcomes: readonly MatchOutcomeName[];
  minConfidence: number | null;
}

export function createJobRepository({ prisma, read, changes }: { prisma: DbClient; read: SqlReader; changes: ChangeFeed }) {
  return {
    /** Jobs by id (authorization is the caller's: it checks the job's project). */
    async findByIds(ids: readonly string[]): Promise<ReconciliationJob[]> {
      readTagsOf(tags.job, ids);
      return read<ReconciliationJob[]>(sql`SELECT ${COLUMNS} FROM reconciliation_jobs j WHERE j.id = ANY(${ids}::uuid[])`);
    },

    /** One job, bypassing the response cache's read tags (the runner and subscriptions re-read jobs). */
    async findById(id: string): Promise<ReconciliationJob | null> {
      const [row] = await read<ReconciliationJob[]>(sql`SELECT ${COLUMNS} FROM reconciliation_jobs j WHERE j.id = ${id}::uuid`);
      return row ?? null;
    },

    async create(
      data: {
        projectId: string;
        leftSourceId: string;
        rightSourceId: string;
        createdById: string;
        ruleSetId: string | null;
        rules: object;
        dryRun: boolean;
      },
      db: Db = prisma,
    ): Promise<ReconciliationJob> {
      return db.reconciliationJob.create({ data });
    },

    /**
     * Marks a queued or running job CANCELLED; null when it had already finished. The worker running it learns of
     * it from the job event the caller publishes (and from its own status checks).
     */
    async cancel(id: string, db: Db = prisma): Promise<ReconciliationJob | null> {
      const { count } = await db.reconciliationJob.updateMany({
        where: { id, status: { in: ["QUEUED", "RUNNING"] } },
        data: { status: "CANCELLED", phase: "cancelled", finishedAt: new Date() },
      });
      if (count === 0) return null;
      await changes.wrote([tags.job(id)]);
      return db.reconciliationJob.findUnique({ where: { id } });
    },

    /**
     * Cancels a project's QUEUED and RUNNING jobs (it is being archived: its history must not change any more) and
     * returns their ids. A running job's worker notices at its next progress write, or sooner by the job event.
     */
    async cancelOfProject(projectId: string, db: Db = prisma): Promise<string[]> {
      const rows = await db.$queryRaw<{ id: string }[]>`
        UPDATE reconciliation_jobs SET status = 'CANCELLED', phase = 'cancelled', finished_at = now()
        WHERE project_id = ${projectId}::uuid AND status IN ('QUEUED', 'RUNNING') RETURNING id`;
      if (rows.length) await changes.wrote([...rows.map((row) => tags.job(row.id)), tags.projectJobs(projectId)]);
      return rows.map((row) => row.id);
    },

    /** A page of a job's groups in (outcome, id) order (group-scan.ts: the index, and the pushed pairs' ids). */
    async groupPage(jobId: string, filter: GroupFilter, limit: number, after: GroupPosition | null): Promise<MatchGroup[]> {
      readTags(tags.job(jobId));
      return read<MatchGroup[]>(groupPageSql(GROUP_COLUMNS, jobId, { ...filter, after }, limit + 1));
    },

    async countGroups(jobId: string, filter: GroupFilter): Promise<number> {
      readTags(tags.job(jobId));
      const [row] = await read<{ n: number }[]>(groupCountSql(jobId, filter));
      return row!.n;
    },

    /** Records by id, for the groups that name them (callers reach records only through an authorized job). */
    async recordsByIds(ids: readonly string[]): Promise<SourceRecord[]> {
      const rows = await read<SourceRecord[]>(sql`SELECT ${RECORD_COLUMNS} FROM records r WHERE r.id = ANY(${ids}::uuid[])`);
      readTagsOf(tags.projectRecords, [...new Set(rows.map((row) => row.projectId))]);
      return rows;
    },

    /**
     * Saves `rules` as the next version of the project's rule set `name`. Saves of one name wait for each other
     * (an advisory lock held until `tx` ends), so that two at once get consecutive versions, not the same one.
     */
    async saveRuleSet(data: { projectId: string; name: string; rules: object; createdById: string }, tx: DbTransaction): Promise<RuleSet> {
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`recon:ruleSet:${data.projectId}:${data.name}`}, 0))`;
      const latest = await tx.ruleSet.findFirst({
        where: { projectId: data.projectId, name: data.name },
        orderBy: { version: "desc" },
        select: { version: true },
      });
      return tx.ruleSet.create({ data: { ...data, version: (latest?.version ?? 0) + 1 } });
    },

    /** Rule-set versions by id (versions never change once saved). */
    async findRuleSets(ids: readonly string[]): Promise<RuleSet[]> {
      return prisma.ruleSet.findMany({ where: { id: { in: [...ids] } } });
    },

    /** The newest version of each named rule set of a project, by name. */
    async latestRuleSets(projectId: string): Promise<RuleSet[]> {
      readTags(tags.projectRuleSets(projectId));
      return read<RuleSet[]>(sql`
        SELECT DISTINCT ON (name) id, project_id AS "projectId", name, version, rules, created_by AS "createdById",
          created_at AS "createdAt"
        FROM rule_sets WHERE project_id = ${projectId}::uuid
        ORDER BY name, version DESC`);
    },

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
