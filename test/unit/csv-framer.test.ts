import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import fc from "fast-check";
import { parseString } from "fast-csv";
import { describe, expect, it } from "vitest";
import { createCsvFramer, CsvStructureError, firstInvalidByte, type CsvFramer, type CsvFramerOptions, type CsvRowError } from "../../src/ingest/csv-framer.js";

interface Framed {
  output: string;
  rowErrors: CsvRowError[];
  error: Error | null;
  framer: CsvFramer;
}

/** Cuts `bytes` into chunks whose sizes cycle through `sizes` (one chunk when empty). */
function chunked(bytes: Buffer, sizes: number[]): Buffer[] {
  if (sizes.length === 0) return bytes.length ? [bytes] : [];
  const chunks: Buffer[] = [];
  for (let at = 0, k = 0; at < bytes.length; k++) {
    const size = sizes[k % sizes.length];
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

/** Streams `input` through a framer in the given chunking and collects everything it reports. */
async function frame(input: string | Buffer, options: CsvFramerOptions = {}, sizes: number[] = []): Promise<Framed> {
  const rowErrors: CsvRowError[] = [];
  const framer = createCsvFramer({ ...options, onRowError: (error) => rowErrors.push(error) });
  const output: Buffer[] = [];
  let error: Error | null = null;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      output.push(chunk);
      done();
    },
  });
  try {
    await pipeline(Readable.from(chunked(Buffer.from(input), sizes)), framer, sink);
  } catch (caught) {
    error = caught as Error;
  }
  return { output: Buffer.concat(output).toString("utf8"), rowErrors, error, framer };
}

/** A deterministic pseudo-random chunking (mulberry32), so a failure reproduces. */
function randomSizes(seed: number, count: number, max: number): number[] {
  let state = seed;
  return Array.from({ length: count }, () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return 1 + (((t ^ (t >>> 14)) >>> 0) % max);
  });
}

const stats = (framer: CsvFramer) => ({
  header: framer.header,
  firstRecordFields: framer.firstRecordFields,
  firstRecordLine: framer.firstRecordLine,
  columnCount: framer.columnCount,
  bytesRead: framer.bytesRead,
  records: framer.records,
  rejected: framer.rejected,
  lines: framer.lines,
});

/** Frames `input` whole, byte by byte and in random chunks; all three must agree exactly. Returns the whole run. */
async function frameEveryWay(input: string | Buffer, options: CsvFramerOptions = {}): Promise<Framed> {
  const whole = await frame(input, options);
  const length = Buffer.byteLength(input);
  for (const sizes of [[1], randomSizes(length, 16, 7), randomSizes(length + 1, 8, 64)]) {
    const split = await frame(input, options, sizes);
    expect(split.error?.message, `chunk sizes ${sizes}`).toBe(whole.error?.message);
    if (whole.error) continue;
    expect(split.output, `chunk sizes ${sizes}`).toBe(whole.output);
    expect(split.rowErrors).toEqual(whole.rowErrors);
    expect(stats(split.framer)).toEqual(stats(whole.framer));
  }
  return whole;
}

const header = (first: string) => (fields: string[]) => fields[0] === first;
const WIN1252_HINT = "(is the file Windows-1252? then set the column mapping's encoding to WIN1252)";

interface Case {
  name: string;
  input: string | Buffer;
  options?: CsvFramerOptions;
  output?: string;
  rowErrors?: CsvRowError[];
  error?: { line: number; message: string | RegExp };
  expectStats?: Partial<ReturnType<typeof stats>>;
}

