/**
 * The byte-level pass between an uploaded CSV file and PostgreSQL's `COPY … (FORMAT csv)`.
 *
 * PostgreSQL parses and unescapes the fields (much faster than JavaScript could), so the framer never decodes or
 * re-encodes a data record: it copies each record's bytes through verbatim and only adds what COPY cannot know.
 * It is responsible for:
 *
 * - exact line numbers: every record goes out as `<first physical line of the record><delimiter><original bytes>\n`,
 *   so the staging table's `line_no` is the line a user sees in an editor, even after skipped rows, blank lines and
 *   line breaks inside quoted fields (COPY's own line count is none of those);
 * - bounded structure: a NUL byte, a record longer than `maxRecordBytes`, a stray carriage return or a quote still
 *   open at end of file stop the stream with a `CsvStructureError` naming the line, before COPY sees anything
 *   confusing; memory stays bounded by one record whatever the file size;
 * - row shape: the first record fixes the field count; a record with another count is dropped and reported through
 *   `onRowError` (the rest of the file goes on), so COPY never fails on "missing data" or "extra data";
 * - the encoding: a record holding bytes that are not text in the declared encoding (malformed UTF-8; in
 *   Windows-1252 the five bytes it leaves undefined, 0x81 0x8D 0x8F 0x90 0x9D, which PostgreSQL refuses to convert)
 *   is dropped and reported through `onRowError` with its field and the line and character of the first such byte,
 *   so COPY never fails on the encoding either; in the header it is a `CsvStructureError`. The check costs one
 *   native pass per chunk (`isUtf8`, or five `indexOf`s): only records a chunk's check does not cover (those cut by
 *   a chunk boundary) or that lie in a chunk that failed it are checked one by one, and only an invalid record is
 *   walked byte by byte, to say where;
 * - the header: skipped rows, the BOM and an optional header record are consumed here, with the header's fields
 *   unescaped for the caller to match column names.
 *
 * Quoting follows PostgreSQL's CSV mode exactly (ESCAPE = QUOTE): a quote character anywhere outside quotes opens
 * a quoted section (`ab"c,d"e` is one field `abc,de`), a doubled quote inside quotes is a literal quote, and only
 * delimiters and line breaks outside quotes separate fields and records. Line endings are `\n` or `\r\n`; output
 * lines always end in `\n` (line breaks inside quoted fields pass through unchanged). The delimiter and the quote
 * are single ASCII bytes, which never occur inside a multi-byte character in UTF-8 or Windows-1252, so scanning
 * bytes is exact for both encodings. The line-number prefix also means no output line can be COPY's `\.`
 * end-of-data marker.
 */
import { isUtf8 } from "node:buffer";
import { Transform, type TransformCallback } from "node:stream";

/**
 * A record that was dropped; `line` is the record's first physical line. `field` is the 0-based field the problem
 * is in, when it is in one (an invalid byte); absent for the record as a whole (a wrong field count).
 */
export interface CsvRowError {
  line: number;
  field?: number;
  reason: string;
}

export interface CsvFramerOptions {
  /** Field delimiter: one ASCII character other than a digit or a line break (default `,`). */
  delimiter?: string;
  /** Quote character: like the delimiter, and not it (default `"`); also the escape character, as in PostgreSQL. */
  quote?: string;
  /** Physical lines to drop at the start of the file (after the BOM), before looking for a header (default 0). */
  skipRows?: number;
  /** Longest record allowed, in bytes without its line ending (default 1 MiB). */
  maxRecordBytes?: number;
  /** How header fields are decoded before `isHeader` sees them (data records are never decoded; default UTF8). */
  encoding?: "UTF8" | "WIN1252";
  /**
   * Called once with the unescaped, trimmed fields of the first record after the skipped rows. Return true to
   * consume it as the header, false to treat it as data (default: no header).
   */
  isHeader?: (fields: string[]) => boolean;
  /**
   * Called for each problem of a dropped record (a wrong field count; bytes that are not text in `encoding`), in
   * file order; the stream goes on.
   */
  onRowError?: (error: CsvRowError) => void;
}

/** A fault that makes the file unreadable as CSV; the framer is destroyed with it. */
export class CsvStructureError extends Error {
  override readonly name = "CsvStructureError";
  constructor(
    /** The physical line the fault is on (for an open quote or a long record: the record's first line). */
    readonly line: number,
    /** The fault without its line prefix. */
    readonly reason: string,
  ) {
    super(`line ${line}: ${reason}`);
  }
}

