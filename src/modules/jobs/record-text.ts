/**
 * The engine's records from the COPY text lines a record stream reads (record-stream.ts), and the small parsers
 * that go with them. Kept apart from the streams so that the engine thread, which parses every block, loads none of
 * the stream's dependencies (pg-copy-streams, and GraphQL's through the id check): a thread is started for every
 * job, and what it loads is on a small job's critical path.
 */
import type { EngineRecord } from "../../reconcile/types.js";

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

const decoder = new TextDecoder();

/**
 * Each currency code once: a block holds about 100,000 records and a handful of currencies, and a three-letter
 * string of its own per record was 2.6 MB of the engine thread's live heap at 80,000-record blocks.
 */
const currencies = new Map<string, string>();
function currencyCode(code: string): string {
  const known = currencies.get(code);
  if (known !== undefined) return known;
  if (currencies.size < 1_000) currencies.set(code, code);
  return code;
}

/**
 * A string with storage of its own. V8 makes a substring of 13 characters or more (an id, a long description) a
 * view into the string it was cut from: V8 copies a concatenation into fresh storage before slicing it.
 */
const ownCopy = (text: string): string => (text.length < 13 ? text : (text + " ").slice(0, -1));

/**
 * Gives a record's text fields storage of their own (in place). The fields `parseRecords` cuts out of a block are
 * views that keep the whole block's text alive; the records the engine carries into the next block would otherwise
 * keep every block they came from (about 17 MB of the engine thread's live heap at 80,000-record blocks, where its
 * collector works against a cap).
 */
export function detachFromBlock(record: EngineRecord): void {
  record.id = ownCopy(record.id);
  record.externalId = ownCopy(record.externalId);
  record.reference = ownCopy(record.reference);
  record.description = ownCopy(record.description);
  record.counterparty = ownCopy(record.counterparty);
}

/**
 * The engine records of whole COPY text lines of `streamQuery` (what `RecordStream.take` returns). Fields are cut
 * out of the block's text by position (splitting each line into an array first took 60% longer and made garbage
 * for the engine thread's collector).
 */
export function parseRecords(bytes: Uint8Array): EngineRecord[] {
  const block = decoder.decode(bytes);
  const records: EngineRecord[] = [];
  const tab = (from: number) => {
    const at = block.indexOf("\t", from);
    if (at < 0) throw new Error(`record line ${records.length + 1} of a block has too few fields`);
    return at;
  };
  for (let start = 0; start < block.length; ) {
    const t1 = tab(start);
    const t2 = tab(t1 + 1);
    const t3 = tab(t2 + 1);
    const t4 = tab(t3 + 1);
    const t5 = tab(t4 + 1);
    const t6 = tab(t5 + 1);
    const t7 = tab(t6 + 1);
    const t8 = tab(t7 + 1);
    let end = block.indexOf("\n", t8 + 1);
    if (end < 0) end = block.length;
    const valued = block.slice(t5 + 1, t6);
    records.push({
      id: block.slice(start, t1),
      externalId: text(block.slice(t1 + 1, t2)),
      amount: scaledAmount(block.slice(t2 + 1, t3)),
      currency: currencyCode(block.slice(t3 + 1, t4)),
      bookedDate: Number(block.slice(t4 + 1, t5)),
      valueDate: valued === "\\N" ? null : Number(valued),
      reference: text(block.slice(t6 + 1, t7)),
      description: text(block.slice(t7 + 1, t8)),
      counterparty: text(block.slice(t8 + 1, end)),
    });
    start = end + 1;
  }
  return records;
}
