/**
 * `PUT /data-sources/<id>/file?name=<fileName>&policy=SKIP_INVALID_ROWS|REJECT_FILE&force=true`: a data-source file
 * sent as the raw request body, for curl (`curl -T ledger.csv -H "Authorization: Bearer $TOKEN" <url>`) and
 * `npm run recon -- ingest`. Responsible for reading the query, the bearer token and the body's `Content-Encoding`
 * (none or gzip, decoded as it streams; anything else is 415) and for answering in JSON; the body streams into the
 * same ingest service method as the uploadDataSourceFile mutation, never held whole. A client that goes away before
 * sending all of it leaves its upload FAILED saying so, and a log line naming the request and the upload.
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
import { PassThrough, Transform, type Readable, type TransformCallback } from "node:stream";
import { createGunzip } from "node:zlib";
import { GraphQLError, type GraphQLFormattedError } from "graphql";
import type { Viewer } from "../auth/policy.js";
import type { IngestPolicy, UploadStatus } from "../generated/prisma/enums.js";
import { createErrorFormatter } from "../graphql/format-error.js";
import { IngestError } from "../ingest/ingest-pipeline.js";
import { ClientDisconnectedError } from "../ingest/ingest-service.js";
import type { Logger } from "../observability/logger.js";
import { currentRequestScope } from "../observability/request-scope.js";
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

/**
 * Most a gzip body may expand past its first MiB (Apache POI's bound for zip entries): CSV compresses about
 * tenfold, a decompression bomb a thousandfold. The upload limit, applied to the decoded bytes, bounds the work
 * anyway; this refuses a bomb before that work is done.
 */
const MAX_GZIP_RATIO = 100;
const GZIP_RATIO_FROM_BYTES = 1024 * 1024;

/**
 * Whether the body is gzip-compressed (`Content-Encoding: gzip`, or its old name `x-gzip`). Any other coding is
 * refused (415 Unsupported Media Type, naming it, with `Accept-Encoding: gzip` as RFC 9110 §15.5.16 says): the
 * file would otherwise be read as the bytes it was encoded to.
 */
function isGzipped(header: string | undefined): boolean {
  const codings = (header ?? "").split(",").map((coding) => coding.trim().toLowerCase()).filter((coding) => coding && coding !== "identity");
  if (codings.length === 0) return false;
  if (codings.length === 1 && (codings[0] === "gzip" || codings[0] === "x-gzip")) return true;
  throw new GraphQLError(
    `Content-Encoding '${header!.slice(0, 100)}' is not supported: send the file as it is, or gzip-compressed with Content-Encoding: gzip`,
    { extensions: { code: "UNSUPPORTED_MEDIA_TYPE", http: { status: 415, headers: { "accept-encoding": "gzip" } } } },
  );
}

/**
 * The file's bytes, in a stream of their own fed from the request (the service may destroy the stream it is given
 * — a bad line ends the read — and that must not destroy the socket the answer goes out on), decoded as they
 * arrive when the body is gzip. What is decoded is the file: its size limit, SHA-256 and duplicate check are the
 * decoded bytes'. A body that is not gzip fails the file with INVALID_FILE, one that expands beyond MAX_GZIP_RATIO
 * with PAYLOAD_TOO_LARGE.
 */
function fileStream(req: IncomingMessage, gzipped: boolean): Readable {
  const file = gzipped ? gunzipped(req) : req.pipe(new PassThrough());
  // The service sees the stream's errors through its own listeners, also those from before it began to read (the
  // client gone, or the body found not to be gzip, while the viewer was looked up): unheard, they would be thrown.
  file.on("error", () => undefined);
  return file;
}

/** The request's body, gunzipped as it arrives (see fileStream). */
function gunzipped(req: IncomingMessage): Readable {
  const gunzip = createGunzip();
  let decoded = 0;
  const file = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback) {
      decoded += chunk.length;
      if (decoded > GZIP_RATIO_FROM_BYTES && decoded > MAX_GZIP_RATIO * gunzip.bytesWritten) {
        const message = `The gzip body expands more than ${MAX_GZIP_RATIO}-fold (${decoded} bytes from ${gunzip.bytesWritten}): refused as a likely decompression bomb; send the file uncompressed`;
        done(new IngestError("PAYLOAD_TOO_LARGE", message));
        return;
      }
      done(null, chunk);
    },
  });
  gunzip.on("error", (error) => file.destroy(new IngestError("INVALID_FILE", `The body is not valid gzip (Content-Encoding: gzip): ${error.message}`)));
  file.on("close", () => gunzip.destroy());
  req.pipe(gunzip).pipe(file);
  return file;
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
    const { http, ...shown } = extensions as { http?: { status?: number; headers?: Record<string, string> } } & Record<string, unknown>;
    const status = http?.status ?? STATUS_BY_CODE[String(shown.code)] ?? 500;
    for (const [name, value] of Object.entries(http?.headers ?? {})) res.setHeader(name, value);
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
    const contentLength = Number(req.headers["content-length"]) || undefined;
    let received = 0;
    let body: Readable | undefined;
    let clientGone = false;
    req.on("error", () => undefined);
    req.on("close", () => {
      if (req.complete) return;
      clientGone = true;
      body?.destroy(new ClientDisconnectedError(received, contentLength));
    });
    try {
      const query = parseQuery(new URL(req.url ?? "/", "http://localhost").searchParams);
      const gzipped = isGzipped(req.headers["content-encoding"]);
      req.on("data", (chunk: Buffer) => (received += chunk.length));
      body = fileStream(req, gzipped);
      const viewer = await viewerOf(req);
      // A compressed body's length is not the file's size (that is known once it is decoded).
      const declaredSize = gzipped ? undefined : contentLength;
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
        // Nobody to answer: the upload (if it had begun) is FAILED saying so; the log says which one it was.
        const uploadId = error instanceof GraphQLError ? error.extensions.uploadId : undefined;
        logger.info({ requestId: currentRequestScope()?.requestId, dataSourceId, uploadId, received, contentLength }, "the client closed an upload before sending all of it");
        return;
      }
      // What the client is still sending is of no use now: close the connection rather than read it all.
      if (!req.complete) res.setHeader("connection", "close");
      replyError(res, error);
    } finally {
      // Whatever the service left unread is discarded (until the connection closes, when it was refused early).
      req.unpipe();
      req.resume();
    }
  }

  return { put: handleUpload, status: handleStatus };
}
