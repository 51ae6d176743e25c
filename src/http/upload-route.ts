/**
 * `PUT /data-sources/<id>/file?name=<fileName>&policy=SKIP_INVALID_ROWS|REJECT_FILE&force=true`: a data-source file
 * sent as the raw request body, for curl (`curl -T ledger.csv -H "Authorization: Bearer $TOKEN" <url>`) and
 * `npm run recon -- ingest`. Responsible for reading the query and the bearer token and for answering in JSON; the
 * body streams into the same ingest service method as the uploadDataSourceFile mutation, never held whole.
 *
 * With `Prefer: respond-async` (RFC 7240) the answer is `202 Accepted` as soon as the whole body has been read into
 * the ingest (never earlier: many clients fail on an answer while they still send), with the upload as it stands
 * (PROCESSING), `Preference-Applied: respond-async` and `Location: /uploads/<uploadId>`, the status monitor this
 * file also serves (`GET`, the same JSON as a finished PUT's); validation and COMMIT go on. With `wait=<seconds>`
 * too, the 202 waits that long after the request for the ingest to be over, and is the final answer if it is.
 * Without it, the answer waits for the COMMIT: a ten-million-row file then keeps its client waiting minutes for
 * response headers.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { PassThrough, type Readable } from "node:stream";
import { GraphQLError, type GraphQLFormattedError } from "graphql";
import type { Viewer } from "../auth/policy.js";
import type { IngestPolicy, UploadStatus } from "../generated/prisma/enums.js";
import { createErrorFormatter } from "../graphql/format-error.js";
import type { Logger } from "../observability/logger.js";
import { asyncPreference } from "./request-utils.js";

/** The path of the route; its group is the data source's id. */
export const UPLOAD_ROUTE = /^\/data-sources\/([^/]+)\/file$/;
/** The path of an upload's status monitor; its group is the upload's id. */
export const UPLOAD_STATUS_ROUTE = /^\/uploads\/([^/]+)$/;

/** What the routes need of the ingest service (src/ingest/ingest-service.ts). */
export interface IngestUploader {
  upload(
    viewer: Viewer | null,
    input: { dataSourceId: string; fileName: string; declaredSize?: number; policy?: IngestPolicy; force?: boolean },
    body: Readable,
    options?: { respondAsync?: boolean },
  ): Promise<UploadSummaryRow>;
  get(viewer: Viewer | null, id: string): Promise<UploadSummaryRow | null>;
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

/** The JSON an upload is answered with (byte counts as numbers). */
function summary(row: UploadSummaryRow) {
  return {
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
  };
}

/**
 * The routes' handlers — `put` for the file, `status` for the status monitor — given the viewer's resolver, the
 * ingest service and the logger for unexpected errors.
 */
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

  /** An error as JSON with its status (unexpected ones are logged and masked by the GraphQL error formatter). */
  function replyError(res: ServerResponse, error: unknown) {
    const raw: GraphQLFormattedError = error instanceof GraphQLError ? error.toJSON() : { message: String((error as Error)?.message ?? error) };
    const { message, extensions = {} } = formatError(raw, error);
    const { http, ...shown } = extensions as { http?: { status?: number } } & Record<string, unknown>;
    const status = http?.status ?? STATUS_BY_CODE[String(shown.code)] ?? 500;
    reply(res, status, { errors: [{ message, extensions: shown }] });
  }

  async function viewerOf(req: IncomingMessage): Promise<Viewer | null> {
    const token = bearerToken(req);
    const viewer = await auth.viewerFromToken(token);
    if (token && !viewer) throw unauthenticated("The bearer token is invalid or expired, or its user is deactivated: sign in again");
    return viewer;
  }

  /** `GET /uploads/<id>`: the upload as it stands, for a client following one answered early. */
  async function handleStatus(req: IncomingMessage, res: ServerResponse, uploadId: string): Promise<void> {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      reply(res, 405, { errors: [{ message: "Read an upload's status with GET", extensions: { code: "METHOD_NOT_ALLOWED" } }] });
      return;
    }
    try {
      const row = await ingest.get(await viewerOf(req), uploadId);
      // Missing, and not visible to this viewer, read the same.
      if (!row) throw new GraphQLError(`No upload ${uploadId} that you may see`, { extensions: { code: "NOT_FOUND" } });
      res.setHeader("cache-control", "no-store");
      reply(res, 200, { upload: summary(row) });
    } catch (error) {
      replyError(res, error);
    }
  }

  async function handleUpload(req: IncomingMessage, res: ServerResponse, dataSourceId: string): Promise<void> {
    if (req.method !== "PUT") {
      res.setHeader("allow", "PUT");
      res.setHeader("connection", "close");
      reply(res, 405, { errors: [{ message: "Send the file with PUT (curl -T <file>)", extensions: { code: "METHOD_NOT_ALLOWED" } }] });
      return;
    }
    const preference = asyncPreference(req, Date.now());
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
      const viewer = await viewerOf(req);
      const declaredSize = Number(req.headers["content-length"]) || undefined;
      const row = await ingest.upload(viewer, { dataSourceId, declaredSize, ...query }, body, preference);
      // The service answers early only once the body is read whole. A file whose ingest was over by then (a small
      // one, or one that finished within the client's `wait`) is simply answered: the preference was not needed.
      if (preference.respondAsync && row.status === "PROCESSING") {
        res.setHeader("preference-applied", "respond-async");
        res.setHeader("location", `/uploads/${encodeURIComponent(row.id)}`);
        reply(res, 202, { upload: summary(row) });
      } else {
        reply(res, 200, { upload: summary(row) });
      }
    } catch (error) {
      if (clientGone) {
        logger.info({ dataSourceId }, "the client closed an upload before sending all of it");
        return;
      }
      // What the client is still sending is of no use now: close the connection rather than read it all.
      if (!req.complete) res.setHeader("connection", "close");
      replyError(res, error);
    } finally {
      // Whatever the service left unread is discarded (until the connection closes, when it was refused early).
      req.unpipe(body);
      req.resume();
    }
  }

  return { put: handleUpload, status: handleStatus };
}
