/**
 * The scheduler's tick: a pg-boss task scheduled once a minute (pg-boss's cron, which sends one message per minute
 * however many instances run it), whose `perform` runs every reconciliation schedule that is due. One schedule
 * for all projects rather than one per project: pg-boss 10 keys a schedule by its queue name, and a queue per
 * project would be a table partition and a polling worker per project in every process. The per-project cron
 * times live in `reconciliation_schedules.next_run_at`, claimed with `FOR UPDATE SKIP LOCKED`.
 */
import type { Task } from "../../queue/queue.js";
import type { ScheduleService } from "./schedule-service.js";

export const SCHEDULE_TICK_CRON = "* * * * *";

export function createScheduleTickTask(deps: { schedules: Pick<ScheduleService, "runDue"> }): Task<Record<string, never>> {
  return {
    name: "recon-schedule-tick",
    // A failed tick is not retried: the next one, a minute later, finds the same schedules still due.
    retryLimit: 0,
    expireInSeconds: 300,
    async perform() {
      await deps.schedules.runDue();
    },
  };
}
