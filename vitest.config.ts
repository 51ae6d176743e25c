import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    // graphql 16 ships CJS (main) and ESM (module) builds with no "exports" map: Node loads the CJS one for every
    // dependency (graphql-tools, graphql-ws, Apollo), Vite would give our own files the ESM one, and a schema from
    // one build is refused by the other ("Cannot use GraphQLSchema from another module or realm"). One build, as in
    // production.
    alias: [{ find: /^graphql$/, replacement: "graphql/index.js" }],
  },
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