/** A Transform from CSV file bytes to framed COPY lines, with what it learned about the file so far. */
export interface CsvFramer extends Transform {
  /** Header fields (unescaped, trimmed) when the first record was consumed as the header, else null. */
  readonly header: string[] | null;
  /** The first record's fields (unescaped, trimmed), header or not; null until it has been read. */
  readonly firstRecordFields: string[] | null;
  /** Physical line of the first record (the header, if there is one); null until it has been read. */
  readonly firstRecordLine: number | null;
  /** Fields per record, fixed by the first record; 0 until it has been read. */
  readonly columnCount: number;
  /** Input bytes consumed, BOM included. */
  readonly bytesRead: number;
  /** Data records emitted. */
  readonly records: number;
  /** Records dropped for a wrong field count or invalid bytes (each reported through `onRowError`). */
  readonly rejected: number;
  /** Physical lines seen (a last line without a line ending counts). */
  readonly lines: number;
}

const LF = 0x0a;
const CR = 0x0d;
const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024;

/** Windows-1252 characters for bytes 0x80–0x9F (where it differs from Latin-1; undefined bytes keep Latin-1). */
const WIN1252_C1 =
  "\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f" +
  "\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178";

function decode(bytes: Buffer, encoding: "UTF8" | "WIN1252"): string {
  if (encoding === "UTF8") return bytes.toString("utf8");
  return bytes.toString("latin1").replace(/[\u0080-\u009f]/g, (c) => WIN1252_C1[c.charCodeAt(0) - 0x80]);
}

/** The bytes Windows-1252 leaves undefined: PostgreSQL's WIN1252 conversion refuses them. */
const WIN1252_UNDEFINED = [0x81, 0x8d, 0x8f, 0x90, 0x9d];

/** Whether `bytes` is text in `encoding` as PostgreSQL will check it (native passes only). */
function isText(bytes: Buffer, encoding: "UTF8" | "WIN1252"): boolean {
  if (encoding === "UTF8") return isUtf8(bytes);
  for (const byte of WIN1252_UNDEFINED) if (bytes.indexOf(byte) !== -1) return false;
  return true;
}

/**
 * Index of the first byte of `bytes` that does not start a character of `encoding` (for UTF-8, the first byte of
 * the first ill-formed sequence, by Unicode's table of well-formed sequences), or -1. A byte-by-byte walk: only
 * for a record already known to be invalid.
 */
export function firstInvalidByte(bytes: Buffer, encoding: "UTF8" | "WIN1252"): number {
  const n = bytes.length;
  if (encoding === "WIN1252") {
    for (let i = 0; i < n; i++) if (WIN1252_UNDEFINED.includes(bytes[i])) return i;
    return -1;
  }
  const continuation = (at: number, low = 0x80, high = 0xbf) => at < n && bytes[at] >= low && bytes[at] <= high;
  for (let i = 0; i < n; ) {
    const b = bytes[i];
    if (b < 0x80) i += 1;
    else if (b >= 0xc2 && b <= 0xdf && continuation(i + 1)) i += 2;
    else if (b >= 0xe0 && b <= 0xef && continuation(i + 1, b === 0xe0 ? 0xa0 : 0x80, b === 0xed ? 0x9f : 0xbf) && continuation(i + 2)) i += 3;
    else if (b >= 0xf0 && b <= 0xf4 && continuation(i + 1, b === 0xf0 ? 0x90 : 0x80, b === 0xf4 ? 0x8f : 0xbf) && continuation(i + 2) && continuation(i + 3)) i += 4;
    else return i;
  }
  return -1;
}

/** Where byte `at` of a record sits: its 0-based field, and its 1-based line offset and character within that line. */
function positionIn(record: Buffer, at: number, delimiter: number, quote: number, encoding: "UTF8" | "WIN1252") {
  let field = 0;
  let lines = 0;
  let lineStart = 0;
  let inQuote = false;
  for (let i = 0; i < at; i++) {
    const c = record[i];
    // Toggling on every quote is exact for finding delimiters: a doubled quote inside quotes toggles twice.
    if (c === quote) inQuote = !inQuote;
    else if (c === delimiter && !inQuote) field++;
    else if (c === LF) {
      lines++;
      lineStart = i + 1;
    }
  }
  // Characters, as an editor counts its columns: in UTF-8 every byte before `at` is well-formed, so characters are
  // the bytes that are not continuation bytes; in Windows-1252 one byte is one character.
  let character = 1;
  for (let i = lineStart; i < at; i++) if (encoding === "WIN1252" || (record[i] & 0xc0) !== 0x80) character++;
  return { field, lines, character };
}

