import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";

describe("config", () => {
  it("has defaults that start an embedded database on port 4000", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ port: 4000, databaseUrl: undefined, adminEmail: "admin@recon.local", databasePoolSize: 10 });
  });

  it.each([
    [{ PORT: "abc" }, /PORT must be an integer/],
    [{ DATABASE_POOL_SIZE: "0" }, /DATABASE_POOL_SIZE must be an integer >= 1/],
    [{ RECON_JWT_SECRET: "short" }, /RECON_JWT_SECRET must be at least 32 characters/],
  ])("rejects %j", (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  it("enforces trusted documents by default in production only", () => {
    expect(loadConfig({}).trustedDocuments).toBe(false);
    expect(loadConfig({ NODE_ENV: "production" }).trustedDocuments).toBe(true);
    expect(loadConfig({ NODE_ENV: "production", RECON_TRUSTED_DOCUMENTS: "off" }).trustedDocuments).toBe(false);
    expect(loadConfig({ RECON_TRUSTED_DOCUMENTS: "on" }).trustedDocuments).toBe(true);
    expect(() => loadConfig({ RECON_TRUSTED_DOCUMENTS: "maybe" })).toThrow(/RECON_TRUSTED_DOCUMENTS must be "on" or "off"/);
  });

  it("lower-cases the admin email", () => {
    expect(loadConfig({ RECON_ADMIN_EMAIL: "Boss@Example.COM" }).adminEmail).toBe("boss@example.com");
  });
});
