import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    // Each integration file gets its own database (cloned from a migrated template), so files run in parallel.
    fileParallelism: true,
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // A focused or skipped test must never pass CI silently.
    allowOnly: false,
    // CI (.ci/run) reads a JSON report to fail on skipped tests.
    reporters: process.env.RECON_TEST_REPORT ? ["default", "json"] : ["default"],
    outputFile: process.env.RECON_TEST_REPORT ? { json: process.env.RECON_TEST_REPORT } : undefined,
  },
});
