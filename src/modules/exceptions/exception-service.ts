/**
 * Exceptions as work: listing and filtering them, and their lifecycle (assign, pending, resolve, reopen, write off,
 * adjust), comments and labels. Responsible for authorization through each exception's project (an exception one
 * may not see reads as missing), for input checks that name the field, and for validating every transition
 * (exception-lifecycle.ts) on rows locked in the transaction that changes them, each change audited with its
 * before, after and reason. Talks to the exception repository, the project service and the audit service.
 */
import { policy, type Viewer } from "../../auth/policy.js";
import type { Database } from "../../db/database.js";
import { BadUserInputError, ForbiddenError, NotFoundError } from "../../graphql/errors.js";
import type { Loaders } from "../../graphql/loaders.js";
import { pageRequest, toConnection } from "../../graphql/pagination.js";
import { isId, requireId, requireText } from "../../graphql/validate.js";
import { MAX_REASON_LENGTH, optionalReason, type AuditService } from "../audit/audit-service.js";
import type { ProjectService } from "../projects/project-service.js";
import { nextStatus, type LifecycleAction } from "./exception-lifecycle.js";
import type { ExceptionChange, ExceptionFilter, ExceptionRepository, ExceptionRow, ExceptionStatus } from "./exception-repository.js";

/** Most exceptions one bulk mutation changes. */
export const MAX_BULK = 500;
const MAX_LABELS = 20;
const MAX_LABEL_LENGTH = 50;
const MAX_COMMENT_LENGTH = 5000;
/** Oldest age a list filter may ask for: a century (millions of days reach back before PostgreSQL's first date). */
export const MAX_AGE_DAYS = 36_500;

/** A reason that must be given (write-offs, resolutions). */
export function requiredReason(value: string | null | undefined, field = "reason"): string {
  return requireText(value ?? "", field, { max: MAX_REASON_LENGTH });
}

/** What an exception looked like before and after a change, for the audit event. */
function snapshot(row: Pick<ExceptionRow, "status" | "assigneeId" | "labels" | "resolution" | "resolutionAmount">) {
  return { status: row.status, assigneeId: row.assigneeId, labels: row.labels, resolution: row.resolution, resolutionAmount: row.resolutionAmount };
}

type Change = ExceptionChange;

