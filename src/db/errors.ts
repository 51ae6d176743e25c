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

/**
 * PostgreSQL could not be reached, or no pooled connection came free in time, even after retries. Clients get
 * `SERVICE_UNAVAILABLE` (retry later), never an internal error: nothing is wrong with their request.
 */
export class DatabaseUnavailableError extends Error {
  readonly code = "SERVICE_UNAVAILABLE";
  constructor(readonly reason: "acquire-timeout" | "connection", cause: unknown) {
    super(
      reason === "acquire-timeout"
        ? "The database is busy (no connection came free in time); retry shortly"
        : "The database cannot be reached; retry shortly",
      { cause },
    );
  }
}

/** Why a failure to get a connection is worth retrying, or null when it is not (a bug, bad credentials...). */
export function transientConnectReason(error: unknown): "acquire-timeout" | "connection" | null {
  const { message = "", code = "" } = (error ?? {}) as { message?: string; code?: string };
  if (message.includes("timeout exceeded when trying to connect")) return "acquire-timeout";
  if (["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "EPIPE", "57P01", "57P03", "53300"].includes(code)) return "connection";
  if (/Connection terminated|connect ECONNREFUSED/.test(message)) return "connection";
  return null;
}

/** The DatabaseUnavailableError behind an error, however deeply wrapped (Prisma wraps adapter errors). */
export function findDatabaseUnavailable(error: unknown): DatabaseUnavailableError | null {
  for (let current = error, depth = 0; current && depth < 8; depth++) {
    if (current instanceof DatabaseUnavailableError) return current;
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
