/**
 * Cursors of the lists paged by (created_at, id), through GraphQL against real PostgreSQL: a cursor the server did
 * not make — an id that is no uuid, a time PostgreSQL cannot hold — is BAD_USER_INPUT on every list, like any other
 * bad cursor, and never reaches PostgreSQL; cursors at the ends of the times accepted still page.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ok, startTestApp, type GraphQLResponse, type TestApp } from "../helpers/app.js";
import { uploadCsv } from "../helpers/jobs.js";

let t: TestApp;
let projectId: string;

/** A cursor as encodeCursor writes one, with any content. */
const cursor = (createdAt: string, id: string) => Buffer.from(JSON.stringify([createdAt, id])).toString("base64url");
const ID = "0b9e4d8c-6f0e-4c57-9a53-5d2f1e0a7c11";

const TAMPERED = {
  "an id of dashes": cursor("2026-11-24T22:28:32.658Z", "-".repeat(36)),
  "a 36-digit hex id without dashes": cursor("2026-11-24T22:28:32.658Z", "0123456789abcdef0123456789abcdef0123"),
  "a time PostgreSQL cannot hold": cursor("-271821-04-20T00:00:00Z", ID),
  "that time written as the server writes times": cursor("-271821-04-20T00:00:00.000Z", ID),
};

/** Each list paged by (created_at, id): its query, given `$after`, and where its edges are in the answer. */
const LISTS: Record<string, { query: string; edges: (data: Record<string, any>) => unknown[] }> = {
  projects: { query: "query($after: String) { projects(first: 100, after: $after) { edges { cursor } } }", edges: (d) => d.projects.edges },
  users: { query: "query($after: String) { users(first: 100, after: $after) { edges { cursor } } }", edges: (d) => d.users.edges },
  auditLog: { query: "query($after: String) { auditLog(first: 100, after: $after) { edges { cursor } } }", edges: (d) => d.auditLog.edges },
  "User.projects": { query: "query($after: String) { me { projects(first: 100, after: $after) { edges { cursor } } } }", edges: (d) => d.me.projects.edges },
  exceptions: {
    query: "query($p: ID!, $after: String) { exceptions(projectId: $p, first: 100, after: $after) { edges { cursor } } }",
    edges: (d) => d.exceptions.edges,
  },
  reconciliationJobs: {
    query: "query($p: ID!, $after: String) { reconciliationJobs(projectId: $p, first: 100, after: $after) { edges { cursor } } }",
    edges: (d) => d.reconciliationJobs.edges,
  },
  "Project.jobs": {
    query: "query($p: ID!, $after: String) { project(id: $p) { jobs(first: 100, after: $after) { edges { cursor } } } }",
    edges: (d) => d.project.jobs.edges,
  },
  "DataSource.uploads": {
    query: "query($p: ID!, $after: String) { dataSources(projectId: $p) { uploads(first: 100, after: $after) { edges { cursor } } } }",
    edges: (d) => d.dataSources[0].uploads.edges,
  },
};

const page = (list: string, after?: string): Promise<GraphQLResponse> => t.graphql(LISTS[list]!.query, { p: projectId, after }, t.admin.token);

beforeAll(async () => {
  t = await startTestApp();
  projectId = ok(await t.graphql(`mutation { createProject(input: { name: "Cursors" }) { id } }`, {}, t.admin.token)).createProject.id;
  const source = ok(await t.graphql("mutation($p: ID!) { createDataSource(input: { projectId: $p, name: \"Bank\" }) { id } }", { p: projectId }, t.admin.token));
  await uploadCsv(t, t.admin.token, source.createDataSource.id, "id,date,amount,currency,reference\nB1,2026-10-01,10.00,EUR,INV-1\n");
});
afterAll(async () => {
  await t?.close();
});

describe.each(Object.keys(LISTS))("%s", (list) => {
  it.each(Object.entries(TAMPERED))("refuses a cursor with %s as it refuses any bad cursor", async (_, after) => {
    const garbage = await page(list, "garbage");
    expect(garbage.errors?.[0]).toMatchObject({ message: "after: is not a cursor from this list (use pageInfo.endCursor)", extensions: { code: "BAD_USER_INPUT", field: "after" } });
    const tampered = await page(list, after);
    expect(tampered.errors?.[0]?.message).toBe(garbage.errors![0]!.message);
    expect(tampered.errors?.[0]?.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "after" });
  });

  it("pages from cursors at the earliest and latest times a cursor may hold", async () => {
    const all = LISTS[list]!.edges(ok(await page(list)));
    expect(LISTS[list]!.edges(ok(await page(list, cursor("0001-01-01T00:00:00.000Z", ID))))).toEqual([]);
    expect(LISTS[list]!.edges(ok(await page(list, cursor("+275760-09-13T00:00:00.000Z", ID))))).toEqual(all);
  });
});
