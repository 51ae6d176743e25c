/** Which requests a trusted-documents server runs, per viewer role (src/graphql/trusted-documents.ts). */
import { describe, expect, it } from "vitest";
import type { Viewer } from "../../src/auth/policy.js";
import { createTrustedDocuments, documentHash, documentIdInSearch, documentIdToPersistedQuery, type OperationParams } from "../../src/graphql/trusted-documents.js";

const ME = "query Me { me { id } }";
const manifest = new Map([[documentHash(ME), ME]]);
const as = (role: Viewer["role"]): Viewer => ({ id: "1", email: "x@recon.test", name: "X", role });
const apq = (sha256Hash: string) => ({ extensions: { persistedQuery: { version: 1, sha256Hash } } });

describe("trusted documents", () => {
  const on = createTrustedDocuments({ manifest, enforce: true });
  const off = createTrustedDocuments({ manifest, enforce: false });
  const adHoc = { query: "{ me { id name } }" };

  it.each([
    ["a manifest hash alone", apq(documentHash(ME)), null],
    ["a manifest text", { query: ME }, null],
    ["a manifest text with its hash", { query: ME, ...apq(documentHash(ME)) }, null],
    ["an ad-hoc text", adHoc, "PERSISTED_QUERY_NOT_IN_LIST"],
    ["an ad-hoc text with a manifest hash", { ...adHoc, ...apq(documentHash(ME)) }, "PERSISTED_QUERY_NOT_IN_LIST"],
    ["a hash outside the manifest", apq("a".repeat(64)), "PERSISTED_QUERY_NOT_IN_LIST"],
    ["neither text nor hash", { variables: {} }, "PERSISTED_QUERY_ID_REQUIRED"],
    ["an unusable body", null, "PERSISTED_QUERY_ID_REQUIRED"],
  ])("for anonymous, VIEWER and MANAGER viewers: %s → %s", (_case, params, code) => {
    for (const viewer of [null, as("VIEWER"), as("MANAGER")]) expect(on.refusal(viewer, params as OperationParams | null)?.code ?? null).toBe(code);
  });

  it("lets ANALYSTs and ADMINs send anything, and everyone when not enforcing", () => {
    for (const viewer of [as("ANALYST"), as("ADMIN")]) expect(on.refusal(viewer, adHoc)).toBeNull();
    for (const viewer of [null, as("VIEWER")]) expect(off.refusal(viewer, adHoc)).toBeNull();
  });

  it("prices only ad-hoc documents of an enforcing server at the stricter cost", () => {
    expect(on.adHocDocument(ME)).toBe(false);
    expect(on.adHocDocument(adHoc.query)).toBe(true);
    expect(off.adHocDocument(adHoc.query)).toBe(false);
  });

  it("serves the manifest as Apollo's APQ cache, read-only when enforcing", async () => {
    expect(await on.apqCache.get(`apq:${documentHash(ME)}`)).toBe(ME);
    await on.apqCache.set(`apq:${"b".repeat(64)}`, adHoc.query);
    expect(await on.apqCache.get(`apq:${"b".repeat(64)}`)).toBeUndefined();
    await off.apqCache.set(`apq:${"b".repeat(64)}`, adHoc.query);
    expect(await off.apqCache.get(`apq:${"b".repeat(64)}`)).toBe(adHoc.query);
  });

  it("turns a documentId (bare or sha256:-prefixed) into the APQ extension", () => {
    const hash = documentHash(ME);
    expect(documentIdToPersistedQuery({ documentId: `sha256:${hash}`, query: "" })).toEqual(apq(hash));
    expect(documentIdToPersistedQuery({ documentId: hash })).toEqual(apq(hash));
    expect(documentIdToPersistedQuery({ documentId: "nope" })).toEqual({ documentId: "nope" });
    expect(new URLSearchParams(documentIdInSearch(`?documentId=${hash}&operationName=Me`)).get("extensions")).toBe(JSON.stringify(apq(hash).extensions));
    expect(on.hashOf("Me")).toBe(hash);
  });
});