const cases: Case[] = [
  {
    name: "numbers records by their first physical line",
    input: "a,b\n1,2\n3,4",
    output: "1,a,b\n2,1,2\n3,3,4\n",
    expectStats: { header: null, firstRecordFields: ["a", "b"], columnCount: 2, records: 3, lines: 3, bytesRead: 11 },
  },
  {
    name: "consumes a header the caller recognises",
    input: "id,amount\n1,2\n3,4\n",
    options: { isHeader: header("id") },
    output: "2,1,2\n3,3,4\n",
    expectStats: { header: ["id", "amount"], firstRecordLine: 1, columnCount: 2, records: 2, lines: 3 },
  },
  {
    name: "treats a first record the caller does not recognise as data",
    input: "7,8\n1,2\n",
    options: { isHeader: header("id") },
    output: "1,7,8\n2,1,2\n",
    expectStats: { header: null, firstRecordFields: ["7", "8"], columnCount: 2, records: 2 },
  },
  {
    name: "strips a UTF-8 BOM, counting its bytes",
    input: "\ufeffid,x\n1,2\n",
    options: { isHeader: header("id") },
    output: "2,1,2\n",
    expectStats: { header: ["id", "x"], bytesRead: 12, lines: 2 },
  },
  {
    name: "keeps bytes that only look like the start of a BOM",
    input: Buffer.from([0xef, 0xbb, 0x41, 0x0a]),
    // In UTF-8 these bytes are invalid (see the encoding cases); in Windows-1252 they are text, "ï»A".
    options: { encoding: "WIN1252" },
    output: Buffer.from([0x31, 0x2c, 0xef, 0xbb, 0x41, 0x0a]).toString("utf8"),
  },
  {
    name: "accepts CRLF line endings and drops them",
    input: "a,b\r\n1,2\r\n",
    output: "1,a,b\n2,1,2\n",
    expectStats: { lines: 2 },
  },
  {
    name: "takes a CR at end of file as the last line ending",
    input: "a,b\r",
    output: "1,a,b\n",
  },
  {
    name: "numbers records after line breaks inside quoted fields",
    input: 'id,text\n1,"multi\nline\ntext"\n2,after\n',
    options: { isHeader: header("id") },
    output: '2,1,"multi\nline\ntext"\n5,2,after\n',
    expectStats: { lines: 5, records: 2 },
  },
  {
    name: "passes CRLF inside quoted fields through unchanged",
    input: '1,"a\r\nb"\r\n2,c\r\n',
    output: '1,1,"a\r\nb"\n3,2,c\n',
  },
  {
    name: "leaves doubled quotes and quoted delimiters as they are",
    input: 'x,"say ""hi"", ok"\n',
    output: '1,x,"say ""hi"", ok"\n',
    expectStats: { firstRecordFields: ["x", 'say "hi", ok'], columnCount: 2 },
  },
  {
    name: "opens quoting at a quote in mid-field, as PostgreSQL does",
    input: 'ab"c,d"e,f\n1,2\n',
    output: '1,ab"c,d"e,f\n2,1,2\n',
    expectStats: { firstRecordFields: ["abc,de", "f"], columnCount: 2 },
  },
  {
    name: "skips blank lines, CRLF ones too, but counts them",
    input: "a,b\n\n1,2\r\n\r\n\n3,4\n\n",
    output: "1,a,b\n3,1,2\n6,3,4\n",
    expectStats: { lines: 7, records: 3 },
  },
  {
    name: "skips blank lines before the first record",
    input: "\n\r\nid,x\n1,2\n",
    options: { isHeader: header("id") },
    output: "4,1,2\n",
    expectStats: { firstRecordLine: 3 },
  },
  {
    name: "does not take a line of spaces for a blank line",
    input: "a,b\n \n1,2\n",
    output: "1,a,b\n3,1,2\n",
    rowErrors: [{ line: 2, reason: "expected 2 fields, found 1" }],
  },
  {
    name: "skips physical rows before the header, whatever quotes they hold",
    input: 'Bank export "Q3\nAccount: 1,2,3\nid,amount\n1,2\n',
    options: { skipRows: 2, isHeader: header("id") },
    output: "4,1,2\n",
    expectStats: { header: ["id", "amount"], firstRecordLine: 3, lines: 4 },
  },
  {
    name: "may skip every line",
    input: "a\nb\n",
    options: { skipRows: 5 },
    output: "",
    expectStats: { firstRecordFields: null, columnCount: 0, records: 0, lines: 2 },
  },
  {
    name: "unescapes and trims header fields",
    input: ' "Id" ,"Amount ""EUR""",  Booked \n1,2,3\n',
    options: { isHeader: () => true },
    output: "2,1,2,3\n",
    expectStats: { header: ["Id", 'Amount "EUR"', "Booked"] },
  },
  {
    name: "decodes a Windows-1252 header",
    input: Buffer.from([0x80, 0x3b, 0x53, 0x6f, 0x63, 0x69, 0xe9, 0x74, 0xe9, 0x0a, 0x31, 0x3b, 0x32, 0x0a]),
    options: { delimiter: ";", encoding: "WIN1252", isHeader: () => true },
    output: "2;1;2\n",
    expectStats: { header: ["€", "Société"] },
  },
  {
    name: "drops records with another field count, naming their first line",
    input: 'a,b,c\n1,2\n3,4,5\n"6\n",7,8,9\n10,11,12',
    output: "1,a,b,c\n3,3,4,5\n6,10,11,12\n",
    rowErrors: [
      { line: 2, reason: "expected 3 fields, found 2" },
      { line: 4, reason: "expected 3 fields, found 4" },
    ],
    expectStats: { records: 3, rejected: 2, lines: 6 },
  },
  {
    name: "fixes the field count with the header",
    input: "id,amount\n1,2,3\n4,5\n",
    options: { isHeader: header("id") },
    output: "3,4,5\n",
    rowErrors: [{ line: 2, reason: "expected 2 fields, found 3" }],
  },
  {
    name: "frames records with a semicolon delimiter",
    input: 'id;amount\n1;"2,50"\n',
    options: { delimiter: ";", isHeader: header("id") },
    output: '2;1;"2,50"\n',
  },
  {
    name: "frames records with a single-quote quote character",
    input: "a,b\n1,'it''s, ok'\n2,5\" pipe\n",
    options: { quote: "'" },
    output: "1,a,b\n2,1,'it''s, ok'\n3,2,5\" pipe\n",
  },
  {
    name: "keeps a line that reads \\. from ending COPY early",
    input: "a\n\\.\nb\n",
    output: "1,a\n2,\\.\n3,b\n",
  },
  {
    name: "leaves an empty file to the caller",
    input: "",
    output: "",
    expectStats: { header: null, firstRecordFields: null, columnCount: 0, records: 0, lines: 0, bytesRead: 0 },
  },
  {
    name: "reads a file that is only a BOM as empty",
    input: "\ufeff",
    output: "",
    expectStats: { records: 0, bytesRead: 3, lines: 1 },
  },
  {
    name: "reports a header without data",
    input: "id,amount\n",
    options: { isHeader: () => true },
    output: "",
    expectStats: { header: ["id", "amount"], columnCount: 2, records: 0 },
  },
  {
    name: "accepts a record of exactly maxRecordBytes",
    input: "0123,56789\r\n",
    options: { maxRecordBytes: 10 },
    output: "1,0123,56789\n",
  },
  {
    name: "carries a record much longer than a chunk",
    input: `a,b\n1,"${"long text\r\n".repeat(300)}"\n2,x\n`,
    output: `1,a,b\n2,1,"${"long text\r\n".repeat(300)}"\n303,2,x\n`,
    expectStats: { lines: 303, records: 3 },
  },
  {
    name: "refuses a NUL byte",
    input: "a,b\n1,2\n3,\u0000\n",
    error: { line: 3, message: "line 3: binary content (a NUL byte at byte 10); expected a text CSV file" },
  },
  {
    name: "refuses a NUL byte in skipped rows",
    input: "title\u0000\nid\n",
    options: { skipRows: 1 },
    error: { line: 1, message: /^line 1: binary content/ },
  },
  {
    name: "refuses a record longer than maxRecordBytes",
    input: "a,b\n0123456789,x\n",
    options: { maxRecordBytes: 10 },
    error: { line: 2, message: "line 2: record longer than 10 bytes" },
  },
  {
    name: "says when an overlong record is an open quote",
    input: 'a,b\n1,"x\n' + "y".repeat(40),
    options: { maxRecordBytes: 16 },
    error: { line: 2, message: "line 2: record longer than 16 bytes (a quoted field opened on line 2 is still open there: is a closing quote missing?)" },
  },
  {
    name: "reports an overlong record before a NUL further on",
    input: "a,b\n" + "x".repeat(20) + "\u0000",
    options: { maxRecordBytes: 16 },
    error: { line: 2, message: "line 2: record longer than 16 bytes" },
  },
  {
    name: "refuses a quote still open at end of file",
    input: 'a,b\n1,"open\n2,3\n',
    error: { line: 2, message: "line 2: unterminated quoted field (opened on line 2, still open at end of file)" },
  },
  {
    name: "names the line the open quote is on",
    input: 'a,b\n1,"x\ny" "z\n',
    error: { line: 2, message: "line 2: unterminated quoted field (opened on line 3, still open at end of file)" },
  },
  {
    name: "does not take a doubled quote for an opening one",
    input: '1,"a\nb""c\n',
    error: { line: 1, message: "line 1: unterminated quoted field (opened on line 1, still open at end of file)" },
  },
  {
    name: "refuses an inch mark in an unquoted field, as PostgreSQL would",
    input: 'a,b\n1,5" pipe\n2,x\n',
    error: { line: 2, message: "line 2: unterminated quoted field (opened on line 2, still open at end of file)" },
  },
  // Encodings: a record with bytes that are not text in the declared encoding is dropped and reported with its
  // field and the line and character (counted as an editor counts columns) of the first such byte.
  {
    name: "drops a record with a byte that is not UTF-8, naming its field, line and character",
    input: Buffer.concat([Buffer.from("id,amount,text\n1,2,ok\n2,3,Caf"), Buffer.from([0xe9]), Buffer.from(" cr\n3,4,ok\n")]),
    options: { isHeader: header("id") },
    output: "2,1,2,ok\n4,3,4,ok\n",
    rowErrors: [{ line: 3, field: 2, reason: `byte 0xE9 at line 3, character 8 is not valid UTF-8 ${WIN1252_HINT}` }],
    expectStats: { records: 2, rejected: 1, lines: 4 },
  },
  {
    name: "counts characters, not bytes, before the invalid byte",
    input: Buffer.concat([Buffer.from("1,€uro 😀 "), Buffer.from([0xff]), Buffer.from("\n")]),
    output: "",
    rowErrors: [{ line: 1, field: 1, reason: `byte 0xFF at line 1, character 10 is not valid UTF-8 ${WIN1252_HINT}` }],
  },
  {
    name: "names the physical line of an invalid byte inside a multi-line quoted field, and the record's first line",
    input: Buffer.concat([Buffer.from('id,text\n1,"first, line\nsecond '), Buffer.from([0xc3, 0x28]), Buffer.from('"\n2,ok\n')]),
    options: { isHeader: header("id") },
    output: "4,2,ok\n",
    rowErrors: [{ line: 2, field: 1, reason: `byte 0xC3 at line 3, character 8 is not valid UTF-8 ${WIN1252_HINT}` }],
  },
  {
    name: "refuses what PostgreSQL refuses: an incomplete character, a surrogate, an overlong form, a stray continuation byte",
    input: Buffer.concat([
      Buffer.from("a,b\n1,"), Buffer.from([0xe2, 0x82]), Buffer.from("\n2,"), Buffer.from([0xed, 0xa0, 0x80]),
      Buffer.from("\n3,"), Buffer.from([0xc0, 0xaf]), Buffer.from("\n4,"), Buffer.from([0x80]), Buffer.from("\n5,€\n"),
    ]),
    output: "1,a,b\n6,5,€\n",
    rowErrors: [
      { line: 2, field: 1, reason: `byte 0xE2 at line 2, character 3 is not valid UTF-8 ${WIN1252_HINT}` },
      { line: 3, field: 1, reason: `byte 0xED at line 3, character 3 is not valid UTF-8 ${WIN1252_HINT}` },
      { line: 4, field: 1, reason: `byte 0xC0 at line 4, character 3 is not valid UTF-8 ${WIN1252_HINT}` },
      { line: 5, field: 1, reason: `byte 0x80 at line 5, character 3 is not valid UTF-8 ${WIN1252_HINT}` },
    ],
    expectStats: { records: 2, rejected: 4 },
  },
  {
    name: "counts a line after a BOM from its first character",
    input: Buffer.concat([Buffer.from("\ufeff1,"), Buffer.from([0xff]), Buffer.from("\n2,3\n")]),
    output: "2,2,3\n",
    rowErrors: [{ line: 1, field: 1, reason: `byte 0xFF at line 1, character 3 is not valid UTF-8 ${WIN1252_HINT}` }],
    expectStats: { bytesRead: 11 },
  },
  {
    name: "reports both problems of a record with another field count and an invalid byte",
    input: Buffer.concat([Buffer.from("a,b\n1,2,"), Buffer.from([0xff]), Buffer.from("\n")]),
    output: "1,a,b\n",
    rowErrors: [
      { line: 2, reason: "expected 2 fields, found 3" },
      { line: 2, field: 2, reason: `byte 0xFF at line 2, character 5 is not valid UTF-8 ${WIN1252_HINT}` },
    ],
    expectStats: { records: 1, rejected: 1 },
  },
  {
    name: "ignores the bytes of skipped rows (they never reach PostgreSQL)",
    input: Buffer.concat([Buffer.from("Kontoauszug M"), Buffer.from([0xe4]), Buffer.from("rz\nid,x\n1,2\n")]),
    options: { skipRows: 1, isHeader: header("id") },
    output: "3,1,2\n",
  },
  {
    name: "drops a record with a byte Windows-1252 leaves undefined, and keeps its other high bytes",
    input: Buffer.concat([Buffer.from("a;b\n1;"), Buffer.from([0xe9, 0x80, 0x9f]), Buffer.from("\n2;x"), Buffer.from([0x81]), Buffer.from("\n3;"), Buffer.from([0x8d, 0x8f, 0x90, 0x9d]), Buffer.from("\n")]),
    options: { delimiter: ";", encoding: "WIN1252" },
    output: Buffer.concat([Buffer.from("1;a;b\n2;1;"), Buffer.from([0xe9, 0x80, 0x9f]), Buffer.from("\n")]).toString("utf8"),
    rowErrors: [
      { line: 3, field: 1, reason: "byte 0x81 at line 3, character 4 is not a character in Windows-1252" },
      { line: 4, field: 1, reason: "byte 0x8D at line 4, character 3 is not a character in Windows-1252" },
    ],
  },
  {
    name: "refuses a header with a byte that is not UTF-8, naming the line, character and field",
    input: Buffer.concat([Buffer.from("\ufeffid,W"), Buffer.from([0xe4]), Buffer.from("hrung\n1,EUR\n")]),
    options: { isHeader: header("id") },
    error: { line: 1, message: `line 1: byte 0xE4 at character 5 of the header (its field 2) is not valid UTF-8 ${WIN1252_HINT}` },
  },
  {
    name: "refuses a header with a byte Windows-1252 leaves undefined",
    input: Buffer.concat([Buffer.from("title\nid;"), Buffer.from([0x90]), Buffer.from("\n1;2\n")]),
    options: { skipRows: 1, delimiter: ";", encoding: "WIN1252", isHeader: header("id") },
    error: { line: 2, message: "line 2: byte 0x90 at character 4 of the header (its field 2) is not a character in Windows-1252" },
  },
  {
    name: "refuses a carriage return that does not end a line",
    input: "a,b\n1,2\r3,4\n",
    error: { line: 2, message: /^line 2: carriage return outside quotes/ },
  },
];

