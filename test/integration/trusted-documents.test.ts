/**
 * Trusted documents (RECON_TRUSTED_DOCUMENTS): with it on, only the persisted-documents manifest's operations run
 * for anonymous, VIEWER and MANAGER viewers — on the executing path, on the response cache's hit paths (in the
 * request listener and after a Redis lookup) and over WebSocket — while ANALYSTs and ADMINs may send ad-hoc
 * operations under a stricter cost limit. With it off, everything runs as before, and the manifest still answers
 * hash-only requests.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { AD_HOC_COST_LIMIT } from "../../src/http/graphql-route.js";
import { LoginDocument, MeDocument, ProjectsDocument, UsersDocument } from "../../operations/generated/graphql.js";
import { ADMIN_EMAIL, ADMIN_PASSWORD, errorCode, ok, persistedQuery, startTestApp, type TestApp, type TestUser } from "../helpers/app.js";
import { startTestRedis, type TestRedis } from "../helpers/redis.js";

const manifest = (await import("../../operations/generated/persisted-documents.json", { with: { type: "json" } })).default as Record<string, string>;
const textOf = (document: object) => manifest[persistedQuery(document).persistedQuery.sha256Hash];

/** Costs ~30,000 as armor prices it: within the ordinary limit (50,000), over the ad-hoc one. */
const EXPENSIVE = "{ projects(first: 100) { edges { node { name owner { name } jobs(first: 5) { edges { node { id status } } } } } } }";
const AD_HOC = "query MyProjects { projects(first: 5) { totalCount edges { node { id name } } } }";

let redis: TestRedis;
let on: TestApp;
let off: TestApp;
let viewer: TestUser;
let manager: TestUser;
let analyst: TestUser;

beforeAll(async () => {
  redis = await startTestRedis();
  // Two instances on one database and one Redis: what one stores, the other can find.
  const shared = { REDIS_URL: redis.url, RESPONSE_CACHE_NAMESPACE: `trusted-${process.pid}` };
  on = await startTestApp({ ...shared, RECON_TRUSTED_DOCUMENTS: "on" });
  off = await startTestApp({ ...shared, RECON_TRUSTED_DOCUMENTS: "off" }, { database: on.db });
  viewer = await on.createUser("VIEWER");
  manager = await on.createUser("MANAGER");
  analyst = await on.createUser("ANALYST");
  ok(await on.graphql("mutation($name: String!) { createProject(input: { name: $name }) { id } }", { name: "Trusted" }, analyst.token));
}, 180_000);

afterAll(async () => {
  await off?.close();
  await on?.close();
  await redis?.kill();
});

