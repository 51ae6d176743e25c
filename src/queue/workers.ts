/**
 * Starts this process's job workers: `RECON_WORKERS` concurrent runs of the reconcile task, the periodic
 * search for jobs whose worker was lost (a crashed process), which are queued again, and the scheduler's tick
 * (reconciliation schedules, once a minute). Used by the server and by the worker-only process (`npm run worker`).
 */
import type { Container } from "../container.js";
import { recoverLostJobs } from "../modules/jobs/reconcile-task.js";
import { SCHEDULE_TICK_CRON } from "../modules/schedules/schedule-task.js";

export async function startWorkers(
  container: Pick<Container, "database" | "queue" | "reconcileTask" | "scheduleTickTask" | "logger" | "jobEvents">,
  options: { workers: number; recoverySeconds: number; engineWarmup?: boolean },
): Promise<{ stop(): Promise<void> }> {
  const { database, queue, reconcileTask, scheduleTickTask, logger, jobEvents } = container;
  if (options.workers === 0) return { stop: async () => {} };
  // Cancellations and progress reach running jobs over the event bus: be listening before taking work.
  await jobEvents.ready();
  const recover = () =>
    recoverLostJobs({ pool: database.pool, queue, task: reconcileTask, changes: database.changes, events: jobEvents, logger }).catch((error) =>
      logger.warn({ err: error }, "could not look for lost reconciliation jobs"),
    );
  await recover();
  await queue.work(reconcileTask, options.workers);
  // In the background: a job that arrives meanwhile waits for a thread to be warm (its first statements run in
  // PostgreSQL anyway), which is sooner than a new thread would have compiled the engine.
  if (options.engineWarmup) {
    reconcileTask.warmEngines().catch((error) => logger.warn({ err: error }, "could not warm up the engine threads"));
  }
  // Every worker process (re)declares the tick; pg-boss keeps one schedule and sends once a minute in all.
  await queue.work(scheduleTickTask, 1);
  await queue.schedule(scheduleTickTask, SCHEDULE_TICK_CRON, {});
  const timer = setInterval(() => void recover(), options.recoverySeconds * 1000);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
    },
  };
}
