/**
 * Streams one CSV file into PostgreSQL and validates it there, in a single transaction.
 *
 *   upload bytes → meter (sha256, size limit, progress) → framer (exact line numbers, structure checks)
 *     → COPY into a temporary staging table → one set-wise SELECT validates and normalizes every row
 *     → good rows INSERTed into `records`, problems into `upload_row_issues` → COMMIT
 *
 * PostgreSQL's COPY parser splits fields at \copy speed and the validation runs as one statement, so Node's
 * single thread only moves bytes; back-pressure runs end to end through stream.pipeline; memory stays bounded by
 * stream buffers whatever the file size. Nothing becomes visible before COMMIT: a crash anywhere leaves no partial
 * upload (the service marks such uploads FAILED on restart, see upload-recovery).
 */
import { createHash, randomBytes } from "node:crypto";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { looksLikeHeader, resolveColumns, type ColumnMapping, type MappedField, type ResolvedColumns } from "./column-mapping.js";
import { createCsvFramer, CsvStructureError, type CsvFramer } from "./csv-framer.js";
import { copySql, ISSUE_SEPARATOR, stagingTableSql, validatedRowsSql } from "./validation-sql.js";

/** At most this many row issues are stored per upload (counts stay exact beyond it). */
export const MAX_STORED_ISSUES = 100_000;

export type IngestErrorCode = "INVALID_FILE" | "PAYLOAD_TOO_LARGE" | "DUPLICATE_FILE";

/** A problem with the file as a whole: nothing of it is ingested. */
export class IngestError extends Error {
  constructor(
    readonly code: IngestErrorCode,
    message: string,
    readonly line?: number,
  ) {
    super(message);
  }
}

export interface IngestTarget {
  fileId: string;
  projectId: string;
  dataSourceId: string;
  policy: "SKIP_INVALID_ROWS" | "REJECT_FILE";
  force: boolean;
  maxBytes: number;
}

export interface IngestProgress {
  bytesRead: number;
  rowsRead: number;
}

export interface IngestOutcome {
  status: "COMPLETED" | "FAILED";
  sha256: string;
  bytesRead: number;
  rowsRead: number;
  rowsIngested: number;
  rowsRejected: number;
  rowsFlagged: number;
  error: string | null;
  /** The line `error` is about (under REJECT_FILE: the first invalid row's). */
  errorLine: number | null;
}

/** Counts bytes and hashes them on the way through; fails the stream beyond `maxBytes`. */
class Meter extends Transform {
  readonly hash = createHash("sha256");
  bytes = 0;
  constructor(
    private readonly maxBytes: number,
    private readonly onBytes: (bytes: number) => void,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _: BufferEncoding, done: TransformCallback) {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      done(new IngestError("PAYLOAD_TOO_LARGE", `The file is larger than the ${this.maxBytes}-byte upload limit`));
      return;
    }
    this.hash.update(chunk);
    this.onBytes(this.bytes);
    done(null, chunk);
  }
}

/** The advisory-lock key an ingest holds for its upload: free means nobody is ingesting it any more. */
export const uploadLockKey = (fileId: string) => `upload:${fileId}`;

/** A problem of a row the framer dropped before COPY (a wrong field count, bytes invalid in the encoding). */
export interface FramerIssue {
  line: number;
  /** The column by header name (or `column N`), or `(row)` for the row as a whole. */
  column: string;
  reason: string;
}

interface Staged {
  table: string;
  layout: { mapping: ColumnMapping; positions: Map<MappedField, number>; columnCount: number; header: string[] | null };
  meter: Meter;
  rowsRead: number;
  /** The first MAX_STORED_ISSUES problems of the rows the framer dropped, in file order. */
  framerIssues: FramerIssue[];
  /** Rows the framer dropped (exact). */
  framerRejected: number;
}

/**
 * Streams `input` through the framer into a staging table on `client` (inside the caller's transaction).
 * With `recordLimit`, stops reading after that many records (preview) and drains the rest of the input.
 */
