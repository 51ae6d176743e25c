/**
 * Upload requests as clients get them wrong or send them differently, over real HTTP: one multipart file mapped to
 * two Upload variables (refused before anything runs), gzip bodies on the PUT route (decoded as they stream; the
 * file is the decoded bytes) and other content codings (415), a client gone midway (the upload says so, the log
 * names the request and the upload), and tampered row-issue cursors (BAD_USER_INPUT, not a failed query).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { once } from "node:events";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { errorCode, ok, startTestApp, type GraphQLResponse, type TestApp, type TestUser } from "../helpers/app.js";

const MAX_UPLOAD_BYTES = 4 * 1024 * 1024;
const fixture = (name: string) => readFileSync(join(import.meta.dirname, "../fixtures/ingest", name));
const sha256 = (content: Buffer) => createHash("sha256").update(content).digest("hex");

let t: TestApp;
let db: pg.Pool;
let analyst: TestUser;
let projectId: string;

beforeAll(async () => {
  t = await startTestApp({ RECON_MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES), LOG_LEVEL: "error" });
  db = new pg.Pool({ connectionString: t.db.url, max: 2 });
  analyst = await t.createUser("ANALYST");
  projectId = ok(await t.graphql(`mutation { createProject(input: { name: "Uploads" }) { id } }`, {}, analyst.token)).createProject.id;
});

afterAll(async () => {
  await db?.end();
  await t?.close();
});

let sources = 0;
async function createSource(): Promise<string> {
  sources += 1;
  const created = ok(await t.graphql(`mutation($p: ID!, $n: String!) { createDataSource(input: { projectId: $p, name: $n }) { id } }`, { p: projectId, n: `Source ${sources}` }, analyst.token));
  return created.createDataSource.id;
}

/** The uploads of a data source, as stored. */
async function uploadsOf(source: string) {
  const { rows } = await db.query(`SELECT id, status::text AS status, error, bytes_read::int AS "bytesRead" FROM uploaded_files WHERE data_source_id = $1`, [source]);
  return rows;
}

