/**
 * The job-results CSV: its columns, the neutralization of cells a spreadsheet would run as formulas, and the
 * stream that turns the rows PostgreSQL sends (COPY text format) into fast-csv rows. Pure stream code: no SQL, no
 * HTTP.
 */
import { StringDecoder } from "node:string_decoder";
import { Transform, type TransformCallback } from "node:stream";
import { format, type CsvFormatterStream } from "fast-csv";
import { unescapeCopyText } from "../jobs/record-text.js";

/** One CSV row per record of a group (`side` LEFT or RIGHT), so a group of any shape (1:1 … N:M) exports whole. */
export const EXPORT_COLUMNS = [
  "group_id",
  "outcome",
  "kind",
  "status",
  "confidence",
  "pass",
  "rule",
  "amount_delta",
  "date_delta_days",
  "side",
  "record_id",
  "external_id",
  "amount",
  "currency",
  "booked_date",
  "value_date",
  "reference",
  "description",
  "counterparty",
] as const;

/**
 * Columns whose text came from users or their files (rule names, the records' fields): only these are neutralized.
 * The others are ours — ids, enum names, dates, and numbers PostgreSQL printed (`-12.5000`, `0.9500`, `-3`) — and
 * a leading minus there is a sign, not a formula: prefixing it would turn every negative amount into text in a
 * spreadsheet and break sums over the column.
 */
const TEXT_COLUMNS = new Set<(typeof EXPORT_COLUMNS)[number]>(["rule", "external_id", "currency", "reference", "description", "counterparty"]);
const TEXT_INDEXES = EXPORT_COLUMNS.flatMap((name, index) => (TEXT_COLUMNS.has(name) ? [index] : []));

/**
 * CSV formula injection (OWASP): a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return may be run as
 * a formula by Excel, LibreOffice or Google Sheets; a leading `'` makes it text and is not shown.
 */
export function neutralize(cell: string): string {
  return /^[=+\-@\t\r]/.test(cell) ? `'${cell}` : cell;
}

/** A COPY text line of the export query (columns in EXPORT_COLUMNS order) as CSV cells: NULL is an empty cell. */
export function rowOfCopyLine(line: string): string[] {
  const cells = line.split("\t");
  for (let i = 0; i < cells.length; i++) {
    const cell = cells[i]!;
    cells[i] = cell === "\\N" ? "" : cell.includes("\\") ? unescapeCopyText(cell) : cell;
  }
  for (const i of TEXT_INDEXES) cells[i] = neutralize(cells[i]!);
  return cells;
}

/** Bytes of COPY text in, one array of cells per line out (object mode), with back-pressure both ways. */
export function copyLinesToRows(): Transform {
  const decoder = new StringDecoder("utf8");
  let partial = "";
  return new Transform({
    readableObjectMode: true,
    // Rows waiting for the formatter: enough to keep it busy, few enough to bound memory.
    readableHighWaterMark: 1024,
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      const lines = (partial + decoder.write(chunk)).split("\n");
      partial = lines.pop()!;
      for (const line of lines) this.push(rowOfCopyLine(line));
      done();
    },
    flush(done: TransformCallback) {
      const rest = partial + decoder.end();
      if (rest) this.push(rowOfCopyLine(rest));
      done();
    },
  });
}

/**
 * Joins the writer's output (one small string per row) into chunks of about `size` bytes: written one row at a
 * time, a million rows would be a million chunked-encoding frames and socket writes.
 */
export function batchChunks(size = 64 * 1024): Transform {
  let pending: Buffer[] = [];
  let length = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      pending.push(chunk);
      length += chunk.length;
      if (length >= size) {
        this.push(Buffer.concat(pending, length));
        pending = [];
        length = 0;
      }
      done();
    },
    flush(done: TransformCallback) {
      if (length > 0) this.push(Buffer.concat(pending, length));
      done();
    },
  });
}

/** fast-csv's writer with the header row; rows are arrays in EXPORT_COLUMNS order, lines end in CRLF (RFC 4180). */
export function csvWriter(): CsvFormatterStream<string[], string[]> {
  return format<string[], string[]>({ headers: [...EXPORT_COLUMNS], rowDelimiter: "\r\n", includeEndRowDelimiter: true });
}
