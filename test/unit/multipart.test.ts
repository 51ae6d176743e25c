/**
 * The streaming GraphQL multipart parser, against real multipart requests (undici's FormData) sent to a bare
 * node:http server, and the Upload scalar that hands its files to resolvers.
 */
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Kind } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MultipartError, parseGraphQLMultipart, Upload, type MultipartLimits, type ParsedMultipart } from "../../src/http/multipart.js";
import { UploadScalar } from "../../src/graphql/upload-scalar.js";

const QUERY = "mutation($file: Upload!) { upload(file: $file) }";

type Handler = (req: IncomingMessage) => Promise<unknown>;

let server: Server;
let url: string;
let handler: Handler;

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    handler(req).then(
      (body) => res.setHeader("content-type", "application/json").end(JSON.stringify(body)),
      (error: Error) => {
        res.statusCode = 500;
        res.end(JSON.stringify({ unexpected: error.message }));
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** A multipart request as the spec orders it: operations, map, then the files (each [field, content, name]). */
function form(parts: { operations?: unknown; map?: unknown; files?: [string, NonSharedBuffer, string][]; order?: "map-first" }): FormData {
  const body = new FormData();
  const fields: [string, unknown][] = [
    ["operations", parts.operations],
    ["map", parts.map],
  ];
  if (parts.order === "map-first") fields.reverse();
  for (const [name, value] of fields) {
    if (value !== undefined) body.append(name, typeof value === "string" ? value : JSON.stringify(value));
  }
  for (const [field, content, name] of parts.files ?? []) body.append(field, new Blob([content], { type: "text/csv" }), name);
  return body;
}

const singleFile = (content: NonSharedBuffer, field = "0") =>
  form({ operations: { query: QUERY, variables: { file: null } }, map: { 0: ["variables.file"] }, files: [[field, content, "ledger.csv"]] });

async function send(body: FormData): Promise<any> {
  const response = await fetch(url, { method: "POST", body });
  return response.json();
}

const LIMITS: MultipartLimits = { maxFileBytes: 64 * 1024 * 1024, maxFiles: 1 };

function describeError(error: unknown) {
  const { status, code, message } = error as MultipartError;
  return { multipartError: error instanceof MultipartError, status, code, message };
}

/** Parses, then reads the file's stream to its end (or to its error); answers what happened. */
async function parseAndRead(req: IncomingMessage, limits = LIMITS) {
  const parsed = await parseGraphQLMultipart(req, limits);
  const upload = (parsed.body as { variables: { file: unknown } }).variables.file as Upload;
  const file = await upload.promise;
  const hash = createHash("sha256");
  let size = 0;
  try {
    for await (const chunk of file.createReadStream()) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch (error) {
    await parsed.done.catch(() => undefined);
    return { streamError: describeError(error), size };
  }
  await parsed.done;
  return { sha256: hash.digest("hex"), size };
}

describe("parseGraphQLMultipart", () => {
  it("resolves with an Upload at the mapped path before the file has arrived, then streams the file intact", async () => {
    const content = randomBytes(12 * 1024 * 1024);
    let observed: Record<string, unknown> = {};
    handler = async (req) => {
      const parsed = await parseGraphQLMultipart(req, LIMITS);
      let doneSettled = false;
      void parsed.done.finally(() => (doneSettled = true));
      await Promise.resolve();
      const { query, variables } = parsed.body as { query: string; variables: { file: unknown } };
      const file = await (variables.file as Upload).promise;
      observed = {
        query,
        isUpload: variables.file instanceof Upload,
        sameUpload: parsed.uploads[0] === variables.file,
        requestCompleteAtParse: req.complete,
        doneSettledAtParse: doneSettled,
        file: { filename: file.filename, mimetype: file.mimetype },
      };
      const hash = createHash("sha256");
      let size = 0;
      for await (const chunk of file.createReadStream()) {
        hash.update(chunk as Buffer);
        size += (chunk as Buffer).length;
      }
      expect(() => file.createReadStream()).toThrow(/called twice/);
      await parsed.done;
      return { sha256: hash.digest("hex"), size };
    };

    const result = await send(singleFile(content));

    expect(result).toEqual({ sha256: createHash("sha256").update(content).digest("hex"), size: content.length });
    expect(observed).toEqual({
      query: QUERY,
      isUpload: true,
      sameUpload: true,
      requestCompleteAtParse: false,
      doneSettledAtParse: false,
      file: { filename: "ledger.csv", mimetype: "text/csv" },
    });
  });

  it("errors the file's stream (not a silent cut) when the file is over the limit, and accepts one exactly at it", async () => {
    const limits = { maxFileBytes: 1000, maxFiles: 1 };
    handler = (req) => parseAndRead(req, limits);

    const over = await send(singleFile(randomBytes(5000)));
    expect(over.streamError).toMatchObject({ multipartError: true, status: 413, code: "PAYLOAD_TOO_LARGE" });
    expect(over.streamError.message).toMatch(/1000-byte upload limit/);

    const exact = randomBytes(1000);
    expect(await send(singleFile(exact))).toEqual({ sha256: createHash("sha256").update(exact).digest("hex"), size: 1000 });
  });

  it("refuses an operations field over the JSON body limit with 413", async () => {
    handler = (req) => parseGraphQLMultipart(req, { ...LIMITS, maxFieldBytes: 100 }).then(() => ({ parsed: true }), describeError);
    const operations = { query: QUERY, variables: { file: null, padding: "x".repeat(200) } };
    const result = await send(form({ operations, map: { 0: ["variables.file"] }, files: [["0", randomBytes(10), "a.csv"]] }));
    expect(result).toMatchObject({ multipartError: true, status: 413, code: "PAYLOAD_TOO_LARGE" });
  });

  const operations = { query: QUERY, variables: { file: null } };
  const file: [string, NonSharedBuffer, string] = ["0", randomBytes(100), "a.csv"];
  it.each([
    ["a map path not in operations", form({ operations, map: { 0: ["variables.nope"] }, files: [file] }), /'variables.nope', which is not in 'operations'/],
    ["a map that is not JSON", form({ operations, map: "{0: variables.file", files: [file] }), /'map' multipart field is not valid JSON/],
    ["a map entry that is not a list of paths", form({ operations, map: { 0: "variables.file" }, files: [file] }), /must be an array of paths/],
    ["operations that are not JSON", form({ operations: "{", map: { 0: ["variables.file"] }, files: [file] }), /'operations' multipart field is not valid JSON/],
    ["batched operations", form({ operations: [operations], map: { 0: ["0.variables.file"] }, files: [file] }), /Batched operations are not supported/],
    ["map before operations", form({ operations, map: { 0: ["variables.file"] }, files: [file], order: "map-first" }), /'operations' field must come first/],
    ["no operations", form({ files: [file] }), /Files must come after the 'operations' and 'map' fields/],
    ["one file mapped to two variables (a stream is read once)", form({ operations: { query: QUERY, variables: { f: null, g: null } }, map: { 0: ["variables.f", "variables.g"] }, files: [file] }), /names 2 paths: a file is streamed and can be read once, so each Upload variable needs its own file part/],
    ["a path reaching for the prototype", form({ operations, map: { 0: ["__proto__.file"] }, files: [file] }), /not in 'operations'/],
    ["more files than allowed", form({ operations: { query: QUERY, variables: { a: null, b: null } }, map: { 0: ["variables.a"], 1: ["variables.b"] } }), /at most 1 may be sent/],
  ])("rejects %s with a MultipartError", async (_, body, message) => {
    handler = (req) => parseGraphQLMultipart(req, LIMITS).then(() => ({ parsed: true }), describeError);
    const result = await send(body);
    expect(result).toMatchObject({ multipartError: true, status: expect.any(Number), code: expect.any(String) });
    expect([400, 413]).toContain(result.status);
    expect(result.message).toMatch(message);
  });

  it("rejects a request that is not multipart at all with 400", async () => {
    handler = (req) => parseGraphQLMultipart(req, LIMITS).then(() => ({ parsed: true }), describeError);
    const response = await fetch(url, { method: "POST", headers: { "content-type": "multipart/form-data" }, body: "x" });
    expect(await response.json()).toMatchObject({ multipartError: true, status: 400, code: "BAD_REQUEST" });
  });

  it.each([
    ["a file field that is not in the map", singleFile(randomBytes(100), "7"), /'7' is not in the 'map' field/],
    ["a mapped file missing from the request", form({ operations, map: { 0: ["variables.file"] } }), /'0' named in 'map' is not in the request/],
  ])("resolves, then fails the upload and `done` for %s", async (_, body, message) => {
    handler = async (req) => {
      const parsed = await parseGraphQLMultipart(req, LIMITS);
      const [upload, done] = await Promise.allSettled([parsed.uploads[0].promise, parsed.done]);
      return { upload: upload.status === "rejected" && describeError(upload.reason), done: done.status === "rejected" && describeError(done.reason) };
    };
    const result = await send(body);
    expect(result.upload).toMatchObject({ multipartError: true, status: 400, message: expect.stringMatching(message) });
    expect(result.done).toEqual(result.upload);
  });

  it("drains a file the operation did not read once released, so that the request completes", async () => {
    handler = async (req) => {
      const parsed: ParsedMultipart = await parseGraphQLMultipart(req, LIMITS);
      const file = await parsed.uploads[0].promise;
      parsed.release();
      await parsed.done;
      let discarded = "";
      try {
        file.createReadStream();
      } catch (error) {
        discarded = (error as Error).message;
      }
      return { complete: req.complete, discarded };
    };
    expect(await send(singleFile(randomBytes(4 * 1024 * 1024)))).toEqual({ complete: true, discarded: expect.stringMatching(/discarded/) });
  });

  it("does not hold the request when the operation destroys the stream before its end", async () => {
    handler = async (req) => {
      const parsed = await parseGraphQLMultipart(req, LIMITS);
      const stream = (await parsed.uploads[0].promise).createReadStream();
      for await (const _ of stream) break; // destroys the stream after its first chunk
      const done = await parsed.done.then(() => "resolved", (error: Error) => error.message);
      return { done };
    };
    expect(await send(singleFile(randomBytes(4 * 1024 * 1024)))).toEqual({ done: expect.stringMatching(/closed before its end/) });
  });
});

describe("Upload scalar", () => {
  it("accepts only an Upload placed by the multipart parser, and is never output", async () => {
    const upload = new Upload();
    expect(UploadScalar.parseValue(upload)).toBe(upload.promise);
    expect(() => UploadScalar.parseValue("ledger.csv")).toThrow(
      "Upload must be sent as a multipart request (GraphQL multipart request spec), with the apollo-require-preflight header",
    );
    expect(() => UploadScalar.parseLiteral({ kind: Kind.STRING, value: "ledger.csv" })).toThrow(/multipart request/);
    expect(() => UploadScalar.serialize(upload)).toThrow(/input-only/);
  });
});
