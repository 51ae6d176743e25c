/**
 * gzip for GraphQL answers: clients that accept it get answers of 1 KiB or more compressed. A cached answer is
 * compressed once, the first time a client asks for it that way, and kept beside its plain bytes.
 */
import type { IncomingMessage } from "node:http";
import { gzip, gzipSync } from "node:zlib";
import { promisify } from "node:util";

/** Smaller answers go as they are: compressing them saves less than it costs. */
export const COMPRESS_MIN_BYTES = 1024;

const gzipAsync = promisify(gzip);

/** Whether the request's Accept-Encoding allows gzip (and does not refuse it with q=0). */
export function acceptsGzip(req: IncomingMessage): boolean {
  const header = req.headers["accept-encoding"];
  if (!header) return false;
  return header.split(",").some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(";");
    if (coding !== "gzip" && coding !== "*") return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    return !q || Number(q.slice(2)) > 0;
  });
}

/** A body compressed off the event loop (zlib's thread pool), for answers computed per request. */
export function gzipBody(body: string | Buffer): Promise<Buffer> {
  return gzipAsync(body);
}

/** The gzip form of a cached answer, computed on first use and kept on the entry (a hit stays synchronous). */
export function cachedGzip(entry: { bytes: Buffer; gzip?: Buffer }): Buffer {
  entry.gzip ??= gzipSync(entry.bytes);
  return entry.gzip;
}
