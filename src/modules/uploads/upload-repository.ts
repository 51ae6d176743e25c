/** The only code that reads or writes uploaded-file rows and their row issues (outside the ingest transaction). */
import type { DbClient } from "../../db/database.js";
import { and, raw, sql, type SqlReader } from "../../db/sql.js";
import type { FileUpload, RowIssue } from "../../graphql/models.js";
import type { PageRequest } from "../../graphql/pagination.js";
import type { IngestPolicy, RowIssueSeverity } from "../../generated/prisma/enums.js";

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

export function createUploadRepository({ prisma, read }: { prisma: DbClient; read: SqlReader }) {
  return {
    create(data: {
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
      const [row] = await read<FileUpload[]>(sql`SELECT ${COLUMNS} FROM uploaded_files f WHERE f.id = ${id}::uuid`);
      return row ?? null;
    },

    /** Writes progress of a running ingest (outside its transaction, so others see it). */
    async progress(id: string, bytesRead: number, rowsRead: number): Promise<void> {
      await read(sql`UPDATE uploaded_files SET bytes_read = ${bytesRead}, rows_read = ${rowsRead}
        WHERE id = ${id}::uuid AND status = 'PROCESSING'`);
    },

    /** Marks an upload failed as a whole (the ingest transaction rolled back: nothing of it was kept). */
    async fail(id: string, error: string, errorLine: number | null, bytesRead: number): Promise<void> {
      await read(sql`UPDATE uploaded_files SET status = 'FAILED', error = ${error}, error_line = ${errorLine},
        bytes_read = ${bytesRead}, rows_ingested = 0, completed_at = now() WHERE id = ${id}::uuid`);
    },

    /**
     * Marks FAILED every PROCESSING upload whose ingest is gone: its advisory lock is free (the ingest holds it
     * for its whole transaction, so a live one, on any instance, is never touched).
     */
    async failInterrupted(): Promise<string[]> {
      const rows = await read<{ id: string }[]>(sql`
        UPDATE uploaded_files SET status = 'FAILED', completed_at = now(),
          error = 'The ingest was interrupted (the server stopped); nothing of the file was ingested. Upload it again.'
        WHERE status = 'PROCESSING' AND pg_try_advisory_xact_lock(hashtextextended('upload:' || id::text, 0))
        RETURNING id`);
      return rows.map((row) => row.id);
    },

    /** A page of a data source's uploads, newest first. */
    pageByDataSource(dataSourceId: string, page: PageRequest): Promise<FileUpload[]> {
      return read<FileUpload[]>(sql`
        SELECT ${COLUMNS} FROM uploaded_files f
        WHERE ${and([sql`f.data_source_id = ${dataSourceId}::uuid`, page.after && sql`(f.created_at, f.id) < (${page.after.createdAt}::timestamptz, ${page.after.id}::uuid)`])}
        ORDER BY f.created_at DESC, f.id DESC LIMIT ${page.limit + 1}`);
    },

    async countByDataSource(dataSourceId: string): Promise<number> {
      const [row] = await read<{ n: number }[]>(sql`SELECT count(*)::int AS n FROM uploaded_files WHERE data_source_id = ${dataSourceId}::uuid`);
      return row.n;
    },

    /** Row issues in file order, `limit + 1` of them, after a position. */
    issues(fileId: string, severity: RowIssueSeverity | null, limit: number, after: IssuePosition | null) {
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
      const [row] = await read<{ n: number }[]>(sql`SELECT count(*)::int AS n FROM upload_row_issues
        WHERE ${and([sql`file_id = ${fileId}::uuid`, severity && sql`severity = ${severity}::"RowIssueSeverity"`])}`);
      return row.n;
    },
  };
}

export type UploadRepository = ReturnType<typeof createUploadRepository>;