/** What is wrong with an invalid byte, for a row error or the header's structure error. */
function invalidByteReason(byte: number, where: string, encoding: "UTF8" | "WIN1252"): string {
  const hex = `0x${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  return encoding === "UTF8"
    ? `byte ${hex} at ${where} is not valid UTF-8 (is the file Windows-1252? then set the column mapping's encoding to WIN1252)`
    : `byte ${hex} at ${where} is not a character in Windows-1252`;
}

/** Splits one record's text into unescaped fields with PostgreSQL's CSV rules (quotes may open mid-field). */
function splitFields(text: string, delimiter: string, quote: string): string[] {
  const fields: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch !== quote) field += ch;
      else if (text[i + 1] === quote) {
        field += quote;
        i++;
      } else quoted = false;
    } else if (ch === quote) quoted = true;
    else if (ch === delimiter) {
      fields.push(field);
      field = "";
    } else field += ch;
  }
  fields.push(field);
  return fields.map((f) => f.trim());
}

/** The delimiter's or the quote's byte: neither may be a line break, nor a digit (it would run into the line prefix). */
function asciiByte(value: string, name: string): number {
  const code = value.length === 1 ? value.charCodeAt(0) : -1;
  if (code < 1 || code > 0x7f || code === LF || code === CR || (code >= 0x30 && code <= 0x39)) {
    throw new RangeError(`CSV ${name} must be one ASCII character other than NUL, CR, LF and a digit (got ${JSON.stringify(value)})`);
  }
  return code;
}

/**
 * Responsible for one file's framing state across chunks: the record in progress (carried bytes, field count,
 * quote state, first line), counters, and the output buffer of the chunk being scanned.
 */
class Framer extends Transform implements CsvFramer {
  private readonly delimiter: number;
  private readonly quote: number;
  private readonly delimiterChar: string;
  private readonly quoteChar: string;
  private readonly maxRecordBytes: number;
  private readonly encoding: "UTF8" | "WIN1252";
  private readonly isHeader: (fields: string[]) => boolean;
  private readonly onRowError: (error: CsvRowError) => void;

  private bytes = 0;
  private emitted = 0;
  private dropped = 0;
  /** Input bytes held until the BOM question is settled (a BOM may arrive split); null once settled. */
  private bomProbe: Buffer | null = Buffer.alloc(0);
  private toSkip: number;
  /** Physical line of the next byte to scan. */
  private line = 1;
  private atLineStart = true;

  // The record being scanned: its first line, delimiters so far, quote state, bytes from earlier chunks.
  private recordLine = 1;
  private delimiters = 0;
  private inQuote = false;
  /** Line of the quote that opened the current quoted section (for error messages). */
  private quoteLine = 0;
  /** The previous chunk ended right after a closing quote (so a quote now continues the section: `""`). */
  private closedAtEnd = false;
  /** The previous chunk ended with a CR outside quotes; the next byte must be LF. */
  private crPending = false;
  private carry: Buffer[] = [];
  private carryBytes = 0;

  // The chunk being scanned was checked for the encoding from `verifiedFrom` (just after its first LF) to just after
  // its last LF, with result `verified`; a record wholly in that range needs no check of its own.
  private verifiedFrom = 0;
  private verified = false;

  private expectedFields = 0;
  private headerFields: string[] | null = null;
  private firstFields: string[] | null = null;
  private firstLine: number | null = null;

  // Output for the chunk being scanned (see outputFor): pushed once per chunk.
  private out: Buffer | null = null;
  private outSource: Buffer | null = null;
  private outBase = 0;
  private outPos = 0;

