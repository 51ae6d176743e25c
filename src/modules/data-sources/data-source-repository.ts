/** The only code that reads or writes data sources. */
import type { Db, DbClient } from "../../db/database.js";
import { raw, sql, type Prisma, type SqlReader } from "../../db/sql.js";
import type { DataSource } from "../../graphql/models.js";
import { readTags, readTagsOf, tags } from "../../cache/tags.js";


const COLUMNS = raw(`d.id, d.project_id AS "projectId", d.name, d.kind::text AS kind, d.status::text AS status,
  d.column_mapping AS "columnMapping", d.record_count AS "recordCount", d.is_active AS "isActive",
  d.created_at AS "createdAt", d.updated_at AS "updatedAt"`);

/** Registers what a read of data sources depends on: each row, and its project (whose deletion removes it). */
function readSources(rows: DataSource[]): DataSource[] {
  for (const row of rows) readTags(tags.dataSource(row.id), tags.project(row.projectId));
  return rows;
}

export function createDataSourceRepository({ prisma, read }: { prisma: DbClient; read: SqlReader }) {
  return {
    /** Data sources of each project, by name, in one query. */
    async listByProjects(projectIds: readonly string[]): Promise<DataSource[]> {
      readTagsOf(tags.projectDataSources, projectIds);
      return readSources(
        await read<DataSource[]>(sql`
          SELECT ${COLUMNS} FROM data_sources d WHERE d.project_id = ANY(${projectIds}::uuid[])
          ORDER BY d.project_id, d.name`),
      );
    },

    async findByIds(ids: readonly string[]): Promise<DataSource[]> {
      readTagsOf(tags.dataSource, ids);
      return readSources(await read<DataSource[]>(sql`SELECT ${COLUMNS} FROM data_sources d WHERE d.id = ANY(${ids}::uuid[])`));
    },

    async findById(id: string, db: Db = prisma): Promise<DataSource | null> {
      readTags(tags.dataSource(id));
      const row = await db.dataSource.findUnique({ where: { id } });
      return row && readSources([row])[0];
    },

    findByName(projectId: string, name: string, db: Db = prisma): Promise<DataSource | null> {
      return db.dataSource.findUnique({ where: { projectId_name: { projectId, name } } });
    },

    create(
      data: { projectId: string; name: string; kind: DataSource["kind"]; columnMapping: object },
      db: Db = prisma,
    ): Promise<DataSource> {
      return db.dataSource.create({ data });
    },

    update(id: string, data: Prisma.DataSourceUpdateInput, db: Db = prisma): Promise<DataSource> {
      return db.dataSource.update({ where: { id }, data });
    },
  };
}

export type DataSourceRepository = ReturnType<typeof createDataSourceRepository>;