describe("createCsvFramer", () => {
  it.each(cases)("$name", async ({ input, options, output, rowErrors, error, expectStats }) => {
    const run = await frameEveryWay(input, options);
    if (error) {
      expect(run.error).toBeInstanceOf(CsvStructureError);
      expect((run.error as CsvStructureError).line).toBe(error.line);
      expect(run.error!.message).toMatch(error.message);
      return;
    }
    expect(run.error).toBeNull();
    expect(run.output).toBe(output);
    expect(run.rowErrors).toEqual(rowErrors ?? []);
    if (expectStats) expect(stats(run.framer)).toMatchObject(expectStats);
  });

  it("keeps memory bounded: an unterminated quote fails after maxRecordBytes, not at end of file", async () => {
    const input = 'a,b\n1,"' + "x".repeat(1_000_000);
    const run = await frame(input, { maxRecordBytes: 4096 }, [1000]);
    expect(run.error?.message).toMatch(/^line 2: record longer than 4096 bytes \(a quoted field opened on line 2/);
    expect(run.framer.bytesRead).toBeLessThan(4096 + 2 * 1000);
  });

  it("finds an invalid byte split from its record by a chunk boundary, and does not take a split character for one", async () => {
    // "1,€" then "2,Caf<E2 82>" (an incomplete character) then "3,ok": cut inside the euro sign, then between E2 and 82.
    const input = Buffer.concat([Buffer.from("a,b\n1,€\n2,Caf"), Buffer.from([0xe2, 0x82]), Buffer.from("!\n3,ok\n")]);
    const euro = input.indexOf("€") + 1;
    const bad = input.indexOf(0xe2, euro + 2) + 1;
    for (const sizes of [[euro, bad - euro, 64], [bad, 64], [euro, 64]]) {
      const run = await frame(input, {}, sizes);
      expect(run.error, `chunk sizes ${sizes}`).toBeNull();
      expect(run.output, `chunk sizes ${sizes}`).toBe("1,a,b\n2,1,€\n4,3,ok\n");
      expect(run.rowErrors, `chunk sizes ${sizes}`).toEqual([{ line: 3, field: 1, reason: `byte 0xE2 at line 3, character 6 is not valid UTF-8 ${WIN1252_HINT}` }]);
    }
  });

  it("finds the first invalid byte of a record as PostgreSQL's check would (well-formed UTF-8 per Unicode's table)", () => {
    const at = (...bytes: number[]) => firstInvalidByte(Buffer.from(bytes), "UTF8");
    expect(at(0x41, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0xef, 0xbf, 0xbf, 0xf4, 0x8f, 0xbf, 0xbf)).toBe(-1);
    expect(at(0x41, 0xc2)).toBe(1); // incomplete at the end
    expect(at(0xc1, 0xbf)).toBe(0); // overlong two-byte form
    expect(at(0xe0, 0x9f, 0xbf)).toBe(0); // overlong three-byte form
    expect(at(0xed, 0xbf, 0xbf)).toBe(0); // a surrogate
    expect(at(0xf0, 0x8f, 0xbf, 0xbf)).toBe(0); // overlong four-byte form
    expect(at(0xf4, 0x90, 0x80, 0x80)).toBe(0); // beyond U+10FFFF
    expect(at(0xf5, 0x80, 0x80, 0x80)).toBe(0);
    expect(at(0x41, 0xe2, 0x82, 0x41)).toBe(1);
    expect(firstInvalidByte(Buffer.from([0x80, 0x9f, 0x9d]), "WIN1252")).toBe(2);
    expect(firstInvalidByte(Buffer.from([0x80, 0x9f, 0xff]), "WIN1252")).toBe(-1);
  });

  it("passes errors thrown by the caller's callbacks on as the stream's error", async () => {
    const run = await frame("a\n1\n", { isHeader: () => { throw new Error("mapping lookup failed"); } });
    expect(run.error?.message).toBe("mapping lookup failed");
  });

  it.each([
    [{ delimiter: "€" }, /delimiter must be one ASCII character/],
    [{ delimiter: ";;" }, /delimiter must be one ASCII character/],
    [{ quote: "\n" }, /quote must be one ASCII character other than NUL, CR, LF and a digit/],
    // Each record goes out as `<line><delimiter>…`: a digit as either would run into the line number.
    [{ delimiter: "7" }, /delimiter must be one ASCII character other than NUL, CR, LF and a digit/],
    [{ quote: "0" }, /quote must be one ASCII character other than NUL, CR, LF and a digit/],
    [{ delimiter: '"' }, /delimiter and quote must differ/],
    [{ maxRecordBytes: 0 }, /maxRecordBytes must be a positive integer/],
    [{ skipRows: -1 }, /skipRows must be a non-negative integer/],
  ] as [CsvFramerOptions, RegExp][])("refuses options %j", (options, message) => {
    expect(() => createCsvFramer(options)).toThrow(message);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Property tests

/** Parses framed output with fast-csv (an independent RFC 4180 parser). */
function parseFramed(output: string, delimiter: string, quote: string): Promise<string[][]> {
  return new Promise((resolve, reject) => {
    const rows: string[][] = [];
    parseString(output, { delimiter, quote, escape: quote, headers: false, ignoreEmpty: false, trim: false })
      .on("error", reject)
      .on("data", (row: string[]) => rows.push(row))
      .on("end", () => resolve(rows));
  });
}

const piece = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(",", ";", "\t", "|", '"', "'", "\n", "\r\n", "\r", " ", "x", "é", "€", "😀", "\\.", "a somewhat longer run of text") },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 3 }).filter((text) => !text.includes("\u0000")) },
);
const field = fc.array(piece, { maxLength: 5 }).map((pieces) => pieces.join(""));
const line = fc.constantFrom("\n", "\r\n");

