import { describe, expect, it } from "vitest";
import { policy, projectRelation, type Viewer } from "../../src/auth/policy.js";

const viewer = (role: Viewer["role"], id = "v"): Viewer => ({ id, role, email: "v@x.test", name: "V" });

describe("policy", () => {
  it("derives the relation: admin, owner, member role, or none", () => {
    expect(projectRelation(viewer("ADMIN"), { ownerId: "other" }, null)).toBe("ADMIN");
    expect(projectRelation(viewer("ANALYST"), { ownerId: "v" }, null)).toBe("OWNER");
    expect(projectRelation(viewer("ANALYST"), { ownerId: "other" }, "MANAGER")).toBe("MANAGER");
    expect(projectRelation(viewer("ANALYST"), { ownerId: "other" }, null)).toBeNull();
  });

  it("never lets a global VIEWER write, whatever the project role", () => {
    for (const relation of ["OWNER", "MANAGER", "ANALYST"] as const) {
      expect(policy.editProject(viewer("VIEWER"), relation)).toBe(false);
      expect(policy.manageProject(viewer("VIEWER"), relation)).toBe(false);
      expect(policy.deleteProject(viewer("VIEWER"), relation)).toBe(false);
    }
    expect(policy.createProject(viewer("VIEWER"))).toBe(false);
  });

  it.each([
    ["OWNER", true, true, true],
    ["ADMIN", true, true, true],
    ["MANAGER", true, true, false],
    ["ANALYST", true, false, false],
    ["VIEWER", false, false, false],
  ] as const)("project relation %s: edit %s, manage %s, delete %s", (relation, edit, manage, remove) => {
    const analyst = viewer("ANALYST");
    expect(policy.editProject(analyst, relation)).toBe(edit);
    expect(policy.manageProject(analyst, relation)).toBe(manage);
    expect(policy.deleteProject(analyst, relation)).toBe(remove);
  });
});
