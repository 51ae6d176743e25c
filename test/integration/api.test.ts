/**
 * The API's behaviour through real HTTP: sign-in, input errors that name their field, cursor pagination,
 * the audit trail, and the operational endpoints.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_EMAIL, ADMIN_PASSWORD, errorCode, ok, startTestApp, TEST_PASSWORD, type TestApp } from "../helpers/app.js";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t?.close());

describe("sign-in", () => {
  it("accepts the email in any case and returns the user", async () => {
    const data = ok(
      await t.graphql("mutation { login(email: \"  Admin@RECON.test \", password: \"" + ADMIN_PASSWORD + "\") { token expiresAt user { email role lastLoginAt } } }"),
    );
    expect(data.login.user).toMatchObject({ email: ADMIN_EMAIL, role: "ADMIN" });
    expect(new Date(data.login.expiresAt).getTime()).toBeGreaterThan(Date.now());
    expect(data.login.user.lastLoginAt).not.toBeNull();
  });

  it("rejects a wrong password and an unknown email alike", async () => {
    const wrong = await t.graphql(`mutation { login(email: "${ADMIN_EMAIL}", password: "not-the-password") { token } }`);
    const unknown = await t.graphql(`mutation { login(email: "nobody@recon.test", password: "not-the-password") { token } }`);
    expect(errorCode(wrong)).toBe("UNAUTHENTICATED");
    expect(unknown.errors?.[0].message).toBe(wrong.errors?.[0].message);
  });

  it("answers 401 to a forged or malformed token", async () => {
    const forged = await t.graphql("{ me { id } }", {}, `${t.admin.token.slice(0, -4)}AAAA`);
    expect(forged.status).toBe(401);
    expect(errorCode(forged)).toBe("UNAUTHENTICATED");
    const response = await fetch(t.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Token abc" },
      body: JSON.stringify({ query: "{ me { id } }" }),
    });
    expect(response.status).toBe(401);
  });

  it("stops accepting a deactivated user's token at once", async () => {
    const user = await t.createUser("ANALYST");
    expect(ok(await t.graphql("{ me { email } }", {}, user.token)).me.email).toBe(user.email);
    ok(await t.graphql("mutation($id: ID!) { deactivateUser(id: $id) { isActive } }", { id: user.id }, t.admin.token));
    expect((await t.graphql("{ me { email } }", {}, user.token)).status).toBe(401);
    expect(errorCode(await t.graphql(`mutation { login(email: "${user.email}", password: "${TEST_PASSWORD}") { token } }`))).toBe("UNAUTHENTICATED");
  });
});

describe("input errors name the field", () => {
  const cases: [string, string, Record<string, unknown>, string][] = [
    ["short password", "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }", { i: { email: "a@b.test", name: "A", password: "short" } }, "input.password"],
    ["bad email", "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }", { i: { email: "not-an-email", name: "A", password: "long-enough-password" } }, "input.email"],
    ["duplicate email in another case", "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }", { i: { email: ADMIN_EMAIL.toUpperCase(), name: "A", password: "long-enough-password" } }, "input.email"],
    ["blank project name", "mutation($i: CreateProjectInput!) { createProject(input: $i) { id } }", { i: { name: "   " } }, "input.name"],
    ["settings not an object", "mutation($i: CreateProjectInput!) { createProject(input: $i) { id } }", { i: { name: "P", settings: [1, 2] } }, "input.settings"],
    ["malformed id", "mutation { updateProject(id: \"42\", input: { name: \"x\" }) { id } }", {}, "id"],
    ["page size too large", "{ projects(first: 500) { totalCount } }", {}, "first"],
    ["foreign cursor", "{ projects(first: 5, after: \"bm90LWEtY3Vyc29y\") { totalCount } }", {}, "after"],
    ["search too short", "{ searchProjects(query: \"a\") { id } }", {}, "query"],
  ];
  it.each(cases)("%s", async (_, query, variables, field) => {
    const response = await t.graphql(query, variables, t.admin.token);
    expect(errorCode(response)).toBe("BAD_USER_INPUT");
    expect(response.errors?.[0].extensions?.field).toBe(field);
    expect(response.errors?.[0].message).toContain(field);
  });

  it("a data source name taken in the project", async () => {
    const { createProject } = ok(await t.graphql("mutation { createProject(input: { name: \"Names\" }) { id } }", {}, t.admin.token));
    const create = "mutation($p: ID!) { createDataSource(input: { projectId: $p, name: \"Bank\" }) { id } }";
    ok(await t.graphql(create, { p: createProject.id }, t.admin.token));
    const again = await t.graphql(create, { p: createProject.id }, t.admin.token);
    expect(errorCode(again)).toBe("BAD_USER_INPUT");
    expect(again.errors?.[0].extensions?.field).toBe("input.name");
  });
});

describe("pagination", () => {
  it("walks every project exactly once, newest first, with a stable total", async () => {
    const owner = await t.createUser("ANALYST");
    const created: string[] = [];
    for (let i = 0; i < 7; i++) {
      const { createProject } = ok(await t.graphql(`mutation { createProject(input: { name: "Page ${i}" }) { id } }`, {}, owner.token));
      created.push(createProject.id);
    }
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const data: any = ok(
        await t.graphql(
          "query($after: String) { projects(first: 3, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } }",
          { after },
          owner.token,
        ),
      );
      pages += 1;
      expect(data.projects.totalCount).toBe(7);
      seen.push(...data.projects.edges.map((edge: any) => edge.node.id));
      if (!data.projects.pageInfo.hasNextPage) break;
      after = data.projects.pageInfo.endCursor;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual([...created].reverse());
  });
});

describe("projects", () => {
  it("shows members, counts, stats and the viewer's role; deleting keeps the audit trail", async () => {
    const owner = await t.createUser("MANAGER");
    const analyst = await t.createUser("ANALYST");
    const { createProject: project } = ok(
      await t.graphql("mutation { createProject(input: { name: \"Bank vs Ledger\", settings: { currency: \"EUR\" } }) { id settings } }", {}, owner.token),
    );
    expect(project.settings).toEqual({ currency: "EUR" });
    ok(await t.graphql("mutation($p: ID!, $u: ID!) { addProjectMember(projectId: $p, userId: $u, role: ANALYST) { id } }", { p: project.id, u: analyst.id }, owner.token));
    for (const name of ["Bank", "Ledger"]) {
      ok(await t.graphql("mutation($p: ID!, $n: String!) { createDataSource(input: { projectId: $p, name: $n }) { id } }", { p: project.id, n: name }, analyst.token));
    }
    const { project: seen } = ok(
      await t.graphql(
        "query($id: ID!) { project(id: $id) { owner { id } viewerRole dataSourceCount jobCount dataSources { name recordCount } members { user { id } role } stats { recordCount matchRate lastJob { id } recordsBySource { dataSource { name } recordCount } } latestJob { id } } }",
        { id: project.id },
        analyst.token,
      ),
    );
    expect(seen).toMatchObject({
      owner: { id: owner.id },
      viewerRole: "ANALYST",
      dataSourceCount: 2,
      jobCount: 0,
      dataSources: [{ name: "Bank", recordCount: 0 }, { name: "Ledger", recordCount: 0 }],
      members: [{ user: { id: analyst.id }, role: "ANALYST" }],
      stats: { recordCount: 0, matchRate: 0, lastJob: null },
      latestJob: null,
    });
    expect(ok(await t.graphql("query($id: ID!) { user(id: $id) { projectCount } }", { id: analyst.id }, owner.token)).user.projectCount).toBe(1);

    ok(await t.graphql("mutation($id: ID!) { deleteProject(id: $id) }", { id: project.id }, owner.token));
    expect(ok(await t.graphql("query($id: ID!) { project(id: $id) { id } }", { id: project.id }, owner.token)).project).toBeNull();
    const log = ok(
      await t.graphql("query($id: ID) { auditLog(first: 20, filter: { projectId: $id }) { totalCount edges { node { action actor { id } } } } }", { id: project.id }, t.admin.token),
    );
    expect(log.auditLog.edges.map((edge: any) => edge.node.action)).toEqual([
      "project.delete",
      "dataSource.create",
      "dataSource.create",
      "project.member.add",
      "project.create",
    ]);
    expect(log.auditLog.totalCount).toBe(5);
  });

  it("finds projects by a misspelled name", async () => {
    ok(await t.graphql("mutation { createProject(input: { name: \"Stripe settlements\" }) { id } }", {}, t.admin.token));
    const data = ok(await t.graphql("{ searchProjects(query: \"stripe setlements\") { name } }", {}, t.admin.token));
    expect(data.searchProjects[0].name).toBe("Stripe settlements");
  });
});

describe("operations", () => {
  it("echoes a request id and records it on audit events", async () => {
    const response = await fetch(t.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${t.admin.token}`, "x-request-id": "trace-abc-123" },
      body: JSON.stringify({ query: "mutation { createProject(input: { name: \"Traced\" }) { id } }" }),
    });
    expect(response.headers.get("x-request-id")).toBe("trace-abc-123");
    const { data } = (await response.json()) as any;
    const log = ok(await t.graphql("query($id: ID!) { auditLog(first: 1, filter: { resourceId: $id }) { edges { node { requestId } } } }", { id: data.createProject.id }, t.admin.token));
    expect(log.auditLog.edges[0].node.requestId).toBe("trace-abc-123");
  });

  it("serves health, readiness and real metrics", async () => {
    const base = t.url.replace("/graphql", "");
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: "ok" });
    expect(await (await fetch(`${base}/readyz`)).json()).toMatchObject({ status: "ready" });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain("recon_db_queries_per_operation_bucket");
    const rss = Number(/^process_resident_memory_bytes (\d+)/m.exec(metrics)?.[1]);
    expect(rss).toBeGreaterThan(10 * 1024 * 1024);
    // Every answer is counted by route and status, cache hits (answered before routing) included.
    expect(metrics).toMatch(/^http_requests_total\{method="GET",route="\/healthz",status="200"\} [1-9]/m);
    expect(metrics).toMatch(/^http_requests_total\{method="POST",route="\/graphql",status="200"\} [1-9]/m);
    expect(metrics).toMatch(/^http_request_duration_seconds_count\{method="POST",route="\/graphql"\} [1-9]/m);
    const count = (text: string) => Number(/^http_requests_total\{method="POST",route="\/graphql",status="200"\} (\d+)/m.exec(text)?.[1]);
    const query = "query Counted { me { id } }";
    await t.graphql(query, {}, t.admin.token);
    const hit = await t.graphql(query, {}, t.admin.token);
    expect(hit.headers.get("x-cache")).toBe("HIT");
    const before = count(metrics);
    expect(count(await (await fetch(`${base}/metrics`)).text())).toBeGreaterThanOrEqual(before + 2);
  });

  it("refuses bodies over the limit with 413", async () => {
    const response = await fetch(t.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: `{ me { id } } # ${"x".repeat(2 * 1024 * 1024)}` }),
    });
    expect(response.status).toBe(413);
  });
});

describe("sign-in throttling", () => {
  it("refuses an account's sign-ins after repeated failures on any instance, without checking the password", async () => {
    const t = await startTestApp();
    const other = await startTestApp({}, { database: t.db }); // a second instance of the same deployment
    try {
      const user = await t.createUser("ANALYST");
      const login = (app: TestApp, password: string) =>
        app.graphql("mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }", { e: user.email.toUpperCase(), p: password });
      for (let i = 0; i < 6; i++) expect(errorCode(await login(i % 2 ? t : other, "wrong password!"))).toBe("UNAUTHENTICATED");
      // The right password, but the account is locked for a second, on both instances: they count together.
      for (const app of [t, other]) {
        const locked = await login(app, TEST_PASSWORD);
        expect(errorCode(locked)).toBe("TOO_MANY_ATTEMPTS");
        expect(locked.errors?.[0]?.extensions?.retryAfterSeconds).toBeGreaterThan(0);
      }
    } finally {
      await other.close();
      await t.close();
    }
  });
});

describe("operation limits (graphql-armor)", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ RESPONSE_CACHE: "off" });
  });
  afterAll(async () => t?.close());

  it("refuses operations too deep, too costly, with too many aliases or tokens, and says which limit", async () => {
    const deep = "{ projects { edges { node { owner { projects { edges { node { owner { projects { edges { node { id } } } } } } } } } } } }";
    const aliases = `{ ${Array.from({ length: 20 }, (_, i) => `a${i}: me { id }`).join(" ")} }`;
    const tokens = `{ me { ${Array.from({ length: 1100 }, () => "id").join(" ")} } }`;
    const costly = "{ projects(first: 100) { edges { node { jobs(first: 100) { edges { node { id } } } } } } }";
    for (const [query, limit] of [[deep, /depth/i], [aliases, /aliases/i], [tokens, /token/i], [costly, /cost/i]] as const) {
      const response = await t.graphql(query, {}, t.admin.token);
      expect(response.errors?.[0]?.message).toMatch(limit);
      expect(["GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED", "BAD_USER_INPUT"]).toContain(errorCode(response));
      expect(response.data ?? null).toBeNull();
    }
  });

  it("lets the deepest useful query and GraphiQL's introspection through", async () => {
    const { getIntrospectionQuery } = await import("graphql");
    ok(await t.graphql(getIntrospectionQuery({ descriptions: true, specifiedByUrl: true, directiveIsRepeatable: true, inputValueDeprecation: true }), {}, t.admin.token));
    ok(await t.graphql("{ projects(first: 100) { edges { node { id jobs(first: 5) { edges { node { id status } } } members { user { name } } stats { lastJob { status } } } } } }", {}, t.admin.token));
  });
});

describe("Server-Timing", () => {
  it("reports SQL time and statements of an execution, and the cache on a hit", async () => {
    const t = await startTestApp();
    try {
      const query = "query Timing { projects(first: 3) { totalCount } }";
      const miss = await t.graphql(query, {}, t.admin.token);
      expect(miss.headers.get("x-cache")).toBe("MISS");
      expect(miss.headers.get("server-timing")).toMatch(/^db;desc="[1-9]\d* SQL statements";dur=\d+\.\d\d, total;dur=\d+\.\d\d$/);
      const hit = await t.graphql(query, {}, t.admin.token);
      expect(hit.headers.get("x-cache")).toBe("HIT");
      expect(hit.headers.get("server-timing")).toMatch(/^cache;desc="hit";dur=\d+\.\d\d$/);
    } finally {
      await t.close();
    }
  });
});

describe("compression", () => {
  it("compresses answers of 1 KiB or more in the client's preferred encoding (brotli on a tie), executed or cached, and leaves small ones alone", async () => {
    const t = await startTestApp();
    try {
      for (let i = 0; i < 20; i++) ok(await t.graphql("mutation($n: String!) { createProject(input: { name: $n }) { id } }", { n: `gzip project ${i}` }, t.admin.token));
      const { brotliDecompressSync, gunzipSync } = await import("node:zlib");
      const { request } = await import("node:http");
      // node:http does not decompress, so the bytes on the wire can be checked.
      const raw = (query: string, encoding?: string) =>
        new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
          const body = JSON.stringify({ query });
          const req = request(t.url, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${t.admin.token}`, ...(encoding ? { "accept-encoding": encoding } : {}) },
          }, (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (chunk: Buffer) => chunks.push(chunk));
            res.on("end", () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
          });
          req.on("error", reject);
          req.end(body);
        });
      const big = "{ projects(first: 20) { edges { node { id name description status createdAt } } } }";
      const miss = await raw(big, "gzip, br");
      const hitGzip = await raw(big, "gzip");
      const hitBrotli = await raw(big, "br;q=0.9, gzip;q=0.5");
      const preferGzip = await raw(big, "br;q=0.5, gzip");
      const plain = await raw(big);
      expect([miss, hitGzip, hitBrotli, preferGzip, plain].map((r) => r.headers["x-cache"])).toEqual(["MISS", "HIT", "HIT", "HIT", "HIT"]);
      expect([miss, hitGzip, hitBrotli, preferGzip, plain].map((r) => r.headers["content-encoding"])).toEqual(["br", "gzip", "br", "gzip", undefined]);
      const text = plain.body.toString();
      expect(brotliDecompressSync(miss.body).toString()).toBe(text);
      expect(gunzipSync(hitGzip.body).toString()).toBe(text);
      expect(brotliDecompressSync(hitBrotli.body).toString()).toBe(text);
      expect(gunzipSync(preferGzip.body).toString()).toBe(text);
      expect(plain.body.length).toBeGreaterThan(1024);
      expect(miss.body.length).toBeLessThan(hitGzip.body.length);
      expect(hitGzip.headers.vary).toBe("accept-encoding");
      const small = await raw("{ me { id } }", "gzip");
      expect(small.headers["content-encoding"]).toBeUndefined();
      expect((await raw(big, "gzip;q=0")).headers["content-encoding"]).toBeUndefined();
      expect((await raw(big, "*;q=0.1, br;q=0")).headers["content-encoding"]).toBe("gzip");
    } finally {
      await t.close();
    }
  });
});

describe("CSRF and the cache", () => {
  it("never answers a request a browser could send cross-site without a preflight, even when its answer is cached", async () => {
    const t = await startTestApp();
    try {
      const body = JSON.stringify({ query: "query Csrf { me { id email } }" });
      const send = (contentType: string) =>
        fetch(t.url, { method: "POST", headers: { "content-type": contentType, authorization: `Bearer ${t.admin.token}` }, body });
      expect((await send("application/json")).headers.get("x-cache")).toBe("MISS");
      expect((await send("application/json")).headers.get("x-cache")).toBe("HIT");
      for (const simple of ["text/plain; charset=json", "text/plain"]) {
        const response = await send(simple);
        expect(response.status).toBe(400); // Apollo's CSRF prevention
        expect(await response.text()).not.toContain(t.admin.email);
      }
    } finally {
      await t.close();
    }
  });
});