const table = fc
  .record({ columns: fc.integer({ min: 1, max: 5 }), delimiter: fc.constantFrom(",", ";", "\t", "|"), quote: fc.constantFrom('"', "'") })
  .chain(({ columns, delimiter, quote }) =>
    fc.record({
      delimiter: fc.constant(delimiter),
      quote: fc.constant(quote),
      bom: fc.boolean(),
      preamble: fc.array(fc.string({ maxLength: 12 }).filter((text) => !/[\n\u0000]/.test(text)), { maxLength: 2 }),
      header: fc.option(fc.array(field, { minLength: columns, maxLength: columns }), { nil: null }),
      rows: fc.array(
        fc.record({
          fields: fc.array(field, { minLength: columns, maxLength: columns }),
          blankLinesBefore: fc.array(line, { maxLength: 2 }),
          ending: line,
          quoteAll: fc.boolean(),
        }),
        { maxLength: 15 },
      ),
      finalLineEnding: fc.boolean(),
      sizes: fc.array(fc.integer({ min: 1, max: 48 }), { minLength: 1, maxLength: 8 }),
    }),
  );

/** RFC 4180: quote a field holding the delimiter, the quote or a line break (and a lone empty one, not to look blank). */
function serializeRow(fields: string[], delimiter: string, quote: string, quoteAll: boolean): string {
  return fields
    .map((value) => {
      const needsQuotes = quoteAll || value.includes(delimiter) || value.includes(quote) || /[\r\n]/.test(value) || (fields.length === 1 && value === "");
      return needsQuotes ? quote + value.split(quote).join(quote + quote) + quote : value;
    })
    .join(delimiter);
}

