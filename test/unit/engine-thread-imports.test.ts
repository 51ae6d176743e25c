/**
 * An engine thread (engine-worker.ts) is started for every job that finds no idle one (engine-thread.ts), and what
 * it loads is on such a job's critical path: zod, graphql and pg each took about 50 ms to load, and the thread
 * 175 ms to start with them, 45 ms without.
 * This walks the thread's import graph (type-only imports erased, as the compiler does) and lists the packages in it.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ENTRY = resolve(import.meta.dirname, "../../src/modules/jobs/engine-worker.ts");

/** Whether an import or export clause names only types (`type X`, `{ type A, type B }`): compiled away. */
function typeOnly(clause: string): boolean {
  if (/^type\s/.test(clause)) return true;
  const names = /^\{([^}]*)\}$/.exec(clause)?.[1]?.split(",").map((name) => name.trim()).filter(Boolean);
  return names !== undefined && names.length > 0 && names.every((name) => name.startsWith("type "));
}

/** The packages `file` and the modules it imports at run time load, following relative imports. */
function packagesLoadedBy(file: string, seen = new Set<string>(), packages = new Set<string>()): Set<string> {
  if (seen.has(file)) return packages;
  seen.add(file);
  const source = readFileSync(file, "utf8");
  for (const [, clause, specifier] of source.matchAll(/^(?:import|export)\s+([^;]*?)\s*from\s+["']([^"']+)["']/gms)) {
    if (typeOnly(clause!.trim())) continue;
    if (specifier!.startsWith(".")) packagesLoadedBy(resolve(dirname(file), specifier!.replace(/\.js$/, ".ts")), seen, packages);
    else packages.add(specifier!);
  }
  return packages;
}

describe("the engine thread", () => {
  it("loads no schema, GraphQL or database library", () => {
    const packages = [...packagesLoadedBy(ENTRY)].sort();
    // node:v8 (built in) turns on the linear-time RegExp engine for the regex comparator (reconcile/regex-pattern.ts).
    expect(packages).toEqual(["node:v8", "node:worker_threads"]);
  });
});
