/**
 * `npm run recon -- <command>`: the command-line client of a running recon server. Today one command:
 *
 *   ingest <file.csv> --data-source <id>   streams the file to `PUT /data-sources/<id>/file` (the file is never read
 *                                          whole), with a progress bar on stderr, and prints how the ingest went.
 *
 * The upload asks for an early answer (`Prefer: respond-async`): the server answers 202 once it has the whole file,
 * and the CLI then follows the ingest by polling `fileUpload` (the persisted `FileUploadStatus`) until it is final,
 * so no connection sits minutes without an answer (proxies and HTTP clients give up on those). A server that answers
 * only when done is understood too. It talks HTTP only (no database access): the server authorizes the upload as it
 * would the GraphQL mutation. Exit code 0 when the upload COMPLETED, 1 otherwise.
 */
import { createReadStream, statSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { FileUploadDocument, FileUploadStatusDocument, LoginDocument } from "../../operations/generated/graphql.js";

const USAGE = `Usage: npm run recon -- ingest <file.csv> --data-source <id> [options]

Streams a CSV file into a data source of a running recon server and prints how the ingest went.

Options:
  --data-source <id>   The data source to ingest into (required).
  --policy <policy>    SKIP_INVALID_ROWS (default: ingest the valid rows) or REJECT_FILE (nothing if a row is invalid).
  --force              Ingest even if the same file was ingested into this data source before.
  --url <url>          The server (default $RECON_URL, else http://localhost:4000).
  --token <token>      A bearer token (default $RECON_TOKEN); otherwise sign in with:
  --email <email>      (default $RECON_EMAIL)
  --password <pw>      (default $RECON_PASSWORD; prefer the variable, the command line is visible to others)
  -h, --help           Show this help.

Once the server has the whole file it answers at once (Prefer: respond-async) and the ingest is followed until it
is over; interrupting the command then does not stop it (see the upload id printed).

Exit code: 0 when the upload COMPLETED, 1 otherwise.`;

class UsageError extends Error {}

interface IngestCommand {
  file: string;
  size: number;
  dataSourceId: string;
  policy: "SKIP_INVALID_ROWS" | "REJECT_FILE" | undefined;
  force: boolean;
  baseUrl: string;
  token: string | undefined;
  email: string | undefined;
  password: string | undefined;
}

/** Reads the command line and the environment; throws UsageError on anything missing or malformed. */
function parseCommand(argv: string[], env: NodeJS.ProcessEnv): IngestCommand | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        "data-source": { type: "string" },
        policy: { type: "string" },
        force: { type: "boolean", default: false },
        url: { type: "string" },
        token: { type: "string" },
        email: { type: "string" },
        password: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return "help";
  const [command, file, ...extra] = positionals;
  if (command !== "ingest") throw new UsageError(command ? `Unknown command '${command}'` : "Name a command");
  if (!file) throw new UsageError("Name the file to ingest");
  if (extra.length) throw new UsageError(`Unexpected argument '${extra[0]}'`);
  if (!values["data-source"]) throw new UsageError("--data-source <id> is required");
  const policy = values.policy?.toUpperCase();
  if (policy !== undefined && policy !== "SKIP_INVALID_ROWS" && policy !== "REJECT_FILE") {
    throw new UsageError(`--policy must be SKIP_INVALID_ROWS or REJECT_FILE, not '${values.policy}'`);
  }
  let size: number;
  try {
    const stat = statSync(file);
    if (!stat.isFile()) throw new Error("not a regular file");
    size = stat.size;
  } catch (error) {
    throw new UsageError(`Cannot read ${file}: ${(error as Error).message}`);
  }
  // An empty variable is an unset one (`RECON_TOKEN= npm run recon …`), not an empty token.
  const token = values.token || env.RECON_TOKEN || undefined;
  const email = values.email || env.RECON_EMAIL || undefined;
  const password = values.password || env.RECON_PASSWORD || undefined;
  if (!token && !(email && password)) throw new UsageError("Give --token (or RECON_TOKEN), or --email and --password (or RECON_EMAIL and RECON_PASSWORD)");
  const baseUrl = (values.url ?? env.RECON_URL ?? "http://localhost:4000").replace(/\/+$/, "").replace(/\/graphql$/, "");
  if (!/^https?:\/\/[^/]/.test(baseUrl)) throw new UsageError(`--url must be an http(s) URL, not '${baseUrl}'`);
  return { file, size, dataSourceId: values["data-source"], policy, force: values.force, baseUrl, token, email, password };
}

