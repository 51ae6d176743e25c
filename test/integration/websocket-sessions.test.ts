/**
 * A WebSocket connection (graphql-ws) is held to the rules of HTTP requests at every operation, not only when it
 * opens: the viewer as they are now (role, deactivation, a new password), the rate limit, sign-in throttling by
 * address; and a running `jobProgress` subscription stops when its viewer may no longer see the job. Also here:
 * a new password ends every session (old tokens stop working), and changing your own needs the current one.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { TEST_PASSWORD, errorCode, ok, startTestApp, type TestApp } from "../helpers/app.js";

let t: TestApp;
/** Another instance with a tight rate limit (1 a second, bursts of 2). */
let limited: TestApp;

beforeAll(async () => {
  t = await startTestApp();
  limited = await startTestApp({ RECON_RATE_LIMIT_PER_SECOND: "1", RECON_RATE_LIMIT_BURST: "2" });
});

afterAll(async () => {
  await limited?.close();
  await t?.close();
});

type Result = { data?: Record<string, any> | null; errors?: readonly { message: string; extensions?: Record<string, unknown> }[] };

/**
 * One graphql-ws connection to `on` as `token` (anonymous without), opened at once and kept open between
 * operations (not lazy: a lazy client reconnects for each, and a new connection is authenticated anew anyway), and
 * the close code it ends with.
 */
function connect(on: TestApp, token?: string) {
  let closed!: (code: number) => void;
  const closedWith = new Promise<number>((resolve) => (closed = resolve));
  const client = createClient({
    url: on.url.replace(/^http/, "ws"),
    webSocketImpl: WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    lazy: false,
    // The close is what several tests wait for (`closedWith`), not an error to print.
    onNonLazyError: () => {},
    on: { closed: (event) => closed((event as { code: number }).code) },
  });
  /** One operation's single result; its errors, or the close that ended it, as `errors`. */
  async function run(query: string, variables?: Record<string, unknown>): Promise<Result> {
    try {
      for await (const result of client.iterate({ query, variables })) return result as Result;
      return {};
    } catch (error) {
      return { errors: Array.isArray(error) ? error : [{ message: String((error as { reason?: string }).reason ?? error) }] };
    }
  }
  return { client, run, closedWith };
}

const ME = "{ me { id role } }";
const UPDATE_USER = "mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { id } }";