  constructor(options: CsvFramerOptions) {
    super();
    this.delimiterChar = options.delimiter ?? ",";
    this.quoteChar = options.quote ?? '"';
    this.delimiter = asciiByte(this.delimiterChar, "delimiter");
    this.quote = asciiByte(this.quoteChar, "quote");
    if (this.delimiter === this.quote) throw new RangeError("CSV delimiter and quote must differ");
    const skipRows = options.skipRows ?? 0;
    const maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
    if (!Number.isInteger(skipRows) || skipRows < 0) throw new RangeError(`skipRows must be a non-negative integer (got ${skipRows})`);
    if (!Number.isInteger(maxRecordBytes) || maxRecordBytes < 1) throw new RangeError(`maxRecordBytes must be a positive integer (got ${maxRecordBytes})`);
    this.toSkip = skipRows;
    this.maxRecordBytes = maxRecordBytes;
    this.encoding = options.encoding ?? "UTF8";
    this.isHeader = options.isHeader ?? (() => false);
    this.onRowError = options.onRowError ?? (() => {});
  }

  get header() {
    return this.headerFields;
  }
  get firstRecordFields() {
    return this.firstFields;
  }
  get firstRecordLine() {
    return this.firstLine;
  }
  get columnCount() {
    return this.expectedFields;
  }
  get bytesRead() {
    return this.bytes;
  }
  get records() {
    return this.emitted;
  }
  get rejected() {
    return this.dropped;
  }
  get lines() {
    return this.line - (this.atLineStart ? 1 : 0);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback) {
    try {
      this.bytes += chunk.length;
      let data: Buffer | null = chunk;
      if (this.bomProbe !== null) data = this.settleBom(chunk);
      if (data !== null && data.length > 0) this.scan(data);
      done(null, this.takeOutput());
    } catch (error) {
      done(error as Error);
    }
  }

  override _flush(done: TransformCallback) {
    try {
      if (this.bomProbe !== null) {
        // Fewer than three bytes, all a BOM prefix: they are data.
        const data = this.bomProbe;
        this.bomProbe = null;
        if (data.length > 0) this.scan(data);
      }
      if (this.inQuote) {
        throw new CsvStructureError(this.recordLine, `unterminated quoted field (opened on line ${this.quoteLine}, still open at end of file)`);
      }
      if (this.crPending || this.carryBytes > 0) {
        this.endRecord(EMPTY, 0, 0, this.crPending);
        this.crPending = false;
      }
      done(null, this.takeOutput());
    } catch (error) {
      done(error as Error);
    }
  }

  /** Strips a UTF-8 BOM at the very start; returns the bytes to scan, or null while still undecided. */
  private settleBom(chunk: Buffer): Buffer | null {
    const probe = this.bomProbe!;
    const head = probe.length > 0 ? Buffer.concat([probe, chunk]) : chunk;
    const prefixOfBom = (head.length < 1 || head[0] === 0xef) && (head.length < 2 || head[1] === 0xbb);
    if (head.length < 3 && prefixOfBom) {
      this.bomProbe = Buffer.from(head);
      return null;
    }
    this.bomProbe = null;
    if (prefixOfBom && head[2] === 0xbf) {
      this.atLineStart = false;
      return head.subarray(3);
    }
    return head;
  }

