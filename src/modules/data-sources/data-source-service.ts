/**
 * Data sources of a project. Responsible for authorization (through the project they belong to) and input
 * checks; talks to the data-source repository and records every change in the audit log.
 */
import type { Database } from "../../db/database.js";
import type { DataSourceKind } from "../../generated/prisma/enums.js";
import { policy, type Viewer } from "../../auth/policy.js";
import { isUniqueViolation } from "../../db/errors.js";
import { BadUserInputError, ConflictError, ForbiddenError, NotFoundError } from "../../graphql/errors.js";
import { parseColumnMapping } from "../../ingest/column-mapping.js";
import type { DataSource } from "../../graphql/models.js";
import { isId, requireId, requireObject, requireText } from "../../graphql/validate.js";
import type { AuditService } from "../audit/audit-service.js";
import type { ProjectService } from "../projects/project-service.js";
import type { DataSourceRepository } from "./data-source-repository.js";

/** A column mapping as sent, after checking it parses (stored as sent, so defaults can improve later). */
function requireMapping(value: unknown, field: string): Record<string, unknown> {
  const mapping = requireObject(value, field);
  const parsed = parseColumnMapping(mapping);
  if (!parsed.ok) throw new BadUserInputError(parsed.path ? `${field}.${parsed.path}` : field, parsed.message);
  return mapping;
}

function snapshot(source: DataSource) {
  return { name: source.name, kind: source.kind, columnMapping: source.columnMapping, isActive: source.isActive };
}

export function createDataSourceService(deps: {
  transaction: Database["transaction"];
  dataSources: DataSourceRepository;
  projects: Pick<ProjectService, "authorize" | "get">;
  audit: AuditService;
}) {
  const { transaction, dataSources, projects, audit } = deps;

  async function withUniqueName<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (error) {
      if (isUniqueViolation(error)) throw new ConflictError("input.name", "this project has a data source with this name already");
      throw error;
    }
  }

  return {
    /** Whether the viewer may see the project; the caller then loads its sources in a batch. */
    async visibleProjectId(viewer: Viewer | null, projectId: string): Promise<string | null> {
      if (!isId(projectId)) return null;
      return (await projects.get(viewer, projectId))?.id ?? null;
    },

    async create(
      viewer: Viewer | null,
      input: { projectId: string; name: string; kind?: DataSourceKind | null; columnMapping?: unknown },
    ): Promise<DataSource> {
      const { actor, project, relation } = await projects.authorize(viewer, input.projectId, "input.projectId");
      if (!policy.editProject(actor, relation)) throw new ForbiddenError("Your role in this project does not allow you to add data sources");
      const data = {
        projectId: project.id,
        name: requireText(input.name, "input.name"),
        kind: input.kind ?? "OTHER",
        columnMapping: input.columnMapping == null ? {} : requireMapping(input.columnMapping, "input.columnMapping"),
      };
      return withUniqueName(() =>
        transaction(async (tx) => {
          const source = await dataSources.create(data, tx);
          await audit.record(tx, {
            userId: actor.id,
            projectId: project.id,
            action: "dataSource.create",
            resourceType: "DataSource",
            resourceId: source.id,
            after: snapshot(source),
          });
          return source;
        }),
      );
    },

    async update(
      viewer: Viewer | null,
      rawId: string,
      input: { name?: string | null; kind?: DataSourceKind | null; columnMapping?: unknown; isActive?: boolean | null },
    ): Promise<DataSource> {
      const id = requireId(rawId, "id");
      const existing = await dataSources.findById(id);
      if (!existing) throw new NotFoundError("DataSource");
      const { actor, relation } = await projects.authorize(viewer, existing.projectId).catch((error) => {
        throw error instanceof NotFoundError ? new NotFoundError("DataSource") : error;
      });
      if (!policy.editProject(actor, relation)) throw new ForbiddenError("Your role in this project does not allow you to change data sources");
      const data: Record<string, unknown> = {};
      if (input.name != null) data.name = requireText(input.name, "input.name");
      if (input.kind != null) data.kind = input.kind;
      if (input.columnMapping != null) data.columnMapping = requireMapping(input.columnMapping, "input.columnMapping");
      if (input.isActive != null) data.isActive = input.isActive;
      return withUniqueName(() =>
        transaction(async (tx) => {
          const source = await dataSources.update(id, data, tx);
          await audit.record(tx, {
            userId: actor.id,
            projectId: existing.projectId,
            action: "dataSource.update",
            resourceType: "DataSource",
            resourceId: id,
            before: snapshot(existing),
            after: snapshot(source),
          });
          return source;
        }),
      );
    },
  };
}

export type DataSourceService = ReturnType<typeof createDataSourceService>;
