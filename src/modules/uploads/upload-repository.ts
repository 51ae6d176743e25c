/** The only code that reads or writes uploaded-file rows and their row issues (outside the ingest transaction). */
import type { DbClient } from "../../db/database.js";
import type { ChangeFeed } from "../../db/change-feed.js";
import { and, raw, sql, type SqlReader } from "../../db/sql.js";
import type { FileUpload, RowIssue } from "../../graphql/models.js";
import type { PageRequest } from "../../graphql/pagination.js";
import type { IngestPolicy, RowIssueSeverity } from "../../generated/prisma/enums.js";
import { readTags, tags } from "../../cache/tags.js";

const COLUMNS = raw(`f.id, f.project_id AS "projectId", f.data_source_id AS "dataSourceId", f.uploaded_by AS "uploadedById",
  f.file_name AS "fileName", f.sha256, f.size_bytes AS "sizeBytes", f.status::text AS status, f.policy::text AS policy,
  f.forced, f.bytes_read AS "bytesRead", f.rows_read AS "rowsRead", f.rows_ingested AS "rowsIngested",
  f.rows_rejected AS "rowsRejected", f.rows_flagged AS "rowsFlagged", f.error, f.error_line AS "errorLine",
  f.created_at AS "createdAt", f.completed_at AS "completedAt"`);

/** Position of a row issue in file order; issues are paged by (line, id). */
export interface IssuePosition {
  line: number;
  id: string;
}

/** What the cache needs to know of a written upload (raw SQL writes announce themselves; see db/change-feed.ts). */
interface UploadKeys {
  id: string;
  dataSourceId: string;
}
const KEYS = raw(`id, data_source_id AS "dataSourceId"`);

export function createUploadRepository({ prisma, read, changes }: { prisma: DbClient; read: SqlReader; changes: ChangeFeed }) {
  /** Announces raw-SQL writes of uploads to the change feed. */
  const announce = (rows: UploadKeys[], source: string) =>
    changes.wrote(rows.flatMap((row) => [tags.upload(row.id), tags.dataSourceUploads(row.dataSourceId)]), source);

  return {
    create(data: {
      /** Chosen by the caller, which locks the upload (see ingest-service) before its row exists. */
      id: string;
      projectId: string;
      dataSourceId: string;
      uploadedById: string;
      fileName: string;
      sizeBytes: number;
      policy: IngestPolicy;
      forced: boolean;
    }): Promise<FileUpload> {
      return prisma.uploadedFile.create({ data: { ...data, sha256: "", status: "PROCESSING" } });
    },

    async findById(id: string): Promise<FileUpload | null> {
      readTags(tags.upload(id));
      const [row] = await read<FileUpload[]>(sql`SELECT ${COLUMNS} FROM uploaded_files f WHERE f.id = ${id}::uuid`);
      if (row) readTags(tags.project(row.projectId));
      return row ?? null;
    },

    /** Writes progress of a running ingest (outside its transaction, so others see it). */
    async progress(id: string, bytesRead: number, rowsRead: number): Promise<void> {
      const rows = await read<UploadKeys[]>(sql`UPDATE uploaded_files SET bytes_read = ${bytesRead}, rows_read = ${rowsRead}
        WHERE id = ${id}::uuid AND status = 'PROCESSING' RETURNING ${KEYS}`);
      await announce(rows, "ingest");
    },

    /** Marks an upload failed as a whole (the ingest transaction rolled back: nothing of it was kept). */
    async fail(id: string, error: string, errorLine: number | null, bytesRead: number): Promise<void> {
      const rows = await read<UploadKeys[]>(sql`UPDATE uploaded_files SET status = 'FAILED', error = ${error}, error_line = ${errorLine},
        bytes_read = ${bytesRead}, rows_ingested = 0, completed_at = now() WHERE id = ${id}::uuid RETURNING ${KEYS}`);
      await announce(rows, "ingest");
    },

    /**
     * Marks FAILED every PROCESSING upload whose ingest is gone: its advisory lock is free (the ingest holds it
     * for its whole transaction, so a live one, on any instance, is never touched).
     */
    async failInterrupted(): Promise<string[]> {
      const rows = await read<UploadKeys[]>(sql`
        UPDATE uploaded_files SET status = 'FAILED', completed_at = now(),
          error = 'The ingest was interrupted (the server stopped); nothing of the file was ingested. Upload it again.'
        WHERE status = 'PROCESSING' AND pg_try_advisory_xact_lock(hashtextextended('upload:' || id::text, 0))
        RETURNING ${KEYS}`);
      await announce(rows, "background");
      return rows.map((row) => row.id);
    },

    /** A page of a data source's uploads, newest first. */
    pageByDataSource(dataSourceId: string, page: PageRequest): Promise<FileUpload[]> {
      readTags(tags.dataSourceUploads(dataSourceId));
      return read<FileUpload[]>(sql`
        SELECT ${COLUMNS} FROM uploaded_files f
        WHERE ${and([sql`f.data_source_id = ${dataSourceId}::uuid`, page.after && sql`(f.created_at, f.id) < (${page.after.createdAt}::timestamptz, ${page.after.id}::uuid)`])}
        ORDER BY f.created_at DESC, f.id DESC LIMIT ${page.limit + 1}`);
    },

    async countByDataSource(dataSourceId: string): Promise<number> {
      readTags(tags.dataSourceUploads(dataSourceId));
      const [row] = await read<{ n: number }[]>(sql`SELECT count(*)::int AS n FROM uploaded_files WHERE data_source_id = ${dataSourceId}::uuid`);
      return row.n;
    },

    /** Row issues in file order, `limit + 1` of them, after a position. */
    issues(fileId: string, severity: RowIssueSeverity | null, limit: number, after: IssuePosition | null) {
      readTags(tags.upload(fileId));
      return read<(RowIssue & { id: string })[]>(sql`
        SELECT i.id::text AS id, i.line, i."column", i.reason, i.severity::text AS severity FROM upload_row_issues i
        WHERE ${and([
          sql`i.file_id = ${fileId}::uuid`,
          severity && sql`i.severity = ${severity}::"RowIssueSeverity"`,
          after && sql`(i.line, i.id) > (${after.line}::int, ${after.id}::bigint)`,
        ])}
        ORDER BY i.line, i.id LIMIT ${limit + 1}`);
    },

    async countIssues(fileId: string, severity: RowIssueSeverity | null): Promise<number> {
      readTags(tags.upload(fileId));
      const [row] = await read<{ n: number }[]>(sql`SELECT count(*)::int AS n FROM upload_row_issues
        WHERE ${and([sql`file_id = ${fileId}::uuid`, severity && sql`severity = ${severity}::"RowIssueSeverity"`])}`);
      return row.n;
    },
  };
}

export type UploadRepository = ReturnType<typeof createUploadRepository>;
