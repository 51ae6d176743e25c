/**
 * The only code that reads and writes exceptions, their comments, rejected pairs, and the match groups manual work
 * changes. Reads go through the pool and register cache tags; writes take the caller's transaction, lock the rows
 * they decide on (`FOR UPDATE`, in id order so that two transactions never wait on each other in a cycle), and
 * announce their tags on the change feed (held until the transaction commits).
 */
import type { ChangeFeed } from "../../db/change-feed.js";
import type { DbTransaction } from "../../db/database.js";
import { type SqlReader, afterCursor, and, join, raw, sql, type Sql } from "../../db/sql.js";
import type { MatchGroup } from "../../graphql/models.js";
import type { PageRequest } from "../../graphql/pagination.js";
import { readTags, readTagsOf, tags } from "../../cache/tags.js";
import { EXCEPTION_SEVERITY_RANK, TODAY_UTC, severityName, type Severity } from "./severity.js";
import { manualGroupIdSql, openExceptionsSql, type ExceptionType } from "./exception-sql.js";
import { GROUP_COLUMNS } from "../jobs/job-repository.js";

export type ExceptionStatus = "OPEN" | "ASSIGNED" | "PENDING" | "RESOLVED";
export type ExceptionResolution = "EXPLAINED" | "MATCHED" | "SUPERSEDED" | "WRITTEN_OFF" | "ADJUSTED";

