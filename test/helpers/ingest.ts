/**
 * Helpers for tests that must catch an ingest in the middle: after its file was received and answered, before its
 * COMMIT. Outside the application, through PostgreSQL locks only (no test-only code in src/).
 */
import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";

/**
 * Holds every ingest of the database just before it writes anything of its rows: its validating statement inserts
 * into `upload_row_issues`, which this table lock blocks (reads of it go on). Everything before — the upload row,
 * streaming the file into COPY, the early answer — is not blocked. Returns the release.
 */
export async function holdIngests(pool: pg.Pool): Promise<() => Promise<void>> {
  const client = await pool.connect();
  await client.query("BEGIN");
  await client.query("LOCK TABLE upload_row_issues IN SHARE ROW EXCLUSIVE MODE");
  return async () => {
    await client.query("COMMIT");
    client.release();
  };
}

/** Polls `read` until the upload it returns is COMPLETED or FAILED (what a client answered early does). */
export async function waitUntilFinal<T extends { status: string }>(read: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const upload = await read();
    if (upload.status === "COMPLETED" || upload.status === "FAILED") return upload;
    if (Date.now() > until) throw new Error(`the upload is still ${upload.status} after ${timeoutMs} ms`);
    await sleep(50);
  }
}