describe("RECON_TRUSTED_DOCUMENTS=on", () => {
  it("signs in anonymously with the manifest's Login sent by hash only (APQ)", async () => {
    const result = await on.graphqlBody({ operationName: "Login", variables: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD }, extensions: persistedQuery(LoginDocument) });
    expect(ok(result).login).toMatchObject({ token: expect.any(String), user: { email: ADMIN_EMAIL, role: "ADMIN" } });
  });

  it("runs manifest operations by hash only, by full text + hash, by exact text, and by documentId", async () => {
    for (const user of [viewer, manager]) {
      const byHash = await on.graphqlBody({ extensions: persistedQuery(MeDocument) }, user.token);
      expect(ok(byHash).me).toMatchObject({ id: user.id, role: user.role });
      const byTextAndHash = await on.graphqlBody({ query: textOf(MeDocument), extensions: persistedQuery(MeDocument) }, user.token);
      expect(ok(byTextAndHash)).toEqual(ok(byHash));
      const byText = await on.graphqlBody({ query: textOf(MeDocument) }, user.token);
      expect(ok(byText)).toEqual(ok(byHash));
    }
    const hash = persistedQuery(ProjectsDocument).persistedQuery.sha256Hash;
    for (const documentId of [hash, `sha256:${hash}`]) {
      const result = await on.graphqlBody({ documentId, variables: { first: 5 } }, viewer.token);
      expect(ok(result).projects.totalCount).toBe(0); // the viewer is no member of the analyst's project
    }
    // GET, as a CDN could cache it (Apollo needs a preflight header on GET).
    const get = await fetch(`${on.url}?documentId=${hash}&variables=${encodeURIComponent('{"first":5}')}`, {
      headers: { authorization: `Bearer ${viewer.token}`, "apollo-require-preflight": "true" },
    });
    expect(get.status).toBe(200);
    expect(((await get.json()) as { data: { projects: unknown } }).data.projects).toMatchObject({ totalCount: 0 });
  });

  it("refuses ad-hoc operations of anonymous, VIEWER and MANAGER viewers with PERSISTED_QUERY_NOT_IN_LIST", async () => {
    for (const token of [undefined, viewer.token, manager.token]) {
      const result = await on.graphql(AD_HOC, {}, token);
      expect(result.status).toBe(400);
      expect(errorCode(result)).toBe("PERSISTED_QUERY_NOT_IN_LIST");
      expect(result.data).toBeUndefined();
    }
    // Not with the text's own hash either (what an APQ client sends after PERSISTED_QUERY_NOT_FOUND)…
    const withHash = await on.graphqlBody({ query: AD_HOC, extensions: { persistedQuery: { version: 1, sha256Hash: "0".repeat(64) } } }, viewer.token);
    expect(errorCode(withHash)).toBe("PERSISTED_QUERY_NOT_IN_LIST");
    // …nor a manifest hash beside an ad-hoc text, nor a hash outside the manifest.
    const borrowed = await on.graphqlBody({ query: AD_HOC, extensions: persistedQuery(MeDocument) }, viewer.token);
    expect(errorCode(borrowed)).toBe("PERSISTED_QUERY_NOT_IN_LIST");
    const unknown = await on.graphqlBody({ extensions: { persistedQuery: { version: 1, sha256Hash: "f".repeat(64) } } }, viewer.token);
    expect(errorCode(unknown)).toBe("PERSISTED_QUERY_NOT_IN_LIST");
    // Introspection is an ad-hoc operation too (GraphiQL's docs appear once an ANALYST or ADMIN signs in).
    expect(errorCode(await on.graphql("{ __schema { queryType { name } } }", {}, viewer.token))).toBe("PERSISTED_QUERY_NOT_IN_LIST");
  });

  it("answers a request naming no operation (no text, no hash) with PERSISTED_QUERY_ID_REQUIRED", async () => {
    for (const body of [{ variables: { first: 1 } }, { operationName: "Me" }, { documentId: "not-a-hash" }]) {
      const result = await on.graphqlBody(body, viewer.token);
      expect(result.status).toBe(400);
      expect(errorCode(result)).toBe("PERSISTED_QUERY_ID_REQUIRED");
    }
  });

  it("lets ANALYSTs and ADMINs send ad-hoc operations and introspection, under the stricter cost limit", async () => {
    expect(ok(await on.graphql(AD_HOC, {}, analyst.token)).projects.totalCount).toBe(1);
    expect(ok(await on.graphql("{ __schema { queryType { name } } }", {}, on.admin.token)).__schema.queryType.name).toBe("Query");
    const expensive = await on.graphql(EXPENSIVE, {}, analyst.token);
    expect(expensive.data).toBeUndefined();
    expect(expensive.errors?.[0].message).toMatch(new RegExp(`Query Cost limit of ${AD_HOC_COST_LIMIT} exceeded`));
    // The ordinary limit admits it: ad-hoc operations are what the stricter one is for.
    expect(ok(await off.graphql(EXPENSIVE, {}, analyst.token)).projects.edges).toHaveLength(1);
    // A manifest operation of the same shape runs under the ordinary limits.
    expect(ok(await on.graphqlBody({ extensions: persistedQuery(UsersDocument), variables: { first: 100 } }, on.admin.token)).users.totalCount).toBeGreaterThan(3);
  });

  it("keeps the rules on the response cache's hit paths", async () => {
    // A manifest query twice: the second is answered from cache (by the request listener: viewer and entry known).
    const request = { extensions: persistedQuery(ProjectsDocument), variables: { first: 5 } };
    const first = await on.graphqlBody(request, viewer.token);
    const second = await on.graphqlBody(request, viewer.token);
    expect(second.headers.get("x-cache")).toBe("HIT");
    expect(ok(second)).toEqual(ok(first));
    // The same document with other whitespace shares that cache entry (keys are normalized documents), but is not
    // the manifest's text: refused, not served.
    const respaced = textOf(ProjectsDocument).replace("{ projects", "{\n  projects");
    for (let i = 0; i < 2; i++) {
      const result = await on.graphqlBody({ query: respaced, variables: { first: 5 } }, viewer.token);
      expect(errorCode(result)).toBe("PERSISTED_QUERY_NOT_IN_LIST");
      expect(result.headers.get("x-cache")).toBeNull();
    }
    // An ad-hoc query repeated by a VIEWER stays refused…
    for (let i = 0; i < 2; i++) {
      const result = await on.graphql(AD_HOC, {}, viewer.token);
      expect(errorCode(result)).toBe("PERSISTED_QUERY_NOT_IN_LIST");
      expect(result.headers.get("x-cache")).toBeNull();
    }
    // …even once an instance without trusted documents has stored that VIEWER's answer in the shared Redis.
    ok(await off.graphql(AD_HOC, {}, viewer.token));
    expect((await off.graphql(AD_HOC, {}, viewer.token)).headers.get("x-cache")).toBe("HIT");
    const afterStore = await on.graphql(AD_HOC, {}, viewer.token);
    expect(errorCode(afterStore)).toBe("PERSISTED_QUERY_NOT_IN_LIST");
    expect(afterStore.data).toBeUndefined();
    // An ANALYST's ad-hoc query is cached as any other (for them alone).
    await on.graphql(AD_HOC, {}, analyst.token);
    expect((await on.graphql(AD_HOC, {}, analyst.token)).headers.get("x-cache")).toBe("HIT");
  });

  it("applies over WebSocket too: manifest operations by hash (empty query) or text, ad-hoc refused", async () => {
    const client = createClient({ url: on.url.replace(/^http/, "ws"), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${viewer.token}` }, retryAttempts: 0 });
    try {
      const run = async (payload: Record<string, unknown>) => {
        for await (const result of client.iterate(payload as { query: string })) return result;
        return undefined;
      };
      expect((await run({ query: "", extensions: persistedQuery(MeDocument) }))?.data).toMatchObject({ me: { id: viewer.id } });
      expect((await run({ query: "", documentId: persistedQuery(MeDocument).persistedQuery.sha256Hash }))?.data).toMatchObject({ me: { id: viewer.id } });
      expect((await run({ query: textOf(MeDocument) }))?.data).toMatchObject({ me: { id: viewer.id } });
      const refused = await run({ query: "subscription { jobProgress(jobId: \"1\") { id } }" }).catch((errors: { extensions?: { code?: string } }[]) => ({ errors }));
      expect((refused as { errors: { extensions?: { code?: string } }[] }).errors[0].extensions?.code).toBe("PERSISTED_QUERY_NOT_IN_LIST");
    } finally {
      await client.dispose();
    }
  });
});

describe("RECON_TRUSTED_DOCUMENTS=off", () => {
  it("runs ad-hoc operations for everyone, as before, and registers APQ texts", async () => {
    expect(ok(await off.graphql(AD_HOC, {}, viewer.token)).projects.totalCount).toBe(0);
    expect(ok(await off.graphql("{ __typename }")).__typename).toBe("Query");
    const text = "{ me { id } }";
    const sha256Hash = createHash("sha256").update(text).digest("hex");
    const missing = await off.graphqlBody({ extensions: { persistedQuery: { version: 1, sha256Hash } } }, viewer.token);
    expect(errorCode(missing)).toBe("PERSISTED_QUERY_NOT_FOUND");
    ok(await off.graphqlBody({ query: text, extensions: { persistedQuery: { version: 1, sha256Hash } } }, viewer.token));
    expect(ok(await off.graphqlBody({ extensions: { persistedQuery: { version: 1, sha256Hash } } }, viewer.token)).me.id).toBe(viewer.id);
  });

  it("still answers manifest operations sent by hash only", async () => {
    expect(ok(await off.graphqlBody({ extensions: persistedQuery(MeDocument) }, viewer.token)).me.id).toBe(viewer.id);
    expect(ok(await off.graphqlBody({ documentId: `sha256:${persistedQuery(MeDocument).persistedQuery.sha256Hash}` })).me).toBeNull();
  });
});
