/**
 * Durable background work on pg-boss (PostgreSQL-backed: jobs survive restarts and spread over every process that
 * works the queue, with no service besides PostgreSQL). Responsible for one task contract — a name, a retry
 * policy, `perform` — and for running tasks with a fixed in-process concurrency. What a task does when it fails
 * for good, and how it reports progress, is the task's own business (see modules/jobs/reconcile-task.ts).
 */
import PgBoss from "pg-boss";
import type { Logger } from "../observability/logger.js";
import type { QueueWakeups } from "./job-events.js";

/** A kind of background work. `perform` must be idempotent: a message may be delivered more than once. */
export interface Task<Data extends object> {
  name: string;
  /** Retries after `perform` throws (a crash of the process is handled by the task's own recovery). */
  retryLimit: number;
  /** How long pg-boss lets one attempt run before it considers it lost. */
  expireInSeconds: number;
  perform(data: Data): Promise<void>;
}

export interface Queue {
  /** Queues one run of `task` with `data`. */
  send<Data extends object>(task: Task<Data>, data: Data): Promise<void>;
  /**
   * Sends `task` a message on every `cron` time (UTC), through pg-boss's scheduler: one message per time whichever
   * and however many processes schedule it. Scheduling again replaces the expression.
   */
  schedule<Data extends object>(task: Task<Data>, cron: string, data: Data): Promise<void>;
  /** Starts working `task` here with `concurrency` runs at a time (0: this process only sends). */
  work<Data extends object>(task: Task<Data>, concurrency: number): Promise<void>;
  /** Stops taking work, waits up to `timeoutMs` for running tasks, then disconnects. */
  stop(timeoutMs?: number): Promise<void>;
}

export async function createQueue(options: {
  url: string;
  logger: Logger;
  /** How often idle workers look for work by themselves (seconds). */
  pollingIntervalSeconds?: number;
  /** Wakes workers in every process when any process queues work (without it: those of this process only). */
  wakeups?: QueueWakeups;
}): Promise<Queue> {
  const { logger } = options;
  const boss = new PgBoss({
    connectionString: options.url,
    schema: "pgboss",
    application_name: "recon-queue",
    max: 4,
    // Finished queue rows are kept a week for inspection; recon's own job table is the history users see.
    deleteAfterDays: 7,
  });
  boss.on("error", (error) => logger.error({ err: error }, "job queue error"));
  await boss.start();
  const created = new Set<string>();
  /**
   * Local worker ids per task. pg-boss's workers only poll: a job sent by another process would wait up to a
   * polling interval (a second by default; half a second on average added to every job an API instance queues for
   * a worker process). So whoever sends wakes the task's workers here and, through `wakeups`, everywhere.
   */
  const localWorkers = new Map<string, string[]>();
  const pollingIntervalSeconds = options.pollingIntervalSeconds ?? 1;
  const wakeLocal = (task: string) => {
    for (const id of localWorkers.get(task) ?? []) boss.notifyWorker(id);
  };
  options.wakeups?.onWake(wakeLocal);

  async function ensureQueue(task: Task<object>): Promise<void> {
    if (created.has(task.name)) return;
    await boss.createQueue(task.name, { name: task.name, retryLimit: task.retryLimit, expireInSeconds: task.expireInSeconds });
    created.add(task.name);
  }

  return {
    async send(task, data) {
      await ensureQueue(task as Task<object>);
      await boss.send(task.name, data, { retryLimit: task.retryLimit, expireInSeconds: task.expireInSeconds });
      wakeLocal(task.name);
      await options.wakeups?.wake(task.name);
    },
    async schedule(task, cron, data) {
      await ensureQueue(task as Task<object>);
      await boss.schedule(task.name, cron, data, { tz: "UTC", retryLimit: task.retryLimit, expireInSeconds: task.expireInSeconds });
    },
    async work(task, concurrency) {
      await ensureQueue(task as Task<object>);
      // pg-boss 10 runs one batch per worker at a time: `concurrency` workers of one job each.
      const ids = localWorkers.get(task.name) ?? [];
      localWorkers.set(task.name, ids);
      for (let i = 0; i < concurrency; i++) {
        const id = await boss.work<typeof task extends Task<infer D> ? D : never>(
          task.name,
          { batchSize: 1, pollingIntervalSeconds },
          async ([job]) => {
            await task.perform(job!.data);
          },
        );
        ids.push(id);
      }
    },
    async stop(timeoutMs = 10_000) {
      await boss.stop({ graceful: true, wait: true, timeout: timeoutMs });
    },
  };
}
