/**
 * Engine threads kept between jobs (engine-thread.ts `createEnginePool`): a job on a thread that served other jobs
 * (and the synthetic warm-up) gets exactly the results of a thread of its own; a thread whose job was stopped or
 * failed is not handed to another; the warm-up runs every pass of the default rules and yields every outcome, so
 * that it compiles what jobs run. Real worker threads; no database.
 */
import { createHash } from "node:crypto";
import { afterEach, expect, it } from "vitest";
import { createEnginePool, type EngineJob, type EnginePool, type EngineThread, EngineStopped, engineHeapLimitMb, startEngineThread } from "../../src/modules/jobs/engine-thread.js";
import { warmupBlocks } from "../../src/modules/jobs/engine-warmup.js";
import { DEFAULT_RULE_SET, parseRuleSet } from "../../src/reconcile/rules.js";

const heapLimitMb = engineHeapLimitMb(80_000);
const job = (jobId: string, persist = true): EngineJob => ({
  jobId,
  projectId: "0b4c55a8-3f0e-4b38-9d7c-1f3f0c4f2a11",
  rules: DEFAULT_RULE_SET,
  persist,
  pushed: { hits: [7, 0, 0, 0, 0] },
});

/** Runs the synthetic records as a job on `thread`: a digest of everything it wrote, and its summary. */
async function run(thread: EngineThread) {
  const hash = createHash("sha256");
  for (const block of warmupBlocks(DEFAULT_RULE_SET.maxDateSpanDays)) {
    const result = await thread.match(block, (chunk) => hash.update(chunk));
    if (result.exceptions) hash.update(result.exceptions);
  }
  const summary = await thread.finish({ match: 0 }, [{ currency: "EUR", amount: "12.5000" }]);
  await thread.close();
  return { digest: hash.digest("hex"), summary };
}

let pool: EnginePool | null = null;
afterEach(async () => {
  await pool?.close();
  pool = null;
});

it("a job on a thread that ran the warm-up and another job gets the results of a thread of its own", async () => {
  const alone = await run(startEngineThread(job("6f1d2c3b-0000-4000-8000-000000000002"), { heapLimitMb }));

  pool = createEnginePool({ size: 1, heapLimitMb, warmupRules: DEFAULT_RULE_SET });
  await pool.warm();
  expect(pool.idle).toBe(1);
  const first = await pool.start(job("6f1d2c3b-0000-4000-8000-000000000001", false));
  expect(pool.idle).toBe(0);
  await run(first);
  expect(pool.idle).toBe(1);
  const second = await pool.start(job("6f1d2c3b-0000-4000-8000-000000000002"));
  expect(second.threadId).toBe(first.threadId);
  const shared = await run(second);

  expect(shared.digest).toBe(alone.digest);
  expect(shared.summary).toEqual(alone.summary);
});

it("a thread whose job was stopped, or failed, is not handed to the next job", async () => {
  pool = createEnginePool({ size: 1, heapLimitMb, warmupRules: DEFAULT_RULE_SET });
  const stopped = await pool.start(job("6f1d2c3b-0000-4000-8000-000000000003"));
  stopped.stop();
  await expect(stopped.match(warmupBlocks(9)[0]!, () => {})).rejects.toBeInstanceOf(EngineStopped);
  await stopped.close();
  expect(pool.idle).toBe(0);

  // A pattern the thread cannot compile (rule sets are checked when saved; this one never was) fails the job there.
  const rules = parseRuleSet({ passes: [{ name: "regex", mode: "AUTO", kind: "ONE_TO_ONE", comparators: [{ field: "reference", type: "regex", pattern: "^(INV)" }, { field: "amount", type: "exact" }] }] });
  const unchecked = { ...rules, passes: [{ ...rules.passes[0]!, comparators: [{ ...rules.passes[0]!.comparators[0]!, pattern: "(" }] }] } as typeof rules;
  const failing = await pool.start({ ...job("6f1d2c3b-0000-4000-8000-000000000004"), rules: unchecked, pushed: null });
  await expect(failing.match(warmupBlocks(9)[0]!, () => {})).rejects.toThrow();
  await failing.close();
  expect(pool.idle).toBe(0);

  const next = await pool.start(job("6f1d2c3b-0000-4000-8000-000000000005"));
  expect(next.threadId).not.toBe(stopped.threadId);
  expect(next.threadId).not.toBe(failing.threadId);
  await run(next);
  expect(pool.idle).toBe(1);
});

it("a job that arrives while the pool warms up waits for the warm thread instead of starting a cold one", async () => {
  pool = createEnginePool({ size: 1, heapLimitMb, warmupRules: DEFAULT_RULE_SET });
  const warming = pool.warm();
  const thread = await pool.start(job("6f1d2c3b-0000-4000-8000-000000000006"));
  await warming;
  await run(thread);
  // The job's thread was the warmed one: it is the only thread the pool keeps.
  const again = await pool.start(job("6f1d2c3b-0000-4000-8000-000000000007"));
  expect(again.threadId).toBe(thread.threadId);
  await run(again);
});

it("the warm-up runs every pass of the default rules and yields every outcome", async () => {
  const { summary } = await run(startEngineThread(job("6f1d2c3b-0000-4000-8000-000000000008"), { heapLimitMb }));
  // The first pass's 7 are the pushed pairs the job was begun with.
  const engineGroups = summary.passes.map((pass) => pass.groups - (pass.pass === 1 ? 7 : 0));
  expect(engineGroups.every((groups) => groups > 0)).toBe(true);
  const outcomes = summary.outcomes.map((entry) => entry.outcome).sort();
  expect(outcomes).toEqual(["AMOUNT_MISMATCH", "CURRENCY_MISMATCH", "DATE_LAG", "DUPLICATE", "MATCHED", "REFERENCE_MISMATCH", "SUGGESTED", "UNMATCHED_LEFT", "UNMATCHED_RIGHT"]);
});

it("a pool closed while it warms up ends its threads at once, and the warm-up counts that as no failure", async () => {
  const closing = createEnginePool({ size: 2, heapLimitMb, warmupRules: DEFAULT_RULE_SET });
  const warming = closing.warm();
  await closing.close();
  await expect(warming).resolves.toBeUndefined();
  expect(closing.idle).toBe(0);
});
