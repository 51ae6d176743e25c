/**
 * The contract between the matching engine (pure: records and rules in, groups out) and the job runner that feeds
 * it from PostgreSQL and persists what it yields. Nothing here knows of GraphQL, Prisma or HTTP.
 */

/** Which data source of a job a record comes from. */
export type Side = "LEFT" | "RIGHT";

/**
 * One record as the engine sees it. Money is exact: `amount` is the NUMERIC(20,4) value scaled by 10^4
 * ("12.3400" → 123400n). Dates are whole UTC days since 1970-01-01.
 */
export interface EngineRecord {
  /** Unique across both sides (the record's uuid). */
  id: string;
  externalId: string;
  amount: bigint;
  /** ISO 4217 code, upper case. */
  currency: string;
  bookedDate: number;
  valueDate: number | null;
  reference: string;
  description: string;
  counterparty: string;
}

/** What the engine concluded about a group of records. Every record of a run ends in exactly one group. */
export type Outcome =
  | "MATCHED"
  | "SUGGESTED"
  | "AMOUNT_MISMATCH"
  | "DATE_LAG"
  | "REFERENCE_MISMATCH"
  | "CURRENCY_MISMATCH"
  | "DUPLICATE"
  | "UNMATCHED_LEFT"
  | "UNMATCHED_RIGHT";

export type GroupKind = "ONE_TO_ONE" | "ONE_TO_MANY" | "MANY_TO_ONE" | "MANY_TO_MANY" | "SINGLE";

/** One comparator's verdict on a pair (or group), kept on the match so a reviewer can see why it scored so. */
export interface FieldScore {
  /** The comparator's field and type, e.g. "amount:absolute", "reference:jaroWinkler". */
  comparator: string;
  /** Similarity 0..1 (1 = identical). */
  similarity: number;
  /** Weight of this comparator in the confidence. */
  weight: number;
  /** Whether the comparator's gate held (a required comparator that fails keeps the pair out of the pass). */
  passed: boolean;
  /** Human-readable detail, e.g. "delta 0.0100 within 0.0100", "right is 2 days after left". */
  detail: string;
}

/** A group the engine yields. Single-sided groups carry UNMATCHED_* or DUPLICATE outcomes. */
export interface EngineGroup {
  outcome: Outcome;
  kind: GroupKind;
  leftIds: string[];
  rightIds: string[];
  /** The records themselves, in the order of leftIds / rightIds (the job summary sums their amounts). */
  leftRecords: readonly EngineRecord[];
  rightRecords: readonly EngineRecord[];
  /** 0..1, rounded to 4 decimals; 0 for unmatched. */
  confidence: number;
  /** 1-based index of the pass that produced the group; 0 for the discrepancy/duplicate/unmatched stages. */
  pass: number;
  /** The pass's name, or the stage ("discrepancy", "duplicate", "unmatched"). */
  rule: string;
  /** sum(right amounts) - sum(left amounts), scaled by 10^4 like EngineRecord.amount. */
  amountDelta: bigint;
  /** right date - left date in days (first legs' booked dates); 0 for single-sided groups. */
  dateDeltaDays: number;
  /** A near-tie with another candidate sent this group to review (outcome SUGGESTED). */
  ambiguous: boolean;
  breakdown: FieldScore[];
  /** For DUPLICATE: the id of the record it duplicates. */
  duplicateOf?: string;
}
