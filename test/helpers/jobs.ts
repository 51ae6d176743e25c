/**
 * Helpers of the reconciliation tests: a CSV uploaded through the real multipart protocol, and a worker process
 * (`npm run worker`'s entry) started on a test database.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { expect } from "vitest";
import type { GraphQLResponse, TestApp } from "./app.js";

/** Uploads `csv` into data source `source` of `app` (GraphQL multipart request) and expects it COMPLETED. */
export async function uploadCsv(app: TestApp, token: string, source: string, csv: string, name = "file.csv"): Promise<void> {
  const form = new FormData();
  form.append("operations", JSON.stringify({ query: `mutation($s: ID!, $f: Upload!) { uploadDataSourceFile(dataSourceId: $s, file: $f) { status } }`, variables: { s: source, f: null } }));
  form.append("map", JSON.stringify({ 0: ["variables.f"] }));
  form.append("0", new Blob([csv], { type: "text/csv" }), name);
  const response = await fetch(app.url, { method: "POST", headers: { authorization: `Bearer ${token}`, "apollo-require-preflight": "true" }, body: form });
  const body = (await response.json()) as GraphQLResponse;
  expect(body.errors).toBeUndefined();
  expect(body.data!.uploadDataSourceFile.status).toBe("COMPLETED");
}

/** Starts a worker process on `databaseUrl`; resolves once it says it is taking jobs. */
export async function startWorkerProcess(databaseUrl: string, env: Record<string, string> = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/worker.ts"], {
    cwd: resolve(import.meta.dirname, "../.."),
    env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  for await (const line of createInterface({ input: child.stdout! })) if (line.includes("taking reconciliation jobs")) break;
  // Keep reading its output, or its writes would block once the pipe is full.
  child.stdout!.resume();
  return child;
}
