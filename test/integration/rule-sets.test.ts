/**
 * Saving rule sets through GraphQL against real PostgreSQL, many at once: every save of one name gets its own
 * version, consecutive, however many requests race for the next one; other names and projects count on their own.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ok, startTestApp, type TestApp, type TestUser } from "../helpers/app.js";

let t: TestApp;
let analyst: TestUser;

const SAVE = "mutation($input: SaveRuleSetInput!) { saveRuleSet(input: $input) { id name version } }";
const RULES = { passes: [{ name: "exact only", mode: "AUTO", comparators: [{ field: "reference", type: "exact" }, { field: "amount", type: "exact" }] }] };

async function createProject(name: string): Promise<string> {
  return ok(await t.graphql("mutation($n: String!) { createProject(input: { name: $n }) { id } }", { n: name }, analyst.token)).createProject.id;
}

/** Sends `count` saves of rule set `name` of `projectId` at once; resolves with the versions they got. */
async function saveAtOnce(projectId: string, name: string, count: number): Promise<number[]> {
  const responses = await Promise.all(Array.from({ length: count }, () => t.graphql(SAVE, { input: { projectId, name, rules: RULES } }, analyst.token)));
  return responses.map((response) => ok(response).saveRuleSet.version as number);
}

beforeAll(async () => {
  t = await startTestApp();
  analyst = await t.createUser("ANALYST");
});
afterAll(async () => {
  await t?.close();
});

describe("saveRuleSet", () => {
  it("gives concurrent saves of one name distinct, consecutive versions", async () => {
    const projectId = await createProject("Rule sets");
    const versions = await saveAtOnce(projectId, "race", 8);
    expect([...versions].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const listed = ok(await t.graphql("query($p: ID!) { ruleSets(projectId: $p) { name version } }", { p: projectId }, analyst.token)).ruleSets;
    expect(listed).toEqual([{ name: "race", version: 8 }]);
  });

  it("counts each name of each project on its own, also when they are saved at once", async () => {
    const [first, second] = [await createProject("Rule sets A"), await createProject("Rule sets B")];
    const [a, b, c] = await Promise.all([saveAtOnce(first, "one", 4), saveAtOnce(first, "two", 4), saveAtOnce(second, "one", 4)]);
    for (const versions of [a, b, c]) expect([...versions!].sort((x, y) => x - y)).toEqual([1, 2, 3, 4]);
  });
});
