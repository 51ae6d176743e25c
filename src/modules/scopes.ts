/** Turns a viewer into the query scopes repositories understand (what lists may contain). */
import { policy, type Viewer } from "../auth/policy.js";
import { ProjectRole } from "../generated/prisma/enums.js";
import type { ProjectScope } from "./projects/project-repository.js";
import type { UserScope } from "./users/user-repository.js";
import type { AuditScope } from "./audit/audit-repository.js";

export function projectScope(viewer: Viewer): ProjectScope {
  return policy.seesAllProjects(viewer) ? { all: true } : { all: false, userId: viewer.id };
}

export function userScope(viewer: Viewer): UserScope {
  return policy.seesAllUsers(viewer) ? { all: true } : { all: false, userId: viewer.id, projects: projectScope(viewer) };
}

/**
 * The projects whose audit log the viewer reads: those `policy.manageProject` lets them manage, through owning the
 * project or through their role in it (none for a global VIEWER, whatever those say).
 */
export function auditScope(viewer: Viewer): AuditScope {
  if (policy.seesAllProjects(viewer)) return { all: true };
  return {
    all: false,
    userId: viewer.id,
    asOwner: policy.manageProject(viewer, "OWNER"),
    memberRoles: Object.values(ProjectRole).filter((role) => policy.manageProject(viewer, role)),
  };
}