describe("an open socket acts as its user is now", () => {
  it("a demoted ADMIN can no longer create users on a socket opened before", async () => {
    const admin2 = await t.createUser("ADMIN");
    const socket = connect(t, admin2.token);
    try {
      expect((await socket.run(ME)).data).toEqual({ me: { id: admin2.id, role: "ADMIN" } });
      ok(await t.graphql("mutation($id: ID!) { updateUser(id: $id, input: { role: VIEWER }) { id } }", { id: admin2.id }, t.admin.token));

      const created = await socket.run('mutation { createUser(input: { email: "evil@recon.test", name: "Evil", password: "a-long-enough-password", role: ADMIN }) { id } }');
      expect(created.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      expect((await socket.run(ME)).data).toEqual({ me: { id: admin2.id, role: "VIEWER" } });
    } finally {
      await socket.client.dispose();
    }
  });

  it("a deactivated user's socket is closed (4403) at its next operation", async () => {
    const user = await t.createUser("ANALYST");
    const socket = connect(t, user.token);
    try {
      expect((await socket.run(ME)).data?.me.id).toBe(user.id);
      ok(await t.graphql("mutation($id: ID!) { deactivateUser(id: $id) { id } }", { id: user.id }, t.admin.token));

      expect((await socket.run(ME)).data).toBeUndefined();
      expect(await socket.closedWith).toBe(4403);
    } finally {
      await socket.client.dispose();
    }
  });

  it("a subscription's events stop when its viewer's role changes", async () => {
    const { projectId, jobId, owner } = await queuedJob();
    const socket = connect(t, owner.token);
    try {
      const events = socket.client.iterate({ query: `subscription($id: ID!) { jobProgress(jobId: $id) { processed } }`, variables: { id: jobId } })[Symbol.asyncIterator]();
      expect((await events.next()).value).toMatchObject({ data: { jobProgress: { processed: 0 } } });
      ok(await t.graphql("mutation($id: ID!) { updateUser(id: $id, input: { role: VIEWER }) { id } }", { id: owner.id }, t.admin.token));

      await announceProgress(jobId, projectId);
      await expect(events.next()).rejects.toMatchObject({ code: 4403 });
    } finally {
      await socket.client.dispose();
    }
  });
});

/** A project of a new owner with two data sources and a job left QUEUED (this app runs no worker). */
async function queuedJob() {
  const owner = await t.createUser("ANALYST");
  const projectId = ok(await t.graphql('mutation { createProject(input: { name: "Sockets" }) { id } }', {}, owner.token)).createProject.id as string;
  const source = async (name: string) =>
    ok(await t.graphql("mutation($p: ID!, $n: String!) { createDataSource(input: { projectId: $p, name: $n }) { id } }", { p: projectId, n: name }, owner.token)).createDataSource.id as string;
  const [leftSourceId, rightSourceId] = [await source("Ledger"), await source("Bank")];
  const jobId = ok(await t.graphql("mutation($i: StartReconciliationInput!) { startReconciliation(input: $i) { id } }", { i: { projectId, leftSourceId, rightSourceId } }, owner.token)).startReconciliation.id as string;
  return { owner, projectId, jobId };
}

/** Changes what `jobProgress` shows of the job and announces it, as a worker's checkpoint does. */
async function announceProgress(jobId: string, projectId: string): Promise<void> {
  const { pool } = t.app.container.database;
  await pool.query("UPDATE reconciliation_jobs SET processed = processed + 1 WHERE id = $1", [jobId]);
  await t.app.container.jobEvents.publish(pool, jobId, projectId);
}

describe("jobProgress", () => {
  it("ends for a viewer removed from the project, and goes on for one still in it", async () => {
    const { owner, projectId, jobId } = await queuedJob();
    const member = await t.createUser("ANALYST");
    ok(await t.graphql("mutation($p: ID!, $u: ID!) { addProjectMember(projectId: $p, userId: $u, role: VIEWER) { id } }", { p: projectId, u: member.id }, owner.token));
    const [ownerSocket, memberSocket] = [connect(t, owner.token), connect(t, member.token)];
    const follow = (socket: ReturnType<typeof connect>) =>
      socket.client.iterate<{ jobProgress: { processed: number } }>({ query: `subscription($id: ID!) { jobProgress(jobId: $id) { processed } }`, variables: { id: jobId } })[Symbol.asyncIterator]();
    try {
      const [ownerEvents, memberEvents] = [follow(ownerSocket), follow(memberSocket)];
      expect((await ownerEvents.next()).value?.data?.jobProgress.processed).toBe(0);
      expect((await memberEvents.next()).value?.data?.jobProgress.processed).toBe(0);
      ok(await t.graphql("mutation($p: ID!, $u: ID!) { removeProjectMember(projectId: $p, userId: $u) { id } }", { p: projectId, u: member.id }, owner.token));

      await announceProgress(jobId, projectId);
      expect((await ownerEvents.next()).value?.data?.jobProgress.processed).toBe(1);
      expect(await memberEvents.next()).toEqual({ done: true, value: undefined });
    } finally {
      await ownerSocket.client.dispose();
      await memberSocket.client.dispose();
    }
  });
});

describe("passwords and sessions", () => {
  it("changing your own password needs the current one, and ends every session, sockets included", async () => {
    const user = await t.createUser("ANALYST");
    const socket = connect(t, user.token);
    try {
      expect((await socket.run(ME)).data?.me.id).toBe(user.id);
      const change = (input: Record<string, unknown>) => t.graphql(UPDATE_USER, { id: user.id, input }, user.token);
      const missing = await change({ password: "a-new-password-for-tests" });
      expect(errorCode(missing)).toBe("BAD_USER_INPUT");
      expect(missing.errors?.[0]?.message).toContain("input.currentPassword");
      const wrong = await change({ password: "a-new-password-for-tests", currentPassword: "not-the-password" });
      expect(wrong.errors?.[0]?.message).toMatch(/input\.currentPassword.*not your current password/);
      ok(await change({ password: "a-new-password-for-tests", currentPassword: TEST_PASSWORD }));

      // The token that changed it is over too; the new password signs in.
      expect((await t.graphql(ME, {}, user.token)).status).toBe(401);
      expect((await socket.run(ME)).data).toBeUndefined();
      expect(await socket.closedWith).toBe(4403);
      const token = await t.login(user.email, "a-new-password-for-tests");
      expect(ok(await t.graphql(ME, {}, token)).me.id).toBe(user.id);
    } finally {
      await socket.client.dispose();
    }
  });

  it("an ADMIN resets someone's password without theirs, and the user's old tokens stop working", async () => {
    const user = await t.createUser("ANALYST");
    ok(await t.graphql(UPDATE_USER, { id: user.id, input: { password: "reset-by-the-admin-1" } }, t.admin.token));
    expect((await t.graphql(ME, {}, user.token)).status).toBe(401);
    expect(ok(await t.graphql(ME, {}, await t.login(user.email, "reset-by-the-admin-1"))).me.id).toBe(user.id);
    // The ADMIN's own change needs their current password like anyone's.
    const own = await t.graphql(UPDATE_USER, { id: t.admin.id, input: { password: "another-admin-password" } }, t.admin.token);
    expect(own.errors?.[0]?.message).toContain("input.currentPassword");
  });
});

describe("limits", () => {
  it("a socket's operations count against the viewer's rate limit", async () => {
    const user = await limited.createUser("ANALYST");
    const socket = connect(limited, user.token);
    try {
      // Ten at once against a bucket of two refilled once a second: most are refused, as over HTTP.
      const results = await Promise.all(Array.from({ length: 10 }, () => socket.run(ME)));
      const refused = results.filter((result) => result.errors?.[0]?.extensions?.code === "RATE_LIMITED");
      expect(refused.length).toBeGreaterThan(0);
      expect(refused[0]!.errors![0]!.message).toMatch(/^Too many requests: wait \d+ s \(the limit is 1 a second\)$/);
    } finally {
      await socket.client.dispose();
    }
  });

  // Last in the file: it locks out this app's address for sign-in.
  it("failed sign-ins over a socket are throttled by the client's address, as over HTTP", async () => {
    const socket = connect(t);
    try {
      const codes: unknown[] = [];
      for (let i = 0; i < 52; i++) {
        const result = await socket.run("mutation($e: String!) { login(email: $e, password: \"wrong-password\") { token } }", { e: `nobody-${i}@recon.test` });
        codes.push(result.errors?.[0]?.extensions?.code);
      }
      // 50 free failures for an address; the 51st locks it out, whatever the email.
      expect(codes.slice(0, 51).every((code) => code === "UNAUTHENTICATED")).toBe(true);
      expect(codes[51]).toBe("TOO_MANY_ATTEMPTS");
    } finally {
      await socket.client.dispose();
    }
  });
});
