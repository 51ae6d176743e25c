/**
 * Uploads and previews of data-source files. Responsible for who may upload (through the data source's
 * project), the instance's limits (file size, concurrent ingests), the upload row's lifecycle
 * (PROCESSING → COMPLETED | FAILED, progress while it runs) and metrics; the streaming itself is the pipeline's.
 */
import { randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { GraphQLError } from "graphql";
import type pg from "pg";
import { policy, type Viewer } from "../auth/policy.js";
import type { IngestPolicy, RowIssueSeverity } from "../generated/prisma/enums.js";
import { pageRequest, pageSize, toConnection, toConnectionBy } from "../graphql/pagination.js";
import { BadUserInputError, ForbiddenError, NotFoundError } from "../graphql/errors.js";
import type { FileUpload } from "../graphql/models.js";
import { isId, requireId, requireStorableText } from "../graphql/validate.js";
import type { Logger } from "../observability/logger.js";
import type { Metrics } from "../observability/metrics.js";
import type { AuditService } from "../modules/audit/audit-service.js";
import type { DataSourceRepository } from "../modules/data-sources/data-source-repository.js";
import type { ProjectService } from "../modules/projects/project-service.js";
import type { IssuePosition, UploadRepository } from "../modules/uploads/upload-repository.js";
import { parseColumnMapping, type ColumnMapping } from "./column-mapping.js";
import { IngestError, ingestFile, previewFile, uploadLockKey, type PreviewRow } from "./ingest-pipeline.js";
import { currentRequestScope } from "../observability/request-scope.js";
import { findDatabaseUnavailable } from "../db/errors.js";
import type { ChangeFeed } from "../db/change-feed.js";
import { tags } from "../cache/tags.js";
import type { ScheduleService } from "../modules/schedules/schedule-service.js";

export const PREVIEW_ROWS = 100;

function issueCursor(position: IssuePosition): string {
  return Buffer.from(JSON.stringify([position.line, position.id])).toString("base64url");
}

/** The largest `int` (an issue's line) and `bigint` (its id) PostgreSQL holds. */
const MAX_INT4 = 2 ** 31 - 1;
const MAX_INT8 = 2n ** 63n - 1n;

/**
 * A position in an upload's issues, from a cursor of ours: anything else — an edited cursor too, whose numbers
 * PostgreSQL's `int`/`bigint` cannot hold — is a BAD_USER_INPUT naming `after`, never a query that fails.
 */
function parseIssueCursor(cursor: string | null | undefined): IssuePosition | null {
  if (!cursor) return null;
  try {
    const [line, id]: unknown[] = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    const lineOk = typeof line === "number" && Number.isInteger(line) && line >= 0 && line <= MAX_INT4;
    if (lineOk && typeof id === "string" && /^\d{1,19}$/.test(id) && BigInt(id) <= MAX_INT8) return { line, id };
  } catch {
    // not a cursor of ours
  }
  throw new BadUserInputError("after", "is not a cursor from this list (use pageInfo.endCursor)");
}
/** How often a running ingest writes its progress to the upload row. */
const PROGRESS_INTERVAL_MS = 500;
/** How often an instance looks for uploads whose ingest died (see recoverInterrupted). */
export const RECOVERY_INTERVAL_MS = 60_000;

const HTTP_STATUS: Record<string, number> = { INVALID_FILE: 422, PAYLOAD_TOO_LARGE: 413, DUPLICATE_FILE: 409, TOO_MANY_INGESTS: 429 };

/**
 * What a caller destroys an upload's body with when its client went away before sending all of it (the PUT route):
 * the upload then fails saying so — the client's doing, not an unexpected error — and `upload` rejects with
 * CLIENT_CLOSED_REQUEST and the upload's id, for the caller's log (there is nobody left to answer).
 */
export class ClientDisconnectedError extends Error {
  constructor(received: number, expected?: number) {
    super(`The client disconnected after ${received}${expected === undefined ? "" : ` of ${expected}`} bytes`);
  }
}

function ingestError(code: string, message: string, extra: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(message, { extensions: { code, http: { status: HTTP_STATUS[code] ?? 400 }, ...extra } });
}

/** How an upload is answered. */
export interface UploadOptions {
  /**
   * Answer as soon as the file has been received whole (status PROCESSING) rather than when the ingest has
   * committed: the HTTP `Prefer: respond-async` preference (RFC 7240).
   */
  respondAsync?: boolean;
  /**
   * With `respondAsync`, the client's `wait` (RFC 7240) as a time (ms since the epoch): until then the answer waits
   * for the ingest to be over, and is the final one if it is; a failure by then is answered as without the
   * preference. The early answer never comes before the file is in, however short the wait.
   */
  answerBy?: number;
}

export interface UploadInput {
  dataSourceId: string;
  fileName: string;
  /** Size the client announced (Content-Length), checked against the limit before reading. */
  declaredSize?: number;
  policy?: IngestPolicy | null;
  force?: boolean | null;
}

export function createIngestService(deps: {
  pool: pg.Pool;
  /** The ingest's raw-SQL writes are announced here (the response cache invalidates on them). */
  changes: ChangeFeed;
  uploads: UploadRepository;
  dataSources: DataSourceRepository;
  projects: Pick<ProjectService, "authorize">;
  audit: AuditService;
  metrics: Pick<Metrics, "fileUploadsActive" | "ingestRowsTotal" | "ingestBytesTotal">;
  logger: Logger;
  limits: { maxUploadBytes: number; maxConcurrentIngests: number };
  /** Told of every committed upload: automatic reconciliation runs on new uploads (src/modules/schedules/). */
  triggers?: Pick<ScheduleService, "uploadCompleted">;
}) {
  const { pool, changes, uploads, dataSources, projects, audit, metrics, logger, limits, triggers } = deps;
  /** Ingests running on this instance (the limit counts them until they are over, answered early or not). */
  let active = 0;
  /** Every ingest running, settled or not: what `drain` waits for. */
  const running = new Set<Promise<void>>();

  /** The data source, its project and its parsed mapping, if the viewer may upload into it. */
  async function authorizeSource(viewer: Viewer | null, rawId: string, mappingOverride?: unknown) {
    const id = requireId(rawId, "dataSourceId");
    const source = await dataSources.findById(id);
    if (!source) throw new NotFoundError("DataSource");
    // Not into an archived project (read-only): refused naming the data source the caller gave.
    const { actor, relation } = await projects.authorize(viewer, source.projectId, "dataSourceId").catch((error) => {
      throw error instanceof NotFoundError ? new NotFoundError("DataSource") : error;
    });
    if (!policy.editProject(actor, relation)) throw new ForbiddenError("Your role in this project does not allow you to upload files");
    const parsed = mappingOverride === undefined ? parseColumnMapping(source.columnMapping, { stored: true }) : parseColumnMapping(mappingOverride);
    if (!parsed.ok) {
      const field = mappingOverride === undefined ? "dataSource.columnMapping" : "columnMapping";
      throw new BadUserInputError(`${field}${parsed.path ? `.${parsed.path}` : ""}`, parsed.message);
    }
    return { actor, source, mapping: parsed.mapping };
  }

  function checkDeclaredSize(size: number | undefined) {
    if (size !== undefined && size > limits.maxUploadBytes) {
      throw ingestError("PAYLOAD_TOO_LARGE", `The file (${size} bytes) is larger than the ${limits.maxUploadBytes}-byte upload limit`);
    }
  }

  /**
   * One upload from its row's creation to its final state: the row, the ingest on a connection of its own, progress,
   * metrics, the automatic-run trigger and the audit event. Calls `received` with the upload as it stands once the
   * file is in whole. Resolves with the finished upload, or rejects with the error a caller should see (the row is
   * FAILED with its message by then).
   */
  async function ingestUpload(
    actor: Viewer,
    source: { id: string; projectId: string },
    mapping: ColumnMapping,
    input: UploadInput,
    body: Readable,
    received: (upload: FileUpload) => void,
  ): Promise<FileUpload> {
    const id = randomUUID();
    const client = await pool.connect();
    let row: FileUpload | undefined;
    let latest = { bytesRead: 0, rowsRead: 0 };
    let timer: NodeJS.Timeout | undefined;
    try {
      // Held on this session until the upload's final state is written: crash recovery (on any instance) fails only
      // PROCESSING uploads whose lock is free, so it is taken before the row exists, and let go only after.
      await client.query("SELECT pg_advisory_lock(hashtextextended($1, 0))", [uploadLockKey(id)]);
      row = await uploads.create({
        id,
        projectId: source.projectId,
        dataSourceId: source.id,
        uploadedById: actor.id,
        fileName: input.fileName.slice(0, 255) || "upload.csv",
        sizeBytes: input.declaredSize ?? 0,
        policy: input.policy ?? "SKIP_INVALID_ROWS",
        forced: input.force ?? false,
      });
      const created = row;
      let written = 0;
      timer = setInterval(() => {
        if (latest.bytesRead === written) return;
        written = latest.bytesRead;
        uploads.progress(created.id, latest.bytesRead, latest.rowsRead).catch((error) => logger.warn({ err: error }, "could not write upload progress"));
      }, PROGRESS_INTERVAL_MS);
      const outcome = await ingestFile(
        client,
        { fileId: row.id, projectId: source.projectId, dataSourceId: source.id, policy: row.policy, force: row.forced, maxBytes: limits.maxUploadBytes },
        mapping,
        body,
        {
          onProgress: (progress) => (latest = progress),
          onReceived: (progress) => {
            latest = progress;
            written = progress.bytesRead;
            // Whoever follows the upload sees the whole file read at once; the ingest does not wait for this.
            void uploads
              .progress(created.id, progress.bytesRead, progress.rowsRead)
              .catch((error) => logger.warn({ err: error }, "could not write upload progress"))
              .then(() => uploads.findById(created.id))
              .catch(() => null)
              .then((current) => received(current ?? { ...created, bytesRead: BigInt(progress.bytesRead), rowsRead: progress.rowsRead }));
          },
        },
      );
      // Committed: the upload, the source's records and counts, and the project's statistics changed.
      await changes.wrote(
        [tags.upload(row.id), tags.dataSourceUploads(source.id), tags.dataSource(source.id), tags.projectRecords(source.projectId)],
        "ingest",
      );
      metrics.ingestBytesTotal.inc(outcome.bytesRead);
      metrics.ingestRowsTotal.inc({ result: "ingested" }, outcome.rowsIngested);
      metrics.ingestRowsTotal.inc({ result: "rejected" }, outcome.rowsRejected);
      metrics.ingestRowsTotal.inc({ result: "flagged" }, outcome.rowsFlagged);
      if (outcome.status === "COMPLETED" && triggers) {
        // The upload stands whatever happens here: a failed trigger is logged (the next upload or cron retries).
        await triggers
          .uploadCompleted(source.projectId, source.id)
          .catch((error) => logger.error({ err: error, projectId: source.projectId }, "could not check the automatic reconciliation trigger"));
      }
      return (await uploads.findById(row.id))!;
    } catch (error) {
      if (!row) throw error;
      const known = error instanceof IngestError;
      const disconnected = error instanceof ClientDisconnectedError;
      // What a caller waiting for the answer would have been told (see graphql/format-error.ts): the row says it
      // too, for a caller answered early.
      const unavailable = known || disconnected ? null : findDatabaseUnavailable(error);
      const requestId = currentRequestScope()?.requestId;
      const message = known
        ? error.message
        : disconnected
          ? `${error.message}; nothing was ingested`
          : unavailable
            ? `${unavailable.message} (nothing of the file was ingested)`
            : `The ingest failed unexpectedly; nothing was ingested (quote request id ${requestId ?? "unknown"} to an operator)`;
      await uploads.fail(row.id, message, known ? (error.line ?? null) : null, latest.bytesRead).catch(() => {});
      metrics.ingestBytesTotal.inc(latest.bytesRead);
      if (known) throw ingestError(error.code, message, error.line === undefined ? { uploadId: row.id } : { uploadId: row.id, line: error.line });
      if (disconnected) throw ingestError("CLIENT_CLOSED_REQUEST", message, { uploadId: row.id });
      throw error;
    } finally {
      clearInterval(timer);
      // The upload's state is final (or its row never existed): recovery may look at it now.
      const unlocked = await client.query("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [uploadLockKey(id)]).then(
        () => true,
        () => false,
      );
      // A connection that cannot unlock is not given back: closing it lets the lock go.
      client.release(unlocked ? undefined : true);
      if (row) {
        await audit
          .recordNow({
            userId: actor.id,
            projectId: source.projectId,
            action: "dataSource.upload",
            resourceType: "UploadedFile",
            resourceId: row.id,
            after: { dataSourceId: source.id, fileName: row.fileName },
          })
          .catch((error) => logger.warn({ err: error }, "could not record the upload's audit event"));
      }
    }
  }

  return {
    /**
     * Ingests `body` into a data source. Resolves with the finished upload (COMPLETED, or FAILED by policy); with
     * `respondAsync`, as soon as the file has been received whole (status PROCESSING), while validation and COMMIT
     * go on in the background (see `drain`). Problems found before that point reject the call either way; after
     * it, they end in the upload's FAILED status and `error`, the message a waiting caller would have got.
     */
    async upload(viewer: Viewer | null, input: UploadInput, body: Readable, options: UploadOptions = {}): Promise<FileUpload> {
      const { actor, source, mapping } = await authorizeSource(viewer, input.dataSourceId);
      checkDeclaredSize(input.declaredSize);
      requireStorableText(input.fileName, "fileName");
      if (active >= limits.maxConcurrentIngests) {
        throw ingestError("TOO_MANY_INGESTS", `This server is already ingesting ${active} file(s), its limit; retry shortly`);
      }
      // The slot is held until the ingest is over, however early the caller was answered.
      active += 1;
      metrics.fileUploadsActive.inc();
      let received!: (upload: FileUpload) => void;
      const receivedWhole = new Promise<FileUpload>((resolve) => (received = resolve));
      const run = ingestUpload(actor, source, mapping, input, body, received).finally(() => {
        active -= 1;
        metrics.fileUploadsActive.dec();
      });
      const settled = run.then(
        () => undefined,
        () => undefined,
      );
      running.add(settled);
      void settled.then(() => running.delete(settled));
      if (!options.respondAsync) return run;
      const answer = await Promise.race([receivedWhole, run]);
      // `Prefer: wait`: the final answer rather than the early one, if the ingest is over by the client's deadline.
      const waitMs = (options.answerBy ?? 0) - Date.now();
      if (answer.status === "PROCESSING" && waitMs > 0) {
        const timer = new AbortController();
        const finished = await Promise.race([run, delay(waitMs, null, { signal: timer.signal }).catch(() => null)]).finally(() => timer.abort());
        if (finished) return finished;
      }
      // From here on nobody awaits `run`: a failure is the upload row's (written by ingestUpload) and the log's.
      run.catch((error: unknown) => {
        if (error instanceof GraphQLError) logger.info({ uploadId: answer.id, code: error.extensions.code }, "an upload answered early failed: its upload is FAILED");
        else if (findDatabaseUnavailable(error)) logger.warn({ uploadId: answer.id, err: error }, "an upload answered early lost its database: its upload is FAILED");
        else logger.error({ err: error, uploadId: answer.id }, "an upload answered early failed unexpectedly: its upload is FAILED");
      });
      return answer;
    },

    /** The first PREVIEW_ROWS rows of `body`, validated as an ingest would; nothing is written. */
    async preview(viewer: Viewer | null, input: { dataSourceId: string; columnMapping?: unknown }, body: Readable) {
      const { mapping } = await authorizeSource(viewer, input.dataSourceId, input.columnMapping ?? undefined);
      const client = await pool.connect();
      try {
        const result = await previewFile(client, mapping, body, { maxBytes: limits.maxUploadBytes, limit: PREVIEW_ROWS });
        // Rows the framer dropped (wrong number of fields, bytes invalid in the encoding) never reach the staging
        // table: show each as a row with its errors, as an ingest lists them.
        const dropped = new Map<number, PreviewRow>();
        for (const issue of result.framerIssues) {
          let row = dropped.get(issue.line);
          if (!row) {
            row = { line: issue.line, externalId: "", amount: null, currency: null, bookedDate: null, valueDate: null, reference: "", description: "", counterparty: "", extras: {}, errors: [] };
            dropped.set(issue.line, row);
          }
          row.errors.push({ line: issue.line, column: issue.column, reason: issue.reason, severity: "ERROR" });
        }
        const rows = [...result.rows, ...dropped.values()].sort((a, b) => a.line - b.line).slice(0, PREVIEW_ROWS);
        const invalidRows = rows.filter((row) => row.errors.length > 0).length;
        return { header: result.header, rows, validRows: rows.length - invalidRows, invalidRows };
      } catch (error) {
        if (error instanceof IngestError) throw ingestError(error.code, error.message, error.line === undefined ? {} : { line: error.line });
        throw error;
      } finally {
        client.release();
      }
    },

    /** An upload, if the viewer may see its project. */
    async get(viewer: Viewer | null, id: string): Promise<FileUpload | null> {
      if (!isId(id)) return null;
      const upload = await uploads.findById(id);
      if (!upload) return null;
      // Reading: archived projects' uploads too.
      const visible = await projects.authorize(viewer, upload.projectId, "id", { allowArchived: true }).then(
        () => true,
        (error) => {
          if (error instanceof NotFoundError) return false;
          throw error;
        },
      );
      return visible ? upload : null;
    },

    /** Uploads of a data source the caller reached through its (already authorized) project, newest first. */
    async uploadsOf(source: { id: string }, args: { first?: number | null; after?: string | null }) {
      const page = pageRequest(args);
      const rows = await uploads.pageByDataSource(source.id, page);
      return toConnection(rows, page, () => uploads.countByDataSource(source.id));
    },

    /** Row issues of an (already authorized) upload, in file order, paged by (line, id). */
    async rowIssues(upload: { id: string }, args: { first?: number | null; after?: string | null; severity?: RowIssueSeverity | null }) {
      const page = { limit: pageSize(args.first), after: parseIssueCursor(args.after) };
      const severity = args.severity ?? null;
      const rows = await uploads.issues(upload.id, severity, page.limit, page.after);
      return toConnectionBy(
        rows.map((row) => ({ ...row, id: BigInt(row.id) })),
        page,
        (row) => issueCursor({ line: row.line, id: String(row.id) }),
        () => uploads.countIssues(upload.id, severity),
      );
    },

    /**
     * Uploads whose ingest died with its process (on any instance) are marked FAILED (nothing of them was kept).
     * Run at start and then every RECOVERY_INTERVAL_MS: a client following an upload answered early must see it end
     * even when its instance was killed and no instance restarts.
     */
    async recoverInterrupted(): Promise<void> {
      const failed = await uploads.failInterrupted();
      if (failed.length) logger.warn({ uploads: failed }, "marked interrupted uploads as failed");
    },

    /** Ingests running now on this instance. */
    get running(): number {
      return running.size;
    },

    /**
     * Resolves when every ingest this instance runs is over (shutdown: those answered early go on after their
     * request; the HTTP server's own drain does not see them).
     */
    async drain(): Promise<void> {
      while (running.size > 0) await Promise.all(running);
    },
  };
}

export type IngestService = ReturnType<typeof createIngestService>;
