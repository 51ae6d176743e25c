/**
 * How urgent an exception is, and by when it should be dealt with. Severity is read, not stored: it comes from the
 * exception's amount (its exposure, in its currency) and its age (days since its oldest record was booked), so it
 * rises as an exception ages. The SLA due date is fixed when the exception opens, from the severity it had then.
 *
 * Amount tiers are per currency, in the currency's own units (a yen is not a euro): an exposure of at least
 * `medium` is MEDIUM, `high` HIGH, `critical` CRITICAL, below `medium` LOW. Currencies not listed use DEFAULT
 * (meant for the euro, the dollar, the pound, the franc and currencies of similar value). Age raises the amount's
 * tier by one level from AGE_STEPS_DAYS[0] days on and by two from AGE_STEPS_DAYS[1] (CRITICAL at most).
 * Everything is computed in SQL (filters and ordering run in PostgreSQL), from the constants below.
 */
import { raw, type Sql } from "../../db/sql.js";

export const SEVERITIES = ["LOW", "MEDIUM", "HIGH", "CRITICAL"] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Amount thresholds [medium, high, critical] per currency, as exact decimal strings. */
export const AMOUNT_TIERS: Record<string, readonly [string, string, string]> = {
  DEFAULT: ["1000", "10000", "100000"],
  JPY: ["100000", "1000000", "10000000"],
  KRW: ["1000000", "10000000", "100000000"],
  HUF: ["300000", "3000000", "30000000"],
  INR: ["75000", "750000", "7500000"],
};

/** From these ages (days) on, severity is one, then two levels above the amount's tier. */
export const AGE_STEPS_DAYS = [30, 90] as const;

/** Days from opening to the SLA due date, by the severity at opening. */
export const SLA_DAYS: Record<Severity, number> = { CRITICAL: 1, HIGH: 3, MEDIUM: 7, LOW: 14 };

const decimal = (value: string) => {
  if (!/^\d+(\.\d+)?$/.test(value)) throw new Error(`severity threshold ${value} is not a decimal`);
  return value;
};
const code = (currency: string) => {
  if (!/^[A-Z]{3}$/.test(currency)) throw new Error(`severity currency ${currency} is not an ISO 4217 code`);
  return currency;
};

/** `CASE currency WHEN 'JPY' THEN 100000 … ELSE 1000 END` for one of the three thresholds. */
function thresholdSql(currency: string, tier: 0 | 1 | 2): string {
  const cases = Object.entries(AMOUNT_TIERS)
    .filter(([name]) => name !== "DEFAULT")
    .map(([name, tiers]) => `WHEN '${code(name)}' THEN ${decimal(tiers[tier])}`)
    .join(" ");
  return `CASE ${currency} ${cases} ELSE ${decimal(AMOUNT_TIERS.DEFAULT![tier])} END`;
}

/** Today in UTC (whatever the session's time zone). */
export const TODAY_UTC = "(now() AT TIME ZONE 'UTC')::date";

/**
 * SQL for the severity rank (0 LOW … 3 CRITICAL) of an exception whose amount, currency and oldest booked date are
 * the given SQL expressions (column names; never user input).
 */
export function severityRankSql(amount: string, currency: string, bookedDate: string): string {
  const tier = `(CASE WHEN ${amount} >= ${thresholdSql(currency, 2)} THEN 3 WHEN ${amount} >= ${thresholdSql(currency, 1)} THEN 2
    WHEN ${amount} >= ${thresholdSql(currency, 0)} THEN 1 ELSE 0 END)`;
  const age = `(${TODAY_UTC} - ${bookedDate})`;
  const aged = `(CASE WHEN ${age} >= ${AGE_STEPS_DAYS[1]} THEN 2 WHEN ${age} >= ${AGE_STEPS_DAYS[0]} THEN 1 ELSE 0 END)`;
  return `least(3, ${tier} + ${aged})`;
}

/** SQL for the SLA interval of a severity rank expression. */
export function slaIntervalSql(rank: string): string {
  const days = SEVERITIES.map((severity, index) => `WHEN ${index} THEN ${SLA_DAYS[severity]}`).join(" ");
  return `make_interval(days => CASE ${rank} ${days} END)`;
}

/** The severity rank of the exceptions table's row `e`, as a fragment for queries. */
export const EXCEPTION_SEVERITY_RANK: Sql = raw(severityRankSql("e.amount", "e.currency", "e.booked_date"));

export function severityName(rank: number): Severity {
  return SEVERITIES[rank]!;
}
