/**
 * The background task that runs one reconciliation job: claim → parse (stream both sources in date order) →
 * match (the pure engine, block by block) → persist (COPY the groups) → complete. Responsible for making a job's
 * results all-or-nothing and its progress visible:
 *
 * - A worker holds the job's advisory lock on its own connection for the whole run, and writes every group inside
 *   one transaction on that connection, committed together with the job's COMPLETED row. A worker that dies
 *   drops its connection: its transaction rolls back (no partial results) and its lock frees, which is how
 *   `recoverLostJobs` (run by every worker periodically) knows to queue the job again. A message delivered twice
 *   finds the job locked or no longer QUEUED and does nothing.
 * - Memory is bounded by the block size: records are read in (booked date, id) order and matched in blocks of
 *   about `blockRecords`; records still unmatched that a later record could match (within the rules' date reach)
 *   are carried into the next block.
 * - Progress (phase, processed/total, running counts) is written at most every `checkpointMs` and announced on
 *   the job-event bus; the same write notices a cancellation (the row is no longer RUNNING), as does the bus.
 */
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import type { ChangeFeed } from "../../db/change-feed.js";
import { tags } from "../../cache/tags.js";
import type { Logger } from "../../observability/logger.js";
import type { Metrics } from "../../observability/metrics.js";
import type { JobEvents } from "../../queue/job-events.js";
import type { Queue, Task } from "../../queue/queue.js";
import { reconcile, ReconcileCancelled } from "../../reconcile/engine.js";
import { maxDateReach, parseRuleSet, type RuleSet } from "../../reconcile/rules.js";
import type { EngineRecord } from "../../reconcile/types.js";
import { createSummary, GROUP_COPY_COLUMNS, groupCopyLine, writeLines } from "./job-results.js";
import { openRecordStream, type RecordStream } from "./record-stream.js";

export interface ReconcileTaskData {
  jobId: string;
}

export const RECONCILE_TASK_NAME = "reconcile";

/** The advisory-lock key a worker holds while it runs `jobId`. */
const lockKey = (jobId: string) => `recon:job:${jobId}`;

class JobCancelled extends Error {}

interface ClaimedJob {
  id: string;
  projectId: string;
  leftSourceId: string;
  rightSourceId: string;
  rules: unknown;
  dryRun: boolean;
  total: number;
}

export interface ReconcileTaskDeps {
  pool: pg.Pool;
  changes: ChangeFeed;
  events: JobEvents;
  metrics: Metrics;
  logger: Logger;
  /** Records (both sides) per engine block: bounds the worker's memory. */
  blockRecords: number;
  /** Least time between two progress writes. */
  checkpointMs?: number;
}

