/**
 * The GraphQL-over-HTTP spec audit of `graphql-http` (the reference implementation's test suite), run against the
 * real server. Every MUST passes. The SHOULD/MAY audits that do not are listed with the reason, so any change in
 * either direction shows here.
 */
import { serverAudits } from "graphql-http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.js";

/** Deliberate or inherited deviations from SHOULD/MAY recommendations. */
const KNOWN = new Map<string, string>([
  // CSRF prevention: a GET without a preflight header is refused (browsers can send such GETs cross-site).
  ["MAY accept application/x-www-form-urlencoded formatted GET requests", "notice"],
  ["MAY allow URL-encoded JSON string {variables} parameter in GETs when accepting application/graphql-response+json", "notice"],
  ["MAY allow URL-encoded JSON string {variables} parameter in GETs when accepting application/json", "notice"],
  // Apollo Server answers a non-object `extensions` with 200 and an error, and parse/validation/coercion failures
  // with 400 whatever the Accept header.
  ["MAY use 400 status code on string {extensions} parameter", "notice"],
  ["MAY use 400 status code on number {extensions} parameter", "notice"],
  ["MAY use 400 status code on boolean {extensions} parameter", "notice"],
  ["MAY use 400 status code on array {extensions} parameter", "notice"],
  ["SHOULD use 200 status code on document parsing failure when accepting application/json", "warn"],
  ["SHOULD use 200 status code on document validation failure when accepting application/json", "warn"],
  ["SHOULD use a status code of 200 on variable coercion failure when accepting application/json", "warn"],
  ["SHOULD use 400 status code on document parsing failure when accepting application/graphql-response+json", "warn"],
  ["SHOULD use 400 status code on document validation failure when accepting application/graphql-response+json", "warn"],
]);

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => t?.close());

describe("GraphQL over HTTP (graphql-http audit)", () => {
  for (const audit of serverAudits({ url: () => t.url, fetchFn: fetch })) {
    it(audit.name, async () => {
      const result = await audit.fn();
      const expected = audit.name.startsWith("MUST") ? "ok" : (KNOWN.get(audit.name) ?? "ok");
      expect(result.status, "reason" in result ? result.reason : undefined).toBe(expected);
    });
  }
});
