/** Recognises database errors that mean something to users (the rest are bugs and are masked). */


/** A unique constraint was violated (Prisma's P2002, or PostgreSQL's 23505 from raw SQL). */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return code === "P2002" || code === "23505";
}

/** A row to update or delete was not there (Prisma's P2025). */
export function isRecordNotFound(error: unknown): boolean {
  return (error as { code?: string } | null)?.code === "P2025";
}

/** Why the database is unavailable, and what clients are told (Prisma copies the message onto errors of its own). */
type UnavailableReason = "acquire-timeout" | "connection";
const UNAVAILABLE_MESSAGES: Record<UnavailableReason, string> = {
  "acquire-timeout": "The database is busy (no connection came free in time); retry shortly",
  connection: "The database cannot be reached; retry shortly",
};

/**
 * PostgreSQL could not be reached, or no pooled connection came free in time, even after retries. Clients get
 * `SERVICE_UNAVAILABLE` (retry later), never an internal error: nothing is wrong with their request.
 */
export class DatabaseUnavailableError extends Error {
  readonly code = "SERVICE_UNAVAILABLE";
  constructor(readonly reason: UnavailableReason, cause: unknown) {
    super(UNAVAILABLE_MESSAGES[reason], { cause });
  }
}

/** Why a failure to get a connection is worth retrying, or null when it is not (a bug, bad credentials...). */
export function transientConnectReason(error: unknown): UnavailableReason | null {
  const { message = "", code = "" } = (error ?? {}) as { message?: string; code?: string };
  if (message.includes("timeout exceeded when trying to connect")) return "acquire-timeout";
  if (["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "EPIPE", "57P01", "57P03", "53300"].includes(code)) return "connection";
  if (/Connection terminated|connect ECONNREFUSED/.test(message)) return "connection";
  return null;
}

/** The statement's connection was cut before the statement was sent: it never reached PostgreSQL (safe to resend). */
export function isNeverSent(error: unknown): boolean {
  return String((error as { message?: unknown } | null)?.message ?? "").includes("not queryable");
}

/**
 * The connection was cut while (or before) a statement ran: PostgreSQL shut down or restarted (57P01–57P03),
 * the connection failed (class 08), or the socket closed. Nothing is wrong with the request; the next attempt
 * gets a fresh connection.
 */
export function isConnectionLost(error: unknown): boolean {
  const { message = "", code = "" } = (error ?? {}) as { message?: string; code?: string };
  if (["57P01", "57P02", "57P03", "ECONNRESET", "EPIPE"].includes(code) || code.startsWith("08")) return true;
  // Prisma reports the driver's error in its message only ("Database error. Code: `57P01`. …").
  return isNeverSent(error) || /Connection terminated|terminating connection|Code: `57P0[123]`|Code: `08/.test(message);
}

/**
 * The DatabaseUnavailableError behind an error, however deeply wrapped; a lost connection counts as one too (see
 * isConnectionLost). Prisma does not keep the error its driver adapter threw: it throws one of its own with that
 * error's code and message, so a code of SERVICE_UNAVAILABLE anywhere in the chain is recognised as well.
 */
export function findDatabaseUnavailable(error: unknown): DatabaseUnavailableError | null {
  for (let current = error, depth = 0; current && depth < 8; depth++) {
    if (current instanceof DatabaseUnavailableError) return current;
    if ((current as { code?: unknown }).code === "SERVICE_UNAVAILABLE") {
      const busy = String((current as { message?: unknown }).message ?? "").includes(UNAVAILABLE_MESSAGES["acquire-timeout"]);
      return new DatabaseUnavailableError(busy ? "acquire-timeout" : "connection", current);
    }
    if (isConnectionLost(current)) return new DatabaseUnavailableError("connection", current);
    const next = (current as { cause?: unknown; originalError?: unknown }).cause ?? (current as { originalError?: unknown }).originalError;
    current = next;
  }
  return null;
}

/** PostgreSQL cancelled a statement that ran past `statement_timeout` (SQLSTATE 57014), however wrapped. */
export function isStatementTimeout(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 8; depth++) {
    const { code, message } = current as { code?: unknown; message?: unknown };
    if (code === "57014" || (typeof message === "string" && message.includes("canceling statement due to statement timeout"))) return true;
    current = (current as { cause?: unknown }).cause ?? (current as { originalError?: unknown }).originalError;
  }
  return false;
}
