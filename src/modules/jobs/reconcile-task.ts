/**
 * The background task that runs one reconciliation job: claim → exact keys in SQL (exact-pushdown.ts) → parse
 * (stream the other records of both sources in date order) → match (the pure engine in a worker thread, block by
 * block, engine-thread.ts) → persist (the groups, in the job's transaction) → complete; reading, matching and
 * writing overlap. Responsible for making a job's results all-or-nothing and its progress visible:
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
 * - A stopped job (cancelled, or interrupted by a shutdown) ends promptly: its engine thread is terminated if it
 *   does not stop by itself (engine-thread.ts), and a shutdown that a job outlasts (a statement still running)
 *   ends the process, which is the crash above.
 */
import type pg from "pg";
import { from as copyFrom, type CopyStreamQuery } from "pg-copy-streams";
import type { ChangeFeed } from "../../db/change-feed.js";
import { tags } from "../../cache/tags.js";
import type { Logger } from "../../observability/logger.js";
import type { Metrics } from "../../observability/metrics.js";
import type { JobEvents } from "../../queue/job-events.js";
import type { Queue, Task } from "../../queue/queue.js";
import { DEFAULT_RULE_SET, maxDateReach, parseRuleSet, type RuleSet } from "../../reconcile/rules.js";
import { type BlockResult, type EngineJob, type EngineThread, EngineStopped, createEnginePool, engineHeapLimitMb, startEngineThread } from "./engine-thread.js";
import { canPushDown, dropPairsTable, insertPushedGroups, pushDownFirstPass, pushedAmounts, type PushedAmount, type PushdownResult } from "./exact-pushdown.js";
import { EXCEPTION_FACT_COLUMNS, GROUP_COPY_COLUMNS, writeChunk } from "./job-results.js";
import { openRecordStream, type RecordStream } from "./record-stream.js";
import { carryForwardExceptions, CREATE_EXCEPTION_FACTS_SQL, EXCEPTION_FACTS_TABLE, openExceptionsFromFacts } from "../exceptions/exception-sql.js";
import { excludedPairKeys } from "../exceptions/rejected-pairs.js";

export interface ReconcileTaskData {
  jobId: string;
}

export const RECONCILE_TASK_NAME = "reconcile";

/** The advisory-lock key a worker holds while it runs `jobId`. */
const lockKey = (jobId: string) => `recon:job:${jobId}`;

/** Thrown inside a run once it is stopped (cancelled or interrupted: see `StopReason`). */
class JobStopped extends Error {}

/** Why a run stops early: its job was cancelled (the row says so), or this process is shutting down. */
type StopReason = "cancelled" | "interrupted";

/** How long the jobs a shutdown interrupts get to let go of their connections (see `ReconcileTask.interrupt`). */
export const INTERRUPT_DEADLINE_MS = 10_000;

/** The reconcile task, with what a shutdown needs of it. */
export interface ReconcileTask extends Task<ReconcileTaskData> {
  /**
   * Stops this process's jobs for a shutdown: each one's engine stops, its transaction rolls back and its lock
   * frees, and it stays RUNNING, so that `recoverLostJobs` (on any worker) queues it again, as after a crash. A job
   * delivered afterwards is claimed and left the same way (its message is spent: dropping it would strand the job
   * QUEUED). Resolves true once every job has let go of its connections; false if some have not by `deadlineMs`
   * (stuck in a statement): the caller then exits, and PostgreSQL rolls back what the dropped connections held.
   */
  interrupt(deadlineMs?: number): Promise<boolean>;
  /** Starts and warms the engine threads this process keeps for its jobs (`engineThreads`; engine-thread.ts). */
  warmEngines(): Promise<void>;
  /** Ends the idle engine threads (a shutdown, once no job runs). */
  closeEngines(): Promise<void>;
}

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
  /**
   * Engine threads kept between jobs (the process's job concurrency): a job runs on a thread whose code V8 has
   * already optimized (engine-thread.ts `createEnginePool`). 0 or absent: a thread of its own for every job.
   */
  engineThreads?: number;
  /** Starts a job's engine thread, instead of the pool: tests wrap `startEngineThread` to set the thread's test hook. */
  startEngine?: (job: EngineJob, options: { heapLimitMb: number }) => EngineThread;
}

