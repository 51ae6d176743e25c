/**
 * Trusted documents (persisted operations). Responsible for the manifest of the frontend's operations
 * (operations/generated/persisted-documents.json, written by `npm run codegen`: bare sha256 hex of each document's
 * text → that text), for serving it to Apollo's automatic persisted queries (so a manifest operation runs by its hash
 * alone, with no prior registration), and, when `RECON_TRUSTED_DOCUMENTS=on`, for deciding which requests may run:
 *
 * - a manifest operation — by its hash (APQ `extensions.persistedQuery.sha256Hash`, or `documentId`), or by its exact
 *   manifest text — runs for anyone (its authorization is the resolvers' as always);
 * - any other operation (ad-hoc, as GraphiQL sends) runs only for ANALYST and ADMIN viewers, under a stricter cost
 *   limit (see `adHocDocument`); everyone else gets `PERSISTED_QUERY_NOT_IN_LIST`;
 * - a request naming no operation at all (no text, no hash) gets `PERSISTED_QUERY_ID_REQUIRED`.
 *
 * Whether a document is in the manifest depends only on its text, never on the viewer, so the decision can be
 * memoized with the document (the response cache's request keys, Apollo's document store).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Kind, parse } from "graphql";
import { LRUCache } from "lru-cache";
import type { Viewer } from "../auth/policy.js";

/** Where `npm run codegen` writes the manifest (copied beside dist/ by `npm run build`). */
export const PERSISTED_DOCUMENTS_PATH = resolve(import.meta.dirname, "../../operations/generated/persisted-documents.json");

/** Global roles that may send ad-hoc operations (and introspection) when trusted documents are enforced. */
const AD_HOC_ROLES: ReadonlySet<Viewer["role"]> = new Set(["ANALYST", "ADMIN"]);

/** The persisted-query id of a text: its bare sha256 hex, as APQ and the manifest compute it. */
export const documentHash = (text: string) => createHash("sha256").update(text).digest("hex");

/** Reads a manifest (`{ "<sha256 hex>": "<document text>" }`) and checks every key is its text's hash. */
export function loadManifest(path = PERSISTED_DOCUMENTS_PATH): ReadonlyMap<string, string> {
  const entries = Object.entries(JSON.parse(readFileSync(path, "utf8")) as Record<string, string>);
  for (const [hash, text] of entries) {
    if (documentHash(text) !== hash) throw new Error(`${path}: ${hash} is not the sha256 of its document (run npm run codegen)`);
  }
  return new Map(entries);
}

/** A refused request: a GraphQL error with a stable code, answered with HTTP 400. */
export interface Refusal {
  code: "PERSISTED_QUERY_NOT_IN_LIST" | "PERSISTED_QUERY_ID_REQUIRED";
  message: string;
}

/** What a request says of its document (a JSON body, a GET's query string, a multipart request's `operations`). */
export interface OperationParams {
  query?: unknown;
  extensions?: unknown;
  documentId?: unknown;
}

const HEX_ID = /^(?:sha256:)?([0-9a-f]{64})$/;

/**
 * Rewrites a `documentId` request (GraphQL over HTTP's persisted-documents appendix: `"<hex>"` or `"sha256:<hex>"`)
 * into Apollo's APQ form, `extensions.persistedQuery.sha256Hash`, in place, so everything after (the response
 * cache, Apollo) sees one protocol. Returns the params; an unusable `documentId` is left for the checks to refuse.
 */
export function documentIdToPersistedQuery<T extends OperationParams>(params: T): T {
  if (typeof params.documentId !== "string" || (params.query !== undefined && params.query !== "")) return params;
  const match = HEX_ID.exec(params.documentId);
  if (!match) return params;
  const extensions = params.extensions && typeof params.extensions === "object" ? (params.extensions as Record<string, unknown>) : {};
  params.extensions = { ...extensions, persistedQuery: { version: 1, sha256Hash: match[1] } };
  delete params.documentId;
  delete params.query; // "" (graphql-ws requires a string): the hash names the document
  return params;
}

/** The same for a GET's query string: `?documentId=…` becomes `?extensions={"persistedQuery":…}`. */
export function documentIdInSearch(search: string): string {
  if (!search.includes("documentId=")) return search;
  const query = new URLSearchParams(search);
  const documentId = query.get("documentId");
  if (documentId === null || query.has("query") || query.has("extensions")) return search;
  const params = documentIdToPersistedQuery({ documentId } as OperationParams);
  if (params.extensions === undefined) return search;
  query.delete("documentId");
  query.set("extensions", JSON.stringify(params.extensions));
  return `?${query.toString()}`;
}