  /** Scans one chunk: skips rows, frames every record that ends in it, carries over the one that does not. */
  private scan(chunk: Buffer) {
    const n = chunk.length;
    const nul = chunk.indexOf(0);
    const end = nul === -1 ? n : nul;
    let i = 0;

    // One native check for the records that lie between the chunk's first and last line feed: both are ASCII, so
    // that range starts and ends between characters and is valid exactly when all of it is text.
    const firstLf = chunk.indexOf(LF);
    const lastLf = firstLf === -1 ? -1 : chunk.lastIndexOf(LF);
    this.verifiedFrom = firstLf + 1;
    this.verified = lastLf > firstLf && isText(chunk.subarray(firstLf + 1, lastLf + 1), this.encoding);

    if (this.crPending && end > 0) {
      if (chunk[0] !== LF) throw this.strayCarriageReturn(this.line);
      this.crPending = false;
      this.endRecord(chunk, 0, 0, true);
      this.line++;
      this.recordLine = this.line;
      i = 1;
    }

    while (this.toSkip > 0 && i < end) {
      const newline = chunk.indexOf(LF, i);
      if (newline === -1 || newline >= end) {
        i = end;
        break;
      }
      this.line++;
      this.toSkip--;
      this.recordLine = this.line;
      i = newline + 1;
    }

    const quote = this.quote;
    const delimiter = this.delimiter;
    let line = this.line;
    let delimiters = this.delimiters;
    let inQuote = this.inQuote;
    let start = i;
    // Index just after the last closing quote: a quote there reopens the same section (a doubled quote).
    let closedAt = this.closedAtEnd ? 0 : -1;
    this.closedAtEnd = false;

    if (this.toSkip === 0 && i < end) {
      // The chunk as aligned 32-bit words, for counting delimiters four bytes at a time.
      const align = (4 - (chunk.byteOffset & 3)) & 3;
      const words = n >= 8 ? new Int32Array(chunk.buffer, chunk.byteOffset + align, (n - align) >>> 2) : NO_WORDS;
      // Next LF, quote and CR at or after i (`end` when there is none): found with indexOf, reused until passed.
      let nextLf = -1;
      let nextQuote = -1;
      let nextCr = -1;
      while (i < end) {
        if (nextQuote < i) nextQuote = nearIndex(chunk, quote, i, end);
        if (inQuote) {
          // Everything up to the closing quote is data; count the line breaks in it.
          for (;;) {
            if (nextLf < i) nextLf = nextIndex(chunk, LF, i, end);
            if (nextLf >= nextQuote) break;
            line++;
            i = nextLf + 1;
          }
          i = nextQuote;
          if (i === end) break;
          inQuote = false;
          closedAt = ++i;
          continue;
        }
        if (nextLf < i) nextLf = nextIndex(chunk, LF, i, end);
        if (nextCr < i) nextCr = nextIndex(chunk, CR, i, end);
        let stop = nextLf < nextQuote ? nextLf : nextQuote;
        if (nextCr < stop) stop = nextCr;
        if (stop > i) delimiters += countByte(chunk, words, align, delimiter, i, stop);
        i = stop;
        if (i === end) break;
        const c = chunk[i];
        if (c === quote) {
          inQuote = true;
          if (i !== closedAt) this.quoteLine = line;
          i++;
        } else if (c === LF) {
          this.delimiters = delimiters;
          this.endRecord(chunk, start, i, false);
          start = ++i;
          this.recordLine = ++line;
          delimiters = 0;
        } else if (i + 1 < end) {
          // CR outside quotes: only as part of CRLF.
          if (chunk[i + 1] !== LF) {
            throw this.overlong(chunk, start, i, 0) ?? this.strayCarriageReturn(line);
          }
          this.delimiters = delimiters;
          this.endRecord(chunk, start, i, false);
          i += 2;
          start = i;
          this.recordLine = ++line;
          delimiters = 0;
        } else {
          // CR at the end of the chunk (or just before a NUL): the next byte decides.
          this.crPending = true;
          i++;
        }
      }
    }

    this.line = line;
    this.delimiters = delimiters;
    this.inQuote = inQuote;
    this.closedAtEnd = closedAt === n;
    if (end < n) {
      const binary = `binary content (a NUL byte at byte ${this.bytes - n + end}); expected a text CSV file`;
      throw this.overlong(chunk, start, end, this.crPending ? 1 : 0) ?? new CsvStructureError(line, binary);
    }
    if (n > 0) this.atLineStart = chunk[n - 1] === LF;
    if (start < n) {
      // A CR carried at the end may still turn out to be half of the record's CRLF.
      const error = this.overlong(chunk, start, n, this.crPending ? 1 : 0);
      if (error) throw error;
      this.carry.push(Buffer.from(chunk.subarray(start, n)));
      this.carryBytes += n - start;
    }
  }