/** An exception as the API shows it (amounts exact decimal strings, dates 'YYYY-MM-DD'). */
export interface ExceptionRow {
  id: string;
  jobId: string;
  projectId: string;
  type: ExceptionType;
  status: ExceptionStatus;
  leftRecordIds: string[];
  rightRecordIds: string[];
  amount: string;
  currency: string;
  bookedDate: string;
  ageDays: number;
  severity: Severity;
  slaDueAt: Date;
  assigneeId: string | null;
  labels: string[];
  resolution: ExceptionResolution | null;
  resolutionAmount: string | null;
  resolutionGroupId: string | null;
  resolvedAt: Date | null;
  resolvedById: string | null;
  /** When the first exception of its carry-forward chain opened, and the whole days since (UTC). */
  firstOpenedAt: Date;
  openDays: number;
  /** The earlier job's exception this one continues, if carried forward. */
  carriedFromId: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface ExceptionComment {
  id: string;
  exceptionId: string;
  authorId: string;
  body: string;
  createdAt: Date;
}

/** What a list of exceptions is narrowed by (all optional; amounts exact decimal strings). */
export interface ExceptionFilter {
  jobId?: string | null;
  status?: readonly ExceptionStatus[] | null;
  assigneeId?: string | null;
  unassigned?: boolean | null;
  type?: readonly ExceptionType[] | null;
  severity?: readonly Severity[] | null;
  currency?: string | null;
  minAmount?: string | null;
  maxAmount?: string | null;
  minAgeDays?: number | null;
  maxAgeDays?: number | null;
  label?: string | null;
  overdue?: boolean | null;
}

/** The lifecycle fields a change of one exception writes (absent: unchanged). */
export interface ExceptionChange {
  status: ExceptionStatus;
  assigneeId?: string | null;
  labels?: string[];
  resolution?: ExceptionResolution | null;
  resolutionAmount?: string | null;
  resolvedById?: string | null;
}

/** A record as manual work needs it: which source it is from and what it is worth. */
export interface WorkRecord {
  id: string;
  dataSourceId: string;
  externalId: string;
  amount: string;
  currency: string;
  bookedDate: string;
}

/** A locked group with the state of its exception (if it has one). */
export interface LockedGroup {
  id: string;
  jobId: string;
  projectId: string;
  outcome: MatchGroup["outcome"];
  status: MatchGroup["status"];
  kind: MatchGroup["kind"];
  rule: string;
  leftRecordIds: string[];
  rightRecordIds: string[];
  exceptionStatus: ExceptionStatus | null;
  exceptionResolution: ExceptionResolution | null;
}

const COLUMNS = raw(`e.id, e.job_id AS "jobId", e.project_id AS "projectId", e.type::text AS type, e.status::text AS status,
  e.left_record_ids::text[] AS "leftRecordIds", e.right_record_ids::text[] AS "rightRecordIds", e.amount::text AS amount,
  e.currency, e.booked_date::text AS "bookedDate", (${TODAY_UTC} - e.booked_date) AS "ageDays",
  ${EXCEPTION_SEVERITY_RANK.text} AS "severityRank", e.sla_due_at AS "slaDueAt", e.assignee_id::text AS "assigneeId", e.labels,
  e.resolution::text AS resolution, e.resolution_amount::text AS "resolutionAmount",
  e.resolution_group_id::text AS "resolutionGroupId", e.resolved_at AS "resolvedAt", e.resolved_by::text AS "resolvedById",
  e.first_opened_at AS "firstOpenedAt", (${TODAY_UTC} - (e.first_opened_at AT TIME ZONE 'UTC')::date) AS "openDays",
  e.carried_from_id::text AS "carriedFromId", e.created_at AS "createdAt", e.updated_at AS "updatedAt"`);

const LOCKED_GROUP = raw(`g.id::text, g.job_id::text AS "jobId", g.project_id::text AS "projectId", g.outcome::text AS outcome,
  g.status::text AS status, g.kind::text AS kind, g.rule, g.left_record_ids::text[] AS "leftRecordIds",
  g.right_record_ids::text[] AS "rightRecordIds", e.status::text AS "exceptionStatus", e.resolution::text AS "exceptionResolution"`);

type RawException = Omit<ExceptionRow, "severity" | "ageDays"> & { severityRank: number; ageDays: number };

function toRow({ severityRank, ...row }: RawException): ExceptionRow {
  return { ...row, ageDays: Number(row.ageDays), severity: severityName(Number(severityRank)) };
}

/** The WHERE conditions of a filter over `exceptions e` of one project. */
function conditions(projectId: string, filter: ExceptionFilter): Sql {
  return and([
    sql`e.project_id = ${projectId}::uuid`,
    !!filter.jobId && sql`e.job_id = ${filter.jobId}::uuid`,
    !!filter.status?.length && sql`e.status = ANY(${filter.status}::"ExceptionStatus"[])`,
    !!filter.assigneeId && sql`e.assignee_id = ${filter.assigneeId}::uuid`,
    filter.unassigned === true && sql`e.assignee_id IS NULL`,
    filter.unassigned === false && sql`e.assignee_id IS NOT NULL`,
    !!filter.type?.length && sql`e.type = ANY(${filter.type}::"MatchOutcome"[])`,
    !!filter.severity?.length && sql`${EXCEPTION_SEVERITY_RANK} = ANY(${filter.severity.map((s) => ["LOW", "MEDIUM", "HIGH", "CRITICAL"].indexOf(s))}::int[])`,
    !!filter.currency && sql`e.currency = ${filter.currency}`,
    filter.minAmount != null && sql`e.amount >= ${filter.minAmount}::numeric`,
    filter.maxAmount != null && sql`e.amount <= ${filter.maxAmount}::numeric`,
    filter.minAgeDays != null && sql`e.booked_date <= ${raw(TODAY_UTC)} - ${filter.minAgeDays}::int`,
    filter.maxAgeDays != null && sql`e.booked_date >= ${raw(TODAY_UTC)} - ${filter.maxAgeDays}::int`,
    !!filter.label && sql`${filter.label} = ANY(e.labels)`,
    filter.overdue === true && sql`e.status <> 'RESOLVED' AND e.sla_due_at < now()`,
    filter.overdue === false && sql`NOT (e.status <> 'RESOLVED' AND e.sla_due_at < now())`,
  ]);
}

/** Runs a statement in a Prisma transaction and returns its rows. */
function query<R>(tx: DbTransaction, statement: Sql): Promise<R[]> {
  return tx.$queryRawUnsafe<R[]>(statement.text, ...statement.values);
}

export function createExceptionRepository({ read, changes }: { read: SqlReader; changes: ChangeFeed }) {
  /** Tags every write of exceptions or groups of a job announces. */
  const wrote = (projectId: string, jobIds: readonly string[], exceptionIds: readonly string[] = []) =>
    changes.wrote([tags.projectExceptions(projectId), ...jobIds.map(tags.job), ...exceptionIds.map(tags.exception)]);

  return {
    /** Exceptions by id (authorization is the caller's: it checks each one's project). */
    async findByIds(ids: readonly string[]): Promise<ExceptionRow[]> {
      readTagsOf(tags.exception, ids);
      const rows = await read<RawException[]>(sql`SELECT ${COLUMNS} FROM exceptions e WHERE e.id = ANY(${ids}::uuid[])`);
      readTagsOf(tags.projectExceptions, [...new Set(rows.map((row) => row.projectId))]);
      return rows.map(toRow);
    },

    /** A page of a project's exceptions, newest first (ties in creation time by id). */
    async page(projectId: string, filter: ExceptionFilter, page: PageRequest): Promise<ExceptionRow[]> {
      // A job's completion announces Project:<id>:jobs; exception writes announce Project:<id>:exceptions.
      readTags(tags.projectExceptions(projectId), tags.projectJobs(projectId));
      const rows = await read<RawException[]>(sql`
        SELECT ${COLUMNS} FROM exceptions e
        WHERE ${and([conditions(projectId, filter), afterCursor("e", page)])}
        ORDER BY e.created_at DESC, e.id DESC
        LIMIT ${page.limit + 1}`);
      return rows.map(toRow);
    },

    async count(projectId: string, filter: ExceptionFilter): Promise<number> {
      readTags(tags.projectExceptions(projectId), tags.projectJobs(projectId));
      const [row] = await read<{ n: number }[]>(sql`SELECT count(*)::int AS n FROM exceptions e WHERE ${conditions(projectId, filter)}`);
      return row!.n;
    },

    /** Comments of each exception, oldest first, in one query. */
    async commentsOf(exceptionIds: readonly string[]): Promise<ExceptionComment[]> {
      readTagsOf(tags.exception, exceptionIds);
      return read<ExceptionComment[]>(sql`
        SELECT id, exception_id AS "exceptionId", author_id AS "authorId", body, created_at AS "createdAt"
        FROM exception_comments WHERE exception_id = ANY(${exceptionIds}::uuid[]) ORDER BY exception_id, created_at, id`);
    },

    /** Locks exceptions by id (in id order) and returns them as they are now. */
    async lockExceptions(tx: DbTransaction, ids: readonly string[]): Promise<ExceptionRow[]> {
      const rows = await query<RawException>(tx, sql`SELECT ${COLUMNS} FROM exceptions e WHERE e.id = ANY(${ids}::uuid[]) ORDER BY e.id FOR UPDATE`);
      return rows.map(toRow);
    },

    /** Writes the lifecycle fields of one locked exception. */
    async update(
      tx: DbTransaction,
      row: Pick<ExceptionRow, "id" | "projectId" | "jobId">,
      change: ExceptionChange,
    ): Promise<void> {
      const sets: Sql[] = [sql`status = ${change.status}::"ExceptionStatus"`, sql`updated_at = now()`];
      if (change.assigneeId !== undefined) sets.push(sql`assignee_id = ${change.assigneeId}::uuid`);
      if (change.labels !== undefined) sets.push(sql`labels = ${change.labels}::text[]`);
      if (change.resolution !== undefined) {
        const resolved = change.resolution !== null;
        sets.push(
          sql`resolution = ${change.resolution}::"ExceptionResolution"`,
          sql`resolution_amount = ${change.resolutionAmount ?? null}::numeric`,
          sql`resolution_group_id = NULL`,
          sql`resolved_at = ${resolved ? raw("now()") : raw("NULL")}`,
          sql`resolved_by = ${change.resolvedById ?? null}::uuid`,
        );
      }
      await tx.$executeRawUnsafe(...toArgs(sql`UPDATE exceptions SET ${join(sets, ", ")} WHERE id = ${row.id}::uuid`));
      await wrote(row.projectId, [row.jobId], [row.id]);
    },

    async addComment(tx: DbTransaction, data: { exceptionId: string; authorId: string; body: string }): Promise<ExceptionComment> {
      return tx.exceptionComment.create({ data });
    },

    /** Whether a user may be given work in a project: its owner, a member who is not a VIEWER, or an ADMIN. */
    async canWorkIn(projectId: string, userId: string): Promise<boolean> {
      const [row] = await read<{ ok: boolean }[]>(sql`
        SELECT EXISTS (
          SELECT 1 FROM users u WHERE u.id = ${userId}::uuid AND u.is_active AND u.role <> 'VIEWER' AND (
            u.role = 'ADMIN'
            OR EXISTS (SELECT 1 FROM projects p WHERE p.id = ${projectId}::uuid AND p.owner_id = u.id)
            OR EXISTS (SELECT 1 FROM project_members m WHERE m.project_id = ${projectId}::uuid AND m.user_id = u.id AND m.role <> 'VIEWER'))
        ) AS ok`);
      return row!.ok;
    },

    // ---- match groups, for manual work ----

    /** Groups by id, as the API shows them (callers reach them through an authorized job or exception). */
    async findGroups(ids: readonly string[]): Promise<MatchGroup[]> {
      const rows = await read<MatchGroup[]>(sql`SELECT ${GROUP_COLUMNS} FROM match_groups g WHERE g.id = ANY(${ids}::uuid[])`);
      readTagsOf(tags.job, [...new Set(rows.map((row) => row.jobId))]);
      return rows;
    },

    /** A group by id with its job's project (no lock: for authorization before the transaction). */
    async findGroup(id: string): Promise<{ id: string; jobId: string; projectId: string } | null> {
      const [row] = await read<{ id: string; jobId: string; projectId: string }[]>(
        sql`SELECT id, job_id AS "jobId", project_id AS "projectId" FROM match_groups WHERE id = ${id}::uuid`,
      );
      return row ?? null;
    },

    /** Locks groups by id (in id order), with their exceptions' state. */
    async lockGroups(tx: DbTransaction, ids: readonly string[]): Promise<LockedGroup[]> {
      return query<LockedGroup>(tx, sql`
        SELECT ${LOCKED_GROUP} FROM match_groups g LEFT JOIN exceptions e ON e.id = g.id
        WHERE g.id = ANY(${ids}::uuid[]) ORDER BY g.id FOR UPDATE OF g`);
    },

    /**
     * Locks the groups of job `jobId` that hold any of `recordIds`, among those manual work may take records from
     * (every outcome but MATCHED: suggestions, discrepancies, unmatched, duplicates). Walks the job's part of the
     * (job_id, outcome, id) index from SUGGESTED on: no index on record ids, which would slow every job's COPY.
     * A group deleted by a transaction that committed while this one waited is skipped (READ COMMITTED), so its
     * records are then reported as no longer available rather than taken twice.
     */
    async lockGroupsOfRecords(tx: DbTransaction, jobId: string, recordIds: readonly string[]): Promise<LockedGroup[]> {
      return query<LockedGroup>(tx, sql`
        SELECT ${LOCKED_GROUP} FROM match_groups g LEFT JOIN exceptions e ON e.id = g.id
        WHERE g.job_id = ${jobId}::uuid AND g.outcome > 'MATCHED'
          AND (g.left_record_ids && ${recordIds}::uuid[] OR g.right_record_ids && ${recordIds}::uuid[])
        ORDER BY g.id FOR UPDATE OF g`);
    },

    /** Records by id with their data source, amount and currency. */
    async workRecords(tx: DbTransaction, ids: readonly string[]): Promise<WorkRecord[]> {
      return query<WorkRecord>(tx, sql`
        SELECT id::text, data_source_id::text AS "dataSourceId", external_id AS "externalId", amount::text AS amount, currency,
          booked_date::text AS "bookedDate"
        FROM records WHERE id = ANY(${ids}::uuid[])`);
    },

    /** Deletes groups (their records are in other groups by now). */
    async deleteGroups(tx: DbTransaction, ids: readonly string[]): Promise<void> {
      await tx.$executeRawUnsafe(...toArgs(sql`DELETE FROM match_groups WHERE id = ANY(${ids}::uuid[])`));
    },

    /** Sets a locked group's status (confirm). */
    async setGroupStatus(tx: DbTransaction, id: string, status: MatchGroup["status"]): Promise<void> {
      await tx.$executeRawUnsafe(...toArgs(sql`UPDATE match_groups SET status = ${status}::"MatchStatus" WHERE id = ${id}::uuid`));
    },

    /** Adds a CONFIRMED manual (or forced) group to a job; returns its id. */
    async insertManualGroup(
      tx: DbTransaction,
      group: { jobId: string; projectId: string; left: string[]; right: string[]; kind: MatchGroup["kind"]; rule: string; amountDelta: string; dateDeltaDays: number; detail: string },
    ): Promise<string> {
      const breakdown = JSON.stringify([{ comparator: "manual", similarity: 1, weight: 1, passed: true, detail: group.detail }]);
      const [row] = await query<{ id: string }>(tx, sql`
        INSERT INTO match_groups (id, job_id, project_id, left_record_ids, right_record_ids, kind, outcome, status, confidence,
          ambiguous, rule, pass, amount_delta, date_delta_days, duplicate_of, score_breakdown)
        VALUES (${raw(manualGroupIdSql("$1"))}, ${group.jobId}::uuid, ${group.projectId}::uuid, ${group.left}::uuid[], ${group.right}::uuid[],
          ${group.kind}::"MatchKind", 'MATCHED', 'CONFIRMED', 1, false, ${group.rule}, 0, ${group.amountDelta}::numeric,
          ${group.dateDeltaDays}::int, NULL, ${breakdown}::jsonb)
        RETURNING id::text`);
      return row!.id;
    },

    /**
     * Puts records back as UNMATCHED_LEFT / UNMATCHED_RIGHT singletons of a job (as the engine's unmatched stage makes
     * them) and opens their exceptions; returns the new groups' ids, left records first.
     */
    async insertSingletons(tx: DbTransaction, job: { jobId: string; projectId: string }, left: readonly string[], right: readonly string[]): Promise<string[]> {
      if (left.length + right.length === 0) return [];
      const rows = await query<{ id: string }>(tx, sql`
        INSERT INTO match_groups (id, job_id, project_id, left_record_ids, right_record_ids, kind, outcome, status, confidence,
          ambiguous, rule, pass, amount_delta, date_delta_days, duplicate_of, score_breakdown)
        SELECT ${raw(manualGroupIdSql("$1"))}, ${job.jobId}::uuid, ${job.projectId}::uuid,
          CASE WHEN s.left_side THEN ARRAY[r.id] ELSE '{}'::uuid[] END, CASE WHEN s.left_side THEN '{}'::uuid[] ELSE ARRAY[r.id] END,
          'SINGLE', CASE WHEN s.left_side THEN 'UNMATCHED_LEFT' ELSE 'UNMATCHED_RIGHT' END::"MatchOutcome", 'PROPOSED', 0, false,
          'unmatched', 0, CASE WHEN s.left_side THEN -r.amount ELSE r.amount END, 0, NULL, NULL
        FROM (SELECT unnest(${left}::uuid[]) AS id, true AS left_side, 0 AS o UNION ALL SELECT unnest(${right}::uuid[]), false, 1) s
        JOIN records r ON r.id = s.id
        ORDER BY s.o, r.booked_date, r.id
        RETURNING id::text`);
      const ids = rows.map((row) => row.id);
      await tx.$executeRawUnsafe(openExceptionsSql(), job.jobId, ids);
      return ids;
    },

    /**
     * Resolves the still unresolved exceptions of groups that manual work took apart or matched: MATCHED (their
     * records are in `byGroup`) or SUPERSEDED (their records have new groups and exceptions). Returns their ids.
     */
    async resolveExceptionsOfGroups(
      tx: DbTransaction,
      groupIds: readonly string[],
      resolution: "MATCHED" | "SUPERSEDED",
      byGroup: string | null,
      actorId: string,
    ): Promise<{ id: string; before: ExceptionStatus }[]> {
      if (groupIds.length === 0) return [];
      return query<{ id: string; before: ExceptionStatus }>(tx, sql`
        UPDATE exceptions e SET status = 'RESOLVED', resolution = ${resolution}::"ExceptionResolution", resolution_group_id = ${byGroup}::uuid,
          resolution_amount = NULL, resolved_at = now(), resolved_by = ${actorId}::uuid, updated_at = now()
        FROM (SELECT id, status FROM exceptions WHERE id = ANY(${groupIds}::uuid[]) AND status <> 'RESOLVED' ORDER BY id FOR UPDATE) old
        WHERE e.id = old.id
        RETURNING e.id::text, old.status::text AS before`);
    },

    /** Remembers rejected pairs (a pair rejected before stays as first rejected). */
    async rejectPairs(
      tx: DbTransaction,
      pairs: { projectId: string; jobId: string; left: WorkRecord; right: WorkRecord; rejectedById: string; reason: string | null }[],
    ): Promise<void> {
      if (pairs.length === 0) return;
      await tx.rejectedPair.createMany({
        data: pairs.map((pair) => ({
          projectId: pair.projectId,
          leftSourceId: pair.left.dataSourceId,
          leftExternalId: pair.left.externalId,
          rightSourceId: pair.right.dataSourceId,
          rightExternalId: pair.right.externalId,
          leftRecordId: pair.left.id,
          rightRecordId: pair.right.id,
          jobId: pair.jobId,
          rejectedById: pair.rejectedById,
          reason: pair.reason,
        })),
        skipDuplicates: true,
      });
    },

    /** Announces a manual change of a job's groups and exceptions (after commit). */
    wroteGroups: (projectId: string, jobId: string, exceptionIds: readonly string[]) => wrote(projectId, [jobId], exceptionIds),
  };
}

/** `$executeRawUnsafe`'s arguments for a statement. */
function toArgs(statement: Sql): [string, ...unknown[]] {
  return [statement.text, ...statement.values];
}

export type ExceptionRepository = ReturnType<typeof createExceptionRepository>;
