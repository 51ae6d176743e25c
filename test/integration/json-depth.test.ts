/**
 * JSON arguments nested deeper than MAX_JSON_DEPTH arrays and objects are refused before anything runs, as
 * BAD_USER_INPUT naming the JSON value (`$input.settings`, or a literal's `input.settings`) — in variables and in
 * the document's literals, for every JSON-typed argument — never an internal error from storing them (Prisma
 * serializes JSON recursively: 5,000 levels overflowed its stack). Values up to the limit are stored as sent.
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
  const created = ok(await t.graphql<{ createProject: { id: string } }>(`mutation { createProject(input: { name: "Deep", settings: { kept: true } }) { id } }`, {}, analyst.token));
  projectId = created.createProject.id;
});

afterAll(async () => {
  await t?.close();
});

/** `{"a":{"a":…{}…}}` with `depth` objects, as JSON text (JSON.stringify recurses: it cannot write the deepest). */
const nestedObjects = (depth: number) => `${'{"a":'.repeat(depth - 1)}{}${"}".repeat(depth - 1)}`;

/** Sends a request body written out by hand, so that the variables can nest deeper than JSON.stringify allows. */
async function sendRaw(query: string, variablesJson: string): Promise<GraphQLResponse> {
  const response = await fetch(t.url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${analyst.token}` },
    body: `{"query":${JSON.stringify(query)},"variables":${variablesJson}}`,
  });
  return { status: response.status, headers: response.headers, ...((await response.json()) as object) };
}

function tooDeep(response: GraphQLResponse, field: string) {
  expect(response.status).toBe(400);
  expect(response.errors).toHaveLength(1);
  expect(response.errors![0]!.extensions).toMatchObject({ code: "BAD_USER_INPUT", field });
  expect(response.errors![0]!.message).toBe(`${field}: is nested more than ${MAX_JSON_DEPTH} arrays and objects deep, the most a JSON value may be`);
  expect(response.data ?? null).toBeNull();
}

const UPDATE = `mutation($id: ID!, $input: UpdateProjectInput!) { updateProject(id: $id, input: $input) { id } }`;
const settingsOf = async () => ok(await t.graphql<{ project: { settings: unknown } }>(`query($id: ID!) { project(id: $id) { settings } }`, { id: projectId }, analyst.token)).project.settings;

it("refuses a variable's JSON nested 5,000 and 100,000 levels deep, naming the JSON value, and changes nothing", async () => {
  for (const depth of [5_000, 100_000]) {
    tooDeep(await sendRaw(UPDATE, `{"id":"${projectId}","input":{"name":"Renamed","settings":${nestedObjects(depth)}}}`), "$input.settings");
  }
  expect(await settingsOf()).toEqual({ kept: true });
  const name = ok(await t.graphql<{ project: { name: string } }>(`query($id: ID!) { project(id: $id) { name } }`, { id: projectId }, analyst.token)).project.name;
  expect(name).toBe("Deep");
});

it(`stores JSON exactly ${MAX_JSON_DEPTH} levels deep, and refuses one level more`, async () => {
  ok(await sendRaw(UPDATE, `{"id":"${projectId}","input":{"settings":${nestedObjects(MAX_JSON_DEPTH)}}}`));
  expect(JSON.stringify(await settingsOf())).toBe(nestedObjects(MAX_JSON_DEPTH));
  tooDeep(await sendRaw(UPDATE, `{"id":"${projectId}","input":{"settings":${nestedObjects(MAX_JSON_DEPTH + 1)}}}`), "$input.settings");
  // Arrays count as objects do.
  const arrays = (depth: number) => `{"a":${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}}`;
  tooDeep(await sendRaw(UPDATE, `{"id":"${projectId}","input":{"settings":${arrays(MAX_JSON_DEPTH + 1)}}}`), "$input.settings");
});

it("refuses it in a literal of the document, naming the argument path", async () => {
  const literal = (depth: number) => `${"{a: ".repeat(depth - 1)}{}${"}".repeat(depth - 1)}`;
  const update = (depth: number) => `mutation { updateProject(id: "${projectId}", input: { settings: ${literal(depth)} }) { id } }`;
  tooDeep(await t.graphql(update(MAX_JSON_DEPTH + 1), {}, analyst.token), "input.settings");
  ok(await t.graphql(update(MAX_JSON_DEPTH), {}, analyst.token));
  const list = `mutation { updateProject(id: "${projectId}", input: { settings: { a: ${"[".repeat(MAX_JSON_DEPTH)}${"]".repeat(MAX_JSON_DEPTH)} } }) { id } }`;
  tooDeep(await t.graphql(list, {}, analyst.token), "input.settings");
});

it("refuses it in every JSON argument: a JSON variable, column mappings, rules", async () => {
  const deep = nestedObjects(MAX_JSON_DEPTH + 1);
  tooDeep(
    await sendRaw(`mutation($m: JSON) { createDataSource(input: { projectId: "${projectId}", name: "S", columnMapping: $m }) { id } }`, `{"m":${deep}}`),
    "$m",
  );
  tooDeep(
    await sendRaw(`mutation($input: SaveRuleSetInput!) { saveRuleSet(input: $input) { id } }`, `{"input":{"projectId":"${projectId}","name":"R","rules":${deep}}}`),
    "$input.rules",
  );
  const sources = ok(await t.graphql<{ dataSources: unknown[] }>(`query($p: ID!) { dataSources(projectId: $p) { id } }`, { p: projectId }, analyst.token));
  expect(sources.dataSources).toEqual([]);
  expect(ok(await t.graphql<{ ruleSets: unknown[] }>(`query($p: ID!) { ruleSets(projectId: $p) { id } }`, { p: projectId }, analyst.token)).ruleSets).toEqual([]);
});