async function stage(
  client: pg.PoolClient,
  mapping: ColumnMapping,
  input: Readable,
  options: { maxBytes: number; onProgress?: (progress: IngestProgress) => void; recordLimit?: number },
): Promise<Staged> {
  const framerIssues: FramerIssue[] = [];
  const framer: CsvFramer = createCsvFramer({
    delimiter: mapping.delimiter,
    quote: mapping.quote,
    skipRows: mapping.skipRows,
    encoding: mapping.encoding,
    isHeader: (fields) => looksLikeHeader(mapping, fields),
    onRowError: ({ line, field, reason }) => {
      if (framerIssues.length >= MAX_STORED_ISSUES) return;
      // Named as the validation SQL names columns (the header is read before any data row).
      const column = field === undefined ? "(row)" : framer.header?.[field] || `column ${field + 1}`;
      framerIssues.push({ line, column, reason });
    },
  });
  const meter = new Meter(options.maxBytes, (bytes) => options.onProgress?.({ bytesRead: bytes, rowsRead: framer.records }));
  const feeding = pipeline(input, meter, framer);
  const output = framer[Symbol.asyncIterator]();
  const table = `staging_${randomBytes(6).toString("hex")}`;
  try {
    // The first record settles the header and the field count. No data record at all is a file problem only when the
    // framer dropped none either: rows it dropped are row problems, listed like any other (even if all are).
    const first = await output.next();
    if (first.done && framer.rejected === 0) {
      await feeding;
      throw new IngestError("INVALID_FILE", framer.header ? "The file has a header but no data rows" : "The file is empty");
    }
    const header = framer.header;
    const columnCount = framer.columnCount;
    const resolved = resolveColumns(mapping, header, columnCount);
    if (!resolved.ok) throw columnsError(resolved, header, framer.firstRecordLine ?? mapping.skipRows + 1);
    await client.query(stagingTableSql(table, columnCount));
    const limit = options.recordLimit;
    async function* records() {
      for (let next = first; !next.done; next = await output.next()) {
        yield next.value as Buffer;
        if (limit !== undefined && framer.records >= limit) return;
      }
    }
    await pipeline(Readable.from(records()), client.query(copyFrom(copySql(table, mapping))));
    if (limit !== undefined && framer.records >= limit) {
      // Preview: the rest of the file is not needed; let the sender finish without us buffering it.
      input.unpipe();
      input.resume();
      feeding.catch(() => {});
    } else {
      await feeding;
    }
    return {
      table,
      layout: { mapping, positions: resolved.positions, columnCount, header },
      meter,
      rowsRead: framer.records + framer.rejected,
      framerIssues,
      framerRejected: framer.rejected,
    };
  } catch (error) {
    input.unpipe?.();
    input.resume?.();
    feeding.catch(() => {});
    throw translate(error);
  }
}

/** Why a file's columns do not fit the mapping (`headerLine`: the first record's line, the header's if there is one). */
function columnsError(resolved: Exclude<ResolvedColumns, { ok: true }>, header: string[] | null, headerLine: number): IngestError {
  if ("repeated" in resolved) {
    const { name, fields } = resolved.repeated;
    const times = fields.length === 2 ? "twice" : `${fields.length} times`;
    const where = `fields ${fields.slice(0, -1).join(", ")} and ${fields.at(-1)}`;
    return new IngestError("INVALID_FILE", `line ${headerLine}: the header has '${name}' ${times} (${where}); map the column by position instead`, headerLine);
  }
  const where = header ? `its header (line ${headerLine}) does not name` : "it has no header and too few columns for";
  return new IngestError("INVALID_FILE", `The file does not match the data source's column mapping: ${where} ${resolved.missing.join(", ")}`, header ? headerLine : undefined);
}