export function createReconcileTask(deps: ReconcileTaskDeps): Task<ReconcileTaskData> {
  const { pool, changes, events, metrics, logger, blockRecords } = deps;
  const checkpointMs = deps.checkpointMs ?? 500;

  async function announce(job: { id: string; projectId: string }): Promise<void> {
    await changes.wrote([tags.job(job.id), tags.projectJobs(job.projectId)], "reconcile");
    await events.publish(pool, job.id);
  }

  /** QUEUED → RUNNING, counting the attempt; null when the job is not queued any more (done, cancelled, deleted). */
  async function claim(jobId: string): Promise<ClaimedJob | null> {
    const { rows } = await pool.query<ClaimedJob>(
      `UPDATE reconciliation_jobs j SET status = 'RUNNING', phase = 'parse', attempts = attempts + 1, started_at = now(),
         processed = 0, progress = 0, error = NULL,
         total = (SELECT coalesce(sum(record_count), 0)::int FROM data_sources WHERE id IN (j.left_source_id, j.right_source_id))
       WHERE id = $1 AND status = 'QUEUED'
       RETURNING id, project_id AS "projectId", left_source_id AS "leftSourceId", right_source_id AS "rightSourceId",
         rules, dry_run AS "dryRun", total`,
      [jobId],
    );
    return rows[0] ?? null;
  }

  async function run(job: ClaimedJob, writer: pg.PoolClient): Promise<void> {
    const rules: RuleSet = parseRuleSet(job.rules);
    const reach = maxDateReach(rules);
    const summary = createSummary(rules.passes.map((pass) => pass.name));
    const phaseMillis: Record<string, number> = { parse: 0, match: 0, persist: 0 };
    let cancelled = false;
    let processed = 0;
    let phase = "parse";
    let lastCheckpoint = 0;

    const checkCancelled = async () => {
      const { rows } = await pool.query<{ status: string }>("SELECT status FROM reconciliation_jobs WHERE id = $1", [job.id]);
      if (rows[0]?.status !== "RUNNING") cancelled = true;
    };
    const unsubscribe = events.subscribe(job.id, () => void checkCancelled().catch(() => {}));
    const throwIfCancelled = () => {
      if (cancelled) throw new JobCancelled();
    };

    /** Writes progress (at most every checkpointMs unless forced); notices a cancellation. */
    const checkpoint = async (force = false) => {
      const now = Date.now();
      if (!force && now - lastCheckpoint < checkpointMs) return;
      lastCheckpoint = now;
      const counts = summary.counts();
      const { rowCount } = await pool.query(
        `UPDATE reconciliation_jobs SET phase = $2, processed = $3, progress = $4, matched_count = $5, suggested_count = $6,
           discrepancy_count = $7, unmatched_left_count = $8, unmatched_right_count = $9
         WHERE id = $1 AND status = 'RUNNING'`,
        [job.id, phase, processed, job.total ? Math.min(processed / job.total, 1) : 0, counts.matchedCount, counts.suggestedCount,
          counts.discrepancyCount, counts.unmatchedLeftCount, counts.unmatchedRightCount],
      );
      if (rowCount === 0) cancelled = true;
      else await announce(job);
      throwIfCancelled();
    };

    const timed = async <T>(name: string, work: () => Promise<T> | T): Promise<T> => {
      const started = performance.now();
      try {
        return await work();
      } finally {
        phaseMillis[name]! += performance.now() - started;
      }
    };

    const streams: RecordStream[] = [];
    try {
      await writer.query("BEGIN");
      await writer.query("SET LOCAL statement_timeout = 0");
      const copy = job.dryRun
        ? null
        : writer.query(copyFrom(`COPY match_groups (${GROUP_COPY_COLUMNS}) FROM STDIN`));
      const copyFailed = copy ? new Promise<never>((_, reject) => copy.on("error", reject)) : null;
      copyFailed?.catch(() => {});
      const left = await openRecordStream(pool, job.leftSourceId);
      streams.push(left);
      const right = await openRecordStream(pool, job.rightSourceId);
      streams.push(right);

      let carryLeft: EngineRecord[] = [];
      let carryRight: EngineRecord[] = [];
      for (;;) {
        phase = "parse";
        const blockLeft: EngineRecord[] = [];
        const blockRight: EngineRecord[] = [];
        let lastDate = Number.NEGATIVE_INFINITY;
        const exhausted = await timed("parse", async () => {
          for (let taken = 0; ; ) {
            if (left.buffered() === 0) await left.fill();
            if (right.buffered() === 0) await right.fill();
            const l = left.peek();
            const r = right.peek();
            if (!l && !r) return true;
            const fromLeft = r === null || (l !== null && l.bookedDate <= r.bookedDate);
            const record = (fromLeft ? l : r)!;
            // A block ends between two dates, never inside one (duplicates share a date).
            if (taken >= blockRecords && record.bookedDate !== lastDate) return false;
            (fromLeft ? left : right).advance();
            (fromLeft ? blockLeft : blockRight).push(record);
            lastDate = record.bookedDate;
            taken++;
            if ((taken & 0x3fff) === 0) throwIfCancelled();
          }
        });
        processed += blockLeft.length + blockRight.length;
        const inputLeft = carryLeft.length ? carryLeft.concat(blockLeft) : blockLeft;
        const inputRight = carryRight.length ? carryRight.concat(blockRight) : blockRight;
        phase = "match";
        await checkpoint();
        const result = await timed("match", () =>
          reconcile(inputLeft, inputRight, rules, {
            // Unmatched records a later record could still reach are carried into the next block; so are those
            // whose possible discrepancy partners are not all settled yet (one more reach back).
            carryFrom: exhausted ? undefined : lastDate + 1 - reach,
            finalizeBefore: exhausted ? undefined : lastDate + 1 - 2 * reach,
            shouldStop: () => cancelled,
          }),
        );
        const byId = new Map<string, EngineRecord>();
        for (const record of inputLeft) byId.set(record.id, record);
        for (const record of inputRight) byId.set(record.id, record);
        summary.add(result.groups, byId);
        for (const group of result.groups) metrics.reconcileGroupsTotal.inc({ outcome: group.outcome });
        if (copy) {
          phase = "persist";
          await timed("persist", () =>
            Promise.race([writeLines(copy, result.groups.map((group) => groupCopyLine(group, job.id, job.projectId))), copyFailed!]),
          );
        }
        carryLeft = result.carry.left;
        carryRight = result.carry.right;
        metrics.reconcileRecordsTotal.inc(blockLeft.length + blockRight.length);
        await checkpoint();
        if (exhausted) break;
      }
      await Promise.all(streams.map((stream) => stream.close()));
      phase = "persist";
      await checkpoint(true);
      await timed("persist", async () => {
        if (copy) await new Promise<void>((resolve, reject) => copy.end((error?: Error | null) => (error ? reject(error) : resolve())));
        const counts = summary.counts();
        const { rowCount } = await writer.query(
          `UPDATE reconciliation_jobs SET status = 'COMPLETED', phase = 'completed', progress = 1, processed = $2,
             matched_count = $3, suggested_count = $4, discrepancy_count = $5, unmatched_left_count = $6,
             unmatched_right_count = $7, summary = $8, finished_at = now()
           WHERE id = $1 AND status = 'RUNNING'`,
          [job.id, processed, counts.matchedCount, counts.suggestedCount, counts.discrepancyCount, counts.unmatchedLeftCount,
            counts.unmatchedRightCount, JSON.stringify(summary.result(roundMillis(phaseMillis)))],
        );
        // Cancelled (or deleted) while we finished: nothing is kept.
        if (rowCount === 0) throw new JobCancelled();
        await writer.query("COMMIT");
      });
      logger.info({ jobId: job.id, processed, phaseMillis: roundMillis(phaseMillis), ...summary.counts() }, "reconciliation job completed");
    } catch (error) {
      await writer.query("ROLLBACK").catch(() => {});
      await Promise.all(streams.map((stream) => stream.close().catch(() => {})));
      if (error instanceof JobCancelled || error instanceof ReconcileCancelled) {
        logger.info({ jobId: job.id }, "reconciliation job cancelled");
      } else {
        logger.error({ err: error, jobId: job.id }, "reconciliation job failed");
        await pool.query(
          `UPDATE reconciliation_jobs SET status = 'FAILED', phase = 'failed', error = $2, finished_at = now()
           WHERE id = $1 AND status = 'RUNNING'`,
          [job.id, failureMessage(error)],
        );
      }
    } finally {
      unsubscribe();
      await announce(job).catch(() => {});
    }
  }

  return {
    name: RECONCILE_TASK_NAME,
    // Failures are recorded on the job (FAILED, with the reason) rather than retried blindly; a lost worker is
    // handled by recoverLostJobs. pg-boss's own expiry is a last resort for a queue message stuck active.
    retryLimit: 0,
    expireInSeconds: 23 * 3600, // pg-boss caps it below 24 hours
    async perform({ jobId }) {
      const writer = await pool.connect();
      let locked = false;
      try {
        locked = (await writer.query<{ locked: boolean }>("SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked", [lockKey(jobId)])).rows[0]!.locked;
        if (!locked) return; // another worker runs it
        const job = await claim(jobId);
        if (!job) return;
        await announce(job);
        metrics.reconciliationJobsActive.inc();
        const stopTimer = metrics.reconcileJobDuration.startTimer();
        try {
          await run(job, writer);
        } finally {
          stopTimer();
          metrics.reconciliationJobsActive.dec();
        }
      } finally {
        if (locked) await writer.query("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [lockKey(jobId)]).catch(() => {});
        writer.release();
      }
    },
  };
}

function roundMillis(phaseMillis: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(phaseMillis).map(([name, ms]) => [name, Math.round(ms)]));
}