describe("createCsvFramer properties", () => {
  it("frames any RFC 4180 table so that a CSV parser gets back every row, with the line it started on", async () => {
    await fc.assert(
      fc.asyncProperty(table, async (t) => {
        let text = t.bom ? "\ufeff" : "";
        let lineNo = 1;
        for (const junk of t.preamble) {
          text += junk + "\n";
          lineNo++;
        }
        if (t.header) {
          const serialized = serializeRow(t.header, t.delimiter, t.quote, false);
          text += serialized + "\n";
          lineNo += serialized.split("\n").length;
        }
        const expected: string[][] = [];
        t.rows.forEach((row, index) => {
          for (const blank of row.blankLinesBefore) {
            text += blank;
            lineNo++;
          }
          const serialized = serializeRow(row.fields, t.delimiter, t.quote, row.quoteAll);
          expected.push([String(lineNo), ...row.fields]);
          const last = index === t.rows.length - 1;
          text += serialized + (last && !t.finalLineEnding ? "" : row.ending);
          lineNo += serialized.split("\n").length;
        });

        const options: CsvFramerOptions = {
          delimiter: t.delimiter,
          quote: t.quote,
          skipRows: t.preamble.length,
          isHeader: () => t.header !== null,
        };
        const run = await frame(text, options, t.sizes);
        expect(run.error).toBeNull();
        expect(run.rowErrors).toEqual([]);
        expect(await parseFramed(run.output, t.delimiter, t.quote)).toEqual(expected);
        expect(run.framer.records).toBe(t.rows.length);
        if (t.header) expect(run.framer.header).toEqual(t.header.map((name) => name.trim()));
        expect((await frame(text, options)).output).toBe(run.output);
      }),
      { numRuns: 300 },
    );
  });

  it("agrees with a byte-at-a-time model of PostgreSQL's CSV framing on arbitrary input, however it is chunked", async () => {
    const input = fc
      .record({
        delimiter: fc.constantFrom(",", ";"),
        quote: fc.constantFrom('"', "'"),
        skipRows: fc.nat(2),
        header: fc.boolean(),
        maxRecordBytes: fc.constantFrom(12, 40, 1024),
        bom: fc.boolean(),
        // Small chunks cut most records; large ones hold whole records between two line feeds (the encoding
        // check's per-chunk path).
        sizes: fc.oneof(
          fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 6 }),
          fc.array(fc.integer({ min: 41, max: 400 }), { minLength: 1, maxLength: 3 }),
        ),
      })
      .chain((o) =>
        fc.record({
          o: fc.constant(o),
          tokens: fc.array(
            fc.oneof(
              { weight: 8, arbitrary: fc.constantFrom("x", "é", "€", "x".repeat(21), o.delimiter, o.delimiter.repeat(19) + "x", o.quote, "\n", "\r\n") },
              { weight: 1, arbitrary: fc.constantFrom("\r", "\u0000") },
              // Not UTF-8: a Latin-1 byte, an incomplete character, a stray continuation byte.
              { weight: 1, arbitrary: fc.constantFrom(Buffer.from([0xe9]), Buffer.from([0xe2, 0x82]), Buffer.from([0x80])) },
            ),
            { maxLength: 60 },
          ),
        }),
      );
    await fc.assert(
      fc.asyncProperty(input, async ({ o, tokens }) => {
        const bytes = Buffer.concat([Buffer.from(o.bom ? "\ufeff" : ""), ...tokens.map((token) => Buffer.from(token))]);
        const options: CsvFramerOptions = { ...o, isHeader: () => o.header };
        const expected = model(bytes, o);
        const run = await frame(bytes, options, o.sizes);
        expect(run.error?.message ?? null).toBe(expected.error);
        if (expected.error) return;
        expect(run.output).toBe(expected.output);
        expect(run.rowErrors).toEqual(expected.rowErrors);
        expect({ records: run.framer.records, rejected: run.framer.rejected, lines: run.framer.lines, columnCount: run.framer.columnCount }).toEqual(expected.stats);
      }),
      { numRuns: 1500 },
    );
  });
});