/** Structural faults from the framer and PostgreSQL's COPY become IngestErrors that name the line. */
function translate(error: unknown): unknown {
  if (error instanceof IngestError) return error;
  if (error instanceof CsvStructureError) return new IngestError("INVALID_FILE", error.message, error.line);
  const pgError = error as { code?: string; message?: string; where?: string };
  // The multipart parser enforces the same size limit on the way in.
  if (pgError.code === "PAYLOAD_TOO_LARGE") return new IngestError("PAYLOAD_TOO_LARGE", pgError.message ?? "The file is too large");
  if (pgError.code === "22021" || pgError.code === "22P04" || pgError.code === "22P05") {
    // Invalid byte sequence or bad COPY data. The framer drops rows with bytes invalid in the declared encoding
    // before COPY, so this is a fallback (a database whose encoding cannot hold every character, for one).
    // PostgreSQL numbers the framed lines it received; that is the data row's position, not the file line.
    const copyLine = /COPY staging_\w+, line (\d+)/.exec(pgError.where ?? "")?.[1];
    return new IngestError(
      "INVALID_FILE",
      `The file cannot be read in the encoding its column mapping declares: ${pgError.message}${copyLine ? ` (around data row ${copyLine})` : ""}`,
    );
  }
  return error;
}

/** Why a file was refused under REJECT_FILE: how many rows, and the first of them with its line and column. */
function rejectedFileMessage(rowsRejected: number, first: { line: number; column: string; reason: string } | undefined): string {
  const where = first ? `; the first is line ${first.line}, ${first.column === "(row)" ? "the row as a whole" : `column ${first.column}`}: ${first.reason}` : "";
  return `${rowsRejected} invalid row(s): nothing was ingested (policy REJECT_FILE)${where}; see rowErrors`;
}

/**
 * Refuses a file already ingested into the data source (same SHA-256, COMPLETED), unless forced. The same file sent
 * twice at once (a double submit) would pass the check twice, neither having committed: the check is made under a
 * transaction lock on (data source, SHA-256), so the second waits for the first's COMMIT, then sees it.
 */
async function refuseDuplicate(client: pg.PoolClient, target: IngestTarget, sha256: string): Promise<void> {
  if (target.force) return;
  await client.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [`upload-sha256:${target.dataSourceId}:${sha256}`]);
  const { rows: earlier } = await client.query(
    `SELECT id, file_name, completed_at FROM uploaded_files
     WHERE data_source_id = $1 AND sha256 = $2 AND status = 'COMPLETED' AND id <> $3 LIMIT 1`,
    [target.dataSourceId, sha256, target.fileId],
  );
  if (earlier.length) {
    throw new IngestError(
      "DUPLICATE_FILE",
      `This file was already ingested into the data source (upload ${earlier[0].id}, "${earlier[0].file_name}", ${earlier[0].completed_at.toISOString()}); upload it with force: true to ingest it again`,
    );
  }
}

