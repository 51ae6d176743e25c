import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";

/** V8's optimization status bit "has optimized code" (%GetOptimizationStatus, V8 11). */
const OPTIMIZED = 1 << 4;

/** Runs test/helpers/shape-probe.ts for one engine class in a node of its own (it needs V8's test-only flags). */
function probe(className: string): { before: number; after: number } {
  const output = execFileSync(
    process.execPath,
    ["--import", "tsx", "--allow-natives-syntax", "--expose-gc", "test/helpers/shape-probe.ts", className],
    { encoding: "utf8" },
  );
  return JSON.parse(output.trim().split("\n").at(-1)!) as { before: number; after: number };
}

describe("engine object shapes outlive a block (src/reconcile/shapes.ts)", () => {
  // Without keepShape the class's shape dies with the block's instances, and V8 throws the reader's code away.
  it.each(["Prepared", "CandidateList", "KeyIndex"])("code optimized for %s instances stays optimized after they all die", (className) => {
    const { before, after } = probe(className);
    expect(before & OPTIMIZED).toBe(OPTIMIZED);
    expect(after & OPTIMIZED).toBe(OPTIMIZED);
  });
});
