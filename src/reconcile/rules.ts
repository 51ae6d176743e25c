/**
 * The rule set of a reconciliation: ordered passes of comparators, then the discrepancy and duplicate stages.
 * Stored as JSON (saved per project, snapshotted on each job), validated here with zod so that a bad rule set is
 * refused when it is saved, with an error naming the exact setting that is wrong
 * (`passes[1].comparators[0].tolerance: must be a decimal such as 0.01`).
 */
import { z } from "zod";
import { parseDecimal } from "./money.js";
import { patternProblem } from "./regex-pattern.js";
import { DEFAULT_THRESHOLD, isTextComparator, TEXT_FIELDS, type TextField } from "./rule-fields.js";

export { DEFAULT_THRESHOLD, isTextComparator, TEXT_FIELDS, type TextField } from "./rule-fields.js";
/** How text comparators compare (see comparators.ts for each). */
export const TEXT_COMPARISONS = ["exact", "normalized", "contains", "regex", "tokenSet", "jaroWinkler", "levenshtein"] as const;
/** Text comparisons that yield a graded similarity and pass at a threshold. */
export const SIMILARITY_COMPARISONS: readonly string[] = ["tokenSet", "jaroWinkler", "levenshtein"];
/** Largest date window, in days, either way. */
export const MAX_WINDOW_DAYS = 366;
/** `maxDateSpanDays` when the rule set gives none. */
export const DEFAULT_MAX_DATE_SPAN_DAYS = 60;

const DECIMAL_MESSAGE = "must be a decimal such as 0.01";
/** A non-negative decimal with at most 4 decimals, kept as a string so the engine can use it exactly. */
const decimal = z.string().regex(/^\d{1,12}(\.\d{1,4})?$/, DECIMAL_MESSAGE);

const common = {
  /** Weight of this comparator in the pass's confidence. */
  weight: z.number().positive("must be greater than 0").max(1000).default(1),
  /** A required comparator must pass for a pair to match; others only add to (or take from) the confidence. */
  required: z.boolean().default(true),
};

const amountComparator = z.discriminatedUnion(
  "type",
  [
    z.strictObject({ field: z.literal("amount"), type: z.literal("exact"), ...common }),
    z.strictObject({ field: z.literal("amount"), type: z.literal("absolute"), tolerance: decimal, ...common }),
    z.strictObject({
      field: z.literal("amount"),
      type: z.literal("percent"),
      /** Percent of the base, e.g. "0.5" for 0.5 %. */
      tolerance: decimal.refine((value) => parseDecimal(value) <= 100_0000n, "must be at most 100 (percent)"),
      base: z.enum(["LARGER", "SMALLER", "LEFT", "RIGHT"]),
      ...common,
    }),
  ],
  { error: "for field amount must be one of exact, absolute, percent" },
);

const dateComparator = z
  .strictObject({
    field: z.enum(["bookedDate", "valueDate"]),
    type: z.literal("dateWindow", { error: "for a date field must be dateWindow" }),
    /** right date − left date must lie in [minDays, maxDays]. */
    minDays: z.number().int().min(-MAX_WINDOW_DAYS).max(MAX_WINDOW_DAYS),
    maxDays: z.number().int().min(-MAX_WINDOW_DAYS).max(MAX_WINDOW_DAYS),
    ...common,
  })
  .refine((c) => c.minDays <= c.maxDays, { path: ["maxDays"], message: "must be at least minDays" });

const currencyComparator = z.strictObject({
  field: z.literal("currency"),
  type: z.literal("equal", { error: "for field currency must be equal" }),
  ...common,
});

const textComparator = z
  .strictObject({
    field: z.enum(TEXT_FIELDS),
    type: z.enum(TEXT_COMPARISONS),
    /** For tokenSet, jaroWinkler and levenshtein: the similarity at which the comparator passes (default 0.8). */
    threshold: z.number().min(0).max(1).optional(),
    /** For regex: a pattern with one capture group; the pair passes when both values capture the same non-empty text. */
    pattern: z.string().optional(),
    ...common,
  })
  .superRefine((c, ctx) => {
    if (c.threshold !== undefined && !SIMILARITY_COMPARISONS.includes(c.type)) {
      ctx.addIssue({ code: "custom", path: ["threshold"], message: "applies only to tokenSet, jaroWinkler and levenshtein" });
    }
    if (c.type === "regex") {
      const problem = c.pattern === undefined ? "is required for type regex" : patternProblem(c.pattern);
      if (problem) ctx.addIssue({ code: "custom", path: ["pattern"], message: problem });
    } else if (c.pattern !== undefined) {
      ctx.addIssue({ code: "custom", path: ["pattern"], message: "applies only to type regex" });
    }
  });

const comparatorSchema = z.discriminatedUnion("field", [amountComparator, dateComparator, currencyComparator, textComparator], {
  error: `must be one of amount, bookedDate, valueDate, currency, ${TEXT_FIELDS.join(", ")}`,
});