/** Validates a staged file and ingests it. Runs inside the caller's transaction; returns the outcome. */
async function ingestStaged(client: pg.PoolClient, staged: Staged, target: IngestTarget, sha256: string): Promise<IngestOutcome> {
  const { table, layout } = staged;
  // Record ids: the upload's first 64 bits, then the line number. Unique, and ascending within a file, so the
  // primary-key index grows at its right edge instead of taking a random insert per row.
  const recordId = `(left(replace($3::uuid::text, '-', ''), 16) || lpad(to_hex(v.line_no), 16, '0'))::uuid`;
  const { rows } = await client.query(
    `WITH v AS MATERIALIZED (${validatedRowsSql(table, layout)}),
     accepted AS (
       -- Under REJECT_FILE, one invalid row anywhere (here, or dropped by the framer: $5) means none is accepted.
       SELECT * FROM v WHERE cardinality(v.errors) = 0
         AND ($4::text = 'SKIP_INVALID_ROWS' OR (NOT $5::boolean AND NOT EXISTS (SELECT 1 FROM v bad WHERE cardinality(bad.errors) > 0)))
     ),
     inserted AS (
       INSERT INTO records (id, project_id, data_source_id, file_id, external_id, amount, currency, booked_date, value_date,
                            reference, description, counterparty, row_number, extras)
       SELECT ${recordId}, $1::uuid, $2::uuid, $3::uuid, v.external_id, v.amount, v.currency, v.booked_date, v.value_date,
              v.reference, v.description, v.counterparty, v.line_no, v.extras
       FROM accepted v
       RETURNING 1
     ),
     issues AS (
       INSERT INTO upload_row_issues (file_id, line, "column", reason, severity)
       SELECT $3::uuid, v.line_no, split_part(e, E'${ISSUE_SEPARATOR}', 1), split_part(e, E'${ISSUE_SEPARATOR}', 2), 'ERROR'
       FROM v CROSS JOIN LATERAL unnest(v.errors) e
       LIMIT ${MAX_STORED_ISSUES - staged.framerIssues.length}
       RETURNING 1
     )
     SELECT (SELECT count(*) FROM inserted)::int AS ingested,
            (SELECT count(*) FROM v WHERE cardinality(v.errors) > 0)::int AS rejected,
            (SELECT count(*) FROM issues)::int AS issues`,
    [target.projectId, target.dataSourceId, target.fileId, target.policy, staged.framerRejected > 0],
  );
  const rowsRejected = rows[0].rejected + staged.framerRejected;
  const issues = staged.framerIssues;
  if (issues.length) {
    await client.query(
      `INSERT INTO upload_row_issues (file_id, line, "column", reason, severity)
       SELECT $1, line, "column", reason, 'ERROR' FROM unnest($2::int[], $3::text[], $4::text[]) AS i(line, "column", reason)`,
      [target.fileId, issues.map((issue) => issue.line), issues.map((issue) => issue.column), issues.map((issue) => issue.reason)],
    );
  }
  const rejectAll = target.policy === "REJECT_FILE" && rowsRejected > 0;
  const rowsIngested = rejectAll ? 0 : rows[0].ingested;
  // A refused file names its first invalid row, so the message alone says where to start.
  let firstIssue: { line: number; column: string; reason: string } | undefined;
  if (rejectAll) {
    const { rows: first } = await client.query(
      `SELECT line, "column", reason FROM upload_row_issues WHERE file_id = $1 AND severity = 'ERROR' ORDER BY line, id LIMIT 1`,
      [target.fileId],
    );
    firstIssue = first[0];
  }

  // Duplicate external ids within the data source are ingested, and flagged on every row of this file they touch.
  let rowsFlagged = 0;
  if (rowsIngested > 0) {
    const idColumn = layout.header ? layout.header[layout.positions.get("externalId")!] : `column ${layout.positions.get("externalId")! + 1}`;
    // A bulk comparison: the planner's statistics do not know the rows this transaction just inserted, and a
    // nested loop chosen on that stale picture takes minutes at ten million rows; hash joins take seconds.
    await client.query("SET LOCAL enable_nestloop = off");
    const flagged = await client.query(
      `WITH dup AS (
         SELECT external_id, count(*) AS n FROM records WHERE data_source_id = $2 GROUP BY external_id HAVING count(*) > 1
       )
       INSERT INTO upload_row_issues (file_id, line, "column", reason, severity)
       SELECT $1, r.row_number, $3, format('external id %s appears %s times in this data source', quote_literal(left(r.external_id, 60)), dup.n), 'WARNING'
       FROM records r JOIN dup USING (external_id) WHERE r.file_id = $1 AND r.data_source_id = $2`,
      [target.fileId, target.dataSourceId, idColumn],
    );
    rowsFlagged = flagged.rowCount ?? 0;
    await client.query("RESET enable_nestloop");
  }

  return {
    status: rejectAll ? "FAILED" : "COMPLETED",
    sha256,
    bytesRead: staged.meter.bytes,
    rowsRead: staged.rowsRead,
    rowsIngested,
    rowsRejected,
    rowsFlagged,
    error: rejectAll ? rejectedFileMessage(rowsRejected, firstIssue) : null,
    errorLine: firstIssue?.line ?? null,
  };
}

/** What an ingest reports while it runs. */
export interface IngestHooks {
  /** Bytes and rows read so far, as the file streams in. */
  onProgress(progress: IngestProgress): void;
  /**
   * Called once, when the whole input has been read and staged and the file is not a duplicate: from here on the
   * ingest needs nothing more from its sender (validation, inserts and COMMIT follow). Not called when the ingest
   * fails before.
   */
  onReceived?(progress: IngestProgress): void;
}

/**
 * Ingests `input` as upload `target.fileId` on `client` in one transaction. Commits the records, the row issues and
 * the upload's final state together. The caller holds the upload's advisory lock (`uploadLockKey`) on `client`'s
 * session for as long as the upload is PROCESSING: that is how crash recovery tells a live ingest from a dead one.
 */
