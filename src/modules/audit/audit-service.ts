/** Reads the audit log for a viewer, and records events for the other services. */
import { requireViewer, type Viewer } from "../../auth/policy.js";
import { pageRequest, toConnection } from "../../graphql/pagination.js";
import { requireId } from "../../graphql/validate.js";
import { currentRequestScope } from "../../observability/request-scope.js";
import { auditScope } from "../scopes.js";
import type { AuditEntry, AuditFilter, AuditRepository } from "./audit-repository.js";
import type { DbTransaction } from "../../db/database.js";

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
  };
}

export type AuditService = ReturnType<typeof createAuditService>;
