/**
 * Who may do what. Pure functions of the viewer and their relation to a project; services call them before
 * touching data, and repositories turn `seesAllProjects` into SQL for lists.
 */
import type { ProjectRole, Role } from "../generated/prisma/enums.js";
import { UnauthenticatedError } from "../graphql/errors.js";

/** The signed-in user making a request, as re-read from the database for this request. */
export interface Viewer {
  id: string;
  email: string;
  name: string;
  role: Role;
}

/** The viewer, or UNAUTHENTICATED: every operation but `me` and `login` needs one. */
export function requireViewer(viewer: Viewer | null): Viewer {
  if (!viewer) throw new UnauthenticatedError();
  return viewer;
}

/** How the viewer relates to one project: its owner, an admin, a member with a role, or nothing. */
export type ProjectRelation = "OWNER" | "ADMIN" | ProjectRole;

export function projectRelation(
  viewer: Viewer,
  project: { ownerId: string },
  memberRole: ProjectRole | null,
): ProjectRelation | null {
  if (viewer.role === "ADMIN") return "ADMIN";
  if (project.ownerId === viewer.id) return "OWNER";
  return memberRole;
}

/** A global VIEWER never changes anything, whatever their project roles say. */
const mayWrite = (viewer: Viewer) => viewer.role !== "VIEWER";

export const policy = {
  seesAllProjects: (viewer: Viewer) => viewer.role === "ADMIN",
  seesAllUsers: (viewer: Viewer) => viewer.role === "ADMIN" || viewer.role === "MANAGER",
  manageUsers: (viewer: Viewer) => viewer.role === "ADMIN",
  createProject: (viewer: Viewer) => mayWrite(viewer),
  /** Change the project's fields and its data sources. */
  editProject: (viewer: Viewer, relation: ProjectRelation) => mayWrite(viewer) && relation !== "VIEWER",
  /** Archive, manage members, read the project's audit log. */
  manageProject: (viewer: Viewer, relation: ProjectRelation) =>
    mayWrite(viewer) && (relation === "OWNER" || relation === "ADMIN" || relation === "MANAGER"),
  deleteProject: (viewer: Viewer, relation: ProjectRelation) =>
    mayWrite(viewer) && (relation === "OWNER" || relation === "ADMIN"),
  /** Work exceptions and match groups: assign, comment, resolve, confirm, reject, unmatch, match by hand. */
  workExceptions: (viewer: Viewer, relation: ProjectRelation) => mayWrite(viewer) && relation !== "VIEWER",
  /**
   * Accept a difference: force a match, write off or adjust an exception (and reopen those). A MANAGER — by global
   * role in a project they work in, or by project role — or an ADMIN; owning a project does not grant it.
   */
  approveDifferences: (viewer: Viewer, relation: ProjectRelation) =>
    mayWrite(viewer) && relation !== "VIEWER" && (viewer.role === "ADMIN" || viewer.role === "MANAGER" || relation === "MANAGER"),
};