export interface TrustedDocumentsOptions {
  manifest: ReadonlyMap<string, string>;
  /** `RECON_TRUSTED_DOCUMENTS`: refuse operations outside the manifest for all but ANALYST and ADMIN. */
  enforce: boolean;
}

export function createTrustedDocuments({ manifest, enforce }: TrustedDocumentsOptions) {
  /** Whether this viewer may send ad-hoc operations (always, when not enforcing). */
  const mayAdHoc = (viewer: Viewer | null) => !enforce || (viewer !== null && AD_HOC_ROLES.has(viewer.role));

  /** APQ registrations of ad-hoc texts, kept only when not enforcing (as Apollo's default cache would). */
  const registered = enforce ? null : new LRUCache<string, string>({ maxSize: 8 * 1024 ** 2, sizeCalculation: (text) => text.length || 1 });
  /** Operation name → the hash of its manifest document (codegen keeps operation names unique). */
  const byOperationName = new Map<string, string>();
  for (const [hash, text] of manifest) {
    for (const definition of parse(text, { noLocation: true }).definitions) {
      if (definition.kind === Kind.OPERATION_DEFINITION && definition.name) byOperationName.set(definition.name.value, hash);
    }
  }
  /** Apollo prefixes its APQ keys with `apq:`. */
  const hashOf = (key: string) => (key.startsWith("apq:") ? key.slice(4) : key);

  return {
    enforce,
    manifest,
    mayAdHoc,

    /** The hash of the manifest operation with this name (the GraphiQL page's sign-in sends `Login`'s). */
    hashOf: (operationName: string) => byOperationName.get(operationName),

    /** Whether a document id (sha256 hex of the text) is in the manifest. */
    has: (hash: string) => manifest.has(hash),

    /**
     * Why this request may not run, or null if it may. `hashOfText` is the text's hash when the caller knows it
     * already (the response cache's request keys), saving a hash.
     */
    refusal(viewer: Viewer | null, params: OperationParams | null, hashOfText?: string): Refusal | null {
      if (mayAdHoc(viewer)) return null;
      const query = params?.query;
      if (typeof query === "string" && query !== "") {
        // The text decides, not a hash sent with it (Apollo refuses a hash that is not the text's anyway).
        if (manifest.has(hashOfText ?? documentHash(query))) return null;
        return {
          code: "PERSISTED_QUERY_NOT_IN_LIST",
          message: "This operation is not in the persisted-documents manifest: send a manifest operation by its hash (extensions.persistedQuery.sha256Hash or documentId)",
        };
      }
      const extensions = params?.extensions as { persistedQuery?: { sha256Hash?: unknown } } | undefined;
      const hash = extensions?.persistedQuery?.sha256Hash;
      if (typeof hash === "string" && hash !== "") {
        if (manifest.has(hash)) return null;
        return { code: "PERSISTED_QUERY_NOT_IN_LIST", message: `No operation with hash ${hash.slice(0, 80)} is in the persisted-documents manifest` };
      }
      return {
        code: "PERSISTED_QUERY_ID_REQUIRED",
        message: "Operations must be sent by id: extensions.persistedQuery.sha256Hash or documentId, with the hash of a manifest operation",
      };
    },

    /**
     * Whether a document is ad-hoc and so validated under the stricter cost limit (only when enforcing: otherwise
     * every operation gets the ordinary limits, as before). Judged from the parsed text (its `loc.source`).
     */
    adHocDocument(text: string | undefined): boolean {
      return enforce && (text === undefined || !manifest.has(documentHash(text)));
    },

    /**
     * Apollo's `persistedQueries.cache`: the manifest, read-only — a manifest hash runs with no registration — plus,
     * when not enforcing, ordinary APQ registrations of other texts.
     */
    apqCache: {
      async get(key: string): Promise<string | undefined> {
        const hash = hashOf(key);
        return manifest.get(hash) ?? registered?.get(hash);
      },
      async set(key: string, value: string): Promise<void> {
        const hash = hashOf(key);
        if (!manifest.has(hash)) registered?.set(hash, value);
      },
      async delete(key: string): Promise<boolean> {
        return registered?.delete(hashOf(key)) ?? false;
      },
    },
  };
}

export type TrustedDocuments = ReturnType<typeof createTrustedDocuments>;
