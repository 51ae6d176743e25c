/**
 * What a Prisma write invalidates, derived from the model and the row written (the result, or the `where` of a
 * bulk write). The write side of the vocabulary in ./tags.ts: each model names the tags of every read its rows
 * appear in, lists and counts of its parent included. `null` means "cannot tell": the caller then flushes
 * everything, which is always correct, only slower.
 */
import { tags } from "./tags.js";

type Row = Record<string, unknown>;

/** Prisma operations that change rows. */
export const WRITE_OPERATIONS = new Set([
  "create",
  "createMany",
  "createManyAndReturn",
  "update",
  "updateMany",
  "updateManyAndReturn",
  "upsert",
  "delete",
  "deleteMany",
]);

function ids(row: Row, ...fields: string[]): string[] | null {
  const values = fields.map((field) => row[field]);
  return values.every((value) => typeof value === "string") ? (values as string[]) : null;
}

/** Tags of one written row of `model`; `deleted` adds what a cascade from it removes. */
export function rowTags(model: string, row: Row, deleted: boolean): string[] | null {
  switch (model) {
    case "User": {
      const [id] = ids(row, "id") ?? [];
      return id ? [tags.user(id), tags.userList] : null;
    }
    case "Project": {
      const [id] = ids(row, "id") ?? [];
      if (!id) return null;
      const own = [tags.project(id), tags.projectList];
      // Deleting a project removes its members (who then share fewer projects), sources, jobs and records.
      return deleted
        ? [...own, tags.userList, tags.projectJobs(id), tags.projectDataSources(id), tags.projectRecords(id), tags.projectRuleSets(id), tags.projectStats(id), tags.projectSchedule(id)]
        : own;
    }
    case "ProjectMember": {
      const [projectId, userId] = ids(row, "projectId", "userId") ?? [];
      // Membership decides who sees the project, who sees whom, and each user's project count.
      return projectId ? [tags.project(projectId), tags.projectList, tags.userList, tags.user(userId)] : null;
    }
    case "DataSource": {
      const [id, projectId] = ids(row, "id", "projectId") ?? [];
      if (!id) return null;
      const own = [tags.dataSource(id), tags.projectDataSources(projectId)];
      // A deleted source takes its jobs and the schedule naming it along (cascades).
      return deleted
        ? [...own, tags.dataSourceUploads(id), tags.projectRecords(projectId), tags.projectJobs(projectId), tags.projectStats(projectId), tags.projectSchedule(projectId)]
        : own;
    }
    case "UploadedFile": {
      const [id, dataSourceId] = ids(row, "id", "dataSourceId") ?? [];
      return id ? [tags.upload(id), tags.dataSourceUploads(dataSourceId)] : null;
    }
    case "UploadRowIssue": {
      const [fileId] = ids(row, "fileId") ?? [];
      return fileId ? [tags.upload(fileId)] : null;
    }
    case "Record": {
      const [projectId, dataSourceId] = ids(row, "projectId", "dataSourceId") ?? [];
      return projectId ? [tags.projectRecords(projectId), tags.dataSource(dataSourceId)] : null;
    }
    case "ReconciliationJob": {
      const [id, projectId] = ids(row, "id", "projectId") ?? [];
      return id ? [tags.job(id), tags.projectJobs(projectId), tags.projectStats(projectId)] : null;
    }
    case "MatchGroup": {
      const [jobId, projectId] = ids(row, "jobId", "projectId") ?? [];
      return jobId ? [tags.job(jobId), tags.projectRecords(projectId), tags.projectJobs(projectId), tags.projectStats(projectId)] : null;
    }
    case "RuleSet": {
      const [projectId] = ids(row, "projectId") ?? [];
      return projectId ? [tags.projectRuleSets(projectId)] : null;
    }
    case "ReconciliationSchedule": {
      const [projectId] = ids(row, "projectId") ?? [];
      return projectId ? [tags.projectSchedule(projectId)] : null;
    }
    case "ReconciliationException": {
      const [id, jobId, projectId] = ids(row, "id", "jobId", "projectId") ?? [];
      return id ? [tags.exception(id), tags.job(jobId), tags.projectExceptions(projectId)] : null;
    }
    case "ExceptionComment": {
      const [exceptionId] = ids(row, "exceptionId") ?? [];
      return exceptionId ? [tags.exception(exceptionId)] : null;
    }
    // Read by job runners only, never through the response cache.
    case "RejectedPair":
      return [];
    case "AuditEvent":
    // The chain's head moves with every event (the database's insert trigger writes it, never Prisma).
    case "AuditChainHead":
      return [tags.auditLog];
    default:
      return null;
  }
}

/**
 * Tags a Prisma write invalidates: from the rows it returned, else from its `where` (bulk writes return counts).
 * `null` when neither names the rows well enough.
 */
export function writeTags(model: string, operation: string, args: unknown, result: unknown): string[] | null {
  const deleted = operation === "delete" || operation === "deleteMany";
  const rows: Row[] = Array.isArray(result)
    ? (result as Row[])
    : result && typeof result === "object" && !("count" in result)
      ? [result as Row]
      : [((args as { where?: Row } | undefined)?.where ?? {}) as Row];
  const out = new Set<string>();
  for (const row of rows) {
    const found = rowTags(model, row, deleted);
    if (!found) return null;
    for (const tag of found) out.add(tag);
  }
  return [...out];
}
