/**
 * Starts this process's job workers: `RECON_WORKERS` concurrent runs of the reconcile task, and the periodic
 * search for jobs whose worker was lost (a crashed process), which are queued again. Used by the server and by
 * the worker-only process (`npm run worker`).
 */
import type { Container } from "../container.js";
import { recoverLostJobs } from "../modules/jobs/reconcile-task.js";

export async function startWorkers(
  container: Pick<Container, "database" | "queue" | "reconcileTask" | "logger" | "jobEvents">,
  options: { workers: number; recoverySeconds: number },
): Promise<{ stop(): Promise<void> }> {
  const { database, queue, reconcileTask, logger, jobEvents } = container;
  if (options.workers === 0) return { stop: async () => {} };
  // Cancellations and progress reach running jobs over the event bus: be listening before taking work.
  await jobEvents.ready();
  const recover = () =>
    recoverLostJobs({ pool: database.pool, queue, task: reconcileTask, changes: database.changes, events: jobEvents, logger }).catch((error) =>
      logger.warn({ err: error }, "could not look for lost reconciliation jobs"),
    );
  await recover();
  await queue.work(reconcileTask, options.workers);
  const timer = setInterval(() => void recover(), options.recoverySeconds * 1000);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
    },
  };
}