/** What a FAILED job shows: the engine's and PostgreSQL's messages are safe to show; nothing else is. */
function failureMessage(error: unknown): string {
  if (error instanceof Error && (error.name === "RuleSetError" || "code" in error)) return error.message.slice(0, 500);
  return "the job failed unexpectedly; the server log has the details";
}

/**
 * Finds RUNNING jobs whose worker is gone (their advisory lock is free: the connection that held it has closed)
 * and queues them again. Every worker runs this at start and then periodically; taking the lock while resetting
 * the job makes two recovering workers agree.
 */
export async function recoverLostJobs(deps: { pool: pg.Pool; queue: Pick<Queue, "send">; task: Task<ReconcileTaskData>; changes: ChangeFeed; logger: Logger }): Promise<string[]> {
  const { pool, queue, task, changes, logger } = deps;
  const { rows } = await pool.query<{ id: string; projectId: string }>(
    `SELECT id, project_id AS "projectId" FROM reconciliation_jobs WHERE status = 'RUNNING'`,
  );
  const recovered: string[] = [];
  for (const job of rows) {
    const client = await pool.connect();
    try {
      const { rows: [lock] } = await client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked", [lockKey(job.id)]);
      if (!lock!.locked) continue;
      try {
        const { rowCount } = await client.query(
          `UPDATE reconciliation_jobs SET status = 'QUEUED', phase = 'queued', processed = 0, progress = 0
           WHERE id = $1 AND status = 'RUNNING'`,
          [job.id],
        );
        if (rowCount) recovered.push(job.id);
      } finally {
        await client.query("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [lockKey(job.id)]);
      }
    } finally {
      client.release();
    }
    if (recovered.at(-1) === job.id) {
      await changes.wrote([tags.job(job.id), tags.projectJobs(job.projectId)], "reconcile");
      await queue.send(task, { jobId: job.id });
    }
  }
  if (recovered.length) logger.warn({ jobs: recovered }, "queued again reconciliation jobs whose worker was lost");
  return recovered;
}
