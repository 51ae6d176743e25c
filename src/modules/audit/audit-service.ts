/**
 * Reads the audit log for a viewer, records events for the other services, and verifies the log's hash chain
 * (ADMIN only). Talks to the audit repository; the chain itself is kept by the database (audit-chain.ts).
 */
import { requireViewer, type Viewer } from "../../auth/policy.js";
import { ForbiddenError } from "../../graphql/errors.js";
import { pageRequest, toConnection } from "../../graphql/pagination.js";
import { requireId, requireText } from "../../graphql/validate.js";
import { verifyChain, type ChainVerification } from "./audit-chain.js";
import { currentRequestScope } from "../../observability/request-scope.js";
import { auditScope } from "../scopes.js";
import type { AuditEntry, AuditFilter, AuditRepository } from "./audit-repository.js";
import type { DbTransaction } from "../../db/database.js";

/** Longest reason an event keeps. */
export const MAX_REASON_LENGTH = 1000;

/** A reason as sent with a mutation: trimmed, at most MAX_REASON_LENGTH characters; absent or blank is null. */
export function optionalReason(value: string | null | undefined, field = "reason"): string | null {
  if (value == null || value.trim() === "") return null;
  return requireText(value, field, { max: MAX_REASON_LENGTH });
}

export function createAuditService({ audit }: { audit: AuditRepository }) {
  return {
    /** Appends an event, stamped with the current request id, inside the caller's transaction. */
    record(tx: DbTransaction, entry: Omit<AuditEntry, "requestId">): Promise<void> {
      return audit.append({ ...entry, requestId: currentRequestScope()?.requestId ?? null }, tx);
    },

    /** Appends an event on its own, outside any transaction (for work that commits in several steps). */
    recordNow(entry: Omit<AuditEntry, "requestId">): Promise<void> {
      return audit.append({ ...entry, requestId: currentRequestScope()?.requestId ?? null });
    },

    /** Events of the projects the viewer manages (all for an ADMIN), newest first. */
    async list(
      viewer: Viewer | null,
      args: { first?: number | null; after?: string | null; filter?: AuditFilter | null },
      withTotal: boolean,
    ) {
      const actor = requireViewer(viewer);
      const page = pageRequest(args);
      const filter = { ...args.filter };
      if (filter.projectId) filter.projectId = requireId(filter.projectId, "filter.projectId");
      if (filter.userId) filter.userId = requireId(filter.userId, "filter.userId");
      const scope = auditScope(actor);
      const { rows, total } = await audit.list(scope, filter, page, withTotal);
      return toConnection(rows, page, () => audit.count(scope, filter), total);
    },

    /**
     * Recomputes every event's hash from its fields and the event before it, in seq order and in batches, and
     * reports the first event that does not fit (ADMIN only: it reads every project's history).
     */
    async verify(viewer: Viewer | null): Promise<ChainVerification> {
      const actor = requireViewer(viewer);
      if (actor.role !== "ADMIN") throw new ForbiddenError("Only an ADMIN may verify the audit chain");
      return audit.walkChain(verifyChain);
    },
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
