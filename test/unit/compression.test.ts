/** Content negotiation of answer compression (RFC 9110 §12.5.3): q-values, refusals, the wildcard, brotli on ties. */
import type { IncomingMessage } from "node:http";
import { describe, expect, it } from "vitest";
import { preferredEncoding } from "../../src/http/compression.js";

const prefer = (header?: string) => preferredEncoding({ headers: header === undefined ? {} : { "accept-encoding": header } } as IncomingMessage);

describe("preferredEncoding", () => {
  it.each([
    [undefined, null],
    ["", null],
    ["identity", null],
    ["gzip", "gzip"],
    ["br", "br"],
    ["gzip, deflate, br", "br"],
    ["GZIP;Q=1, BR;Q=0.8", "gzip"],
    ["br;q=0.5, gzip;q=0.9", "gzip"],
    ["br;q=0, gzip", "gzip"],
    ["gzip;q=0", null],
    ["gzip;q=0, br;q=0", null],
    ["*", "br"],
    ["*;q=0.5, gzip", "gzip"],
    ["*;q=0", null],
    ["br;q=0, *", "gzip"],
    ["gzip;q=abc", null],
    ["deflate", null],
  ])("Accept-Encoding %j → %s", (header, expected) => {
    expect(prefer(header)).toBe(expected);
  });
});
