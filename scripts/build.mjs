/**
 * `npm run build`: compiles src/ to dist/ (plain JavaScript: the server then runs with `node`, without tsx's
 * loader, about 50 MB lighter) and copies beside it the files the code reads at run time, at the same relative
 * places: schema.graphql, the persisted-documents manifest, prisma/ (schema and migrations) and GraphiQL's page
 * assets.
 */
import { execFileSync } from "node:child_process";
import { cpSync, rmSync } from "node:fs";
import { createRequire } from "node:module";

const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
rmSync("dist", { recursive: true, force: true });
execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { stdio: "inherit" });
cpSync("schema.graphql", "dist/schema.graphql");
cpSync("operations/generated/persisted-documents.json", "dist/operations/generated/persisted-documents.json");
cpSync("prisma", "dist/prisma", { recursive: true });
cpSync("src/http/graphiql", "dist/src/http/graphiql", { recursive: true });
console.log("built dist/ — run it with `npm run start:prod`");
