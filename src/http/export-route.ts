/**
 * `GET /exports/job-results/<jobId>.csv?outcome=…&viewer=…&expires=…&signature=…`: the download behind a link from
 * the `exportJobResults` query. Responsible for checking the link (signature, expiry: 403; missing parameters:
 * 400), handing it to the export service (which checks the viewer's access again: 404 when they can no longer see
 * the job, 403 when deactivated), and streaming the rows through fast-csv to the response with back-pressure all
 * the way from PostgreSQL: rows are read only as fast as the client takes them.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import { GraphQLError } from "graphql";
import { ExportLinkError, type ExportLinks } from "../auth/export-links.js";
import { batchChunks, copyLinesToRows, csvWriter } from "../modules/exports/export-csv.js";
import type { ExportService } from "../modules/exports/export-service.js";
import type { Logger } from "../observability/logger.js";
import { HttpError } from "./request-utils.js";

export { EXPORT_ROUTE } from "../auth/export-links.js";

/** HTTP status of each error code the export service throws. */
const STATUS_BY_CODE: Record<string, number> = {
  BAD_USER_INPUT: 400,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  TOO_MANY_EXPORTS: 429,
};

export function createExportRoute(deps: { links: ExportLinks; exports: Pick<ExportService, "openJobResults">; logger: Logger }) {
  const { links, exports, logger } = deps;

  return async function handleExport(req: IncomingMessage, res: ServerResponse, jobId: string): Promise<void> {
    if (req.method !== "GET") {
      res.setHeader("allow", "GET");
      throw new HttpError(405, "Download an export with GET", "METHOD_NOT_ALLOWED");
    }
    let opened;
    try {
      const claims = links.verify(jobId, new URL(req.url ?? "/", "http://localhost").searchParams);
      opened = await exports.openJobResults(claims);
    } catch (error) {
      if (error instanceof ExportLinkError) {
        throw new HttpError(error.kind === "malformed" ? 400 : 403, error.message, error.kind === "malformed" ? "BAD_USER_INPUT" : "FORBIDDEN");
      }
      const code = error instanceof GraphQLError ? String(error.extensions.code) : undefined;
      if (code && STATUS_BY_CODE[code]) throw new HttpError(STATUS_BY_CODE[code], error instanceof Error ? error.message : String(error), code);
      throw error;
    }

    res.statusCode = 200;
    res.setHeader("content-type", "text/csv; charset=utf-8");
    res.setHeader("content-disposition", `attachment; filename="${opened.fileName}"`);
    res.setHeader("cache-control", "no-store");
    res.setHeader("x-content-type-options", "nosniff");
    try {
      await pipeline(opened.rows, copyLinesToRows(), csvWriter(), batchChunks(), res);
      await opened.close();
    } catch (error) {
      await opened.close(error as Error);
      // Headers are sent: the client sees a cut-off transfer (no final chunk), never a file that looks whole.
      if (!res.destroyed) res.destroy();
      if ((error as NodeJS.ErrnoException).code === "ERR_STREAM_PREMATURE_CLOSE") logger.info({ jobId }, "the client closed an export before its end");
      else logger.warn({ err: error, jobId }, "export stream failed");
    }
  };
}