export function createReconcileTask(deps: ReconcileTaskDeps): ReconcileTask {
  const { pool, changes, events, metrics, logger, blockRecords } = deps;
  const checkpointMs = deps.checkpointMs ?? 500;
  const heapLimitMb = engineHeapLimitMb(blockRecords);
  const engines = deps.engineThreads ? createEnginePool({ size: deps.engineThreads, heapLimitMb, warmupRules: DEFAULT_RULE_SET }) : null;
  const startEngine = async (job: EngineJob): Promise<EngineThread> =>
    deps.startEngine ? deps.startEngine(job, { heapLimitMb }) : engines ? engines.start(job) : startEngineThread(job, { heapLimitMb });
  /** How to stop each run under way, and the performs under way (ended: their connections released), for `interrupt`. */
  const runs = new Set<(reason: StopReason) => void>();
  const performs = new Set<Promise<void>>();
  let interrupted = false;

  async function announce(job: { id: string; projectId: string }): Promise<void> {
    await changes.wrote([tags.job(job.id), tags.projectJobs(job.projectId)], "reconcile");
    await events.publish(pool, job.id, job.projectId);
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

  /**
   * Reads the next date-aligned block of about `blockRecords` records from both streams (in date order), as the
   * lines' bytes (the engine thread parses them).
   */
  async function readBlock(left: RecordStream, right: RecordStream, throwIfStopped: () => void) {
    const block = { records: 0, lastDate: Number.NEGATIVE_INFINITY, exhausted: false };
    const cut = () => ({ ...block, left: left.take(), right: right.take() });
    for (;;) {
      if (left.buffered() === 0) await left.fill();
      if (right.buffered() === 0) await right.fill();
      const l = left.peekDate();
      const r = right.peekDate();
      if (l === null && r === null) {
        block.exhausted = true;
        return cut();
      }
      const fromLeft = r === null || (l !== null && l <= r);
      const date = (fromLeft ? l : r)!;
      // A block ends between two dates, never inside one (same-date twins stay together).
      if (block.records >= blockRecords && date !== block.lastDate) return cut();
      (fromLeft ? left : right).advance();
      block.lastDate = date;
      if ((++block.records & 0x3fff) === 0) throwIfStopped();
    }
  }

  /**
   * The job's pipeline: while the engine thread matches block N, this thread reads block N+1 and PostgreSQL
   * ingests block N−1's groups (COPY), so the three overlap on separate cores.
   */
  async function run(job: ClaimedJob, writer: pg.PoolClient): Promise<void> {
    const rules: RuleSet = parseRuleSet(job.rules);
    const reach = maxDateReach(rules);
    const phaseMillis: Record<string, number> = { exact: 0, parse: 0, match: 0, persist: 0, exceptions: 0 };
    let counts = { matchedCount: 0, suggestedCount: 0, discrepancyCount: 0, unmatchedLeftCount: 0, unmatchedRightCount: 0 };
    let stopped: StopReason | null = null;
    let processed = 0;
    let phase = "parse";
    let lastCheckpoint = 0;
    let thread: EngineThread | null = null;
    let pushdown: PushdownResult | null = null;

    /** Stops the run: its next check throws, and its engine thread stops (terminated if it does not answer). */
    const stop = (reason: StopReason) => {
      stopped ??= reason;
      thread?.stop();
    };
    runs.add(stop);
    if (interrupted) stop("interrupted");
    const checkCancelled = async () => {
      const { rows } = await pool.query<{ status: string }>("SELECT status FROM reconciliation_jobs WHERE id = $1", [job.id]);
      if (rows[0]?.status !== "RUNNING") stop("cancelled");
    };
    const unsubscribe = events.subscribe(job.id, () => void checkCancelled().catch(() => {}));
    const throwIfStopped = () => {
      if (stopped) throw new JobStopped();
    };

    /** Writes progress (at most every checkpointMs unless forced); notices a cancellation. */
    const checkpoint = async (force = false) => {
      const now = Date.now();
      if (!force && now - lastCheckpoint < checkpointMs) return;
      lastCheckpoint = now;
      const { rowCount } = await pool.query(
        `UPDATE reconciliation_jobs SET phase = $2, processed = $3, progress = $4, matched_count = $5, suggested_count = $6,
           discrepancy_count = $7, unmatched_left_count = $8, unmatched_right_count = $9
         WHERE id = $1 AND status = 'RUNNING'`,
        [job.id, phase, processed, job.total ? Math.min(processed / job.total, 1) : 0, counts.matchedCount, counts.suggestedCount,
          counts.discrepancyCount, counts.unmatchedLeftCount, counts.unmatchedRightCount],
      );
      if (rowCount === 0) stop("cancelled");
      else await announce(job);
      throwIfStopped();
    };

    const streams: RecordStream[] = [];
    // What runs on the writer connection: the chain of queued writes, and the COPY into match_groups while one is
    // open. A failure must abort that COPY before the ROLLBACK, which the connection would otherwise queue behind
    // it forever (the worker stuck, the job's lock held), and keep queued writes from starting after it.
    const writes: { chain: Promise<void>; copy: { stream: CopyStreamQuery; failed: Promise<never> } | null; stopped: boolean } = {
      chain: Promise.resolve(),
      copy: null,
      stopped: false,
    };
    try {
      throwIfStopped();
      // An exact-key first pass runs in PostgreSQL for one-to-one keys; only the other records are streamed.
      const started = performance.now();
      pushdown = canPushDown(rules) ? await pushDownFirstPass(pool, job, rules) : null;
      phaseMillis.exact = performance.now() - started;
      if (pushdown) {
        // PostgreSQL's pairs count in the job's metrics like the engine's groups (most matches of a typical job).
        const pairs = pushdown.hits.reduce((sum, n) => sum + n, 0);
        processed += 2 * pairs;
        metrics.reconcileRecordsTotal.inc(2 * pairs);
        if (pairs > 0) metrics.reconcileGroupsTotal.inc({ outcome: "MATCHED" }, pairs);
      }
      thread = await startEngine({
        jobId: job.id,
        projectId: job.projectId,
        rules,
        persist: !job.dryRun,
        pushed: pushdown && { hits: pushdown.hits },
        excludedPairs: await excludedPairKeys(pool, job),
      });
      // Stopped while waiting for a thread (one warming up): the stop reached no thread.
      if (stopped) thread.stop();
      throwIfStopped();
      const engine = thread;
      await writer.query("BEGIN");
      await writer.query("SET LOCAL statement_timeout = 0");
      // PostgreSQL's JIT compiles each big statement of a job afresh: about 0.3 s apiece here, never repaid.
      await writer.query("SET LOCAL jit = off");
      if (!job.dryRun) await writer.query(CREATE_EXCEPTION_FACTS_SQL);
      const exclusion = (column: "left_id" | "right_id") => (pushdown ? { table: pushdown.table, column } : undefined);
      const left = await openRecordStream(pool, job.leftSourceId, exclusion("left_id"));
      streams.push(left);
      const right = await openRecordStream(pool, job.rightSourceId, exclusion("right_id"));
      streams.push(right);

      // The groups go in one COPY per block; after each, the block's exceptions are opened (one INSERT … SELECT)
      // while the engine matches the next block, rather than all of them once the last block is done.
      let pushedQueued = false;
      // The pushed-down pairs' amounts for the summary, asked for while the engine matches (not before it starts).
      let amounts: Promise<PushedAmount[]> | null = null;
      let matching: Promise<BlockResult> | null = null;
      /** Queues a step on the writer connection (not awaited: writing overlaps matching and reading). */
      const queueWrite = (step: () => Promise<void>) => {
        // Once the job has stopped nothing more may reach the connection: a COPY begun after the ROLLBACK would
        // run outside the transaction.
        writes.chain = writes.chain.then(() => {
          if (writes.stopped) throw new Error("reconciliation job stopped");
          return step();
        });
        // Observed at the end (await writes.chain); this keeps a failure from being an unhandled rejection.
        writes.chain.catch(() => {});
      };
      /** Queues a chunk of groups for the block's COPY (started by its first chunk). */
      const write = (chunk: Uint8Array) => {
        if (job.dryRun) return;
        queueWrite(() => {
          const persistStarted = performance.now();
          writes.copy ??= startCopy(writer, `COPY match_groups (${GROUP_COPY_COLUMNS}) FROM STDIN`);
          return Promise.race([writeChunk(writes.copy.stream, chunk), writes.copy.failed]).then(() => {
            phaseMillis.persist! += performance.now() - persistStarted;
          });
        });
      };
      /** Queues the end of the block's COPY and the opening of its exceptions (the engine's facts, copied in). */
      const closeBlock = (exceptions: Uint8Array | null) => {
        if (job.dryRun) return;
        queueWrite(async () => {
          const started = performance.now();
          if (writes.copy) {
            await endCopy(writes.copy);
            writes.copy = null;
          }
          if (exceptions) {
            await copyIn(writer, `COPY ${EXCEPTION_FACTS_TABLE} (${EXCEPTION_FACT_COLUMNS}) FROM STDIN`, exceptions, writes);
            await openExceptionsFromFacts(writer);
          }
          phaseMillis.exceptions! += performance.now() - started;
        });
      };
      /** Takes the last block's result: counters and metrics (its groups went to `write` as they came). */
      const collect = async () => {
        const result = await matching!;
        matching = null;
        closeBlock(result.exceptions);
        phaseMillis.match! += result.matchMillis;
        phaseMillis.parse! += result.parseMillis;
        counts = result.counts;
        for (const [outcome, n] of Object.entries(result.outcomes)) metrics.reconcileGroupsTotal.inc({ outcome }, n);
      };

      for (;;) {
        phase = "parse";
        const started = performance.now();
        const block = await readBlock(left, right, throwIfStopped);
        phaseMillis.parse! += performance.now() - started;
        // The pushed-down pairs are the first write (the statement runs while the engine works), issued once the
        // first block is in: until then the record streams' sorts have the cores, and the engine waits on them.
        if (pushdown && !pushedQueued) {
          pushedQueued = true;
          const table = pushdown.table;
          if (!job.dryRun) queueWrite(() => insertPushedGroups(writer, table, job, rules).then(() => {}));
          amounts = pushedAmounts(pool, table);
          amounts.catch(() => {}); // observed below, at the summary
        }
        processed += block.records;
        metrics.reconcileRecordsTotal.inc(block.records);
        if (matching) await collect();
        phase = "match";
        matching = engine.match({
          left: block.left,
          right: block.right,
          // Unmatched records a later record could still reach are carried into the next block; so are those
          // whose possible discrepancy partners are not all settled yet (one more reach back).
          carryFrom: block.exhausted ? null : block.lastDate + 1 - reach,
          finalizeBefore: block.exhausted ? null : block.lastDate + 1 - 2 * reach,
        }, write);
        matching.catch(() => {});
        await checkpoint();
        if (block.exhausted) break;
      }
      await collect();
      await Promise.all(streams.map((stream) => stream.close()));
      phase = "persist";
      await checkpoint(true);
      const waitStarted = performance.now();
      await writes.chain;
      phaseMillis.persistWait = performance.now() - waitStarted;
      // Earlier jobs' open exceptions, once all of this job's are open, in the transaction that commits its groups.
      if (!job.dryRun) await carryForwardExceptions(writer, job.id);
      const summary = await engine.finish(roundMillis(phaseMillis), amounts ? await amounts : []);
      // clock_timestamp(): now() would be when this transaction began, before the first block was matched.
      const { rowCount } = await writer.query(
        `UPDATE reconciliation_jobs SET status = 'COMPLETED', phase = 'completed', progress = 1, processed = $2,
           matched_count = $3, suggested_count = $4, discrepancy_count = $5, unmatched_left_count = $6,
           unmatched_right_count = $7, summary = $8, finished_at = clock_timestamp()
         WHERE id = $1 AND status = 'RUNNING'`,
        [job.id, processed, counts.matchedCount, counts.suggestedCount, counts.discrepancyCount, counts.unmatchedLeftCount,
          counts.unmatchedRightCount, JSON.stringify(summary)],
      );
      // Cancelled (or deleted) while we finished: nothing is kept.
      if (rowCount === 0) throw new JobStopped();
      await writer.query("COMMIT");
      logger.info({ jobId: job.id, processed, phaseMillis: roundMillis(phaseMillis), ...counts }, "reconciliation job completed");
    } catch (error) {
      writes.stopped = true;
      if (writes.copy) {
        // CopyFail: PostgreSQL ends the COPY with an error, and the connection takes the ROLLBACK.
        writes.copy.stream.on("error", () => {});
        writes.copy.stream.destroy(new Error("reconciliation job stopped"));
      }
      // The step under way settles (a chunk's write fails with its COPY; a statement finishes); the rest are skipped.
      await writes.chain.catch(() => {});
      await writer.query("ROLLBACK").catch(() => {});
      await Promise.all(streams.map((stream) => stream.close().catch(() => {})));
      if (stopped === "interrupted") {
        logger.info({ jobId: job.id }, "reconciliation job interrupted by shutdown: recovery queues it again");
      } else if (error instanceof JobStopped || error instanceof EngineStopped || stopped) {
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
      runs.delete(stop);
      unsubscribe();
      await thread?.close();
      if (pushdown) await dropPairsTable(pool, job.id).catch((error) => logger.warn({ err: error, jobId: job.id }, "could not drop a job's scratch table"));
      await announce(job).catch(() => {});
    }
  }

  /** Runs one delivered job: takes its lock, claims it, runs it, and lets go of the lock and the connection. */
  async function perform({ jobId }: ReconcileTaskData): Promise<void> {
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
      } catch (error) {
        // run() records its own failures; this is for a bug outside its guard. A RUNNING job whose lock is free
        // would otherwise be queued again by recovery, and fail again, forever.
        logger.error({ err: error, jobId }, "reconciliation job crashed");
        await pool.query(
          `UPDATE reconciliation_jobs SET status = 'FAILED', phase = 'failed', error = $2, finished_at = now() WHERE id = $1 AND status = 'RUNNING'`,
          [jobId, failureMessage(error)],
        );
      } finally {
        stopTimer();
        metrics.reconciliationJobsActive.dec();
      }
    } finally {
      if (locked) await writer.query("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [lockKey(jobId)]).catch(() => {});
      writer.release();
    }
  }

  return {
    name: RECONCILE_TASK_NAME,
    // Failures are recorded on the job (FAILED, with the reason) rather than retried blindly; a lost worker is
    // handled by recoverLostJobs. pg-boss's own expiry is a last resort for a queue message stuck active.
    retryLimit: 0,
    expireInSeconds: 23 * 3600, // pg-boss caps it below 24 hours
    perform(data) {
      // Kept while it runs, so that `interrupt` can wait for it to let go of its connections.
      const done = perform(data);
      performs.add(done);
      const forget = () => void performs.delete(done);
      done.then(forget, forget);
      return done;
    },
    async warmEngines() {
      await engines?.warm();
    },
    async closeEngines() {
      await engines?.close();
    },
    async interrupt(deadlineMs = INTERRUPT_DEADLINE_MS) {
      interrupted = true;
      for (const stop of runs) stop("interrupted");
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), deadlineMs)));
      try {
        return await Promise.race([Promise.allSettled(performs).then(() => true), deadline]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Starts `COPY … FROM STDIN` on `client`; `failed` rejects with the COPY's error (observed by whoever awaits it). */
function startCopy(client: pg.PoolClient, statement: string): { stream: CopyStreamQuery; failed: Promise<never> } {
  const stream = client.query(copyFrom(statement));
  const failed = new Promise<never>((_, reject) => stream.on("error", reject));
  failed.catch(() => {});
  return { stream, failed };
}

/** Ends a COPY begun by `startCopy`: resolves once PostgreSQL has taken it all, rejects with its error. */
function endCopy(copy: { stream: CopyStreamQuery; failed: Promise<never> }): Promise<void> {
  const ended = new Promise<void>((resolve, reject) => copy.stream.end((error?: Error | null) => (error ? reject(error) : resolve())));
  return Promise.race([ended, copy.failed]);
}

/**
 * One whole COPY … FROM STDIN of `bytes` on `client`, registered in `writes.copy` while it is open (so that a failing
 * job aborts it before its ROLLBACK).
 */
async function copyIn(
  client: pg.PoolClient,
  statement: string,
  bytes: Uint8Array,
  writes: { copy: { stream: CopyStreamQuery; failed: Promise<never> } | null },
): Promise<void> {
  const copy = (writes.copy = startCopy(client, statement));
  await Promise.race([writeChunk(copy.stream, bytes), copy.failed]);
  await endCopy(copy);
  writes.copy = null;
}

function roundMillis(phaseMillis: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(phaseMillis).map(([name, ms]) => [name, Math.round(ms)]));
}

/** What a FAILED job shows: the engine's and PostgreSQL's messages are safe to show; nothing else is. */
function failureMessage(error: unknown): string {
  if (error instanceof Error && (error.name === "RuleSetError" || error.name === "EngineThreadError" || "code" in error)) return error.message.slice(0, 500);
  return "the job failed unexpectedly; the server log has the details";
}

/**
 * Finds RUNNING jobs whose worker is gone (their advisory lock is free: the connection that held it has closed)
 * and queues them again. Every worker runs this at start and then periodically; taking the lock while resetting
 * the job makes two recovering workers agree.
 */
export async function recoverLostJobs(deps: {
  pool: pg.Pool;
  queue: Pick<Queue, "send">;
  task: Task<ReconcileTaskData>;
  changes: ChangeFeed;
  events: Pick<JobEvents, "publish">;
  logger: Logger;
}): Promise<string[]> {
  const { pool, queue, task, changes, events, logger } = deps;
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
      // The lost run's scratch table (exact-pushdown.ts), if it got that far; the new run would replace it anyway.
      await dropPairsTable(pool, job.id).catch(() => {});
      await changes.wrote([tags.job(job.id), tags.projectJobs(job.projectId)], "reconcile");
      await events.publish(pool, job.id, job.projectId);
      await queue.send(task, { jobId: job.id });
    }
  }
  if (recovered.length) logger.warn({ jobs: recovered }, "queued again reconciliation jobs whose worker was lost");
  return recovered;
}
