/**
 * Streams one data source's records out of PostgreSQL in (booked date, id) order through `COPY (SELECT …) TO
 * STDOUT` on a pooled connection: no ORM objects, no result set held in memory, and back-pressure from the consumer
 * (the stream pauses while the engine works on a block). The job's thread never parses a record: it reads each
 * line's booked date from its bytes (to cut date-aligned blocks) and hands the lines on as raw bytes; the engine
 * thread turns them into the engine's records (record-text.ts `parseRecords`). So a block lives once, where it is
 * matched.
 */
import type pg from "pg";
import { to as copyTo } from "pg-copy-streams";
import { isId } from "../../graphql/validate.js";

const EPOCH_DAYS = (column: string) => `(${column} - DATE '1970-01-01')`;

/**
 * A source's records in (booked_date, id) order, read in a REPEATABLE READ snapshot (one consistent view however
 * long the job runs), as COPY text lines. Call `close` when done, even early (it ends the COPY and returns the
 * connection).
 */
export interface RecordStream {
  /** The booked date of the next line without consuming it; null at the end. Call `fill` first when `buffered()` is 0. */
  peekDate(): number | null;
  /** Consumes the line `peekDate` looked at. */
  advance(): void;
  /** Lines waiting in memory. */
  buffered(): number;
  /** Reads the next chunk of the stream into memory (no-op at the end). */
  fill(): Promise<void>;
  /** The lines consumed since the last `take`, in a fresh buffer of their own (transferable to another thread). */
  take(): Uint8Array;
  /** Whether the stream has ended and every line has been consumed. */
  done(): boolean;
  close(): Promise<void>;
}

/**
 * What a stream leaves out: the records of the first pass's pairs that PostgreSQL made (exact-pushdown.ts),
 * `column` naming this side's in the scratch table.
 */
export interface StreamExclusion {
  table: string;
  column: "left_id" | "right_id";
}

function streamQuery(dataSourceId: string, exclude: StreamExclusion | undefined): string {
  const paired = exclude ? ` AND NOT EXISTS (SELECT 1 FROM ${exclude.table} p WHERE p.${exclude.column} = r.id)` : "";
  return `SELECT r.id, r.external_id, r.amount, r.currency, ${EPOCH_DAYS("r.booked_date")} AS booked,
      ${EPOCH_DAYS("r.value_date")} AS valued, r.reference, r.description, r.counterparty
    FROM records r WHERE r.data_source_id = '${dataSourceId}'${paired} ORDER BY booked, r.id`;
}

const TAB = 0x09;
const NEWLINE = 0x0a;
const BOOKED_FIELD = 4;

/** The booked date (days, the fifth field: an integer) of the line starting at `start`. */
function bookedDateAt(bytes: Uint8Array, start: number): number {
  let at = start;
  for (let field = 0; field < BOOKED_FIELD; field++) at = bytes.indexOf(TAB, at) + 1;
  const negative = bytes[at] === 0x2d;
  if (negative) at++;
  let days = 0;
  for (let c = bytes[at]!; c >= 0x30 && c <= 0x39; c = bytes[++at]!) days = days * 10 + (c - 0x30);
  return negative ? -days : days;
}

/** Copies byte ranges into one new buffer (never Node's shared pool: the result may be transferred). */
function concatBytes(parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export async function openRecordStream(pool: pg.Pool, dataSourceId: string, exclude?: StreamExclusion): Promise<RecordStream> {
  // COPY takes no bind parameters: the id is inlined, so it must be a uuid and nothing else.
  if (!isId(dataSourceId)) throw new Error(`not a data source id: ${dataSourceId}`);
  if (exclude && !/^recon_pairs_[0-9a-f]{32}$/.test(exclude.table)) throw new Error(`not a pairs table: ${exclude.table}`);
  const client = await pool.connect();
  let released = false;
  const release = (error?: Error) => {
    if (released) return;
    released = true;
    client.release(error);
  };
  try {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    await client.query("SET LOCAL statement_timeout = 0");
    await client.query("SET LOCAL work_mem = '64MB'");
    // Hash joins against the pushed-down pairs, whatever stale or missing statistics say (the pairs table is never
    // analyzed: without statistics the planner chose a merge join that sorted both sides, 1.4 s instead of 0.6 s at
    // 1M records; see exact-pushdown.ts); no JIT (see reconcile-task.ts).
    await client.query("SET LOCAL enable_nestloop = off");
    await client.query("SET LOCAL enable_mergejoin = off");
    await client.query("SET LOCAL jit = off");
  } catch (error) {
    release(error as Error);
    throw error;
  }
  const stream = client.query(copyTo(`COPY (${streamQuery(dataSourceId, exclude)}) TO STDOUT`));

  const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  // The chunk being read (with the partial line the last one ended in), the starts of its whole lines (and the
  // end of the last), their booked dates, the next line's position, and where the lines not yet taken begin.
  let bytes: Uint8Array = new Uint8Array(0);
  let starts: number[] = [0];
  let dates: number[] = [];
  let position = 0;
  let takeFrom = 0;
  const taken: Uint8Array[] = [];
  let ended = false;

  return {
    peekDate: () => (position < dates.length ? dates[position]! : null),
    advance: () => void position++,
    buffered: () => dates.length - position,
    async fill() {
      while (position >= dates.length && !ended) {
        const next = await iterator.next();
        // The consumed lines of this chunk wait for `take`; its partial last line starts the next.
        const end = starts[dates.length]!;
        if (end > takeFrom) taken.push(bytes.subarray(takeFrom, end));
        const rest = bytes.subarray(end);
        if (next.done) {
          ended = true;
          // A last line without its line break (COPY always ends lines with one, but be safe).
          bytes = rest.length ? concatBytes([rest, Uint8Array.of(NEWLINE)]) : new Uint8Array(0);
        } else bytes = rest.length ? concatBytes([rest, next.value]) : next.value;
        starts = [0];
        dates = [];
        for (let at = bytes.indexOf(NEWLINE); at >= 0; at = bytes.indexOf(NEWLINE, at + 1)) {
          dates.push(bookedDateAt(bytes, starts.at(-1)!));
          starts.push(at + 1);
        }
        position = 0;
        takeFrom = 0;
      }
    },
    take() {
      const end = starts[position]!;
      if (end > takeFrom) taken.push(bytes.subarray(takeFrom, end));
      takeFrom = end;
      const out = concatBytes(taken);
      taken.length = 0;
      return out;
    },
    done: () => ended && position >= dates.length,
    async close() {
      if (released) return;
      if (!ended) {
        // Abandoned mid-stream (cancelled, failed): the connection is in an unknown state, so it is destroyed.
        stream.destroy();
        release(new Error("record stream closed early"));
        return;
      }
      try {
        await client.query("COMMIT");
        release();
      } catch (error) {
        release(error as Error);
      }
    },
  };
}
