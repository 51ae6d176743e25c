/**
 * Streams one data source's records out of PostgreSQL in (booked date, id) order, as the engine's records,
 * through `COPY (SELECT …) TO STDOUT` on a pooled connection: no ORM objects, no result set held in memory, and
 * back-pressure from the consumer (the stream pauses while the engine works on a block).
 */
import { StringDecoder } from "node:string_decoder";
import type pg from "pg";
import { to as copyTo } from "pg-copy-streams";
import type { EngineRecord } from "../../reconcile/types.js";
import { isId } from "../../graphql/validate.js";

const EPOCH_DAYS = (column: string) => `(${column} - DATE '1970-01-01')`;

/** Undoes COPY's text-format escaping of one field (only called when the field holds a backslash). */
export function unescapeCopyText(field: string): string {
  return field.replace(/\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)/g, (_, code: string) => {
    switch (code[0]) {
      case "b":
        return "\b";
      case "f":
        return "\f";
      case "n":
        return "\n";
      case "r":
        return "\r";
      case "t":
        return "\t";
      case "v":
        return "\v";
      case "x":
        return String.fromCharCode(parseInt(code.slice(1), 16));
      default:
        return /^[0-7]/.test(code) ? String.fromCharCode(parseInt(code, 8)) : code;
    }
  });
}

const text = (field: string) => (field.includes("\\") ? unescapeCopyText(field) : field);

/** "-12.3400" → -123400n (NUMERIC(20,4) scaled by 10^4, exactly). */
export function scaledAmount(decimal: string): bigint {
  const dot = decimal.indexOf(".");
  if (dot < 0) return BigInt(decimal) * 10_000n;
  const fraction = decimal.slice(dot + 1).padEnd(4, "0").slice(0, 4);
  return BigInt(decimal.slice(0, dot) + fraction);
}

function parseLine(line: string): EngineRecord {
  const f = line.split("\t");
  return {
    id: f[0]!,
    externalId: text(f[1]!),
    amount: scaledAmount(f[2]!),
    currency: f[3]!,
    bookedDate: Number(f[4]),
    valueDate: f[5] === "\\N" ? null : Number(f[5]),
    reference: text(f[6]!),
    description: text(f[7]!),
    counterparty: text(f[8]!),
  };
}

/**
 * A source's records in (booked_date, id) order, read in a REPEATABLE READ snapshot (one consistent view however
 * long the job runs). Call `close` when done, even early (it ends the COPY and returns the connection).
 */
export interface RecordStream {
  /** The next record without consuming it; null at the end. Call `fill` first when `buffered()` is 0. */
  peek(): EngineRecord | null;
  /** Consumes the record `peek` returned. */
  advance(): void;
  /** Records waiting in memory. */
  buffered(): number;
  /** Reads the next chunk of the stream into memory (no-op at the end). */
  fill(): Promise<void>;
  /** Whether the stream has ended and every record has been consumed. */
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
    // Hash joins against the pushed-down pairs, whatever stale statistics say (see exact-pushdown.ts).
    await client.query("SET LOCAL enable_nestloop = off");
  } catch (error) {
    release(error as Error);
    throw error;
  }
  const stream = client.query(copyTo(`COPY (${streamQuery(dataSourceId, exclude)}) TO STDOUT`));

  const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let buffer: EngineRecord[] = [];
  let position = 0;
  let partial = "";
  let ended = false;
  // Chunks may end inside a multi-byte character: the decoder keeps the partial bytes for the next chunk.
  const decoder = new StringDecoder("utf8");

  return {
    peek: () => (position < buffer.length ? buffer[position]! : null),
    advance: () => void position++,
    buffered: () => buffer.length - position,
    async fill() {
      while (position >= buffer.length && !ended) {
        const next = await iterator.next();
        if (next.done) {
          ended = true;
          partial += decoder.end();
          buffer = partial ? [parseLine(partial)] : [];
          partial = "";
          position = 0;
          return;
        }
        const lines = (partial + decoder.write(next.value)).split("\n");
        partial = lines.pop()!;
        buffer = lines.map(parseLine);
        position = 0;
      }
    },
    done: () => ended && position >= buffer.length,
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
