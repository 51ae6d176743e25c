/**
 * `npm run check:operations` (CI runs it): the frontend's operations and the schema still fit together.
 * 1. Generated code is up to date: `graphql-codegen --check` (resolver types, typed documents, the manifest).
 * 2. Every operation in operations/ is valid against schema.graphql and within the server's operation limits
 *    (`graphql-inspector validate`: depth, aliases, directives and tokens as graphql-armor enforces them, plus
 *    inspector's shape complexity, which ignores page sizes: armor's cost is checked by test/unit/persisted-operations).
 * 3. schema.graphql has no breaking change against the previous commit's (`graphql-inspector diff`): against HEAD
 *    while schema.graphql has uncommitted changes, else against HEAD~1. Removing a field deprecated in an earlier
 *    commit is allowed (deprecate first, remove later); anything else breaking fails.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { OPERATION_LIMITS } from "../src/http/graphql-route.js";

/**
 * graphql-inspector's complexity (scalar 1, object 2, ×1.5 per level): the heaviest operation (a page of
 * discrepancies with both sides' records and the duplicate) scores ~1,900. The margin lets operations grow a little;
 * a new nested list of records would not fit.
 */
const MAX_COMPLEXITY = 2500;

function run(step: string, command: string, args: string[]): void {
  console.log(`::: ${step}`);
  const result = spawnSync(command, args, { stdio: "inherit" });
  if (result.status !== 0) {
    console.error(`check:operations failed: ${step}`);
    process.exit(result.status ?? 1);
  }
}

const git = (...args: string[]) => spawnSync("git", args, { encoding: "utf8" });

/** The commit to compare schema.graphql with, or null when there is none (a first commit, or no git). */
function baseCommit(): string | null {
  if (git("rev-parse", "--verify", "--quiet", "HEAD").status !== 0) return null;
  const uncommitted = git("diff", "--quiet", "HEAD", "--", "schema.graphql").status !== 0;
  if (uncommitted) return "HEAD";
  return git("rev-parse", "--verify", "--quiet", "HEAD~1").status === 0 ? "HEAD~1" : null;
}

const bin = (name: string) => `node_modules/.bin/${name}`;

run("generated code is up to date (graphql-codegen --check)", bin("graphql-codegen"), ["--config", "codegen.ts", "--check"]);
run("operations are valid and within the limits (graphql-inspector validate)", bin("graphql-inspector"), [
  "validate", "operations/*.graphql", "schema.graphql",
  "--maxDepth", String(OPERATION_LIMITS.depth),
  "--maxAliasCount", String(OPERATION_LIMITS.aliases),
  "--maxDirectiveCount", String(OPERATION_LIMITS.directives),
  "--maxTokenCount", String(OPERATION_LIMITS.tokens),
  "--maxComplexityScore", String(MAX_COMPLEXITY),
  "--onlyErrors",
]);
const base = baseCommit();
if (base) {
  const commit = execFileSync("git", ["rev-parse", "--short", base], { encoding: "utf8" }).trim();
  run(`no breaking schema change against ${base} (${commit}) (graphql-inspector diff)`, bin("graphql-inspector"), [
    "diff", `git:${base}:schema.graphql`, "schema.graphql", "--rule", "suppressRemovalOfDeprecatedField",
  ]);
} else {
  console.log("::: no earlier commit of schema.graphql to compare with: breaking-change check skipped");
}
console.log("check:operations: ok");