/**
 * The framer's contract written as plainly as possible: one pass, one byte at a time, whole input in memory.
 * Quotes toggle quoting wherever they appear (PostgreSQL's rule); see the framer's module comment.
 */
function model(input: Buffer, o: { delimiter: string; quote: string; skipRows: number; header: boolean; maxRecordBytes: number }) {
  const D = o.delimiter.charCodeAt(0);
  const Q = o.quote.charCodeAt(0);
  const max = o.maxRecordBytes;
  const out: string[] = [];
  const rowErrors: CsvRowError[] = [];
  let records = 0;
  let rejected = 0;
  let expectedFields = 0;
  let first = true;
  const fail = (line: number, reason: string) => ({ error: `line ${line}: ${reason}`, output: "", rowErrors, stats: {} });
  const overlong = (start: number, startLine: number) => {
    let inQuote = false;
    let line = startLine;
    let quoteLine = line;
    let closedAt = -1;
    for (let i = start; i <= start + max; i++) {
      if (input[i] === 10) line++;
      else if (input[i] === Q) {
        if (inQuote) closedAt = i + 1;
        else if (i !== closedAt) quoteLine = line;
        inQuote = !inQuote;
      }
    }
    const hint = inQuote ? ` (a quoted field opened on line ${quoteLine} is still open there: is a closing quote missing?)` : "";
    return fail(startLine, `record longer than ${max} bytes${hint}`);
  };
  const binary = (at: number, line: number) => fail(line, `binary content (a NUL byte at byte ${at}); expected a text CSV file`);

  let i = input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf ? 3 : 0;
  let line = 1;
  for (let skip = o.skipRows; skip > 0 && i < input.length; i++) {
    if (input[i] === 0) return binary(i, line);
    if (input[i] === 10) {
      line++;
      skip--;
    }
  }
  while (i < input.length) {
    const start = i;
    const startLine = line;
    let inQuote = false;
    let quoteLine = 0;
    let closedAt = -1;
    let delimiters = 0;
    let bodyEnd = -1;
    let next = input.length;
    for (; i < input.length; i++) {
      const c = input[i];
      if (c === 0) {
        const pendingCr = !inQuote && i > start && input[i - 1] === 13 ? 1 : 0;
        return i - start > max + pendingCr ? overlong(start, startLine) : binary(i, line);
      }
      if (inQuote) {
        if (c === Q) {
          inQuote = false;
          closedAt = i + 1;
        } else if (c === 10) line++;
      } else if (c === Q) {
        inQuote = true;
        if (i !== closedAt) quoteLine = line;
      } else if (c === D) delimiters++;
      else if (c === 10) {
        bodyEnd = i;
        next = i + 1;
        break;
      } else if (c === 13) {
        if (input[i + 1] === 10) {
          bodyEnd = i;
          next = i + 2;
          break;
        }
        if (i + 1 === input.length) {
          bodyEnd = i;
          next = i + 1;
          break;
        }
        if (input[i + 1] === 0) continue;
        if (i - start > max) return overlong(start, startLine);
        return fail(line, "carriage return outside quotes that does not end the line (line endings must be \\n or \\r\\n)");
      }
    }
    if (bodyEnd === -1) {
      if (inQuote) {
        if (i - start > max) return overlong(start, startLine);
        return fail(startLine, `unterminated quoted field (opened on line ${quoteLine}, still open at end of file)`);
      }
      bodyEnd = i;
    }
    if (input[next - 1] === 10) line++;
    i = next;
    const length = bodyEnd - start;
    if (length === 0) continue;
    if (length > max) return overlong(start, startLine);
    const fields = delimiters + 1;
    const invalid = invalidUtf8(input.subarray(start, bodyEnd), o.delimiter, o.quote);
    if (first) {
      first = false;
      expectedFields = fields;
      if (o.header) {
        if (invalid) return fail(startLine + invalid.lines, `byte ${invalid.byte} at character ${invalid.character} of the header (its field ${invalid.field + 1}) is not valid UTF-8 ${WIN1252_HINT}`);
        continue;
      }
    } else if (fields !== expectedFields) {
      rejected++;
      rowErrors.push({ line: startLine, reason: `expected ${expectedFields} fields, found ${fields}` });
      if (invalid) rowErrors.push(invalidRowError(startLine, invalid));
      continue;
    }
    if (invalid) {
      rejected++;
      rowErrors.push(invalidRowError(startLine, invalid));
      continue;
    }
    records++;
    out.push(`${startLine}${o.delimiter}${input.subarray(start, bodyEnd).toString("utf8")}\n`);
  }
  const newlines = input.reduce((count, byte) => count + (byte === 10 ? 1 : 0), 0);
  const lines = newlines + (input.length > 0 && input[input.length - 1] !== 10 ? 1 : 0);
  return { error: null, output: out.join(""), rowErrors, stats: { records, rejected, lines, columnCount: expectedFields } };
}

