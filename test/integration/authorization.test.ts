/**
 * Every query and mutation, for viewers who may and may not use it. Viewers relate to one project P:
 * its owner, members with each project role, a global VIEWER who is a member, an outsider, an admin, anonymous.
 * A project one may not see must read as missing (null, empty, NOT_FOUND), never as FORBIDDEN.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorCode, ok, startTestApp, type GraphQLResponse, type TestApp, type TestUser } from "../helpers/app.js";

type Who = "admin" | "owner" | "manager" | "analyst" | "member" | "readonly" | "outsider" | "anonymous";
const everyone: Who[] = ["admin", "owner", "manager", "analyst", "member", "readonly", "outsider", "anonymous"];

let t: TestApp;
const users = {} as Record<Exclude<Who, "anonymous">, TestUser>;
const token = (who: Who) => (who === "anonymous" ? undefined : users[who].token);

/** A project owned by `owner`, with the standard members, and one data source. */
async function makeProject(): Promise<{ id: string; dataSourceId: string }> {
  const { createProject } = ok(
    await t.graphql("mutation { createProject(input: { name: \"P\" }) { id } }", {}, users.owner.token),
  );
  const add = "mutation($p: ID!, $u: ID!, $r: ProjectRole!) { addProjectMember(projectId: $p, userId: $u, role: $r) { id } }";
  for (const [who, role] of [["manager", "MANAGER"], ["analyst", "ANALYST"], ["member", "VIEWER"], ["readonly", "ANALYST"]] as const) {
    ok(await t.graphql(add, { p: createProject.id, u: users[who].id, r: role }, users.owner.token));
  }
  const { createDataSource } = ok(
    await t.graphql(
      "mutation($p: ID!) { createDataSource(input: { projectId: $p, name: \"Bank\", kind: BANK_STATEMENT }) { id } }",
      { p: createProject.id },
      users.owner.token,
    ),
  );
  return { id: createProject.id, dataSourceId: createDataSource.id };
}

beforeAll(async () => {
  t = await startTestApp();
  users.admin = t.admin;
  users.owner = await t.createUser("ANALYST", "Owner");
  users.manager = await t.createUser("ANALYST", "Project manager");
  users.analyst = await t.createUser("ANALYST", "Project analyst");
  users.member = await t.createUser("ANALYST", "Project viewer");
  users.readonly = await t.createUser("VIEWER", "Global viewer");
  users.outsider = await t.createUser("ANALYST", "Outsider");
});
afterAll(() => t?.close());

/** What a viewer should get: success, a null/empty read, or an error code. */
type Outcome = "ok" | "missing" | "NOT_FOUND" | "FORBIDDEN" | "UNAUTHENTICATED";

interface Case {
  name: string;
  run: (who: Who, project: { id: string; dataSourceId: string }) => Promise<GraphQLResponse>;
  /** Extracts the value whose absence means "missing" for reads (null or an empty list). */
  value?: (data: Record<string, any>) => unknown;
  expect: Partial<Record<Who, Outcome>> & { otherwise: Outcome };
  /** Mutations that consume their project get a fresh one per viewer. */
  freshProject?: boolean;
}

const q = (query: string, vars: Record<string, unknown> = {}) => (who: Who) => t.graphql(query, vars, token(who));