/** `PUT /data-sources/<id>/file` with a body as given (sent as it is: fetch does not encode request bodies). */
async function put(source: string, body: Buffer, headers: Record<string, string> = {}) {
  const response = await fetch(new URL(`/data-sources/${source}/file?name=ledger.csv`, t.url), {
    method: "PUT",
    headers: { authorization: `Bearer ${analyst.token}`, "content-type": "text/csv", ...headers },
    body: new Uint8Array(body),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as { upload?: Record<string, any>; errors?: { message: string; extensions: Record<string, any> }[] } };
}

describe("multipart", () => {
  it("refuses one file mapped to two Upload variables with 400 before anything runs (a stream is read once)", async () => {
    const source = await createSource();
    const query = `mutation($s: ID!, $f: Upload!, $g: Upload!) {
      a: uploadDataSourceFile(dataSourceId: $s, file: $f) { id status }
      b: uploadDataSourceFile(dataSourceId: $s, file: $g) { id status }
    }`;
    const form = new FormData();
    form.append("operations", JSON.stringify({ query, variables: { s: source, f: null, g: null } }));
    form.append("map", JSON.stringify({ 0: ["variables.f", "variables.g"] }));
    form.append("0", new Blob([new Uint8Array(fixture("good.csv"))], { type: "text/csv" }), "good.csv");
    const response = await fetch(t.url, { method: "POST", headers: { authorization: `Bearer ${analyst.token}`, "apollo-require-preflight": "true" }, body: form });
    const body = (await response.json()) as GraphQLResponse;
    expect(response.status).toBe(400);
    expect(body.data ?? null).toBeNull();
    expect(body.errors).toHaveLength(1);
    expect(body.errors![0]!.message).toBe(
      "The 'map' entry '0' names 2 paths: a file is streamed and can be read once, so each Upload variable needs its own file part",
    );
    expect(await uploadsOf(source)).toEqual([]);
  });
});

describe("PUT with a Content-Encoding", () => {
  it("decodes a gzip body as the file: its records, size and SHA-256 are the decoded file's, and a duplicate is one by content", async () => {
    const source = await createSource();
    const file = fixture("good.csv");
    const gzipped = await put(source, gzipSync(file), { "content-encoding": "gzip" });
    expect(gzipped.status).toBe(200);
    expect(gzipped.body.upload).toMatchObject({ status: "COMPLETED", rowsIngested: 4, rowsRejected: 0, sizeBytes: file.length, sha256: sha256(file) });
    // The same file again, plain or gzipped (at another level: other bytes on the wire), is the same file.
    for (const [body, headers] of [[file, {}], [gzipSync(file, { level: 1 }), { "content-encoding": "x-gzip" }]] as const) {
      const again = await put(source, body, headers);
      expect(again.status).toBe(409);
      expect(again.body.errors![0]!.extensions.code).toBe("DUPLICATE_FILE");
    }
    // `identity` is no coding at all.
    const identity = await put(await createSource(), file, { "content-encoding": "identity" });
    expect(identity.body.upload).toMatchObject({ status: "COMPLETED", sha256: sha256(file) });
  });

  it("refuses any other coding with 415 naming it, before reading the body", async () => {
    const source = await createSource();
    for (const coding of ["br", "deflate", "zstd", "gzip, gzip", "gzip, br"]) {
      const refused = await put(source, fixture("good.csv"), { "content-encoding": coding });
      expect(refused.status, coding).toBe(415);
      expect(refused.headers.get("accept-encoding")).toBe("gzip");
      expect(refused.body.errors![0]!.extensions.code).toBe("UNSUPPORTED_MEDIA_TYPE");
      expect(refused.body.errors![0]!.message).toBe(
        `Content-Encoding '${coding}' is not supported: send the file as it is, or gzip-compressed with Content-Encoding: gzip`,
      );
    }
    expect(await uploadsOf(source)).toEqual([]);
  });

  it("fails a body that is not gzip with INVALID_FILE, not as text in the wrong encoding", async () => {
    const source = await createSource();
    const refused = await put(source, fixture("good.csv"), { "content-encoding": "gzip" });
    expect(refused.status).toBe(422);
    expect(refused.body.errors![0]!.extensions.code).toBe("INVALID_FILE");
    expect(refused.body.errors![0]!.message).toMatch(/^The body is not valid gzip \(Content-Encoding: gzip\): /);
    // A gzip stream cut short too.
    const whole = gzipSync(fixture("good.csv"));
    const cut = await put(source, whole.subarray(0, whole.length - 12), { "content-encoding": "gzip" });
    expect(cut.status).toBe(422);
    expect(cut.body.errors![0]!.message).toMatch(/^The body is not valid gzip/);
  });

  it("applies the upload limit to the decoded bytes, and refuses a body that expands like a decompression bomb", async () => {
    const header = "id,amount,currency,date\n";
    // Varied rows: about fivefold in gzip, so only the decoded size is over the limit.
    const rows: string[] = [header];
    for (let i = 0, size = header.length; size <= MAX_UPLOAD_BYTES; i++) {
      const row = `R-${i},${(i * 7919) % 100_000}.${i % 100},EUR,2026-01-${String((i % 28) + 1).padStart(2, "0")}\n`;
      rows.push(row);
      size += row.length;
    }
    const large = gzipSync(Buffer.from(rows.join("")));
    expect(large.length).toBeLessThan(MAX_UPLOAD_BYTES / 2);
    const tooLarge = await put(await createSource(), large, { "content-encoding": "gzip" });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.errors![0]!.message).toBe(`The file is larger than the ${MAX_UPLOAD_BYTES}-byte upload limit`);
    // Under the limit once decoded, but the same row over and over: it expands a thousandfold.
    const bomb = gzipSync(Buffer.from(header + "R-1,1.00,EUR,2026-01-01\n".repeat(120_000)));
    const refused = await put(await createSource(), bomb, { "content-encoding": "gzip" });
    expect(refused.status).toBe(413);
    expect(refused.body.errors![0]!.message).toMatch(/^The gzip body expands more than 100-fold \(\d+ bytes from \d+\): refused as a likely decompression bomb/);
  });
});

