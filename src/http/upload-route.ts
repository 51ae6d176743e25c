/**
 * `PUT /data-sources/<id>/file?name=<fileName>&policy=SKIP_INVALID_ROWS|REJECT_FILE&force=true`: a data-source file
 * sent as the raw request body, for curl (`curl -T ledger.csv -H "Authorization: Bearer $TOKEN" <url>`) and
 * `npm run recon -- ingest`. Responsible for reading the query and the bearer token and for answering in JSON; the
 * body streams into the same ingest service method as the uploadDataSourceFile mutation, never held whole.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { PassThrough, type Readable } from "node:stream";
import { GraphQLError, type GraphQLFormattedError } from "graphql";
import type { Viewer } from "../auth/policy.js";
import type { IngestPolicy, UploadStatus } from "../generated/prisma/enums.js";
import { createErrorFormatter } from "../graphql/format-error.js";
import type { Logger } from "../observability/logger.js";

/** The path of the route; its group is the data source's id. */
export const UPLOAD_ROUTE = /^\/data-sources\/([^/]+)\/file$/;

/** What the route needs of the ingest service (src/ingest/ingest-service.ts). */
export interface IngestUploader {
  upload(
    viewer: Viewer | null,
    input: { dataSourceId: string; fileName: string; declaredSize?: number; policy?: IngestPolicy; force?: boolean },
    body: Readable,
  ): Promise<UploadSummaryRow>;
}

/** The columns of an uploaded file's row the route answers with (byte counts are BigInt there). */
interface UploadSummaryRow {
  id: string;
  status: UploadStatus;
  fileName: string;
  sha256: string;
  sizeBytes: bigint;
  bytesRead: bigint;
  rowsRead: number;
  rowsIngested: number;
  rowsRejected: number;
  rowsFlagged: number;
  error: string | null;
  errorLine: number | null;
}

const POLICIES: readonly string[] = ["SKIP_INVALID_ROWS", "REJECT_FILE"] satisfies IngestPolicy[];

/** HTTP status of each error code the ingest service and the auth check throw. */
const STATUS_BY_CODE: Record<string, number> = {
  BAD_USER_INPUT: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  DUPLICATE_FILE: 409,
  PAYLOAD_TOO_LARGE: 413,
  INVALID_FILE: 422,
  TOO_MANY_INGESTS: 429,
};

function badInput(field: string, message: string): GraphQLError {
  return new GraphQLError(`${field}: ${message}`, { extensions: { code: "BAD_USER_INPUT", field } });
}

function unauthenticated(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: "UNAUTHENTICATED" } });
}

/** The file's name, policy and force flag from the query string. */
function parseQuery(search: URLSearchParams) {
  const policy = search.get("policy") ?? undefined;
  if (policy !== undefined && !POLICIES.includes(policy)) throw badInput("policy", `must be one of ${POLICIES.join(", ")}`);
  const force = search.get("force") ?? undefined;
  if (force !== undefined && force !== "true" && force !== "false") throw badInput("force", "must be true or false");
  return { fileName: search.get("name") ?? "upload.csv", policy: policy as IngestPolicy | undefined, force: force === "true" };
}

function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match) throw unauthenticated("Authorization header must be 'Bearer <token>'");
  return match[1];
}

/** The route's handler, given the viewer's resolver, the ingest service and the logger for unexpected errors. */
export function createUploadRoute(deps: {
  auth: { viewerFromToken(token: string | undefined): Promise<Viewer | null> };
  ingest: IngestUploader;
  logger: Logger;
}) {
  const { auth, ingest, logger } = deps;
  const formatError = createErrorFormatter(logger);

  function reply(res: ServerResponse, status: number, body: unknown) {
    res.statusCode = status;
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(body));
  }

  return async function handleUpload(req: IncomingMessage, res: ServerResponse, dataSourceId: string): Promise<void> {
    if (req.method !== "PUT") {
      res.setHeader("allow", "PUT");
      res.setHeader("connection", "close");
      reply(res, 405, { errors: [{ message: "Send the file with PUT (curl -T <file>)", extensions: { code: "METHOD_NOT_ALLOWED" } }] });
      return;
    }
    // The service may destroy the stream it is given (a bad line ends the read): that must not destroy the socket
    // the answer goes out on, so it gets its own stream, fed from the request.
    const body = new PassThrough();
    let clientGone = false;
    req.pipe(body);
    req.on("error", () => undefined);
    req.on("close", () => {
      if (req.complete) return;
      clientGone = true;
      body.destroy(new Error("The client closed the request before sending all of it"));
    });
    try {
      const query = parseQuery(new URL(req.url ?? "/", "http://localhost").searchParams);
      const token = bearerToken(req);
      const viewer = await auth.viewerFromToken(token);
      if (token && !viewer) throw unauthenticated("The bearer token is invalid or expired, or its user is deactivated: sign in again");
      const declaredSize = Number(req.headers["content-length"]) || undefined;
      const row = await ingest.upload(viewer, { dataSourceId, declaredSize, ...query }, body);
      reply(res, 200, {
        upload: {
          id: row.id,
          status: row.status,
          fileName: row.fileName,
          sha256: row.sha256,
          sizeBytes: Number(row.sizeBytes),
          bytesRead: Number(row.bytesRead),
          rowsRead: row.rowsRead,
          rowsIngested: row.rowsIngested,
          rowsRejected: row.rowsRejected,
          rowsFlagged: row.rowsFlagged,
          error: row.error,
          errorLine: row.errorLine,
        },
      });
    } catch (error) {
      if (clientGone) {
        logger.info({ dataSourceId }, "the client closed an upload before sending all of it");
        return;
      }
      const raw: GraphQLFormattedError = error instanceof GraphQLError ? error.toJSON() : { message: String((error as Error)?.message ?? error) };
      const { message, extensions = {} } = formatError(raw, error);
      const { http, ...shown } = extensions as { http?: { status?: number } } & Record<string, unknown>;
      const status = http?.status ?? STATUS_BY_CODE[String(shown.code)] ?? 500;
      // What the client is still sending is of no use now: close the connection rather than read it all.
      if (!req.complete) res.setHeader("connection", "close");
      reply(res, status, { errors: [{ message, extensions: shown }] });
    } finally {
      // Whatever the service left unread is discarded (until the connection closes, when it was refused early).
      req.unpipe(body);
      req.resume();
    }
  };
}
