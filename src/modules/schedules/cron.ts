/**
 * Cron expressions of reconciliation schedules: five fields (minute, hour, day of month, month, day of week), the
 * syntax pg-boss's scheduler reads (cron-parser), in an IANA time zone (UTC by default). Responsible for refusing
 * an expression with a message that names the field, and for the next time an expression fires.
 */
import cronParser from "cron-parser";
import { BadUserInputError } from "../../graphql/errors.js";

/** The scheduler's resolution is a minute: a seconds field would promise what it cannot keep. */
const FIELDS = 5;

/** `timezone` if it is a time zone this runtime knows (IANA name such as `Europe/Paris`, or `UTC`). */
export function requireTimezone(value: string, field: string): string {
  const zone = value.trim();
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone });
  } catch {
    throw new BadUserInputError(field, `"${zone.slice(0, 60)}" is not a time zone (use an IANA name such as UTC or Europe/Paris)`);
  }
  return zone;
}

/** The expression, trimmed, if it has five fields cron-parser accepts; BAD_USER_INPUT naming `field` otherwise. */
export function requireCron(value: string, field: string, timezone: string): string {
  const cron = value.trim().replace(/\s+/g, " ");
  const count = cron === "" ? 0 : cron.split(" ").length;
  if (count !== FIELDS) {
    throw new BadUserInputError(field, `"${cron.slice(0, 100)}" has ${count} field(s); a schedule has 5: minute hour day-of-month month day-of-week (for example "0 6 * * 1-5")`);
  }
  let parsed;
  try {
    parsed = cronParser.parseExpression(cron, { tz: timezone });
  } catch (error) {
    throw new BadUserInputError(field, `"${cron.slice(0, 100)}" is not a cron expression: ${(error as Error).message}`);
  }
  // Well formed, yet possibly never due ("0 0 31 2,4 *": no such day): cron-parser only finds out looking for a time.
  try {
    parsed.next();
  } catch {
    throw new BadUserInputError(field, `"${cron.slice(0, 100)}" never fires: no date matches its day of month, month and day of week`);
  }
  return cron;
}

/** The first time `cron` fires strictly after `after`, in `timezone`. */
export function nextRun(cron: string, timezone: string, after: Date): Date {
  return cronParser.parseExpression(cron, { tz: timezone, currentDate: after }).next().toDate();
}