describe("a client gone midway", () => {
  it("fails the upload saying how much was sent, and logs it with the request id and the upload id", async () => {
    const source = await createSource();
    const info = vi.spyOn(t.app.container.logger, "info");
    const rows = Array.from({ length: 100 }, (_, i) => `C-${i},${i}.50,EUR,2026-02-01\n`).join("");
    const sent = Buffer.from(`id,amount,currency,date\n${rows}`).subarray(0, 764);
    const { hostname, port } = new URL(t.url);
    const socket = connect(Number(port), hostname);
    await once(socket, "connect");
    socket.write(
      [
        `PUT /data-sources/${source}/file?name=cut.csv HTTP/1.1`,
        `Host: ${hostname}:${port}`,
        `Authorization: Bearer ${analyst.token}`,
        "Content-Type: text/csv",
        "Content-Length: 5000",
        "X-Request-Id: upload-cut-short",
        "",
        "",
      ].join("\r\n"),
    );
    socket.write(sent);
    // The server has read what was sent once its progress says so; then the client goes.
    const [upload] = await vi.waitFor(
      async () => {
        const found = await uploadsOf(source);
        expect(found).toMatchObject([{ status: "PROCESSING", bytesRead: 764 }]);
        return found;
      },
      { timeout: 15_000, interval: 50 },
    );
    socket.destroy();
    await vi.waitFor(async () => expect(await uploadsOf(source)).toMatchObject([{ status: "FAILED" }]), { timeout: 15_000, interval: 50 });
    expect((await uploadsOf(source))[0]!.error).toBe("The client disconnected after 764 of 5000 bytes; nothing was ingested");
    await vi.waitFor(() =>
      expect(info).toHaveBeenCalledWith(
        expect.objectContaining({ requestId: "upload-cut-short", uploadId: upload.id, dataSourceId: source, received: 764, contentLength: 5000 }),
        "the client closed an upload before sending all of it",
      ),
    );
    info.mockRestore();
  });
});

describe("rowErrors cursors", () => {
  it("answers a tampered cursor with BAD_USER_INPUT naming `after`, whatever numbers it holds", async () => {
    const source = await createSource();
    const uploaded = await put(source, fixture("mixed-errors.csv"));
    const id = uploaded.body.upload!.id as string;
    const page = (after: string | null) =>
      t.graphql(`query($id: ID!, $after: String) { fileUpload(id: $id) { rowErrors(first: 2, after: $after) { edges { node { line } } pageInfo { endCursor } } } }`, { id, after }, analyst.token);
    // A cursor of ours pages on.
    const first = ok(await page(null)).fileUpload.rowErrors;
    const second = ok(await page(first.pageInfo.endCursor)).fileUpload.rowErrors;
    expect(second.edges[0].node.line).toBeGreaterThanOrEqual(first.edges[1].node.line);
    const cursor = (value: string) => Buffer.from(value).toString("base64url");
    for (const tampered of ["[1e20,\"1\"]", "[2147483648,\"1\"]", "[-1,\"1\"]", "[2,\"9223372036854775808\"]", "[2,\"99999999999999999999\"]", "[2,1]", "[2.5,\"1\"]", "{}"]) {
      const response = await page(cursor(tampered));
      expect(errorCode(response), tampered).toBe("BAD_USER_INPUT");
      expect(response.errors![0]!.extensions!.field).toBe("after");
      expect(response.errors![0]!.message).toBe("after: is not a cursor from this list (use pageInfo.endCursor)");
    }
  });
});