interface GraphQLAnswer<T> {
  status: number;
  data?: T;
  errors?: { message: string; extensions?: { code?: string } }[];
}

/**
 * Sends a persisted operation by its hash (a server enforcing trusted documents runs nothing else for most
 * viewers); a network failure rejects, an HTTP or GraphQL error is in the answer.
 */
async function persisted<T>(baseUrl: string, document: object, operationName: string, variables: object, token?: string): Promise<GraphQLAnswer<T>> {
  const sha256Hash = (document as { __meta__?: { hash?: string } }).__meta__?.hash;
  const response = await fetch(`${baseUrl}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ operationName, variables, extensions: { persistedQuery: { version: 1, sha256Hash } } }),
  });
  const body = (await response.json().catch(() => ({}))) as Omit<GraphQLAnswer<T>, "status">;
  return { status: response.status, ...body };
}

/** Signs in with the persisted `Login` mutation; returns the bearer token. */
async function login(baseUrl: string, email: string, password: string): Promise<string> {
  const answer = await persisted<{ login?: { token: string } }>(baseUrl, LoginDocument, "Login", { email, password });
  const token = answer.data?.login?.token;
  if (!token) throw new Error(`Sign-in failed: ${answer.errors?.[0]?.message ?? `HTTP ${answer.status}`}`);
  return token;
}

const MB = 1_000_000;

function formatSize(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < MB) return `${(bytes / 1000).toFixed(1)} kB`;
  return `${(bytes / MB).toFixed(1)} MB`;
}

/** Progress on stderr: a bar redrawn in place (at most 10 times a second) on a terminal, a line per 10% otherwise. */
function createProgress(total: number, out: NodeJS.WriteStream) {
  const started = performance.now();
  let lastDraw = 0;
  let lastTenth = -1;
  let lastLine = -Infinity;
  let drawn = false;

  function describe(sent: number) {
    const seconds = Math.max((performance.now() - started) / 1000, 0.001);
    const percent = total > 0 ? Math.min(100, (sent / total) * 100) : 100;
    return { percent, text: `${percent.toFixed(0).padStart(3)}%  ${formatSize(sent)} / ${formatSize(total)}  ${(sent / MB / seconds).toFixed(1)} MB/s` };
  }

  return {
    update(sent: number, final = false) {
      const now = performance.now();
      const { percent, text } = describe(sent);
      if (out.isTTY) {
        if (!final && now - lastDraw < 100) return;
        const width = 30;
        const filled = Math.round((percent / 100) * width);
        out.write(`\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${text}\x1b[K`);
        drawn = true;
      } else {
        const tenth = Math.floor(percent / 10);
        if (!final && (tenth === lastTenth || now - lastLine < 1000)) return;
        lastTenth = tenth;
        out.write(`sent ${text}\n`);
      }
      lastDraw = lastLine = now;
    },
    /** Ends the bar's line, then says what happens next, if anything. */
    note(message?: string) {
      if (drawn) out.write("\n");
      drawn = false;
      if (message) out.write(`${message}\n`);
    },
  };
}

interface UploadSummary {
  id: string;
  status: string;
  fileName: string;
  sha256: string;
  sizeBytes: number;
  bytesRead: number;
  rowsRead: number;
  rowsIngested: number;
  rowsRejected: number;
  rowsFlagged: number;
  error: string | null;
  errorLine: number | null;
}

interface UploadResponse {
  status: number;
  upload?: UploadSummary;
  errors?: { message: string; extensions?: { code?: string; line?: number; uploadId?: string } }[];
}

/**
 * Streams the file as the body of `PUT target` with `Prefer: respond-async`, reporting bytes sent; resolves with
 * the server's answer (202 once it has the file, 200 when the ingest was over by then, an error otherwise).
 */
function putFile(target: URL, command: IngestCommand, token: string, onSent: (bytes: number) => void): Promise<UploadResponse> {
  const client = target.protocol === "https:" ? https : http;
  return new Promise<UploadResponse>((resolve, reject) => {
    const file = createReadStream(command.file);
    const request = client.request(target, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "text/csv", "content-length": String(command.size), prefer: "respond-async" },
    });
    let answered = false;
    request.on("response", (response) => {
      answered = true;
      // A server answering before the end of the file refuses it: the rest is not needed.
      if ((response.statusCode ?? 0) >= 300) file.destroy();
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", reject);
      response.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        try {
          resolve({ status: response.statusCode ?? 0, ...(JSON.parse(text) as object) });
        } catch {
          reject(new Error(`The server answered HTTP ${response.statusCode}: ${text.slice(0, 500)}`));
        }
      });
    });
    // Once refused, the connection may close under the rest of the file: the answer is what counts.
    request.on("error", (error) => {
      if (!answered) reject(error);
    });
    file.on("error", (error) => {
      request.destroy();
      reject(error);
    });
    let sent = 0;
    file.on("data", (chunk) => onSent((sent += chunk.length)));
    file.pipe(request);
  });
}

/** How often a followed upload is polled, and how long the server may be unreachable before the CLI gives up. */
const POLL_INTERVAL_MS = 1000;
const POLL_GIVE_UP_MS = 120_000;
/** Row issues printed after an ingest (the rest are in GraphQL). */
const ISSUES_SHOWN = 10;

/**
 * Follows an upload answered early until it is final, polling `fileUpload` and describing it on stderr (redrawn in
 * place on a terminal, a line every ten seconds otherwise). Tolerates the server being unreachable or busy for up
 * to POLL_GIVE_UP_MS (a restart, a deployment): the ingest goes on or ends FAILED without the CLI.
 */
async function followUpload(command: IngestCommand, token: string, upload: UploadSummary, out: NodeJS.WriteStream): Promise<UploadSummary> {
  const started = performance.now();
  let lastSeen = performance.now();
  let lastLine = -Infinity;
  let current = upload;
  for (;;) {
    const seconds = Math.round((performance.now() - started) / 1000);
    const text = `ingesting: ${current.rowsRead.toLocaleString("en")} rows read (${formatSize(current.bytesRead)}); validating and committing… ${seconds} s`;
    if (out.isTTY) out.write(`\r${text}\x1b[K`);
    else if (performance.now() - lastLine >= 10_000) {
      out.write(`${text}\n`);
      lastLine = performance.now();
    }
    if (current.status === "COMPLETED" || current.status === "FAILED") break;
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
    const answer = await persisted<{ fileUpload: UploadSummary | null }>(command.baseUrl, FileUploadStatusDocument, "FileUploadStatus", { id: upload.id }, token).catch(
      (error: Error) => ({ status: 0, data: undefined, errors: [{ message: error.message, extensions: { code: "UNREACHABLE" } }] }),
    );
    const polled = answer.data?.fileUpload;
    if (polled) {
      current = polled;
      lastSeen = performance.now();
      continue;
    }
    const error = answer.errors?.[0];
    const transient = answer.status === 0 || answer.status === 429 || answer.status >= 500 || error?.extensions?.code === "SERVICE_UNAVAILABLE";
    if (!transient || performance.now() - lastSeen > POLL_GIVE_UP_MS) {
      if (out.isTTY) out.write("\n");
      const why = error?.message ?? (answer.data ? "the upload is not visible any more" : `HTTP ${answer.status}`);
      throw new Error(`Could not follow upload ${upload.id} (${why}); it may still finish: query fileUpload(id: "${upload.id}") later`);
    }
  }
  if (out.isTTY) out.write("\n");
  return current;
}

function printSummary(upload: UploadSummary, issues: { line: number; column: string; reason: string }[], issueCount: number) {
  const lines = [
    `${upload.status}  ${upload.fileName}  ${formatSize(upload.sizeBytes)}  sha256 ${upload.sha256.slice(0, 16)}…`,
    `rows read ${upload.rowsRead}, ingested ${upload.rowsIngested}, rejected ${upload.rowsRejected}, flagged ${upload.rowsFlagged}`,
  ];
  if (upload.error) lines.push(`error: ${upload.error}${upload.errorLine != null ? ` (line ${upload.errorLine})` : ""}`);
  for (const issue of issues) lines.push(`  line ${issue.line}, ${issue.column}: ${issue.reason}`);
  if (issueCount > issues.length) lines.push(`  … ${issueCount - issues.length} more: query fileUpload(id) { rowErrors } in GraphQL`);
  lines.push(`upload id ${upload.id}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}

/** The first row issues of an upload (errors first: they say why rows were not ingested), best effort. */
async function firstIssues(command: IngestCommand, token: string, upload: UploadSummary) {
  if (upload.rowsRejected + upload.rowsFlagged === 0) return { issues: [], count: 0 };
  type Page = { fileUpload: { rowErrors: { totalCount: number; edges: { node: { line: number; column: string; reason: string } }[] } } | null };
  const severity = upload.rowsRejected > 0 ? "ERROR" : "WARNING";
  const answer = await persisted<Page>(command.baseUrl, FileUploadDocument, "FileUpload", { id: upload.id, first: ISSUES_SHOWN, severity }, token).catch(() => null);
  const page = answer?.data?.fileUpload?.rowErrors;
  if (!page) return { issues: [], count: 0 };
  return { issues: page.edges.map((edge) => edge.node), count: page.totalCount };
}

async function ingest(command: IngestCommand): Promise<number> {
  const token = command.token ?? (await login(command.baseUrl, command.email!, command.password!));
  const target = new URL(`${command.baseUrl}/data-sources/${encodeURIComponent(command.dataSourceId)}/file`);
  target.searchParams.set("name", basename(command.file));
  if (command.policy) target.searchParams.set("policy", command.policy);
  if (command.force) target.searchParams.set("force", "true");

  const progress = createProgress(command.size, process.stderr);
  let waiting = false;
  const response = await putFile(target, command, token, (sent) => {
    progress.update(sent, sent === command.size);
    if (sent === command.size && !waiting) {
      waiting = true;
      progress.note("sent; waiting for the server…");
    }
  });
  if (!waiting) progress.note();

  if (response.upload) {
    let upload = response.upload;
    if (response.status === 202) {
      process.stderr.write(`the server has the file (upload ${upload.id}); following its ingest\n`);
      upload = await followUpload(command, token, upload, process.stderr);
    }
    const { issues, count } = await firstIssues(command, token, upload);
    printSummary(upload, issues, count);
    return upload.status === "COMPLETED" ? 0 : 1;
  }
  for (const error of response.errors ?? [{ message: `HTTP ${response.status}` }]) {
    const { code, line, uploadId } = error.extensions ?? {};
    process.stderr.write(`error${code ? ` ${code}` : ""}: ${error.message}${line != null ? ` (line ${line})` : ""}\n`);
    if (uploadId) process.stderr.write(`upload id ${uploadId}\n`);
  }
  return 1;
}

async function main(): Promise<number> {
  let command;
  try {
    command = parseCommand(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${error.message}\n\n${USAGE}\n`);
    return 1;
  }
  if (command === "help") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  return ingest(command);
}

/**
 * An error as a line: fetch's own is "fetch failed", with what happened (a refused connection, an unknown host) in
 * its `cause`.
 */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause.message : null;
  return cause && cause !== error.message ? `${error.message}: ${cause}` : error.message;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`recon: ${describeError(error)}\n`);
    process.exit(1);
  },
);