export async function ingestFile(
  client: pg.PoolClient,
  target: IngestTarget,
  mapping: ColumnMapping,
  input: Readable,
  hooks: IngestHooks,
): Promise<IngestOutcome> {
  await client.query("BEGIN");
  try {
    // A large file's statements run for minutes: the per-statement timeout for requests does not apply here.
    await client.query("SET LOCAL statement_timeout = 0");
    const staged = await stage(client, mapping, input, { maxBytes: target.maxBytes, onProgress: hooks.onProgress });
    // Known as soon as the file is in: refused before minutes of validation, and before an early answer.
    const sha256 = staged.meter.hash.digest("hex");
    await refuseDuplicate(client, target, sha256);
    hooks.onReceived?.({ bytesRead: staged.meter.bytes, rowsRead: staged.rowsRead });
    const outcome = await ingestStaged(client, staged, target, sha256);
    // clock_timestamp(), not now(): now() is when this transaction began, before the file was even read.
    await client.query(
      `UPDATE uploaded_files SET status = $2::"UploadStatus", sha256 = $3, size_bytes = $4, bytes_read = $4, rows_read = $5,
         rows_ingested = $6, rows_rejected = $7, rows_flagged = $8, error = $9, error_line = $10, completed_at = clock_timestamp()
       WHERE id = $1`,
      [target.fileId, outcome.status, outcome.sha256, outcome.bytesRead, outcome.rowsRead, outcome.rowsIngested, outcome.rowsRejected, outcome.rowsFlagged, outcome.error, outcome.errorLine],
    );
    if (outcome.rowsIngested > 0) {
      await client.query(
        `UPDATE data_sources SET record_count = record_count + $2, status = 'READY', updated_at = clock_timestamp() WHERE id = $1`,
        [target.dataSourceId, outcome.rowsIngested],
      );
    }
    await client.query("COMMIT");
    return outcome;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  }
}

export interface PreviewRow {
  line: number;
  externalId: string;
  amount: string | null;
  currency: string | null;
  bookedDate: string | null;
  valueDate: string | null;
  reference: string;
  description: string;
  counterparty: string;
  extras: Record<string, unknown>;
  errors: { line: number; column: string; reason: string; severity: "ERROR" }[];
}

/** Validates the first `limit` rows of `input` exactly as an ingest would, and writes nothing. */
export async function previewFile(
  client: pg.PoolClient,
  mapping: ColumnMapping,
  input: Readable,
  options: { maxBytes: number; limit: number },
): Promise<{ rows: PreviewRow[]; header: string[] | null; framerIssues: FramerIssue[] }> {
  await client.query("BEGIN");
  try {
    const staged = await stage(client, mapping, input, { maxBytes: options.maxBytes, recordLimit: options.limit });
    const { rows } = await client.query(
      `SELECT v.line_no, v.external_id, v.amount::numeric(20, 4)::text AS amount, v.currency, v.booked_date::text AS booked_date,
              v.value_date::text AS value_date, v.reference, v.description, v.counterparty, v.extras, v.errors
       FROM (${validatedRowsSql(staged.table, staged.layout)}) v ORDER BY v.line_no LIMIT ${options.limit}`,
    );
    return {
      header: staged.layout.header,
      framerIssues: staged.framerIssues.filter((issue) => rows.length < options.limit || issue.line <= rows.at(-1).line_no),
      rows: rows.map((row) => ({
        line: row.line_no,
        externalId: row.external_id,
        amount: row.amount,
        currency: row.currency,
        bookedDate: row.booked_date,
        valueDate: row.value_date,
        reference: row.reference,
        description: row.description,
        counterparty: row.counterparty,
        extras: row.extras,
        errors: (row.errors as string[]).map((entry) => {
          const [column, reason] = entry.split(ISSUE_SEPARATOR);
          return { line: row.line_no, column, reason, severity: "ERROR" as const };
        }),
      })),
    };
  } finally {
    await client.query("ROLLBACK").catch(() => {});
  }
}
