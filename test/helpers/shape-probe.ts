/**
 * Run by test/unit/engine-shapes.test.ts in a child process with `--allow-natives-syntax --expose-gc`: optimizes a
 * function over each engine class's instances, lets every instance of the "block" die, runs a full collection, and
 * prints whether the function's optimized code survived (V8 throws away code specialized to an object shape that
 * died). Argument: the class; prints one line of JSON, { before, after }: the function's V8 optimization status bits.
 */
import { CandidateList } from "../../src/reconcile/assignment.js";
import { KeyIndex } from "../../src/reconcile/blocking.js";
import { prepare, type Prepared } from "../../src/reconcile/comparators.js";
import type { EngineRecord } from "../../src/reconcile/types.js";

type Natives = (f: (...args: never[]) => unknown) => number;
// Natives syntax is not TypeScript: compiled from strings (the flag makes V8 accept it there too).
const prepareForOptimization = new Function("f", "%PrepareFunctionForOptimization(f)") as Natives;
const optimizeOnNextCall = new Function("f", "%OptimizeFunctionOnNextCall(f)") as Natives;
const status = new Function("f", "return %GetOptimizationStatus(f)") as Natives;
const gc = (globalThis as { gc?: () => void }).gc!;

const record = (i: number): EngineRecord => ({
  id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
  externalId: `x${i}`,
  amount: BigInt(i) * 100n,
  currency: "EUR",
  bookedDate: 19_000 + (i % 7),
  valueDate: null,
  reference: `INV-${i}`,
  description: "",
  counterparty: "",
});

/** A block's worth of instances of one class, as the engine makes them (fresh per block, all dropped at its end). */
const blocks = {
  Prepared: () => {
    const prepared = prepare(Array.from({ length: 64 }, (_, i) => record(i)));
    prepared[0]!.normalized("reference");
    return prepared;
  },
  CandidateList: () => {
    const candidates = new CandidateList();
    candidates.pushPair(0, 1, 0.9, 1, 100n);
    return [candidates];
  },
  KeyIndex: () => {
    const keys = new KeyIndex([(p) => p.record.currency]);
    keys.id(prepare([record(1)])[0]!, true);
    return [keys];
  },
};

/** A function whose optimized code is specialized to the shape of the instances it reads. */
const readers: { [K in keyof typeof blocks]: (instances: ReturnType<(typeof blocks)[K]>) => number } = {
  Prepared: (instances) => {
    let sum = 0;
    for (const p of instances as Prepared[]) sum += p.amountFloat + p.index;
    return sum;
  },
  CandidateList: (instances) => instances[0]!.size,
  KeyIndex: (instances) => instances[0]!.size,
};

const name = process.argv[2] as keyof typeof blocks;
const read = readers[name] as (instances: unknown) => number;
let instances: unknown = blocks[name]();
prepareForOptimization(read);
read(instances);
read(instances);
optimizeOnNextCall(read);
read(instances);
const before = status(read);
instances = null;
gc();
gc();
const result = { before, after: status(read) };
console.log(JSON.stringify(result));