/**
 * The model's own way to find a record's first invalid UTF-8 byte: the WHATWG decoder (a separate implementation)
 * replaces each ill-formed sequence with U+FFFD, which the generated input never holds otherwise; the text before the
 * first one gives the byte, the field, the line and the character.
 */
function invalidUtf8(record: Buffer, delimiter: string, quote: string) {
  const text = new TextDecoder("utf-8").decode(record);
  const at = text.indexOf("\ufffd");
  if (at === -1) return null;
  const before = text.slice(0, at);
  let field = 0;
  let inQuote = false;
  for (const ch of before) {
    if (ch === quote) inQuote = !inQuote;
    else if (ch === delimiter && !inQuote) field++;
  }
  const lines = before.split("\n");
  const byte = record[Buffer.byteLength(before)];
  return { byte: `0x${byte.toString(16).toUpperCase().padStart(2, "0")}`, field, lines: lines.length - 1, character: [...lines.at(-1)!].length + 1 };
}

function invalidRowError(line: number, invalid: NonNullable<ReturnType<typeof invalidUtf8>>): CsvRowError {
  return { line, field: invalid.field, reason: `byte ${invalid.byte} at line ${line + invalid.lines}, character ${invalid.character} is not valid UTF-8 ${WIN1252_HINT}` };
}
