/**
 * Manual work on a completed job's match groups: confirm or reject a proposal, unmatch a group, match records by
 * hand (N:M, balancing) or force a match with a difference (MANAGER/ADMIN, with a reason code). Responsible for
 * keeping "every record of the job in exactly one group": each action locks the groups it reads (FOR UPDATE, in id
 * order) and decides on them as they are, so of two people acting on the same records at once the second sees the
 * first's result and is refused, never both taken. A group that loses records is dissolved: the records taken go to
 * the new group, the others become UNMATCHED_LEFT/RIGHT singletons with new exceptions; the exceptions of dissolved
 * groups are resolved (MATCHED when all their records were taken, else SUPERSEDED). Every action is audited.
 */
import { policy, type Viewer } from "../../auth/policy.js";
import type { Database, DbTransaction } from "../../db/database.js";
import { BadUserInputError, ForbiddenError, NotFoundError } from "../../graphql/errors.js";
import type { MatchGroup, ReconciliationJob } from "../../graphql/models.js";
import { requireId } from "../../graphql/validate.js";
import { decimalOf } from "../jobs/job-results.js";
import type { JobRepository } from "../jobs/job-repository.js";
import { scaledAmount } from "../jobs/record-text.js";
import { optionalReason, type AuditService } from "../audit/audit-service.js";
import type { ProjectService } from "../projects/project-service.js";
import type { ExceptionRepository, ExceptionRow, LockedGroup, WorkRecord } from "./exception-repository.js";

/** Most records one manual match takes (both sides). */
export const MAX_MATCH_RECORDS = 200;

export const FORCE_REASON_CODES = ["TIMING_DIFFERENCE", "BANK_FEE", "FX_DIFFERENCE", "ROUNDING", "PARTIAL_PAYMENT", "DATA_ENTRY_ERROR", "OTHER"] as const;
export type ForceReasonCode = (typeof FORCE_REASON_CODES)[number];

/** Sums of one currency: left, right, and left − right (exact decimal strings). */
export interface CurrencyDifference {
  currency: string;
  left: string;
  right: string;
  difference: string;
}

/** What a manual action did: the groups it made or changed, the difference it left, the exceptions it touched. */
export interface MatchWorkResult {
  groups: MatchGroup[];
  difference: CurrencyDifference[];
  resolvedExceptions: ExceptionRow[];
  openedExceptions: ExceptionRow[];
}

/** Per-currency sums of both sides, currencies in order; `balanced` when every difference is zero. */
export function differenceOf(left: readonly WorkRecord[], right: readonly WorkRecord[]): { rows: CurrencyDifference[]; balanced: boolean } {
  const sums = new Map<string, { left: bigint; right: bigint }>();
  const add = (records: readonly WorkRecord[], side: "left" | "right") => {
    for (const record of records) {
      const entry = sums.get(record.currency) ?? sums.set(record.currency, { left: 0n, right: 0n }).get(record.currency)!;
      entry[side] += scaledAmount(record.amount);
    }
  };
  add(left, "left");
  add(right, "right");
  const rows = [...sums]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([currency, s]) => ({ currency, left: decimalOf(s.left), right: decimalOf(s.right), difference: decimalOf(s.left - s.right) }));
  return { rows, balanced: [...sums.values()].every((s) => s.left === s.right) };
}

const describe = (rows: readonly CurrencyDifference[]) =>
  rows.filter((row) => scaledAmount(row.difference) !== 0n).map((row) => `${row.currency} ${row.difference}`).join(", ");

/** Days between two 'YYYY-MM-DD' dates (b − a). */
const daysBetween = (a: string, b: string) => Math.round((Date.parse(`${b}T00:00:00Z`) - Date.parse(`${a}T00:00:00Z`)) / 86_400_000);

const byBooking = (a: WorkRecord, b: WorkRecord) => (a.bookedDate < b.bookedDate ? -1 : a.bookedDate > b.bookedDate ? 1 : a.id < b.id ? -1 : 1);

function kindOf(left: number, right: number): MatchGroup["kind"] {
  if (left === 1) return right === 1 ? "ONE_TO_ONE" : "ONE_TO_MANY";
  return right === 1 ? "MANY_TO_ONE" : "MANY_TO_MANY";
}

function groupSnapshot(group: LockedGroup) {
  return { id: group.id, outcome: group.outcome, status: group.status, left: group.leftRecordIds, right: group.rightRecordIds };
}

