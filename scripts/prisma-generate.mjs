// Runs `prisma generate` offline. Prisma's CLI insists on locating its native schema engine even though
// `generate` never calls it, and downloading it fails without internet; pointing it at a stub satisfies the check.
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const stub = join(mkdtempSync(join(tmpdir(), "recon-prisma-")), "schema-engine");
writeFileSync(stub, "#!/bin/sh\necho 'schema engine stub: recon applies migrations itself (npm run db:migrate)' >&2\nexit 1\n");
chmodSync(stub, 0o755);

const result = spawnSync("npx", ["prisma", "generate"], {
  stdio: "inherit",
  env: { ...process.env, PRISMA_SCHEMA_ENGINE_BINARY: stub, PRISMA_HIDE_UPDATE_MESSAGE: "1", CHECKPOINT_DISABLE: "1" },
});
process.exit(result.status ?? 1);
