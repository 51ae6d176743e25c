/**
 * Text PostgreSQL cannot store — a NUL character, a lone UTF-16 surrogate — is refused as BAD_USER_INPUT naming
 * where it is, in any field of any operation (graphql/text-input-plugin.ts) and in an uploaded file's name, never
 * answered as an internal error and never stored altered.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { MAX_JSON_DEPTH } from "../../src/graphql/text-input-plugin.js";
import { ok, startTestApp, type GraphQLResponse, type TestApp, type TestUser } from "../helpers/app.js";

let t: TestApp;
let analyst: TestUser;
let projectId: string;

beforeAll(async () => {
  t = await startTestApp();
  analyst = await t.createUser("ANALYST");
  projectId = ok(await t.graphql<{ createProject: { id: string } }>(`mutation { createProject(input: { name: "Text" }) { id } }`, {}, analyst.token)).createProject.id;
});

afterAll(async () => {
  await t?.close();
});

function refused(response: GraphQLResponse, field: string, reason: RegExp) {
  expect(response.status).toBe(400);
  expect(response.errors).toHaveLength(1);
  expect(response.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", field });
  expect(response.errors![0]!.message).toMatch(reason);
  expect(response.data ?? null).toBeNull();
}

const NUL = /NUL character/;

it("refuses a NUL character in a variable, naming the variable's path", async () => {
  const create = `mutation($input: CreateProjectInput!) { createProject(input: $input) { id } }`;
  refused(await t.graphql(create, { input: { name: "a\u0000b" } }, analyst.token), "$input.name", NUL);
  const update = `mutation($id: ID!, $d: String!) { updateProject(id: $id, input: { description: $d }) { id } }`;
  refused(await t.graphql(update, { id: projectId, d: "x\u0000" }, analyst.token), "$d", NUL);
  refused(await t.graphql(`query($q: String!) { searchProjects(query: $q, first: 5) { id } }`, { q: "\u0000" }, analyst.token), "$q", NUL);
  // Signing in too: the email is looked up in PostgreSQL.
  refused(await t.graphql(`mutation($e: String!) { login(email: $e, password: "whatever-long") { token } }`, { e: "a\u0000@b.c" }), "$e", NUL);
  // Nothing was written.
  expect(ok(await t.graphql<{ projects: { totalCount: number } }>("{ projects { totalCount } }", {}, analyst.token)).projects.totalCount).toBe(1);
});

it("refuses it inside JSON values and keys, and in the document's own string literals", async () => {
  const source = `mutation($m: JSON) { createDataSource(input: { projectId: "${projectId}", name: "S", columnMapping: $m }) { id } }`;
  refused(await t.graphql(source, { m: { externalId: "id\u0000" } }, analyst.token), "$m.externalId", NUL);
  refused(await t.graphql(source, { m: { ["x\u0000"]: 1 } }, analyst.token), "$m.x?", /has a key that contains a NUL character/);
  refused(await t.graphql(`mutation { createProject(input: { name: "a\\u0000b" }) { id } }`, {}, analyst.token), "input.name", NUL);
});

it("looks through JSON nested thousands deep without failing, and finds a NUL at the bottom of the deepest JSON allowed", async () => {
  const query = `mutation($m: JSON) { createDataSource(input: { projectId: "${projectId}", name: "Deep", columnMapping: $m }) { id } }`;
  // Written out by hand: JSON.stringify recurses, and this nesting is deeper than its stack allows.
  const send = async (depth: number, bottom: string) => {
    const body = `{"query":${JSON.stringify(query)},"variables":{"m":${"[".repeat(depth)}${bottom}${"]".repeat(depth)}}}`;
    const response = await fetch(t.url, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${analyst.token}` }, body });
    return { status: response.status, body: (await response.json()) as { errors: { extensions: Record<string, unknown> }[] } };
  };
  // 50,000 deep is refused for its depth (test/integration/json-depth.test.ts), not by a stack overflow.
  const deep = await send(50_000, JSON.stringify("x\u0000"));
  expect(deep.status).toBe(400);
  expect(deep.body.errors[0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "$m" });
  const deepest = await send(MAX_JSON_DEPTH, JSON.stringify("x\u0000"));
  expect(deepest.status).toBe(400);
  expect(deepest.body.errors[0]!.extensions.field).toBe(`$m${"[0]".repeat(MAX_JSON_DEPTH)}`);
  // Without one, the operation goes on to its own checks (a column mapping must be an object).
  const clean = await send(MAX_JSON_DEPTH, JSON.stringify("x"));
  expect(clean.body.errors[0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "input.columnMapping" });
});

it("refuses a lone surrogate instead of storing U+FFFD in its place", async () => {
  const create = `mutation($n: String!) { createProject(input: { name: $n }) { id } }`;
  refused(await t.graphql(create, { n: "a\ud800b" }, analyst.token), "$n", /not valid Unicode/);
  // A whole pair is a character like any other.
  const created = ok(await t.graphql<{ createProject: { id: string } }>(create, { n: "coins \ud83e\ude99" }, analyst.token)).createProject.id;
  const read = ok(await t.graphql<{ project: { name: string } }>(`query($id: ID!) { project(id: $id) { name } }`, { id: created }, analyst.token));
  expect(read.project.name).toBe("coins \u{1FA99}");
});

it("refuses an uploaded file whose name holds a NUL character", async () => {
  const source = ok(await t.graphql<{ createDataSource: { id: string } }>(`mutation { createDataSource(input: { projectId: "${projectId}", name: "Files" }) { id } }`, {}, analyst.token)).createDataSource.id;
  const response = await fetch(new URL(`/data-sources/${source}/file?name=a%00b.csv`, t.url), {
    method: "PUT",
    headers: { authorization: `Bearer ${analyst.token}`, "content-type": "text/csv" },
    body: "id,amount,currency,date\nA-1,1.00,EUR,2026-11-24\n",
  });
  expect(response.status).toBe(400);
  const body = (await response.json()) as { errors: { message: string; extensions: Record<string, unknown> }[] };
  expect(body.errors[0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "fileName" });
  expect(body.errors[0]!.message).toMatch(NUL);
});