/** Records of a job named by hand, per side: what manualMatch, forceMatch and matchDifference are given. */
interface RecordSelection {
  leftRecordIds: readonly string[];
  rightRecordIds: readonly string[];
}

/** A selection's ids once checked (`requireRecordIds`), and all of them. */
type SelectedIds = { leftRecordIds: string[]; rightRecordIds: string[]; all: string[] };

/**
 * The ids of a selection as every manual action takes them: at most MAX_MATCH_RECORDS in all, each valid and named
 * once; a refusal names the id's `leftRecordIds[i]` or `rightRecordIds[i]`.
 */
function requireRecordIds(selection: RecordSelection): SelectedIds {
  if (selection.leftRecordIds.length + selection.rightRecordIds.length > MAX_MATCH_RECORDS) {
    throw new BadUserInputError("rightRecordIds", `a match takes at most ${MAX_MATCH_RECORDS} records`);
  }
  const seen = new Set<string>();
  const side = (field: keyof RecordSelection) =>
    selection[field].map((value, index) => {
      const id = requireId(value, `${field}[${index}]`);
      if (seen.has(id)) throw new BadUserInputError(`${field}[${index}]`, `record ${id} is named twice`);
      seen.add(id);
      return id;
    });
  const ids = { leftRecordIds: side("leftRecordIds"), rightRecordIds: side("rightRecordIds") };
  return { ...ids, all: [...seen] };
}

