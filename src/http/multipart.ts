/**
 * The GraphQL multipart request spec (https://github.com/jaydenseric/graphql-multipart-request-spec), streamed.
 * Responsible for turning a `multipart/form-data` request into a GraphQL body with an `Upload` at each mapped path
 * as soon as its `operations` and `map` fields are in — before any file — and for handing each file to the
 * resolver as the live part of the request: nothing is buffered whole or written to disk (which is why
 * graphql-upload, whose processRequest spools every file to a temp file, is not used).
 *
 * A file stream errors (code PAYLOAD_TOO_LARGE, status 413) rather than being cut short when the file is over the
 * limit; structural mistakes (missing or misplaced fields, bad JSON, a map path that does not exist, one file mapped
 * to several paths, a file not in the map or missing from the request) are `MultipartError`s with status 400.
 */
import type { IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import busboy from "busboy";

/** One file of a multipart request, as the Upload scalar hands it to resolvers. */
export interface FileUpload {
  filename: string;
  mimetype: string;
  encoding: string;
  /**
   * The file's bytes as they arrive from the client (the request itself: read it promptly, it holds the request
   * back). Callable once. Errors with `code: "PAYLOAD_TOO_LARGE"` when the file is over the size limit.
   */
  createReadStream(): Readable;
}

/** A multipart request the server refuses; `status` is the HTTP status, `extensions` what GraphQL shows. */
export class MultipartError extends Error {
  readonly code: string;
  readonly extensions: { code: string; http: { status: number } };

  constructor(
    readonly status: 400 | 413,
    message: string,
  ) {
    super(message);
    this.name = "MultipartError";
    this.code = status === 413 ? "PAYLOAD_TOO_LARGE" : "BAD_REQUEST";
    this.extensions = { code: this.code, http: { status } };
  }
}

/** A file variable: `promise` resolves when the request reaches the file's part (it may never, then it rejects). */
export class Upload {
  readonly promise: Promise<FileUpload>;
  /** The file, once its part has started. */
  file: FileUpload | undefined;
  #resolve!: (file: FileUpload) => void;
  #reject!: (error: Error) => void;

  constructor() {
    this.promise = new Promise<FileUpload>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // An operation may never look at its file (or be refused before it runs): that is not an unhandled rejection.
    this.promise.catch(() => undefined);
  }

  resolve(file: FileUpload): void {
    this.file = file;
    this.#resolve(file);
  }

  reject(error: Error): void {
    this.#reject(error);
  }
}

export interface MultipartLimits {
  /** Largest file accepted; beyond it the file's stream errors with PAYLOAD_TOO_LARGE. */
  maxFileBytes: number;
  /** Most files in one request (entries of `map`). */
  maxFiles: number;
  /** Largest `operations` or `map` field (the JSON body limit); 1 MiB by default. */
  maxFieldBytes?: number;
}

export interface ParsedMultipart {
  /** The `operations` field with an `Upload` at every path of `map`. */
  body: unknown;
  uploads: Upload[];
  /**
   * Settles when the multipart body is over: resolves once every part has been read to the end of the request,
   * rejects with the first error otherwise (malformed body, a file over the limit or closed before its end, the
   * client gone). After a rejection the rest of the request is discarded unparsed.
   */
  done: Promise<void>;
  /** Whether a mapped file has not been read to its end (or has not even arrived). */
  hasUnreadFiles(): boolean;
  /**
   * To call once the operation has finished: discards the files (and the parts of them) it did not read, those
   * still to come included, so that the request can complete and `done` settle — if the client still sends them:
   * clients that already have their answer may stop (the server closes such connections instead).
   */
  release(): void;
}

const DEFAULT_MAX_FIELD_BYTES = 1024 * 1024;
const UNSAFE_KEYS = new Set(["__proto__", "constructor", "prototype"]);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function parseJsonField(name: string, value: string): unknown {
  try {
    return JSON.parse(value);
  } catch (error) {
    throw new MultipartError(400, `The '${name}' multipart field is not valid JSON: ${(error as Error).message}`);
  }
}

/** Puts `upload` at a dotted `path` of `operations`, where the client left a placeholder (null). */
function placeUpload(operations: Record<string, unknown>, path: string, upload: Upload): boolean {
  const keys = path.split(".");
  let parent: unknown = operations;
  for (const [index, key] of keys.entries()) {
    if (!isObject(parent) || UNSAFE_KEYS.has(key) || !Object.hasOwn(parent, key)) return false;
    if (index === keys.length - 1) {
      parent[key] = upload;
      return true;
    }
    parent = parent[key];
  }
  return false;
}

/** Validates the `map` field (file field name → its one path in operations) and places one `Upload` per file. */
function mapUploads(operations: Record<string, unknown>, map: unknown, maxFiles: number): Map<string, Upload> {
  if (!isObject(map) || Array.isArray(map)) {
    throw new MultipartError(400, "The 'map' multipart field must be a JSON object of file field names to arrays of paths");
  }
  const entries = Object.entries(map);
  if (entries.length > maxFiles) {
    throw new MultipartError(413, `The request maps ${entries.length} files; at most ${maxFiles} may be sent at once`);
  }
  const uploads = new Map<string, Upload>();
  for (const [field, paths] of entries) {
    if (!Array.isArray(paths) || !paths.every((path): path is string => typeof path === "string")) {
      throw new MultipartError(400, `The 'map' entry '${field}' must be an array of paths such as ["variables.file"]`);
    }
    // The spec lets one file fill several variables, but a streamed file can be read only once: the second reader
    // would fail after the first had run (its result lost). Refused before anything runs.
    if (paths.length > 1) {
      throw new MultipartError(
        400,
        `The 'map' entry '${field}' names ${paths.length} paths: a file is streamed and can be read once, so each Upload variable needs its own file part`,
      );
    }
    const upload = new Upload();
    for (const path of paths) {
      if (!placeUpload(operations, path, upload)) {
        throw new MultipartError(400, `The 'map' entry '${field}' names the path '${path}', which is not in 'operations' (put null there)`);
      }
    }
    uploads.set(field, upload);
  }
  return uploads;
}

/**
 * Reads a multipart GraphQL request from `req`. Resolves as soon as `operations` and `map` are parsed; the files
 * follow through each `Upload`'s promise while the operation runs. Rejects with a `MultipartError` when the
 * request is not a valid multipart GraphQL request (the rest of it is then discarded).
 */
export function parseGraphQLMultipart(req: IncomingMessage, limits: MultipartLimits): Promise<ParsedMultipart> {
  return new Promise<ParsedMultipart>((resolveParsed, rejectParsed) => {
    const maxFieldBytes = limits.maxFieldBytes ?? DEFAULT_MAX_FIELD_BYTES;
    let operations: Record<string, unknown> | undefined;
    let uploads: Map<string, Upload> | undefined;
    const streams: { stream: Readable; taken: boolean }[] = [];
    let parsed = false;
    let released = false;
    let failure: Error | undefined;
    let settleDone!: { resolve: () => void; reject: (error: Error) => void };
    const done = new Promise<void>((resolve, reject) => (settleDone = { resolve, reject }));
    done.catch(() => undefined);

    /** Stops parsing: refuses what is still to come, and reads the rest of the request into the void. */
    function fail(error: Error) {
      if (failure) return;
      failure = error;
      if (parser) req.unpipe(parser);
      req.resume();
      for (const upload of uploads?.values() ?? []) if (!upload.file) upload.reject(error);
      for (const { stream } of streams) if (!stream.readableEnded && !stream.destroyed) stream.destroy(error);
      if (!parsed) rejectParsed(error);
      settleDone.reject(error);
    }

    let parser: busboy.Busboy | undefined;
    try {
      // busboy flags a part as over its limit once it reaches the limit exactly: allow one byte more.
      parser = busboy({
        headers: req.headers,
        limits: { fileSize: limits.maxFileBytes + 1, files: limits.maxFiles, fieldSize: maxFieldBytes + 1 },
      });
    } catch (error) {
      fail(new MultipartError(400, `The multipart request cannot be read: ${(error as Error).message}`));
      return;
    }

    parser.on("field", (name, value, info) => {
      if (failure) return;
      try {
        if (info.valueTruncated) {
          throw new MultipartError(413, `The '${name}' multipart field is larger than ${maxFieldBytes} bytes`);
        }
        if (name === "operations" && operations === undefined) {
          const json = parseJsonField(name, value);
          if (Array.isArray(json)) {
            throw new MultipartError(400, "Batched operations are not supported: send one operation per request");
          }
          if (!isObject(json)) throw new MultipartError(400, "The 'operations' multipart field must be a JSON object");
          operations = json;
        } else if (name === "map" && operations !== undefined && uploads === undefined) {
          uploads = mapUploads(operations, parseJsonField(name, value), limits.maxFiles);
          parsed = true;
          resolveParsed({ body: operations, uploads: [...uploads.values()], done, hasUnreadFiles, release });
        } else if (uploads?.has(name)) {
          throw new MultipartError(400, `The file '${name}' was sent as a plain field: give its part a filename`);
        } else if (name === "operations" || name === "map") {
          throw new MultipartError(400, "The 'operations' field must come first, then 'map', each once, then the files");
        } else {
          throw new MultipartError(400, `Unexpected multipart field '${name}': only 'operations', 'map' and the mapped files may be sent`);
        }
      } catch (error) {
        fail(error as Error);
      }
    });

    parser.on("file", (field, stream, info) => {
      stream.on("error", () => undefined); // the consumer sees errors through its own listeners
      const upload = uploads?.get(field);
      if (failure) {
        stream.resume();
        return;
      }
      if (!upload || upload.file) {
        stream.resume();
        const error = !uploads
          ? "Files must come after the 'operations' and 'map' fields"
          : upload
            ? `The file field '${field}' was sent twice`
            : `The file field '${field}' is not in the 'map' field`;
        fail(new MultipartError(400, error));
        return;
      }
      const entry = { stream, taken: false };
      streams.push(entry);
      stream.on("limit", () => {
        stream.destroy(new MultipartError(413, `The file '${info.filename}' is larger than the ${limits.maxFileBytes}-byte upload limit`));
      });
      stream.on("close", () => {
        // busboy waits for every file stream to end: one destroyed before it did would hold the request forever.
        if (!stream.readableEnded) {
          const reason = stream.errored;
          fail(reason instanceof MultipartError ? reason : new MultipartError(400, `The file '${info.filename}' was closed before its end`));
        }
      });
      upload.resolve({
        filename: info.filename ?? "",
        mimetype: info.mimeType,
        encoding: info.encoding,
        createReadStream() {
          if (entry.taken) throw new Error(`createReadStream() was called twice for the file '${info.filename}'`);
          if (released) throw new Error(`The file '${info.filename}' was discarded: the operation had finished`);
          entry.taken = true;
          return stream;
        },
      });
      if (released) stream.resume();
    });

    parser.on("filesLimit", () => fail(new MultipartError(413, `At most ${limits.maxFiles} file(s) may be sent at once`)));
    parser.on("error", (error: Error) => fail(new MultipartError(400, `The multipart request is malformed: ${error.message}`)));
    parser.on("finish", () => {
      if (failure) return;
      if (!operations) return fail(new MultipartError(400, "The multipart request has no 'operations' field (it must come first)"));
      if (!uploads) return fail(new MultipartError(400, "The multipart request has no 'map' field (it must follow 'operations')"));
      const missing = [...uploads].find(([, upload]) => !upload.file);
      if (missing) return fail(new MultipartError(400, `The file '${missing[0]}' named in 'map' is not in the request`));
      settleDone.resolve();
    });
    req.on("error", () => undefined);
    req.on("close", () => {
      if (!req.complete) fail(new MultipartError(400, "The client closed the request before sending all of it"));
    });

    function hasUnreadFiles() {
      return [...(uploads?.values() ?? [])].some((upload) => !upload.file) || streams.some(({ stream }) => !stream.readableEnded);
    }

    function release() {
      released = true;
      for (const { stream } of streams) if (!stream.readableEnded && !stream.destroyed) stream.resume();
    }

    req.pipe(parser);
  });
}