const passSchema = z
  .strictObject({
    name: z.string().trim().min(1).max(100),
    /** AUTO passes yield MATCHED groups; SUGGEST passes yield SUGGESTED (or REFERENCE_MISMATCH) groups for review. */
    mode: z.enum(["AUTO", "SUGGEST"]),
    kind: z.enum(["ONE_TO_ONE", "ONE_TO_MANY", "MANY_TO_ONE", "MANY_TO_MANY"]).default("ONE_TO_ONE"),
    comparators: z.array(comparatorSchema).min(1).max(10),
    minConfidence: z.number().min(0).max(1).default(0),
    /** A chosen match with a competitor at most this much less confident is sent to review (ambiguous). */
    ambiguityMargin: z.number().min(0).max(1).default(0.02),
    /** For grouped kinds: the text field whose normalized value groups the "many" side (both sides for N:M). */
    groupBy: z.enum(TEXT_FIELDS).optional(),
    /** For 1:N and N:1 without groupBy: the most legs a subset-sum search combines. */
    maxLegs: z.number().int().min(2).max(5).default(5),
  })
  .superRefine((pass, ctx) => {
    const required = pass.comparators.filter((c) => c.required);
    if (!required.some(isBlockingComparator)) {
      ctx.addIssue({
        code: "custom",
        path: ["comparators"],
        message:
          "needs a required comparator usable for blocking (currency equal, an amount comparator, a dateWindow, or text exact/normalized); without one every left record would be compared with every right one",
      });
    }
    const amounts = pass.comparators.filter((c) => c.field === "amount");
    if (amounts.length > 1) ctx.addIssue({ code: "custom", path: ["comparators"], message: "may hold at most one amount comparator" });
    if (pass.kind === "ONE_TO_ONE") {
      if (pass.groupBy !== undefined) ctx.addIssue({ code: "custom", path: ["groupBy"], message: "applies only to ONE_TO_MANY, MANY_TO_ONE and MANY_TO_MANY" });
      return;
    }
    if (!amounts.some((c) => c.required)) {
      ctx.addIssue({ code: "custom", path: ["comparators"], message: `a ${pass.kind} pass needs a required amount comparator (it compares sums)` });
    }
    if (pass.kind === "MANY_TO_MANY" && pass.groupBy === undefined) {
      ctx.addIssue({ code: "custom", path: ["groupBy"], message: "is required for MANY_TO_MANY (groups are formed by key on both sides)" });
    }
    if (pass.groupBy === undefined && !pass.comparators.some((c) => c.required && c.type === "dateWindow")) {
      ctx.addIssue({ code: "custom", path: ["comparators"], message: "a subset-sum pass (no groupBy) needs a required dateWindow comparator" });
    }
    if (pass.groupBy === undefined && amounts.some((c) => c.type === "percent" && parseDecimal(c.tolerance) >= 100_0000n)) {
      ctx.addIssue({ code: "custom", path: ["comparators"], message: "a subset-sum pass needs an amount tolerance below 100 percent" });
    }
  });

/** The zod schema of a rule set (input: JSON as saved; output: `RuleSet`, defaults applied). */
export const ruleSetSchema = z
  .strictObject({
    passes: z.array(passSchema).min(1).max(20),
    /** Residual pairs sharing this normalized key within the window are reported as AMOUNT/CURRENCY mismatches or DATE_LAG. */
    discrepancies: z
      .strictObject({ key: z.enum(["reference", "externalId"]), dateWindowDays: z.number().int().min(0).max(MAX_WINDOW_DAYS) })
      .nullable()
      .default({ key: "reference", dateWindowDays: 31 }),
    /** Whether residual records that repeat another record of their side are reported as DUPLICATE. */
    duplicates: z.boolean().default(true),
    /**
     * No pass or stage puts two records booked more than this many days apart into one group (every pair of legs).
     * It bounds the passes without a date window, and no date window may reach further; it is also how far the job
     * runner carries unmatched records into the next date block (see `maxDateReach`).
     */
    maxDateSpanDays: z.number().int().min(1).max(MAX_WINDOW_DAYS).default(DEFAULT_MAX_DATE_SPAN_DAYS),
  })
  .superRefine((rules, ctx) => {
    const span = rules.maxDateSpanDays;
    const beyond = `reaches beyond maxDateSpanDays (${span} days); widen maxDateSpanDays or narrow the window`;
    rules.passes.forEach((pass, i) =>
      pass.comparators.forEach((c, j) => {
        if (c.type !== "dateWindow") return;
        if (Math.abs(c.minDays) > span) ctx.addIssue({ code: "custom", path: ["passes", i, "comparators", j, "minDays"], message: beyond });
        else if (Math.abs(c.maxDays) > span) ctx.addIssue({ code: "custom", path: ["passes", i, "comparators", j, "maxDays"], message: beyond });
      }),
    );
    if (rules.discrepancies && rules.discrepancies.dateWindowDays > span) {
      ctx.addIssue({ code: "custom", path: ["discrepancies", "dateWindowDays"], message: beyond });
    }
  })
  .transform((rules) => ({
    ...rules,
    // The stored snapshot spells out the threshold the engine used, so a later change of default cannot alter it.
    passes: rules.passes.map((pass) => ({
      ...pass,
      comparators: pass.comparators.map((c) =>
        isTextComparator(c) && SIMILARITY_COMPARISONS.includes(c.type) ? { ...c, threshold: c.threshold ?? DEFAULT_THRESHOLD } : c,
      ),
    })),
  }));

