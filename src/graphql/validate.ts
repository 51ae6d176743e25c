/** Input checks shared by services; each failure names the field it is about. */
import { BadUserInputError } from "./errors.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export function requireId(value: string, field: string): string {
  if (!UUID.test(value)) throw new BadUserInputError(field, `"${value.slice(0, 60)}" is not a valid ID`);
  return value.toLowerCase();
}

export function isId(value: string): boolean {
  return UUID.test(value);
}

export function requireText(value: string, field: string, { min = 1, max = 200 } = {}): string {
  const trimmed = value.trim();
  if (trimmed.length < min) throw new BadUserInputError(field, min === 1 ? "must not be empty" : `must be at least ${min} characters`);
  if (trimmed.length > max) throw new BadUserInputError(field, `must be at most ${max} characters`);
  return trimmed;
}

export function requireEmail(value: string, field: string): string {
  const email = value.trim().toLowerCase();
  if (!EMAIL.test(email) || email.length > 254) throw new BadUserInputError(field, `"${value.slice(0, 60)}" is not an email address`);
  return email;
}

/** A JSON object (not an array or a scalar), as settings and column mappings must be. */
export function requireObject(value: unknown, field: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new BadUserInputError(field, "must be a JSON object");
  }
  return value as Record<string, unknown>;
}

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Why PostgreSQL cannot store `text` as it is, or null when it can: a NUL character (refused by `text` and `jsonb`)
 * or a lone UTF-16 surrogate (stored as U+FFFD: the value silently changed).
 */
export function unstorableText(text: string): string | null {
  if (text.includes("\u0000")) return "contains a NUL character (U+0000), which text cannot hold";
  if (LONE_SURROGATE.test(text)) return "is not valid Unicode (a lone UTF-16 surrogate)";
  return null;
}

/** Refuses text PostgreSQL cannot store (see `unstorableText`), naming the field. */
export function requireStorableText(value: string, field: string): string {
  const reason = unstorableText(value);
  if (reason) throw new BadUserInputError(field, reason);
  return value;
}
