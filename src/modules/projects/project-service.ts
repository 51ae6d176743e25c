/**
 * Projects and their members. Responsible for who may see and change a project (auth/policy.ts), for keeping an
 * archived project unchanged (`authorize`, which every write path goes through) and for input checks; talks to the
 * project repository and records every change in the audit log.
 */
import type { Database } from "../../db/database.js";
import type { ProjectRole, ProjectStatus } from "../../generated/prisma/enums.js";
import { policy, projectRelation, requireViewer, type ProjectRelation, type Viewer } from "../../auth/policy.js";
import { BadUserInputError, ConflictError, ForbiddenError, NotFoundError } from "../../graphql/errors.js";
import type { Project } from "../../graphql/models.js";
import { MAX_PAGE_SIZE, pageRequest, toConnection } from "../../graphql/pagination.js";
import { isId, requireId, requireObject, requireText } from "../../graphql/validate.js";
import type { AuditService } from "../audit/audit-service.js";
import { projectScope } from "../scopes.js";
import type { UserRepository } from "../users/user-repository.js";
import type { JobEvents } from "../../queue/job-events.js";
import type { JobRepository } from "../jobs/job-repository.js";
import type { ProjectRepository } from "./project-repository.js";

export interface ProjectFilterInput {
  status?: ProjectStatus | null;
  ownerId?: string | null;
  search?: string | null;
}

function snapshot(project: Project) {
  return { name: project.name, description: project.description, status: project.status, settings: project.settings };
}