export function createExceptionService(deps: {
  transaction: Database["transaction"];
  exceptions: ExceptionRepository;
  projects: Pick<ProjectService, "authorize" | "get">;
  audit: AuditService;
}) {
  const { transaction, exceptions, projects, audit } = deps;

  /** Ids as sent: valid, distinct, at least one and at most MAX_BULK. */
  function requireIds(rawIds: readonly string[], field: string): string[] {
    if (rawIds.length === 0) throw new BadUserInputError(field, "must name at least one exception");
    if (rawIds.length > MAX_BULK) throw new BadUserInputError(field, `must name at most ${MAX_BULK} exceptions`);
    return [...new Set(rawIds.map((id, index) => requireId(id, `${field}[${index}]`)))];
  }

  /**
   * The exceptions of `ids` and the viewer as an actor allowed to `rights` in each of their projects; an id the
   * viewer may not see is NOT_FOUND, like one that does not exist.
   */
  async function authorize(viewer: Viewer | null, ids: string[], rights: "work" | "approve") {
    const rows = await exceptions.findByIds(ids);
    if (rows.length !== ids.length) throw new NotFoundError("Exception");
    let actor: Viewer | null = null;
    for (const projectId of new Set(rows.map((row) => row.projectId))) {
      const found = await projects.authorize(viewer, projectId).catch((error) => {
        throw error instanceof NotFoundError ? new NotFoundError("Exception") : error;
      });
      actor = found.actor;
      if (!policy.workExceptions(found.actor, found.relation)) throw new ForbiddenError("Your role in this project does not allow you to work on exceptions");
      if (rights === "approve" && !policy.approveDifferences(found.actor, found.relation)) {
        throw new ForbiddenError("Only a MANAGER or an ADMIN may write off, adjust, or reopen a write-off or adjustment");
      }
    }
    return { actor: actor!, rows };
  }

  /**
   * Applies `decide` to each exception of `ids` (locked, as they are now) in one transaction: all change, or none
   * (the first refusal names its `field[index]`). Each change is audited. Returns the exceptions as they are after.
   */
  async function change(
    actor: Viewer,
    ids: string[],
    field: string,
    action: string,
    reason: string | null,
    decide: (row: ExceptionRow) => Change,
  ): Promise<ExceptionRow[]> {
    await transaction(async (tx) => {
      const locked = new Map((await exceptions.lockExceptions(tx, ids)).map((row) => [row.id, row]));
      for (const [index, id] of ids.entries()) {
        const row = locked.get(id);
        if (!row) throw new NotFoundError("Exception");
        let next: Change;
        try {
          next = decide(row);
        } catch (error) {
          if (error instanceof RefusedTransition) throw new BadUserInputError(field === "ids" ? `ids[${index}]` : field, `exception ${id} ${error.message}`);
          throw error;
        }
        await exceptions.update(tx, row, next);
        await audit.record(tx, {
          userId: actor.id,
          projectId: row.projectId,
          action,
          resourceType: "Exception",
          resourceId: row.id,
          before: snapshot(row),
          after: snapshot({ ...row, ...next }),
          reason,
        });
      }
    });
    const after = new Map((await exceptions.findByIds(ids)).map((row) => [row.id, row]));
    return ids.map((id) => after.get(id)!);
  }

  /** The next status of `row` after `action`, or a refusal naming its current status. */
  function transition(row: ExceptionRow, action: LifecycleAction): ExceptionStatus {
    const next = nextStatus(row, action);
    if ("refused" in next) throw new RefusedTransition(next.refused);
    return next.status;
  }

  return {
    /** One exception, or null if it does not exist or the viewer may not see its project. */
    async get(viewer: Viewer | null, id: string, loaders: Loaders): Promise<ExceptionRow | null> {
      if (!viewer || !isId(id)) return null;
      const row = await loaders.exceptionById.load(id.toLowerCase());
      if (!row) return null;
      return (await loaders.projectById.load(row.projectId)) ? row : null;
    },

    /** A project's exceptions, newest first, narrowed by `filter` (empty if the viewer may not see the project). */
    async list(viewer: Viewer | null, args: { projectId: string; filter?: ExceptionFilter | null; first?: number | null; after?: string | null }) {
      const page = pageRequest(args);
      const filter = validFilter(args.filter ?? {});
      const project = await projects.get(viewer, args.projectId);
      if (!project) return toConnection<ExceptionRow>([], page, async () => 0, 0);
      const rows = await exceptions.page(project.id, filter, page);
      return toConnection(rows, page, () => exceptions.count(project.id, filter));
    },

    /** Gives exceptions to `assigneeId` (OPEN or PENDING → ASSIGNED), or takes them back (null: → OPEN). */
    async assign(viewer: Viewer | null, rawIds: readonly string[], rawAssigneeId: string | null | undefined, rawReason?: string | null) {
      const ids = requireIds(rawIds, "ids");
      const reason = optionalReason(rawReason);
      const assigneeId = rawAssigneeId == null ? null : requireId(rawAssigneeId, "assigneeId");
      const { actor, rows } = await authorize(viewer, ids, "work");
      if (assigneeId) {
        for (const projectId of new Set(rows.map((row) => row.projectId))) {
          if (!(await exceptions.canWorkIn(projectId, assigneeId))) {
            throw new BadUserInputError("assigneeId", `user ${assigneeId} cannot work in project ${projectId} (not an active member with a role above VIEWER)`);
          }
        }
      }
      return change(actor, ids, "ids", assigneeId ? "exception.assign" : "exception.unassign", reason, (row) =>
        assigneeId ? { status: transition(row, "assign"), assigneeId } : { status: transition(row, "unassign"), assigneeId: null },
      );
    },

    /** ASSIGNED → PENDING: its assignee waits on someone else (the bank, a colleague). */
    async markPending(viewer: Viewer | null, rawId: string, rawReason?: string | null): Promise<ExceptionRow> {
      const ids = [requireId(rawId, "id")];
      const { actor } = await authorize(viewer, ids, "work");
      const [row] = await change(actor, ids, "id", "exception.pending", optionalReason(rawReason), (row) => ({ status: transition(row, "pending") }));
      return row!;
    },

    /** Closes exceptions with an explanation (resolution EXPLAINED); the reason is required. */
    async resolve(viewer: Viewer | null, rawIds: readonly string[], rawReason: string): Promise<ExceptionRow[]> {
      const ids = requireIds(rawIds, "ids");
      const reason = requiredReason(rawReason);
      const { actor } = await authorize(viewer, ids, "work");
      return change(actor, ids, "ids", "exception.resolve", reason, (row) => ({
        status: transition(row, "resolve"),
        resolution: "EXPLAINED",
        resolvedById: actor.id,
      }));
    },

    /** Writes off or adjusts an exception (MANAGER/ADMIN): RESOLVED with the amount (default: its exposure). */
    async writeOff(viewer: Viewer | null, rawId: string, input: { kind: "WRITE_OFF" | "ADJUSTMENT"; amount?: string | null; reason: string }): Promise<ExceptionRow> {
      const ids = [requireId(rawId, "id")];
      const reason = requiredReason(input.reason, "input.reason");
      const { actor } = await authorize(viewer, ids, "approve");
      const resolution = input.kind === "WRITE_OFF" ? "WRITTEN_OFF" : "ADJUSTED";
      const [row] = await change(actor, ids, "id", input.kind === "WRITE_OFF" ? "exception.writeOff" : "exception.adjust", reason, (row) => ({
        status: transition(row, "resolve"),
        resolution,
        resolutionAmount: input.amount ?? row.amount,
        resolvedById: actor.id,
      }));
      return row!;
    },

    /** RESOLVED → ASSIGNED (with an assignee) or OPEN. A write-off or adjustment is reopened by a MANAGER/ADMIN only. */
    async reopen(viewer: Viewer | null, rawId: string, rawReason?: string | null): Promise<ExceptionRow> {
      const ids = [requireId(rawId, "id")];
      const reason = optionalReason(rawReason);
      const [current] = await exceptions.findByIds(ids);
      const moneyBooked = current?.resolution === "WRITTEN_OFF" || current?.resolution === "ADJUSTED";
      const { actor } = await authorize(viewer, ids, moneyBooked ? "approve" : "work");
      const [row] = await change(actor, ids, "id", "exception.reopen", reason, (row) => {
        if ((row.resolution === "WRITTEN_OFF" || row.resolution === "ADJUSTED") && !moneyBooked) throw new RefusedTransition(`was ${row.resolution} meanwhile: try again`);
        return { status: transition(row, "reopen"), resolution: null, resolvedById: null };
      });
      return row!;
    },

    /** Replaces an exception's labels (trimmed, distinct, at most 20 of at most 50 characters). */
    async setLabels(viewer: Viewer | null, rawId: string, rawLabels: readonly string[]): Promise<ExceptionRow> {
      const ids = [requireId(rawId, "id")];
      if (rawLabels.length > MAX_LABELS) throw new BadUserInputError("labels", `at most ${MAX_LABELS} labels`);
      const labels = [...new Set(rawLabels.map((label, index) => requireText(label, `labels[${index}]`, { max: MAX_LABEL_LENGTH })))];
      const { actor } = await authorize(viewer, ids, "work");
      const [row] = await change(actor, ids, "id", "exception.label", null, (row) => ({ status: row.status, labels }));
      return row!;
    },

    /** Adds a comment to an exception (any status). */
    async comment(viewer: Viewer | null, rawId: string, rawBody: string) {
      const id = requireId(rawId, "id");
      const body = requireText(rawBody, "body", { max: MAX_COMMENT_LENGTH });
      const { actor, rows } = await authorize(viewer, [id], "work");
      return transaction(async (tx) => {
        const comment = await exceptions.addComment(tx, { exceptionId: id, authorId: actor.id, body });
        await audit.record(tx, {
          userId: actor.id,
          projectId: rows[0]!.projectId,
          action: "exception.comment",
          resourceType: "Exception",
          resourceId: id,
          after: { commentId: comment.id, body },
        });
        return comment;
      });
    },
  };
}

/** A transition the lifecycle refuses; turned into BAD_USER_INPUT naming the field. */
class RefusedTransition extends Error {}

/** Checks a list filter, naming the field at fault. */
function validFilter(filter: ExceptionFilter): ExceptionFilter {
  const out = { ...filter };
  if (out.jobId) out.jobId = requireId(out.jobId, "filter.jobId");
  if (out.assigneeId) out.assigneeId = requireId(out.assigneeId, "filter.assigneeId");
  if (out.assigneeId && out.unassigned) throw new BadUserInputError("filter.unassigned", "cannot be combined with assigneeId");
  for (const field of ["minAgeDays", "maxAgeDays"] as const) {
    const value = out[field];
    if (value != null && (!Number.isInteger(value) || value < 0 || value > MAX_AGE_DAYS)) {
      throw new BadUserInputError(`filter.${field}`, `must be a whole number of days from 0 to ${MAX_AGE_DAYS}`);
    }
  }
  if (out.currency != null && !/^[A-Z]{3}$/.test(out.currency)) throw new BadUserInputError("filter.currency", "must be an ISO 4217 code such as EUR");
  return out;
}

export type ExceptionService = ReturnType<typeof createExceptionService>;
