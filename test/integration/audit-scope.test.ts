/**
 * Whose audit log a viewer reads, through GraphQL against real PostgreSQL: that of the projects `policy.manageProject`
 * lets them manage (owner, project MANAGER, ADMIN) — never for a global VIEWER, whatever their project role or
 * ownership — and nothing of the projects they merely work in.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ok, startTestApp, type TestApp, type TestUser } from "../helpers/app.js";

let t: TestApp;
let owner: TestUser; // global ANALYST, owns the project
let projectManager: TestUser; // global ANALYST, project MANAGER
let viewerManager: TestUser; // global VIEWER, project MANAGER
let globalManager: TestUser; // global MANAGER, project ANALYST
let projectId: string;

/** The audit log as `user` reads it, unfiltered: how many events, and of which projects. */
async function auditLogOf(user: TestUser): Promise<{ total: number; projects: Set<string | null> }> {
  const log = ok(await t.graphql("{ auditLog(first: 100) { totalCount edges { node { projectId } } } }", {}, user.token)).auditLog;
  return { total: log.totalCount, projects: new Set(log.edges.map((edge: { node: { projectId: string | null } }) => edge.node.projectId)) };
}

/** How many events the project has (read by the ADMIN, who reads every project's). */
async function projectEvents(): Promise<number> {
  return ok(await t.graphql("query($p: ID) { auditLog(filter: { projectId: $p }) { totalCount } }", { p: projectId }, t.admin.token)).auditLog.totalCount;
}

beforeAll(async () => {
  t = await startTestApp();
  [owner, projectManager, viewerManager, globalManager] = await Promise.all([
    t.createUser("ANALYST", "Owner"),
    t.createUser("ANALYST", "Project manager"),
    t.createUser("VIEWER", "Global viewer, project manager"),
    t.createUser("MANAGER", "Global manager, project analyst"),
  ]);
  projectId = ok(await t.graphql(`mutation { createProject(input: { name: "Audited" }) { id } }`, {}, owner.token)).createProject.id;
  const add = "mutation($p: ID!, $u: ID!, $r: ProjectRole!) { addProjectMember(projectId: $p, userId: $u, role: $r) { id } }";
  for (const [user, role] of [[projectManager, "MANAGER"], [viewerManager, "MANAGER"], [globalManager, "ANALYST"]] as const) {
    ok(await t.graphql(add, { p: projectId, u: user.id, r: role }, owner.token));
  }
});
afterAll(async () => {
  await t?.close();
});

describe("auditLog", () => {
  it("shows the project's events to its owner and its project MANAGERs", async () => {
    const events = await projectEvents();
    expect(events).toBeGreaterThan(0);
    for (const user of [owner, projectManager]) expect(await auditLogOf(user)).toEqual({ total: events, projects: new Set([projectId]) });
  });

  it("shows nothing to a global VIEWER who is a project MANAGER, nor to a global MANAGER who is a project ANALYST", async () => {
    for (const user of [viewerManager, globalManager]) expect(await auditLogOf(user)).toEqual({ total: 0, projects: new Set() });
  });

  it("shows nothing to an owner made a global VIEWER", async () => {
    ok(await t.graphql("mutation($id: ID!) { updateUser(id: $id, input: { role: VIEWER }) { role } }", { id: owner.id }, t.admin.token));
    expect(await auditLogOf(owner)).toEqual({ total: 0, projects: new Set() });
    expect((await auditLogOf(projectManager)).total).toBe(await projectEvents());
  });
});
