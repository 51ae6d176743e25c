/** Turns a viewer into the query scopes repositories understand (what lists may contain). */
import { policy, type Viewer } from "../auth/policy.js";
import type { ProjectScope } from "./projects/project-repository.js";
import type { UserScope } from "./users/user-repository.js";
import type { AuditScope } from "./audit/audit-repository.js";

export function projectScope(viewer: Viewer): ProjectScope {
  return policy.seesAllProjects(viewer) ? { all: true } : { all: false, userId: viewer.id };
}

export function userScope(viewer: Viewer): UserScope {
  return policy.seesAllUsers(viewer) ? { all: true } : { all: false, userId: viewer.id, projects: projectScope(viewer) };
}

export function auditScope(viewer: Viewer): AuditScope {
  return policy.seesAllProjects(viewer) ? { all: true } : { all: false, managedBy: viewer.id };
}
