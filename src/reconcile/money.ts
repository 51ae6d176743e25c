/**
 * Exact money arithmetic for the engine. Amounts are bigints scaled by 10^4 (NUMERIC(20,4)); tolerances arrive as
 * decimal strings and are parsed here, never through a float, so that "exactly at the edge" means exactly.
 */

/** Decimal places of `EngineRecord.amount` (and of absolute tolerances). */
export const AMOUNT_SCALE = 4;

const SCALE_FACTOR = 10n ** BigInt(AMOUNT_SCALE);
const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

/**
 * Parses a plain decimal string ("0.01", "-12.5") into a bigint scaled by 10^`scale`; throws on anything else
 * (exponents, separators, more than `scale` decimals). Responsible for keeping tolerances exact.
 */
export function parseDecimal(text: string, scale = AMOUNT_SCALE): bigint {
  const match = DECIMAL.exec(text);
  if (!match || (match[3] ?? "").length > scale) throw new Error(`not a decimal with at most ${scale} decimals: "${text}"`);
  const digits = BigInt(match[2]! + (match[3] ?? "").padEnd(scale, "0"));
  return match[1] === "-" ? -digits : digits;
}

/** Formats a scaled amount with all 4 decimals ("0.0100", "-12.3400"), as shown in breakdown details. */
export function formatAmount(value: bigint): string {
  const sign = value < 0n ? "-" : "";
  const magnitude = value < 0n ? -value : value;
  return `${sign}${magnitude / SCALE_FACTOR}.${(magnitude % SCALE_FACTOR).toString().padStart(AMOUNT_SCALE, "0")}`;
}

/** |value| for bigints. */
export function absAmount(value: bigint): bigint {
  return value < 0n ? -value : value;
}

/** Sum of the amounts of some records. */
export function sumAmounts(records: readonly { amount: bigint }[]): bigint {
  let total = 0n;
  for (const record of records) total += record.amount;
  return total;
}
