/**
 * Small pieces of HTTP handling shared by the server and its GraphQL route: request ids, bodies, bearer tokens,
 * media types, and the error that carries an HTTP status.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";

/** Largest request body accepted on /graphql (and largest `operations` field of a multipart upload). */
export const MAX_BODY_BYTES = 1024 * 1024;
const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** An error answered with its own HTTP status (and a JSON error body; see server.ts). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The GraphQL error code answered (`extensions.code`); by default the status's (`BAD_REQUEST` for 400). */
    readonly code?: string,
  ) {
    super(message);
  }
}

/** The whole request body as text; 413 beyond MAX_BODY_BYTES (the rest is drained, not kept). */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeListener("data", onData);
        req.resume();
        reject(new HttpError(413, `Request body is larger than ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on("data", onData);
    req.once("end", () => resolve(chunks.length === 1 ? chunks[0].toString("utf8") : Buffer.concat(chunks).toString("utf8")));
    req.once("error", reject);
  });
}

/** Parses a JSON body (a non-JSON body is handed on as text, for Apollo to refuse). */
export function parseJsonBody(text: string, contentType: string | undefined): unknown {
  if (!text) return undefined;
  if (!contentType?.includes("json")) return text;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, `Request body is not valid JSON: ${(error as Error).message}`);
  }
}

/** The bearer token of the Authorization header, if any; 401 for a malformed header. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match) throw new HttpError(401, "Authorization header must be 'Bearer <token>'");
  return match[1];
}

/**
 * Whether a content type is JSON proper (`application/json`, `application/graphql-response+json`). A browser
 * sends those cross-site only after a CORS preflight, unlike `text/plain` — even `text/plain; charset=json`.
 */
export function isJsonMediaType(contentType: string | undefined): boolean {
  const media = contentType?.split(";")[0].trim().toLowerCase();
  return media === "application/json" || media === "application/graphql-response+json";
}

/** The client's `x-request-id` when well-formed, else a new one. */
export function requestIdOf(req: IncomingMessage): string {
  const incoming = req.headers["x-request-id"];
  return typeof incoming === "string" && REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

/** The request's `Prefer` preferences (RFC 7240) as lower-cased names and their values ("" for none). */
function preferences(req: IncomingMessage): Map<string, string> {
  const header = req.headers.prefer;
  const found = new Map<string, string>();
  if (!header) return found;
  for (const preference of (Array.isArray(header) ? header.join(",") : header).split(",")) {
    const [name = "", value = ""] = preference.split(";")[0]!.split("=");
    if (name.trim()) found.set(name.trim().toLowerCase(), value.trim().replace(/^"(.*)"$/, "$1"));
  }
  return found;
}

/**
 * How the request's `Prefer` header (RFC 7240) asks to be answered: `respondAsync`, the client would rather have a
 * `202 Accepted` and follow the work than wait for it; `answerBy`, from `wait=<seconds>`, when it wants an answer
 * at the latest (ms since the epoch, counted from `receivedAt`), the final one if the work is over by then.
 * Other preferences are ignored.
 */
export function asyncPreference(req: IncomingMessage, receivedAt: number): { respondAsync: boolean; answerBy?: number } {
  const found = preferences(req);
  const wait = found.get("wait");
  return {
    respondAsync: found.has("respond-async"),
    ...(wait !== undefined && /^\d{1,6}$/.test(wait) ? { answerBy: receivedAt + Number(wait) * 1000 } : {}),
  };
}
