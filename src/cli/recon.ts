/**
 * `npm run recon -- <command>`: the command-line client of a running recon server. Today one command:
 *
 *   ingest <file.csv> --data-source <id>   streams the file to `PUT /data-sources/<id>/file` (the file is never read
 *                                          whole), with a progress bar on stderr, and prints how the ingest went.
 *
 * It talks HTTP only (no database access): the server authorizes the upload as it would the GraphQL mutation.
 * Exit code 0 when the upload COMPLETED, 1 otherwise.
 */
import { createReadStream, statSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { LoginDocument } from "../../operations/generated/graphql.js";

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
  const token = values.token ?? env.RECON_TOKEN;
  const email = values.email ?? env.RECON_EMAIL;
  const password = values.password ?? env.RECON_PASSWORD;
  if (!token && !(email && password)) throw new UsageError("Give --token (or RECON_TOKEN), or --email and --password (or RECON_EMAIL and RECON_PASSWORD)");
  const baseUrl = (values.url ?? env.RECON_URL ?? "http://localhost:4000").replace(/\/+$/, "").replace(/\/graphql$/, "");
  if (!/^https?:\/\/[^/]/.test(baseUrl)) throw new UsageError(`--url must be an http(s) URL, not '${baseUrl}'`);
  return { file, size, dataSourceId: values["data-source"], policy, force: values.force, baseUrl, token, email, password };
}

/**
 * Signs in with the persisted `Login` mutation, sent by its hash (a server enforcing trusted documents runs nothing
 * else for an anonymous client); returns the bearer token.
 */
async function login(baseUrl: string, email: string, password: string): Promise<string> {
  const sha256Hash = (LoginDocument as { __meta__?: { hash?: string } }).__meta__?.hash;
  const response = await fetch(`${baseUrl}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ operationName: "Login", variables: { email, password }, extensions: { persistedQuery: { version: 1, sha256Hash } } }),
  });
  const body = (await response.json().catch(() => ({}))) as { data?: { login?: { token: string } }; errors?: { message: string }[] };
  const token = body.data?.login?.token;
  if (!token) throw new Error(`Sign-in failed: ${body.errors?.[0]?.message ?? `HTTP ${response.status}`}`);
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

/** Streams the file as the body of `PUT target`, reporting bytes sent; resolves with the server's answer. */
function putFile(target: URL, command: IngestCommand, token: string, onSent: (bytes: number) => void): Promise<UploadResponse> {
  const client = target.protocol === "https:" ? https : http;
  return new Promise<UploadResponse>((resolve, reject) => {
    const file = createReadStream(command.file);
    const request = client.request(target, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "text/csv", "content-length": String(command.size) },
    });
    let answered = false;
    request.on("response", (response) => {
      answered = true;
      // The server answers early only to refuse: the rest of the file is not needed.
      if (response.statusCode !== 200) file.destroy();
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

function printSummary(upload: UploadSummary) {
  const lines = [
    `${upload.status}  ${upload.fileName}  ${formatSize(upload.sizeBytes)}  sha256 ${upload.sha256.slice(0, 16)}…`,
    `rows read ${upload.rowsRead}, ingested ${upload.rowsIngested}, rejected ${upload.rowsRejected}, flagged ${upload.rowsFlagged}`,
  ];
  if (upload.error) lines.push(`error: ${upload.error}${upload.errorLine != null ? ` (line ${upload.errorLine})` : ""}`);
  if (upload.rowsRejected + upload.rowsFlagged > 0) lines.push("row issues: query fileUpload(id) { rowErrors } in GraphQL");
  lines.push(`upload id ${upload.id}`);
  process.stdout.write(`${lines.join("\n")}\n`);
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
      progress.note("sent; the server is finishing the ingest…");
    }
  });
  if (!waiting) progress.note();

  if (response.upload) {
    printSummary(response.upload);
    return response.upload.status === "COMPLETED" ? 0 : 1;
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

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`recon: ${(error as Error).message ?? error}\n`);
    process.exit(1);
  },
);
