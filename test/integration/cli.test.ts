/**
 * `npm run recon -- ingest` end to end: the CLI runs as its own process (as a user runs it) against the real server
 * in this process, with trusted documents enforced, signing in as a MANAGER (who may send manifest operations
 * only). It streams the file with `Prefer: respond-async`, gets the 202 once the server has the file, then follows
 * the ingest by polling `fileUpload` until it is final.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ok, startTestApp, TEST_PASSWORD, type TestApp, type TestUser } from "../helpers/app.js";
import { holdIngests } from "../helpers/ingest.js";
import { freePort } from "../helpers/ports.js";

const ROOT = join(import.meta.dirname, "../..");
const fixture = (name: string) => join(ROOT, "test/fixtures/ingest", name);

let t: TestApp;
let db: pg.Pool;
let manager: TestUser;
let projectId: string;

beforeAll(async () => {
  t = await startTestApp({ RECON_TRUSTED_DOCUMENTS: "on", LOG_LEVEL: "error" });
  db = new pg.Pool({ connectionString: t.db.url, max: 2 });
  manager = await t.createUser("MANAGER");
  // Set up as the ADMIN (ad-hoc operations); the CLI then acts as a project ANALYST whose global role is MANAGER.
  projectId = ok(await t.graphql('mutation { createProject(input: { name: "CLI" }) { id } }', {}, t.admin.token)).createProject.id;
  ok(await t.graphql("mutation($p: ID!, $u: ID!) { addProjectMember(projectId: $p, userId: $u, role: ANALYST) { id } }", { p: projectId, u: manager.id }, t.admin.token));
});
afterAll(async () => {
  await db?.end();
  await t?.close();
});

async function createSource(name: string): Promise<string> {
  return ok(await t.graphql("mutation($p: ID!, $n: String!) { createDataSource(input: { projectId: $p, name: $n }) { id } }", { p: projectId, n: name }, t.admin.token))
    .createDataSource.id;
}

interface Run {
  /** Resolves with the exit code. */
  exit: Promise<number>;
  stdout(): string;
  stderr(): string;
  /** Resolves once stderr contains `text`. */
  waitForStderr(text: string): Promise<void>;
}

/** Starts the CLI (asynchronously: the server answering it runs in this process). */
function recon(...args: string[]): Run {
  const child = spawn(join(ROOT, "node_modules/.bin/tsx"), [join(ROOT, "src/cli/recon.ts"), ...args], {
    cwd: ROOT,
    env: { ...process.env, RECON_URL: t.url, RECON_EMAIL: manager.email, RECON_PASSWORD: TEST_PASSWORD, RECON_TOKEN: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const waiters: { text: string; resolve: () => void }[] = [];
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => {
    err += chunk.toString();
    for (const waiter of waiters.splice(0)) {
      if (err.includes(waiter.text)) waiter.resolve();
      else waiters.push(waiter);
    }
  });
  const exit = new Promise<number>((resolve) => child.on("close", (code) => resolve(code ?? -1)));
  return {
    exit,
    stdout: () => out,
    stderr: () => err,
    waitForStderr: (text) =>
      err.includes(text)
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            waiters.push({ text, resolve });
            void exit.then((code) => reject(new Error(`the CLI exited (${code}) before printing '${text}':\n${err}\n${out}`)));
          }),
  };
}

async function uploadsOf(source: string) {
  const { rows } = await db.query("SELECT id, status, rows_ingested FROM uploaded_files WHERE data_source_id = $1 ORDER BY created_at", [source]);
  return rows;
}

describe("npm run recon -- ingest", () => {
  it("gets the 202 once the server has the file, follows the ingest to COMPLETED, and exits 0", async () => {
    const source = await createSource("CLI good");
    const release = await holdIngests(db);
    let run: Run;
    try {
      run = recon("ingest", fixture("good.csv"), "--data-source", source);
      await run.waitForStderr("the server has the file (upload ");
      // Answered, and still ingesting (held before its rows are written): the CLI is polling now.
      expect((await uploadsOf(source))[0]).toMatchObject({ status: "PROCESSING" });
    } finally {
      await release();
    }
    expect(await run.exit).toBe(0);
    expect(run.stderr()).toMatch(/ingesting: 4 rows read \(271 B\); validating and committing/);
    expect(run.stdout()).toMatch(/^COMPLETED {2}good\.csv {2}271 B {2}sha256 [0-9a-f]{16}…$/m);
    expect(run.stdout()).toContain("rows read 4, ingested 4, rejected 0, flagged 0");
    const [upload] = await uploadsOf(source);
    expect(upload).toMatchObject({ status: "COMPLETED", rows_ingested: 4 });
    expect(run.stdout()).toContain(`upload id ${upload.id}`);
    const { rows } = await db.query("SELECT count(*)::int AS n FROM records WHERE file_id = $1", [upload.id]);
    expect(rows[0].n).toBe(4);
  });

  it("exits 1 on an upload that ends FAILED after the 202, printing the error with its line and the first row issues", async () => {
    const source = await createSource("CLI reject");
    const release = await holdIngests(db);
    let run: Run;
    try {
      run = recon("ingest", fixture("mixed-errors.csv"), "--data-source", source, "--policy", "REJECT_FILE");
      await run.waitForStderr("the server has the file (upload ");
    } finally {
      await release();
    }
    expect(await run.exit).toBe(1);
    const out = run.stdout();
    expect(out).toMatch(/^FAILED {2}mixed-errors\.csv/m);
    expect(out).toContain("rows read 9, ingested 0, rejected 6, flagged 0");
    expect(out).toContain(
      "error: 6 invalid row(s): nothing was ingested (policy REJECT_FILE); the first is line 3, column amount: 'ten' is not a number; see rowErrors (line 3)",
    );
    expect(out).toContain("  line 3, amount: 'ten' is not a number");
    expect(out).toContain("  line 8, (row): expected 6 fields, found 7");
    expect((await uploadsOf(source))[0]).toMatchObject({ status: "FAILED", rows_ingested: 0 });
  });

  it("lists rows with bytes invalid in the encoding after a COMPLETED upload, and exits 0", async () => {
    const source = await createSource("CLI encoding");
    const run = recon("ingest", fixture("invalid-utf8.csv"), "--data-source", source);
    expect(await run.exit).toBe(0);
    expect(run.stdout()).toContain("rows read 5, ingested 2, rejected 3, flagged 0");
    expect(run.stdout()).toContain("  line 3, description: byte 0xE9 at line 3, character 32 is not valid UTF-8");
  });

  it("reports a file refused while it streams at once, with its line, and exits 1", async () => {
    const source = await createSource("CLI broken");
    const run = recon("ingest", fixture("unterminated-quote.csv"), "--data-source", source);
    expect(await run.exit).toBe(1);
    expect(run.stderr()).toMatch(/error INVALID_FILE: line 3: unterminated quoted field .* \(line 3\)/);
    expect(run.stderr()).toMatch(/upload id [0-9a-f-]{36}/);
  });

  it("says why it cannot reach the server when signing in (not only 'fetch failed'), and exits 1", async () => {
    const port = await freePort(); // nothing listens there
    const run = recon("ingest", fixture("unterminated-quote.csv"), "--data-source", "00000000-0000-4000-8000-000000000000", "--url", `http://127.0.0.1:${port}`);
    expect(await run.exit).toBe(1);
    expect(run.stderr()).toContain(`ECONNREFUSED 127.0.0.1:${port}`);
  });
});