export function createMatchWorkService(deps: {
  transaction: Database["transaction"];
  exceptions: ExceptionRepository;
  jobs: Pick<JobRepository, "findById">;
  projects: Pick<ProjectService, "authorize">;
  audit: AuditService;
}) {
  const { transaction, exceptions, jobs, projects, audit } = deps;

  /** The viewer as an actor allowed to work (or approve differences) in a project; `what` names the missing thing. */
  async function authorizeProject(viewer: Viewer | null, projectId: string, what: string, rights: "work" | "approve") {
    const { actor, relation } = await projects.authorize(viewer, projectId).catch((error) => {
      throw error instanceof NotFoundError ? new NotFoundError(what) : error;
    });
    if (!policy.workExceptions(actor, relation)) throw new ForbiddenError("Your role in this project does not allow you to change matches");
    if (rights === "approve" && !policy.approveDifferences(actor, relation)) throw new ForbiddenError("Only a MANAGER or an ADMIN may force a match");
    return actor;
  }

  /** A completed job with kept results, and the actor. */
  async function authorizeJob(viewer: Viewer | null, rawJobId: string, rights: "work" | "approve") {
    const id = requireId(rawJobId, "jobId");
    const job = await jobs.findById(id);
    if (!job) throw new NotFoundError("ReconciliationJob");
    const actor = await authorizeProject(viewer, job.projectId, "ReconciliationJob", rights);
    if (job.status !== "COMPLETED") throw new BadUserInputError("jobId", `the job is ${job.status}: only a completed job's results can be changed`);
    if (job.dryRun) throw new BadUserInputError("jobId", "the job was a dry run: it kept no groups");
    return { actor, job };
  }

  async function authorizeGroup(viewer: Viewer | null, rawGroupId: string) {
    const id = requireId(rawGroupId, "groupId");
    const group = await exceptions.findGroup(id);
    if (!group) throw new NotFoundError("MatchGroup");
    return { actor: await authorizeProject(viewer, group.projectId, "MatchGroup", "work"), id };
  }

  /**
   * The records of a selection, each checked to be a record of the job's data source on the side it was named for
   * (a right record named as left, or a record of another job's sources, is refused naming its `field[i]`).
   */
  async function recordsOfSides(tx: DbTransaction, job: Pick<ReconciliationJob, "leftSourceId" | "rightSourceId">, ids: SelectedIds) {
    const records = new Map((await exceptions.workRecords(tx, ids.all)).map((r) => [r.id, r]));
    const side = (field: keyof RecordSelection, source: string, name: string) =>
      ids[field].map((id, index) => {
        const record = records.get(id);
        if (!record || record.dataSourceId !== source) throw new BadUserInputError(`${field}[${index}]`, `record ${id} is not a record of the job's ${name} data source`);
        return record;
      });
    return { left: side("leftRecordIds", job.leftSourceId, "left"), right: side("rightRecordIds", job.rightSourceId, "right") };
  }

  /** Locks one group, or NOT_FOUND when it was taken apart meanwhile. */
  async function lockGroup(tx: DbTransaction, id: string): Promise<LockedGroup> {
    const [group] = await exceptions.lockGroups(tx, [id]);
    if (!group) throw new NotFoundError("MatchGroup");
    return group;
  }

  /** Records of a locked group, left and right. */
  async function recordsOf(tx: DbTransaction, group: LockedGroup) {
    const records = new Map((await exceptions.workRecords(tx, [...group.leftRecordIds, ...group.rightRecordIds])).map((r) => [r.id, r]));
    return { left: group.leftRecordIds.map((id) => records.get(id)!), right: group.rightRecordIds.map((id) => records.get(id)!) };
  }

  /** Reads back what an action made, after its transaction committed. */
  async function result(groupIds: string[], difference: CurrencyDifference[], resolved: string[], opened: string[]): Promise<MatchWorkResult> {
    const [groups, resolvedRows, openedRows] = await Promise.all([
      exceptions.findGroups(groupIds),
      resolved.length ? exceptions.findByIds(resolved) : [],
      opened.length ? exceptions.findByIds(opened) : [],
    ]);
    const order = (ids: string[]) => <T extends { id: string }>(rows: T[]) => ids.map((id) => rows.find((row) => row.id === id)!).filter(Boolean);
    return { groups: order(groupIds)(groups), difference, resolvedExceptions: order(resolved)(resolvedRows), openedExceptions: order(opened)(openedRows) };
  }

  /**
   * Splits a locked group into singletons (its exception SUPERSEDED) and audits it as `action` (with the group as
   * it was); returns the action's result.
   */
  async function split(tx: DbTransaction, group: LockedGroup, actor: Viewer, action: string, reason: string | null, after: Record<string, unknown> = {}) {
    const { left, right } = await recordsOf(tx, group);
    await exceptions.deleteGroups(tx, [group.id]);
    const opened = await exceptions.insertSingletons(tx, group, group.leftRecordIds, group.rightRecordIds);
    const resolved = (await exceptions.resolveExceptionsOfGroups(tx, [group.id], "SUPERSEDED", null, actor.id)).map((row) => row.id);
    await exceptions.wroteGroups(group.projectId, group.jobId, [...resolved, ...opened]);
    await audit.record(tx, {
      userId: actor.id,
      projectId: group.projectId,
      action,
      resourceType: "MatchGroup",
      resourceId: group.id,
      before: groupSnapshot(group),
      after: { ...after, groups: opened, openedExceptions: opened, resolvedExceptions: resolved },
      reason,
    });
    return { difference: differenceOf(left, right).rows, opened, resolved };
  }

  /**
   * manualMatch and forceMatch: takes the records out of their groups into one new CONFIRMED group of outcome
   * MATCHED (rule `manual`, or `forced (CODE)`), in one transaction.
   */
  async function match(
    viewer: Viewer | null,
    input: { jobId: string; leftRecordIds: readonly string[]; rightRecordIds: readonly string[]; reason?: string | null },
    force: { code: ForceReasonCode } | null,
  ): Promise<MatchWorkResult> {
    const reason = optionalReason(input.reason);
    if (force?.code === "OTHER" && !reason) throw new BadUserInputError("reason", "is required with reason code OTHER");
    for (const field of ["leftRecordIds", "rightRecordIds"] as const) {
      if (input[field].length === 0) throw new BadUserInputError(field, "must name at least one record");
    }
    const ids = requireRecordIds(input);
    const { all } = ids;
    const taken = new Set(all);
    const { actor, job } = await authorizeJob(viewer, input.jobId, force ? "approve" : "work");
    const fieldOf = (id: string) => {
      const left = ids.leftRecordIds.indexOf(id);
      return left >= 0 ? `leftRecordIds[${left}]` : `rightRecordIds[${ids.rightRecordIds.indexOf(id)}]`;
    };

    const outcome = await transaction(async (tx) => {
      const { left, right } = await recordsOfSides(tx, job, ids);
      const groups = await exceptions.lockGroupsOfRecords(tx, job.id, all);
      const groupOf = new Map<string, LockedGroup>();
      for (const group of groups) for (const id of [...group.leftRecordIds, ...group.rightRecordIds]) groupOf.set(id, group);
      for (const id of all) {
        const group = groupOf.get(id);
        if (!group) throw new BadUserInputError(fieldOf(id), `record ${id} is not available: it is in a confirmed match of this job (unmatch that first), or someone just matched it`);
        if (group.status === "CONFIRMED") throw new BadUserInputError(fieldOf(id), `record ${id} is in group ${group.id}, which is CONFIRMED (unmatch it first)`);
        if (group.exceptionResolution === "WRITTEN_OFF" || group.exceptionResolution === "ADJUSTED") {
          throw new BadUserInputError(fieldOf(id), `record ${id} was ${group.exceptionResolution === "WRITTEN_OFF" ? "written off" : "adjusted"} (exception ${group.id}): reopen that exception first`);
        }
      }

      const difference = differenceOf(left, right);
      if (!force && !difference.balanced) {
        throw new BadUserInputError("rightRecordIds", `the records leave a difference of ${describe(difference.rows)} (left − right): only forceMatch (MANAGER/ADMIN, with a reason code) accepts a difference`);
      }
      left.sort(byBooking);
      right.sort(byBooking);
      const single = difference.rows.length === 1 ? difference.rows[0]! : null;
      const groupId = await exceptions.insertManualGroup(tx, {
        jobId: job.id,
        projectId: job.projectId,
        left: left.map((r) => r.id),
        right: right.map((r) => r.id),
        kind: kindOf(left.length, right.length),
        rule: force ? `forced (${force.code})` : "manual",
        // Right minus left, as on every group; 0 when the records are in several currencies (see the difference).
        amountDelta: single ? decimalOf(-scaledAmount(single.difference)) : "0",
        dateDeltaDays: daysBetween(left[0]!.bookedDate, right[0]!.bookedDate),
        detail: `${force ? `forced (${force.code})` : "matched"} by ${actor.name}${reason ? `: ${reason}` : ""}`,
      });
      // The groups the records came from are dissolved; records they held that were not taken become singletons.
      const whole: string[] = [];
      const partial: string[] = [];
      const leftovers = { left: [] as string[], right: [] as string[] };
      for (const group of groups) {
        const restLeft = group.leftRecordIds.filter((id) => !taken.has(id));
        const restRight = group.rightRecordIds.filter((id) => !taken.has(id));
        (restLeft.length + restRight.length ? partial : whole).push(group.id);
        leftovers.left.push(...restLeft);
        leftovers.right.push(...restRight);
      }
      await exceptions.deleteGroups(tx, groups.map((g) => g.id));
      const opened = await exceptions.insertSingletons(tx, { jobId: job.id, projectId: job.projectId }, leftovers.left, leftovers.right);
      const resolved = [
        ...(await exceptions.resolveExceptionsOfGroups(tx, whole, "MATCHED", groupId, actor.id)),
        ...(await exceptions.resolveExceptionsOfGroups(tx, partial, "SUPERSEDED", null, actor.id)),
      ].map((row) => row.id);
      await exceptions.wroteGroups(job.projectId, job.id, [...resolved, ...opened]);
      await audit.record(tx, {
        userId: actor.id,
        projectId: job.projectId,
        action: force ? "match.force" : "match.manual",
        resourceType: "MatchGroup",
        resourceId: groupId,
        before: { groups: groups.map(groupSnapshot) },
        after: {
          groupId,
          jobId: job.id,
          left: left.map((r) => r.id),
          right: right.map((r) => r.id),
          difference: difference.rows,
          ...(force ? { reasonCode: force.code } : {}),
          resolvedExceptions: resolved,
          openedExceptions: opened,
        },
        reason: reason ?? force?.code ?? null,
      });
      return { groupId, difference: difference.rows, resolved, opened };
    });
    return result([outcome.groupId, ...outcome.opened], outcome.difference, outcome.resolved, outcome.opened);
  }

  return {
    /**
     * The per-currency sums and differences of records of a job, as a manual match would see them (writes nothing):
     * ids are refused as manualMatch refuses them — invalid, named twice, not a record of the job's data source on
     * their side — never left out of the sums. A side may be empty (a selection still being made).
     */
    async difference(viewer: Viewer | null, rawJobId: string, leftRecordIds: readonly string[], rightRecordIds: readonly string[]): Promise<CurrencyDifference[]> {
      const ids = requireRecordIds({ leftRecordIds, rightRecordIds });
      const { job } = await authorizeJob(viewer, rawJobId, "work");
      return transaction(async (tx) => {
        const { left, right } = await recordsOfSides(tx, job, ids);
        return differenceOf(left, right).rows;
      });
    },

    /** Records matched by hand: their sums must balance in every currency. */
    manualMatch: (viewer: Viewer | null, input: { jobId: string; leftRecordIds: readonly string[]; rightRecordIds: readonly string[]; reason?: string | null }) =>
      match(viewer, input, null),

    /** Records matched by hand with a difference accepted (MANAGER/ADMIN; a reason code, and text for OTHER). */
    forceMatch: (
      viewer: Viewer | null,
      input: { jobId: string; leftRecordIds: readonly string[]; rightRecordIds: readonly string[]; reasonCode: ForceReasonCode; reason?: string | null },
    ) => match(viewer, input, { code: input.reasonCode }),

    /** Accepts a proposed group whose sums balance (SUGGESTED, or a discrepancy such as DATE_LAG): CONFIRMED. */
    async confirm(viewer: Viewer | null, rawGroupId: string, rawReason?: string | null): Promise<MatchWorkResult> {
      const reason = optionalReason(rawReason);
      const { actor, id } = await authorizeGroup(viewer, rawGroupId);
      const outcome = await transaction(async (tx) => {
        const group = await lockGroup(tx, id);
        if (group.status !== "PROPOSED") throw new BadUserInputError("groupId", `group ${id} is ${group.status}: only a PROPOSED group can be confirmed`);
        if (!group.leftRecordIds.length || !group.rightRecordIds.length) throw new BadUserInputError("groupId", `group ${id} is ${group.outcome}: it has records on one side only (use manualMatch)`);
        const { left, right } = await recordsOf(tx, group);
        const difference = differenceOf(left, right);
        if (!difference.balanced) throw new BadUserInputError("groupId", `group ${id} leaves a difference of ${describe(difference.rows)} (left − right): use forceMatch (MANAGER/ADMIN)`);
        await exceptions.setGroupStatus(tx, id, "CONFIRMED");
        const resolved = (await exceptions.resolveExceptionsOfGroups(tx, [id], "MATCHED", id, actor.id)).map((row) => row.id);
        await exceptions.wroteGroups(group.projectId, group.jobId, resolved);
        await audit.record(tx, {
          userId: actor.id,
          projectId: group.projectId,
          action: "match.confirm",
          resourceType: "MatchGroup",
          resourceId: id,
          before: { status: group.status },
          after: { status: "CONFIRMED", resolvedExceptions: resolved },
          reason,
        });
        return { difference: difference.rows, resolved };
      });
      return result([id], outcome.difference, outcome.resolved, []);
    },

    /**
     * Refuses a proposed group: its records go back as unmatched singletons (with exceptions) and every left/right
     * pair of it is remembered, so no later job of the project proposes it again.
     */
    async reject(viewer: Viewer | null, rawGroupId: string, rawReason?: string | null): Promise<MatchWorkResult> {
      const reason = optionalReason(rawReason);
      const { actor, id } = await authorizeGroup(viewer, rawGroupId);
      const outcome = await transaction(async (tx) => {
        const group = await lockGroup(tx, id);
        if (group.status !== "PROPOSED") throw new BadUserInputError("groupId", `group ${id} is ${group.status}: only a PROPOSED group can be rejected (unmatch a confirmed one)`);
        if (!group.leftRecordIds.length || !group.rightRecordIds.length) throw new BadUserInputError("groupId", `group ${id} is ${group.outcome}: it pairs nothing to reject`);
        const { left, right } = await recordsOf(tx, group);
        await exceptions.rejectPairs(
          tx,
          left.flatMap((l) => right.map((r) => ({ projectId: group.projectId, jobId: group.jobId, left: l, right: r, rejectedById: actor.id, reason }))),
        );
        return split(tx, group, actor, "match.reject", reason, { status: "REJECTED", rejectedPairs: left.length * right.length });
      });
      return result(outcome.opened, outcome.difference, outcome.resolved, outcome.opened);
    },

    /** Takes a group with records on both sides apart (any status, AUTO matches too): unmatched singletons. */
    async unmatch(viewer: Viewer | null, rawGroupId: string, rawReason?: string | null): Promise<MatchWorkResult> {
      const reason = optionalReason(rawReason);
      const { actor, id } = await authorizeGroup(viewer, rawGroupId);
      const outcome = await transaction(async (tx) => {
        const group = await lockGroup(tx, id);
        if (!group.leftRecordIds.length || !group.rightRecordIds.length) throw new BadUserInputError("groupId", `group ${id} is ${group.outcome}: a single record cannot be unmatched`);
        return split(tx, group, actor, "match.unmatch", reason);
      });
      return result(outcome.opened, outcome.difference, outcome.resolved, outcome.opened);
    },
  };
}

export type MatchWorkService = ReturnType<typeof createMatchWorkService>;