export function createProjectService(deps: {
  transaction: Database["transaction"];
  pool: Database["pool"];
  projects: ProjectRepository;
  users: UserRepository;
  audit: AuditService;
  /** Archiving a project cancels its unfinished jobs (and tells their workers and followers). */
  jobs: Pick<JobRepository, "cancelOfProject">;
  events: Pick<JobEvents, "publish">;
}) {
  const { transaction, pool, projects, users, audit, jobs, events } = deps;

  /**
   * The project and the viewer's relation to it, before a change to it: every write path goes through here. NOT_FOUND
   * if the viewer may not see the project, so that one they may not see is indistinguishable from one that does not
   * exist; refused (BAD_USER_INPUT, reason CONFLICT, naming `field`) while the project is ARCHIVED — read-only
   * history: no upload, data source, rule set, run, schedule, exception or match changes it any more. Acts that
   * leave its history as it is pass `allowArchived`: deleting it, managing who may read it, stopping a job.
   */
  async function authorize(viewer: Viewer | null, rawId: string, field = "id", { allowArchived = false } = {}) {
    const actor = requireViewer(viewer);
    const id = requireId(rawId, field);
    const row = await projects.findWithMemberRole(id, actor.id);
    const relation = row && projectRelation(actor, row, row.memberRole);
    if (!row || !relation) throw new NotFoundError("Project");
    if (row.status === "ARCHIVED" && !allowArchived) {
      throw new ConflictError(field, `project ${row.id} is archived (read-only history): it can be read and deleted, not changed`);
    }
    const { memberRole: _, ...project } = row;
    return { actor, project: project as Project, relation };
  }

  function check(allowed: boolean, what: string) {
    if (!allowed) throw new ForbiddenError(`Your role in this project does not allow you to ${what}`);
  }

  return {
    authorize,

    async list(
      viewer: Viewer | null,
      args: { first?: number | null; after?: string | null; filter?: ProjectFilterInput | null },
      withTotal: boolean,
    ) {
      const scope = projectScope(requireViewer(viewer));
      const page = pageRequest(args);
      const filter = { ...args.filter };
      if (filter.ownerId) filter.ownerId = requireId(filter.ownerId, "filter.ownerId");
      const { rows, total } = await projects.list(scope, filter, page, withTotal);
      return toConnection(rows, page, () => projects.count(scope, filter), total);
    },

    /** Projects a given user owns or belongs to, among those the viewer may see. */
    async listForUser(viewer: Viewer | null, userId: string, args: { first?: number | null; after?: string | null }) {
      const scope = projectScope(requireViewer(viewer));
      const page = pageRequest(args);
      const rows = await projects.listForUser(scope, userId, page);
      return toConnection(rows, page, async () => (await projects.countsByUser(scope, [userId])).get(userId) ?? 0);
    },

    async get(viewer: Viewer | null, id: string): Promise<Project | null> {
      if (!isId(id)) return null;
      const [project] = await projects.findByIds(projectScope(requireViewer(viewer)), [id]);
      return project ?? null;
    },

    async search(viewer: Viewer | null, query: string, first: number | null | undefined): Promise<Project[]> {
      const scope = projectScope(requireViewer(viewer));
      const text = query.trim();
      if (text.length < 2) throw new BadUserInputError("query", "must be at least 2 characters");
      if (text.length > 200) throw new BadUserInputError("query", "must be at most 200 characters");
      const limit = first ?? 20;
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
        throw new BadUserInputError("first", `must be between 1 and ${MAX_PAGE_SIZE}`);
      }
      return projects.search(scope, text, limit);
    },

    /** How the viewer relates to a project they can already see: OWNER, ADMIN or their member role. */
    viewerRole(viewer: Viewer, project: Project, memberRole: ProjectRole | null): ProjectRelation {
      return projectRelation(viewer, project, memberRole) ?? "VIEWER";
    },

    async create(viewer: Viewer | null, input: { name: string; description?: string | null; settings?: unknown }) {
      const actor = requireViewer(viewer);
      if (!policy.createProject(actor)) throw new ForbiddenError("VIEWERs cannot create projects");
      const data = {
        name: requireText(input.name, "input.name"),
        description: requireText(input.description ?? "", "input.description", { min: 0, max: 5000 }),
        settings: input.settings == null ? {} : requireObject(input.settings, "input.settings"),
        ownerId: actor.id,
      };
      return transaction(async (tx) => {
        const project = await projects.create(data, tx);
        await audit.record(tx, {
          userId: actor.id,
          projectId: project.id,
          action: "project.create",
          resourceType: "Project",
          resourceId: project.id,
          after: snapshot(project),
        });
        return project;
      });
    },

    async update(
      viewer: Viewer | null,
      id: string,
      input: { name?: string | null; description?: string | null; settings?: unknown },
    ) {
      const { actor, project, relation } = await authorize(viewer, id);
      check(policy.editProject(actor, relation), "change it");
      const data: Record<string, unknown> = {};
      if (input.name != null) data.name = requireText(input.name, "input.name");
      if (input.description != null) data.description = requireText(input.description, "input.description", { min: 0, max: 5000 });
      if (input.settings != null) data.settings = requireObject(input.settings, "input.settings");
      return transaction(async (tx) => {
        const updated = await projects.update(project.id, data, tx);
        await audit.record(tx, {
          userId: actor.id,
          projectId: project.id,
          action: "project.update",
          resourceType: "Project",
          resourceId: project.id,
          before: snapshot(project),
          after: snapshot(updated),
        });
        return updated;
      });
    },

    /**
     * Makes the project read-only history (ARCHIVED; see `authorize`). For good: nothing sets a project ACTIVE again
     * (UpdateProjectInput has no status), and archiving an archived project is refused like any other change.
     */
    async archive(viewer: Viewer | null, id: string) {
      const { actor, project, relation } = await authorize(viewer, id);
      check(policy.manageProject(actor, relation), "archive it");
      const { updated, cancelled } = await transaction(async (tx) => {
        const updated = await projects.update(project.id, { status: "ARCHIVED", isActive: false }, tx);
        await audit.record(tx, {
          userId: actor.id,
          projectId: project.id,
          action: "project.archive",
          resourceType: "Project",
          resourceId: project.id,
          before: snapshot(project),
          after: snapshot(updated),
        });
        // Jobs not yet finished would add results to read-only history: they are cancelled with the archiving.
        const cancelled = await jobs.cancelOfProject(project.id, tx);
        for (const jobId of cancelled) {
          await audit.record(tx, {
            userId: actor.id,
            projectId: project.id,
            action: "reconciliation.cancel",
            resourceType: "ReconciliationJob",
            resourceId: jobId,
            after: { status: "CANCELLED" },
            reason: "the project was archived",
          });
        }
        return { updated, cancelled };
      });
      for (const jobId of cancelled) await events.publish(pool, jobId, project.id);
      return updated;
    },

    async delete(viewer: Viewer | null, id: string): Promise<string> {
      const { actor, project, relation } = await authorize(viewer, id, "id", { allowArchived: true });
      check(policy.deleteProject(actor, relation), "delete it");
      await transaction(async (tx) => {
        await projects.delete(project.id, tx);
        await audit.record(tx, {
          userId: actor.id,
          projectId: project.id,
          action: "project.delete",
          resourceType: "Project",
          resourceId: project.id,
          before: snapshot(project),
        });
      });
      return project.id;
    },

    /** Adds a member or changes their role; also in an archived project, whose readers may change. */
    async addMember(viewer: Viewer | null, projectId: string, rawUserId: string, role: ProjectRole) {
      const { actor, project, relation } = await authorize(viewer, projectId, "projectId", { allowArchived: true });
      check(policy.manageProject(actor, relation), "manage its members");
      const userId = requireId(rawUserId, "userId");
      const user = await users.findById(userId);
      if (!user || !user.isActive) throw new BadUserInputError("userId", "no active user has this id");
      if (userId === project.ownerId) throw new BadUserInputError("userId", "the owner cannot also be a member");
      return transaction(async (tx) => {
        await projects.upsertMember(project.id, userId, role, tx);
        await audit.record(tx, {
          userId: actor.id,
          projectId: project.id,
          action: "project.member.add",
          resourceType: "ProjectMember",
          resourceId: `${project.id}:${userId}`,
          after: { userId, role },
        });
        return project;
      });
    },

    async removeMember(viewer: Viewer | null, projectId: string, rawUserId: string) {
      const { actor, project, relation } = await authorize(viewer, projectId, "projectId", { allowArchived: true });
      check(policy.manageProject(actor, relation), "manage its members");
      const userId = requireId(rawUserId, "userId");
      return transaction(async (tx) => {
        if (!(await projects.removeMember(project.id, userId, tx))) {
          throw new BadUserInputError("userId", "this user is not a member of the project");
        }
        await audit.record(tx, {
          userId: actor.id,
          projectId: project.id,
          action: "project.member.remove",
          resourceType: "ProjectMember",
          resourceId: `${project.id}:${userId}`,
          before: { userId },
        });
        return project;
      });
    },
  };
}

export type ProjectService = ReturnType<typeof createProjectService>;
