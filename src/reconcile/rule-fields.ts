/**
 * The few parts of the rule set's vocabulary the engine needs at run time, without zod: the engine thread (started
 * for every job) gets its rules already validated (rules.ts) and loads no schema library.
 */

/** The record fields text comparators (and groupBy) can use. */
export const TEXT_FIELDS = ["reference", "description", "counterparty", "externalId"] as const;
export type TextField = (typeof TEXT_FIELDS)[number];
/** Threshold of a similarity comparison when the rule gives none. */
export const DEFAULT_THRESHOLD = 0.8;

/** Whether a comparator compares one of the text fields. */
export function isTextComparator<C extends { field: string }>(c: C): c is Extract<C, { field: TextField }> {
  return (TEXT_FIELDS as readonly string[]).includes(c.field);
}
