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
