/**
 * The exception lifecycle as a pure function: which actions each status allows and where they lead.
 *
 *   OPEN ──assign──▶ ASSIGNED ──pending──▶ PENDING
 *     ▲  ◀─unassign─    │  ▲ ◀────assign (resume)──┘
 *     │                 ▼  │
 *     └──── reopen ── RESOLVED ◀── resolve / write off / adjust (from OPEN, ASSIGNED, PENDING)
 *
 * Reopening leads back to ASSIGNED when the exception still has an assignee, else OPEN. An exception closed by
 * manual matching (MATCHED, SUPERSEDED) is not reopened: its records are in other groups now (unmatch those).
 */
import type { ExceptionResolution, ExceptionStatus } from "./exception-repository.js";

export type LifecycleAction = "assign" | "unassign" | "pending" | "resolve" | "reopen";

/** The status after `action`, or why it is not allowed from `current` (a sentence for the API's error). */
export function nextStatus(
  current: { status: ExceptionStatus; assigneeId: string | null; resolution: ExceptionResolution | null },
  action: LifecycleAction,
): { status: ExceptionStatus } | { refused: string } {
  const { status } = current;
  const refuse = (why: string) => ({ refused: `is ${status}: ${why}` });
  switch (action) {
    case "assign":
      return status === "RESOLVED" ? refuse("reopen it before assigning it") : { status: "ASSIGNED" };
    case "unassign":
      if (status === "RESOLVED") return refuse("reopen it before unassigning it");
      return current.assigneeId === null ? refuse("it has no assignee") : { status: "OPEN" };
    case "pending":
      if (status === "ASSIGNED") return { status: "PENDING" };
      return refuse(status === "OPEN" ? "assign it before marking it PENDING" : status === "PENDING" ? "it is PENDING already" : "reopen it first");
    case "resolve":
      return status === "RESOLVED" ? refuse("it is resolved already") : { status: "RESOLVED" };
    case "reopen":
      if (status !== "RESOLVED") return refuse("only a RESOLVED exception can be reopened");
      if (current.resolution === "MATCHED" || current.resolution === "SUPERSEDED") {
        return refuse(`it was closed by manual matching (${current.resolution}): unmatch the group that holds its records instead`);
      }
      return { status: current.assigneeId ? "ASSIGNED" : "OPEN" };
  }
}