  /**
   * Handles the record made of the carried bytes plus `chunk[start, bodyEnd)`, with `this.delimiters` delimiters
   * and first line `this.recordLine`; `dropCarriedCr` drops the carry's last byte (the CR of a split CRLF).
   */
  private endRecord(chunk: Buffer, start: number, bodyEnd: number, dropCarriedCr: boolean) {
    const carried = this.carryBytes - (dropCarriedCr ? 1 : 0);
    const length = carried + (bodyEnd - start);
    const fields = this.delimiters + 1;
    this.delimiters = 0;
    if (length === 0) {
      this.clearCarry();
      return;
    }
    if (length > this.maxRecordBytes) throw this.overlong(chunk, start, bodyEnd, 0)!;

    if (this.firstFields === null) {
      const body = Buffer.concat([...this.carry, chunk.subarray(start, bodyEnd)], length);
      const parsed = splitFields(decode(body, this.encoding), this.delimiterChar, this.quoteChar);
      this.firstFields = parsed;
      this.firstLine = this.recordLine;
      this.expectedFields = fields;
      if (this.isHeader([...parsed])) {
        // Column names in another encoding would be garbled, and the rows below them most likely too.
        const bad = isText(body, this.encoding) ? -1 : firstInvalidByte(body, this.encoding);
        if (bad !== -1) {
          const at = positionIn(body, bad, this.delimiter, this.quote, this.encoding);
          const where = `character ${at.character} of the header (its field ${at.field + 1})`;
          throw new CsvStructureError(this.recordLine + at.lines, invalidByteReason(body[bad], where, this.encoding));
        }
        this.headerFields = parsed;
        this.clearCarry();
        return;
      }
    } else if (fields !== this.expectedFields) {
      this.dropped++;
      const line = this.recordLine;
      this.onRowError({ line, reason: `expected ${this.expectedFields} fields, found ${fields}` });
      // Its bytes too, so that one upload names every problem of the row.
      const body = Buffer.concat([...this.carry, chunk.subarray(start, bodyEnd)], length);
      this.clearCarry();
      if (!isText(body, this.encoding)) this.reportInvalidBytes(body, line);
      return;
    }
    if (carried > 0 || !this.verified || start < this.verifiedFrom) {
      const body = carried > 0 ? Buffer.concat([...this.carry, chunk.subarray(start, bodyEnd)], length) : chunk.subarray(start, bodyEnd);
      if (!isText(body, this.encoding)) {
        this.dropped++;
        this.clearCarry();
        this.reportInvalidBytes(body, this.recordLine);
        return;
      }
    }

    // <line><delimiter><carried bytes><chunk[start, bodyEnd)>\n
    const line = this.recordLine;
    const digits = line < 1e9 ? decimalDigits(line) : String(line).length;
    const out = this.outputFor(chunk, start, digits + 1 + carried);
    let pos = this.outPos;
    if (line < 1e9) {
      for (let p = pos + digits - 1, rest = line; p >= pos; p--, rest = (rest / 10) | 0) out[p] = 48 + (rest % 10);
    } else out.write(String(line), pos, "latin1");
    pos += digits;
    out[pos++] = this.delimiter;
    if (carried > 0) {
      let left = carried;
      for (const piece of this.carry) {
        const take = Math.min(piece.length, left);
        piece.copy(out, pos, 0, take);
        pos += take;
        left -= take;
      }
    }
    if (bodyEnd > start) {
      out.copyWithin(pos, this.outBase + start, this.outBase + bodyEnd);
      pos += bodyEnd - start;
    }
    out[pos++] = LF;
    this.outPos = pos;
    this.emitted++;
    this.clearCarry();
  }

  /** Reports the first byte of a record (first line `line`) that is not text in the encoding. */
  private reportInvalidBytes(record: Buffer, line: number) {
    const bad = firstInvalidByte(record, this.encoding);
    const at = positionIn(record, bad, this.delimiter, this.quote, this.encoding);
    this.onRowError({ line, field: at.field, reason: invalidByteReason(record[bad], `line ${line + at.lines}, character ${at.character}`, this.encoding) });
  }

  private clearCarry() {
    if (this.carryBytes > 0) {
      this.carry = [];
      this.carryBytes = 0;
    }
  }

  /**
   * The output buffer for records ending in `chunk`, with `room` bytes free before the copy of `chunk[start]`.
   *
   * The buffer holds a copy of the chunk at offset `outBase`; framed records are written from offset 0 and each
   * record's bytes are moved down with `copyWithin` (one memmove, far cheaper than a cross-buffer copy per record).
   * Output never overtakes unread input as long as the gap covers the prefixes written so far; it grows if not.
   */
  private outputFor(chunk: Buffer, start: number, room: number): Buffer {
    if (this.out !== null && this.outSource !== chunk) this.push(this.takeOutput());
    const out = this.out;
    const n = chunk.length;
    if (out === null) {
      const base = room + (n >>> 2) + 64;
      this.out = Buffer.allocUnsafe(base + n);
      chunk.copy(this.out, base + start, start, n);
      this.outBase = base;
      this.outPos = 0;
      this.outSource = chunk;
    } else if (this.outPos + room > this.outBase + start) {
      const base = Math.max(this.outBase * 2, this.outPos + room - start + (n >>> 2) + 64);
      const grown = Buffer.allocUnsafe(base + n);
      out.copy(grown, 0, 0, this.outPos);
      out.copy(grown, base + start, this.outBase + start, this.outBase + n);
      this.out = grown;
      this.outBase = base;
    }
    return this.out!;
  }