const cases: Case[] = [
  {
    name: "me",
    run: q("{ me { id } }"),
    value: (d) => d.me,
    expect: { anonymous: "missing", otherwise: "ok" },
  },
  {
    name: "users (everyone for ADMIN/MANAGER, otherwise co-members only)",
    run: (who) => t.graphql("query($s: String) { users(first: 100, filter: { search: $s }) { edges { node { id } } } }", { s: "Outsider" }, token(who)),
    value: (d) => (d.users.edges.length ? d.users : null),
    expect: { admin: "ok", outsider: "ok", anonymous: "UNAUTHENTICATED", otherwise: "missing" },
  },
  {
    name: "user(id) of the project owner",
    run: (who) => t.graphql("query($id: ID!) { user(id: $id) { id } }", { id: users.owner.id }, token(who)),
    value: (d) => d.user,
    expect: { outsider: "missing", anonymous: "UNAUTHENTICATED", otherwise: "ok" },
  },
  {
    name: "projects",
    run: (who, p) => t.graphql("{ projects(first: 100) { edges { node { id } } } }", {}, token(who)).then((r) => ({
      ...r,
      data: r.data && { found: r.data.projects.edges.some((e: any) => e.node.id === p.id) || null },
    })),
    value: (d) => d.found,
    expect: { outsider: "missing", anonymous: "UNAUTHENTICATED", otherwise: "ok" },
  },
  {
    name: "project(id)",
    run: (who, p) => t.graphql("query($id: ID!) { project(id: $id) { id owner { id } members { user { id } } } }", { id: p.id }, token(who)),
    value: (d) => d.project,
    expect: { outsider: "missing", anonymous: "UNAUTHENTICATED", otherwise: "ok" },
  },
  {
    name: "searchProjects",
    run: q("{ searchProjects(query: \"Searchable\") { id } }"),
    value: (d) => (d.searchProjects.length ? d.searchProjects : null),
    expect: { outsider: "missing", anonymous: "UNAUTHENTICATED", otherwise: "ok" },
  },
  {
    name: "projectStats",
    run: (who, p) => t.graphql("query($id: ID!) { projectStats(projectId: $id) { recordCount matchRate } }", { id: p.id }, token(who)),
    value: (d) => d.projectStats,
    expect: { outsider: "missing", anonymous: "UNAUTHENTICATED", otherwise: "ok" },
  },
  {
    name: "dataSources",
    run: (who, p) => t.graphql("query($id: ID!) { dataSources(projectId: $id) { id } }", { id: p.id }, token(who)),
    value: (d) => (d.dataSources.length ? d.dataSources : null),
    expect: { outsider: "missing", anonymous: "UNAUTHENTICATED", otherwise: "ok" },
  },
  {
    name: "auditLog of the project (ADMIN, owner, project managers)",
    run: (who, p) => t.graphql("query($id: ID) { auditLog(first: 50, filter: { projectId: $id }) { edges { node { action } } } }", { id: p.id }, token(who)),
    value: (d) => (d.auditLog.edges.length ? d.auditLog : null),
    expect: { admin: "ok", owner: "ok", manager: "ok", anonymous: "UNAUTHENTICATED", otherwise: "missing" },
  },
  {
    name: "cacheStats (ADMIN only)",
    run: q("{ cacheStats { enabled hitRate operations { operation hits } } }"),
    value: (d) => d.cacheStats,
    expect: { admin: "ok", anonymous: "UNAUTHENTICATED", otherwise: "FORBIDDEN" },
  },
  {
    name: "flushResponseCache (ADMIN only)",
    run: q("mutation { flushResponseCache }"),
    expect: { admin: "ok", anonymous: "UNAUTHENTICATED", otherwise: "FORBIDDEN" },
  },
  {
    name: "createUser",
    run: (who) =>
      t.graphql("mutation($e: String!) { createUser(input: { email: $e, name: \"N\", password: \"long-enough-password\" }) { id } }", { e: `new-${who}-${Date.now()}@x.test` }, token(who)),
    expect: { admin: "ok", anonymous: "UNAUTHENTICATED", otherwise: "FORBIDDEN" },
  },
  {
    name: "updateUser (someone else's name)",
    run: (who) => t.graphql("mutation($id: ID!) { updateUser(id: $id, input: { name: \"Renamed\" }) { id } }", { id: users.outsider.id }, token(who)),
    expect: { admin: "ok", outsider: "ok", anonymous: "UNAUTHENTICATED", otherwise: "NOT_FOUND" },
  },
  {
    name: "updateUser (own role)",
    run: (who) =>
      who === "anonymous"
        ? t.graphql("mutation { updateUser(id: \"00000000-0000-0000-0000-000000000000\", input: { role: ADMIN }) { id } }")
        : t.graphql("mutation($id: ID!) { updateUser(id: $id, input: { role: VIEWER }) { id } }", { id: users[who].id }, token(who)),
    expect: { admin: "NOT_ALLOWED_SELF" as Outcome, anonymous: "UNAUTHENTICATED", otherwise: "FORBIDDEN" },
  },
  {
    name: "deactivateUser",
    run: async (who) => {
      const victim = await t.createUser("ANALYST");
      return t.graphql("mutation($id: ID!) { deactivateUser(id: $id) { isActive } }", { id: victim.id }, token(who));
    },
    expect: { admin: "ok", anonymous: "UNAUTHENTICATED", otherwise: "FORBIDDEN" },
  },
  {
    name: "createProject",
    run: q("mutation { createProject(input: { name: \"Mine\" }) { id } }"),
    expect: { readonly: "FORBIDDEN", anonymous: "UNAUTHENTICATED", otherwise: "ok" },
  },
  {
    name: "updateProject",
    run: (who, p) => t.graphql("mutation($id: ID!) { updateProject(id: $id, input: { description: \"d\" }) { id } }", { id: p.id }, token(who)),
    expect: { admin: "ok", owner: "ok", manager: "ok", analyst: "ok", outsider: "NOT_FOUND", anonymous: "UNAUTHENTICATED", otherwise: "FORBIDDEN" },
  },
  {
    name: "archiveProject",
    freshProject: true,
    run: (who, p) => t.graphql("mutation($id: ID!) { archiveProject(id: $id) { status } }", { id: p.id }, token(who)),
    expect: { admin: "ok", owner: "ok", manager: "ok", outsider: "NOT_FOUND", anonymous: "UNAUTHENTICATED", otherwise: "FORBIDDEN" },
  },
  {
    name: "deleteProject",
    freshProject: true,
    run: (who, p) => t.graphql("mutation($id: ID!) { deleteProject(id: $id) }", { id: p.id }, token(who)),
    expect: { admin: "ok", owner: "ok", outsider: "NOT_FOUND", anonymous: "UNAUTHENTICATED", otherwise: "FORBIDDEN" },
  },
  {
    name: "addProjectMember",
    run: (who, p) =>
      t.graphql("mutation($p: ID!, $u: ID!) { addProjectMember(projectId: $p, userId: $u, role: VIEWER) { id } }", { p: p.id, u: users.outsider.id }, token(who)),
    freshProject: true,
    expect: { admin: "ok", owner: "ok", manager: "ok", outsider: "NOT_FOUND", anonymous: "UNAUTHENTICATED", otherwise: "FORBIDDEN" },
  },
  {
    name: "removeProjectMember",
    freshProject: true,
    run: (who, p) =>
      t.graphql("mutation($p: ID!, $u: ID!) { removeProjectMember(projectId: $p, userId: $u) { id } }", { p: p.id, u: users.member.id }, token(who)),
    expect: { admin: "ok", owner: "ok", manager: "ok", outsider: "NOT_FOUND", anonymous: "UNAUTHENTICATED", otherwise: "FORBIDDEN" },
  },
  {
    name: "createDataSource",
    run: (who, p) =>
      t.graphql("mutation($p: ID!, $n: String!) { createDataSource(input: { projectId: $p, name: $n }) { id } }", { p: p.id, n: `Ledger ${who}` }, token(who)),
    expect: { admin: "ok", owner: "ok", manager: "ok", analyst: "ok", outsider: "NOT_FOUND", anonymous: "UNAUTHENTICATED", otherwise: "FORBIDDEN" },
  },
  {
    name: "updateDataSource",
    run: (who, p) =>
      t.graphql("mutation($id: ID!) { updateDataSource(id: $id, input: { kind: LEDGER }) { id } }", { id: p.dataSourceId }, token(who)),
    expect: { admin: "ok", owner: "ok", manager: "ok", analyst: "ok", outsider: "NOT_FOUND", anonymous: "UNAUTHENTICATED", otherwise: "FORBIDDEN" },
  },
];

describe("authorization", () => {
  let shared: { id: string; dataSourceId: string };
  beforeAll(async () => {
    shared = await makeProject();
    ok(await t.graphql("mutation($id: ID!) { updateProject(id: $id, input: { name: \"Searchable project\" }) { id } }", { id: shared.id }, users.owner.token));
  });

  for (const testCase of cases) {
    it.each(everyone)(`${testCase.name} as %s`, async (who) => {
      const project = testCase.freshProject ? await makeProject() : shared;
      const expected = testCase.expect[who] ?? testCase.expect.otherwise;
      const response = await testCase.run(who, project);
      if (expected === "ok") {
        const data = ok(response);
        if (testCase.value) expect(testCase.value(data)).toBeTruthy();
      } else if (expected === "missing") {
        const data = ok(response);
        expect(testCase.value!(data) ?? null).toBeNull();
      } else if ((expected as string) === "NOT_ALLOWED_SELF") {
        expect(errorCode(response)).toBe("BAD_USER_INPUT");
      } else {
        expect(errorCode(response)).toBe(expected);
        expect(response.data?.[Object.keys(response.data ?? {})[0]] ?? null).toBeNull();
      }
    });
  }
});
