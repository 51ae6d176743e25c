/**
 * The only code that reads a job's results for export: `COPY (SELECT …) TO STDOUT` (one or two, one after the
 * other: group-scan.ts) on a pooled connection of its own, so millions of rows flow from PostgreSQL to the client
 * with nothing held in memory but stream buffers. pg-copy-streams pauses the connection's socket while the
 * consumer is behind: back-pressure reaches PostgreSQL.
 */
import type pg from "pg";
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { to as copyTo } from "pg-copy-streams";
import type { MatchOutcomeName } from "../../graphql/models.js";
import { isId } from "../../graphql/validate.js";
import { OUTCOME_ORDER, jobGroupsTexts } from "../jobs/group-scan.js";

/** The rows of an export as COPY text, and how to give the connection back (with the error that ended it, if any). */
export interface ExportRows {
  rows: Readable;
  close(error?: Error): Promise<void>;
}

/**
 * One row per record of each group (columns in export-csv.ts's EXPORT_COLUMNS order) of the FROM item `groups` (one
 * of group-scan.ts's `jobGroupsTexts`), in (outcome, id) order: a walk of its index, never a sort of the whole job
 * (only the few records of each group are sorted: LEFT before RIGHT, each side in the group's order). A record
 * deleted since the job ran still exports its group's row, with empty record fields.
 */
function exportQuery(groups: string): string {
  return `SELECT g.id, g.outcome, g.kind, g.status, g.confidence, g.pass, g.rule, g.amount_delta, g.date_delta_days,
      s.side, s.record_id, r.external_id, r.amount, r.currency, to_char(r.booked_date, 'YYYY-MM-DD'),
      to_char(r.value_date, 'YYYY-MM-DD'), r.reference, r.description, r.counterparty
    FROM ${groups}
    CROSS JOIN LATERAL (
      SELECT 'LEFT' AS side, l.record_id, l.n FROM unnest(g.left_record_ids) WITH ORDINALITY AS l(record_id, n)
      UNION ALL
      SELECT 'RIGHT', rt.record_id, rt.n FROM unnest(g.right_record_ids) WITH ORDINALITY AS rt(record_id, n)
    ) s
    LEFT JOIN records r ON r.id = s.record_id
    ORDER BY g.outcome, g.id, s.side, s.n`;
}

/** The SELECTs of an export of a job's groups with these outcomes, in the order they run (one COPY each). */
export function exportSelects(jobId: string, outcomes: readonly MatchOutcomeName[]): string[] {
  return jobGroupsTexts(jobId, outcomes).map(exportQuery);
}

/**
 * The export transaction's settings. An export of millions of rows to a slow client takes as long as the client
 * reads. And no sort: the rows must stream in index order from the first one on, but the planner, misjudging how
 * many of a job's rows a range of ids holds (it multiplies the range's and the job's selectivities), would
 * otherwise sometimes sort a job's pushed pairs before sending the first (the few records of each group are still
 * ordered, by an incremental sort, which this leaves alone).
 */
export const EXPORT_SETTINGS = ["SET LOCAL statement_timeout = 0", "SET LOCAL enable_sort = off"];

export function createExportRepository({ pool }: { pool: pg.Pool }) {
  return {
    /** Streams the job's groups with the given outcomes. The caller must `close` it, also after an error. */
    async jobResults(jobId: string, outcomes: readonly MatchOutcomeName[]): Promise<ExportRows> {
      // COPY takes no bind parameters: everything inlined is checked to be a uuid or an outcome name first.
      if (!isId(jobId)) throw new Error(`not a job id: ${jobId}`);
      if (outcomes.length === 0 || outcomes.some((outcome) => !OUTCOME_ORDER.includes(outcome))) throw new Error(`not outcomes: ${outcomes.join(",")}`);
      const client = await pool.connect();
      let closed = false;
      try {
        await client.query("BEGIN READ ONLY");
        for (const setting of EXPORT_SETTINGS) await client.query(setting);
      } catch (error) {
        client.release(error as Error);
        throw error;
      }
      const statements = exportSelects(jobId, outcomes).map((select) => `COPY (${select}) TO STDOUT`);
      const rows = new PassThrough();
      let current: Readable | null = null;
      // The statements' rows one after the other, each with back-pressure; a failure ends `rows` with its error.
      (async () => {
        for (const statement of statements) {
          if (rows.destroyed) return; // closed early: the connection is being let go
          current = client.query(copyTo(statement));
          await pipeline(current, rows, { end: false });
        }
        rows.end();
      })().catch((error: Error) => rows.destroy(error));
      return {
        rows,
        async close(error?: Error) {
          if (closed) return;
          closed = true;
          if (error || !rows.readableEnded) {
            // Ended early (client gone, failure): the connection is mid-COPY, so it is destroyed, not reused.
            rows.destroy();
            current?.destroy();
            client.release(error ?? new Error("export stream closed before its end"));
            return;
          }
          try {
            await client.query("COMMIT");
            client.release();
          } catch (commitError) {
            client.release(commitError as Error);
          }
        },
      };
    },
  };
}

export type ExportRepository = ReturnType<typeof createExportRepository>;