  private takeOutput(): Buffer | undefined {
    const out = this.out;
    if (out === null) return undefined;
    this.out = null;
    this.outSource = null;
    return out.subarray(0, this.outPos);
  }

  /**
   * The error for the current record if its bytes so far (carried plus `chunk[start, at)`, less `allowance` trailing
   * bytes that may yet be its line ending) exceed maxRecordBytes, else null. Whether the limit is crossed inside a
   * quoted field is worked out from the record's own bytes, so the message does not depend on chunk boundaries.
   */
  private overlong(chunk: Buffer, start: number, at: number, allowance: number): CsvStructureError | null {
    const max = this.maxRecordBytes;
    if (this.carryBytes + (at - start) <= max + allowance) return null;
    const bytes = Buffer.concat([...this.carry, chunk.subarray(start, at)]);
    let inQuote = false;
    let line = this.recordLine;
    let quoteLine = line;
    let closedAt = -1;
    for (let i = 0; i <= max; i++) {
      const c = bytes[i];
      if (c === LF) line++;
      else if (c === this.quote) {
        if (inQuote) closedAt = i + 1;
        else if (i !== closedAt) quoteLine = line;
        inQuote = !inQuote;
      }
    }
    const hint = inQuote ? ` (a quoted field opened on line ${quoteLine} is still open there: is a closing quote missing?)` : "";
    return new CsvStructureError(this.recordLine, `record longer than ${max} bytes${hint}`);
  }

  private strayCarriageReturn(line: number) {
    return new CsvStructureError(line, "carriage return outside quotes that does not end the line (line endings must be \\n or \\r\\n)");
  }
}

const EMPTY = Buffer.alloc(0);
const NO_WORDS = new Int32Array(0);

/** Number of decimal digits of 0 <= value < 1e9. */
function decimalDigits(value: number): number {
  if (value < 1e4) return value < 10 ? 1 : value < 100 ? 2 : value < 1000 ? 3 : 4;
  return value < 1e5 ? 5 : value < 1e6 ? 6 : value < 1e7 ? 7 : value < 1e8 ? 8 : 9;
}

/** Index of `byte` in `bytes[from, end)`, or `end` if there is none. */
function nextIndex(bytes: Buffer, byte: number, from: number, end: number): number {
  const at = bytes.indexOf(byte, from);
  return at === -1 || at > end ? end : at;
}

/** nextIndex for a byte that is usually close by (quotes in quoted files): a short loop saves a native call. */
function nearIndex(bytes: Buffer, byte: number, from: number, end: number): number {
  const near = from + 24 < end ? from + 24 : end;
  for (let i = from; i < near; i++) if (bytes[i] === byte) return i;
  return near === end ? end : nextIndex(bytes, byte, near, end);
}

/**
 * Occurrences of `byte` in `bytes[from, to)`. Long ranges are read as 32-bit words (`words` views `bytes` from
 * offset `align`, the first 4-byte-aligned one) and matched with a SWAR zero-byte test, about 3× a byte loop.
 */
function countByte(bytes: Buffer, words: Int32Array, align: number, byte: number, from: number, to: number): number {
  let count = 0;
  let i = from;
  if (to - from >= 16) {
    const pattern = byte * 0x01010101;
    const firstWord = from <= align ? 0 : (from - align + 3) >> 2;
    const lastWord = (to - align) >> 2;
    for (const aligned = align + (firstWord << 2); i < aligned; i++) if (bytes[i] === byte) count++;
    for (let w = firstWord; w < lastWord; w++) {
      const x = words[w] ^ pattern;
      // High bit of each byte set exactly where that byte of x is zero, i.e. where the input byte equals `byte`.
      let zero = ~(((x & 0x7f7f7f7f) + 0x7f7f7f7f) | x | 0x7f7f7f7f);
      if (zero !== 0) {
        zero = (zero >>> 7) & 0x01010101;
        zero = (zero & 0x00ff00ff) + ((zero >>> 8) & 0x00ff00ff);
        count += (zero & 0xffff) + (zero >>> 16);
      }
    }
    i = align + (lastWord << 2);
  }
  for (; i < to; i++) if (bytes[i] === byte) count++;
  return count;
}

/** Creates a framer for one file; see the module comment for what it guarantees. */
export function createCsvFramer(options: CsvFramerOptions = {}): CsvFramer {
  return new Framer(options);
}
