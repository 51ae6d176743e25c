/**
 * The connection to PostgreSQL: one pg pool shared by Prisma (through its pg driver adapter) and by the raw SQL
 * the repositories run. Responsible for counting every SQL statement, globally (a metric) and per request
 * (the request scope), which is how "no N+1" is measured rather than promised.
 */
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "../generated/prisma/client.js";
import type { Metrics } from "../observability/metrics.js";
import { currentRequestScope } from "../observability/request-scope.js";

function createPrismaClient(pool: pg.Pool) {
  // Password hashes are never read unless a query asks for them by name (sign-in).
  return new PrismaClient({ adapter: new PrismaPg(pool), omit: { user: { passwordHash: true } } });
}

/** The Prisma client as configured here (its types know password hashes are omitted). */
export type DbClient = ReturnType<typeof createPrismaClient>;
/** The client inside an interactive transaction. */
export type DbTransaction = Omit<DbClient, "$connect" | "$disconnect" | "$on" | "$transaction" | "$extends">;
/** Either: repository methods that write take one, defaulting to the client. */
export type Db = DbClient | DbTransaction;

export interface Database {
  pool: pg.Pool;
  prisma: DbClient;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url: string;
  poolSize: number;
  metrics: Pick<Metrics, "sqlStatementsTotal">;
}

export function createDatabase({ url, poolSize, metrics }: DatabaseOptions): Database {
  /** A pg client that counts each statement it sends before sending it. */
  class CountingClient extends pg.Client {
    // pg's query() has many overloads; counting does not care which one is used.
    override query(...args: unknown[]): never {
      metrics.sqlStatementsTotal.inc();
      const scope = currentRequestScope();
      if (scope) scope.sqlStatements += 1;
      return (super.query as (...a: unknown[]) => never)(...args);
    }
  }

  const pool = new pg.Pool({ connectionString: url, max: poolSize, Client: CountingClient });
  const prisma = createPrismaClient(pool);
  return {
    pool,
    prisma,
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}
