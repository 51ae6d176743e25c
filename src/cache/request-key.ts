/**
 * Turns a GraphQL HTTP request into its response-cache key, without executing it: (normalized document, or the
 * persisted-query hash when only that was sent) + operation name + canonical variables + the viewer's scope.
 * Documents are parsed once per distinct text (a bounded registry), so a repeated request costs a map lookup
 * and one hash, not a parse.
 */
import { createHash } from "node:crypto";
import { parse, print, type OperationTypeNode } from "graphql";
import { LRUCache } from "lru-cache";
import type { Viewer } from "../auth/policy.js";

/** What the cache knows of a document text. */
interface DocumentInfo {
  /** sha256 of the printed (normalized) document: the same for any whitespace or comments. */
  id: string;
  /** sha256 hex of the text itself: its persisted-query hash (what the trusted-documents manifest is keyed by). */
  persistedHash: string;
  /** Operation type by operation name ("" for an anonymous operation). */
  operations: Map<string, OperationTypeNode>;
}

/** A request the cache may answer, with its key. */
export interface CacheablePlan {
  kind: "cacheable";
  key: string;
  operationName: string;
  /** Known to be a query (so identical concurrent misses may share one execution); unknown for a bare hash. */
  knownQuery: boolean;
  /** sha256 hex of the text sent, or the persisted-query hash sent alone (trusted documents check it on hits). */
  persistedHash: string;
}

export type RequestPlan = CacheablePlan | { kind: "bypass"; reason: string };

const sha256 = (text: string) => createHash("sha256").update(text).digest("base64url");

/** JSON with object keys sorted at every level, so `{a,b}` and `{b,a}` variables give one key. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.keys(value as object)
    .sort()
    .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
    .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
  return `{${entries.join(",")}}`;
}

/** The part of the key that says whose answer this is: the verified viewer and role, or an explicit anonymous scope. */
export function viewerScope(viewer: Viewer | null): string {
  return viewer ? `user:${viewer.id}:${viewer.role}` : "anonymous";
}

export function createRequestKeys(maxDocuments = 2000) {
  const byText = new LRUCache<string, DocumentInfo | false>({ max: maxDocuments });
  /** Apollo persisted-query hash (sha256 hex of the text) → the document, once its text has been seen. */
  const byPersistedHash = new LRUCache<string, DocumentInfo>({ max: maxDocuments });

  function learn(text: string): DocumentInfo | false {
    let info = byText.get(text);
    if (info !== undefined) return info;
    try {
      const document = parse(text);
      const operations = new Map<string, OperationTypeNode>();
      for (const definition of document.definitions) {
        if (definition.kind === "OperationDefinition") operations.set(definition.name?.value ?? "", definition.operation);
      }
      info = { id: sha256(print(document)), persistedHash: createHash("sha256").update(text).digest("hex"), operations };
      byPersistedHash.set(info.persistedHash, info);
    } catch {
      info = false; // Not GraphQL: Apollo answers with the syntax error.
    }
    byText.set(text, info);
    return info;
  }

  /** Plans one request: its body (POST) or query string (GET) as received, and the verified viewer. */
  function plan(params: { query?: unknown; operationName?: unknown; variables?: unknown; extensions?: unknown }, viewer: Viewer | null): RequestPlan {
    const { query, operationName, variables, extensions } = params;
    if (operationName !== undefined && operationName !== null && typeof operationName !== "string") return { kind: "bypass", reason: "malformed" };
    const persistedHash = (extensions as { persistedQuery?: { sha256Hash?: unknown } } | undefined)?.persistedQuery?.sha256Hash;
    let documentId: string;
    let persisted: string;
    let knownQuery = false;
    if (typeof query === "string") {
      const info = learn(query);
      if (!info) return { kind: "bypass", reason: "unparsable" };
      const type = operationName ? info.operations.get(operationName) : info.operations.size === 1 ? [...info.operations.values()][0] : undefined;
      if (type !== "query") return { kind: "bypass", reason: type ? type : "no-operation" };
      documentId = info.id;
      persisted = info.persistedHash;
      knownQuery = true;
    } else if (typeof persistedHash === "string" && /^[0-9a-f]{64}$/.test(persistedHash)) {
      const info = byPersistedHash.get(persistedHash);
      const type = info && (operationName ? info.operations.get(operationName) : info.operations.size === 1 ? [...info.operations.values()][0] : undefined);
      if (info && type !== "query") return { kind: "bypass", reason: type ?? "no-operation" };
      // A hash never seen with its text: only a stored query can be found under it, so looking up is safe.
      documentId = info ? info.id : `persisted:${persistedHash}`;
      persisted = persistedHash;
      knownQuery = Boolean(info);
    } else {
      return { kind: "bypass", reason: "no-document" };
    }
    const name = operationName ?? "";
    // The key is the plain text of its parts (in-process maps hash strings natively); Redis gets its SHA-256.
    const key = `${documentId}\n${name}\n${canonicalJson(variables ?? {})}\n${viewerScope(viewer)}`;
    return { kind: "cacheable", key, operationName: name || "(anonymous)", knownQuery, persistedHash: persisted };
  }

  /**
   * Learns documents ahead of their first request (the persisted-documents manifest): a request sending only
   * their hash then shares the text's key and is known to be a query, or a mutation (not looked up at all).
   */
  function know(texts: Iterable<string>): void {
    for (const text of texts) learn(text);
  }

  return { plan, know };
}

export type RequestKeys = ReturnType<typeof createRequestKeys>;