/** A validated rule set, defaults applied (what the engine runs and what is stored on a job). */
export type RuleSet = z.output<typeof ruleSetSchema>;
/** One pass of a rule set; the comparator variants below are narrowed from it. */
export type Pass = RuleSet["passes"][number];
export type Comparator = Pass["comparators"][number];
export type AmountComparator = Extract<Comparator, { field: "amount" }>;
export type DateComparator = Extract<Comparator, { type: "dateWindow" }>;
export type TextComparator = Extract<Comparator, { field: TextField }>;

/** Whether a comparator can narrow candidates by hashing or a sorted window (see the engine's blocking). */
export function isBlockingComparator(c: Comparator): boolean {
  if (c.field === "currency" || c.field === "amount" || c.type === "dateWindow") return true;
  return c.type === "exact" || c.type === "normalized";
}

/** A rule set that cannot be used, with the path of the offending setting (`passes[0].comparators[1].tolerance`). */
export class RuleSetError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(path ? `${path}: ${reason}` : reason);
    this.name = "RuleSetError";
  }
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((part, i) => (typeof part === "number" ? `[${part}]` : `${i === 0 ? "" : "."}${String(part)}`)).join("");
}

/** Validates a rule set from JSON (a request or a stored snapshot); throws `RuleSetError` naming the first problem. */
export function parseRuleSet(input: unknown): RuleSet {
  const parsed = ruleSetSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  throw new RuleSetError(formatPath(issue.path), issue.message);
}

/**
 * The largest number of days any pass or stage can look across dates: the rule set's `maxDateSpanDays`, which bounds
 * every group (date windows and the discrepancy window included). The runner processes records in date-ordered
 * blocks and carries unmatched records this many days forward, so that a record can still meet a partner booked up
 * to this many days later.
 */
export function maxDateReach(rules: RuleSet): number {
  return rules.maxDateSpanDays;
}

const amountAndCurrency = [
  { field: "amount", type: "absolute", tolerance: "0.01" },
  { field: "currency", type: "equal" },
  { field: "bookedDate", type: "dateWindow", minDays: -3, maxDays: 3 },
] as const;

/**
 * The rule set a project starts with, tuned for precision: automatic matches need a matching reference (exact, or
 * similar with amount and date close, or shared by the legs of a split whose sum matches); matches on amount and
 * date alone, and subset sums, are only suggested. The grouped reference passes run before the amount-and-date
 * suggestions so that a leg of a genuine split is not taken by a look-alike single.
 */
export const DEFAULT_RULE_SET: RuleSet = parseRuleSet({
  passes: [
    {
      name: "exact reference, amount and currency",
      mode: "AUTO",
      comparators: [
        { field: "reference", type: "exact" },
        { field: "amount", type: "exact" },
        { field: "currency", type: "equal" },
      ],
    },
    {
      name: "amount within 0.01, date within 3 days, similar reference",
      mode: "AUTO",
      comparators: [...amountAndCurrency, { field: "reference", type: "jaroWinkler", threshold: 0.8 }],
    },
    { name: "one left, several right by reference", mode: "AUTO", kind: "ONE_TO_MANY", groupBy: "reference", comparators: [...amountAndCurrency] },
    { name: "several left, one right by reference", mode: "AUTO", kind: "MANY_TO_ONE", groupBy: "reference", comparators: [...amountAndCurrency] },
    {
      name: "amount and date",
      mode: "SUGGEST",
      comparators: [
        { field: "amount", type: "exact" },
        { field: "currency", type: "equal" },
        { field: "bookedDate", type: "dateWindow", minDays: -3, maxDays: 3 },
      ],
    },
    {
      name: "one left, several right summing to its amount",
      mode: "SUGGEST",
      kind: "ONE_TO_MANY",
      maxLegs: 5,
      comparators: [{ field: "amount", type: "exact" }, ...amountAndCurrency.slice(1)],
    },
    {
      name: "several left summing to one right",
      mode: "SUGGEST",
      kind: "MANY_TO_ONE",
      maxLegs: 5,
      comparators: [{ field: "amount", type: "exact" }, ...amountAndCurrency.slice(1)],
    },
  ],
});
