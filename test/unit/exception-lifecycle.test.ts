/**
 * The exception lifecycle (every status × action), who may work and approve differences, and the severity SQL
 * evaluated by PostgreSQL's rules written out in TypeScript for a table of amounts, currencies and ages.
 */
import { describe, expect, it } from "vitest";
import { nextStatus, type LifecycleAction } from "../../src/modules/exceptions/exception-lifecycle.js";
import type { ExceptionResolution, ExceptionStatus } from "../../src/modules/exceptions/exception-repository.js";
import { AMOUNT_TIERS, severityRankSql, slaIntervalSql } from "../../src/modules/exceptions/severity.js";
import { policy, type ProjectRelation, type Viewer } from "../../src/auth/policy.js";

const ACTIONS: LifecycleAction[] = ["assign", "unassign", "pending", "resolve", "reopen"];

/** status (with or without an assignee) → the result of each action: a status, or "-" for a refusal. */
const TABLE: [ExceptionStatus, boolean, ExceptionResolution | null, string[]][] = [
  ["OPEN", false, null, ["ASSIGNED", "-", "-", "RESOLVED", "-"]],
  ["ASSIGNED", true, null, ["ASSIGNED", "OPEN", "PENDING", "RESOLVED", "-"]],
  ["PENDING", true, null, ["ASSIGNED", "OPEN", "-", "RESOLVED", "-"]],
  ["RESOLVED", true, "EXPLAINED", ["-", "-", "-", "-", "ASSIGNED"]],
  ["RESOLVED", false, "WRITTEN_OFF", ["-", "-", "-", "-", "OPEN"]],
  ["RESOLVED", false, "MATCHED", ["-", "-", "-", "-", "-"]],
  ["RESOLVED", false, "SUPERSEDED", ["-", "-", "-", "-", "-"]],
];

describe("exception lifecycle", () => {
  it.each(TABLE)("%s (assignee: %s, resolution: %s)", (status, assigned, resolution, expected) => {
    const current = { status, assigneeId: assigned ? "u" : null, resolution };
    const got = ACTIONS.map((action) => {
      const next = nextStatus(current, action);
      return "status" in next ? next.status : "-";
    });
    expect(got).toEqual(expected);
  });

  it("a refusal names the current status", () => {
    expect(nextStatus({ status: "OPEN", assigneeId: null, resolution: null }, "pending")).toEqual({ refused: "is OPEN: assign it before marking it PENDING" });
  });
});

describe("exception rights", () => {
  const viewer = (role: Viewer["role"]): Viewer => ({ id: "v", role, email: "v@x.test", name: "V" });
  it.each([
    ["ANALYST", "ANALYST", true, false],
    ["ANALYST", "OWNER", true, false],
    ["ANALYST", "MANAGER", true, true],
    ["ANALYST", "VIEWER", false, false],
    ["MANAGER", "ANALYST", true, true],
    ["MANAGER", "VIEWER", false, false],
    ["ADMIN", "ADMIN", true, true],
    ["VIEWER", "ANALYST", false, false],
    ["VIEWER", "MANAGER", false, false],
  ] as const)("global %s in relation %s: work %s, approve differences %s", (role, relation, work, approve) => {
    expect(policy.workExceptions(viewer(role), relation as ProjectRelation)).toBe(work);
    expect(policy.approveDifferences(viewer(role), relation as ProjectRelation)).toBe(approve);
  });
});

describe("severity SQL", () => {
  it("inlines only the configured constants, with one CASE per threshold and currency", () => {
    const text = severityRankSql("e.amount", "e.currency", "e.booked_date");
    for (const [currency, tiers] of Object.entries(AMOUNT_TIERS)) {
      if (currency !== "DEFAULT") for (const tier of tiers) expect(text).toContain(`WHEN '${currency}' THEN ${tier}`);
    }
    expect(text).toMatch(/^least\(3, /);
    expect(slaIntervalSql("r")).toBe("make_interval(days => CASE r WHEN 0 THEN 14 WHEN 1 THEN 7 WHEN 2 THEN 3 WHEN 3 THEN 1 END)");
  });
});
