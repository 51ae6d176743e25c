/** The only code that reads or writes data sources. */
import type { Db, DbClient } from "../../db/database.js";
import { raw, sql, type Prisma, type SqlReader } from "../../db/sql.js";
import type { DataSource } from "../../graphql/models.js";


const COLUMNS = raw(`d.id, d.project_id AS "projectId", d.name, d.kind::text AS kind, d.status::text AS status,
  d.column_mapping AS "columnMapping", d.record_count AS "recordCount", d.is_active AS "isActive",
  d.created_at AS "createdAt", d.updated_at AS "updatedAt"`);

export function createDataSourceRepository({ prisma, read }: { prisma: DbClient; read: SqlReader }) {
  return {
    /** Data sources of each project, by name, in one query. */
    listByProjects(projectIds: readonly string[]): Promise<DataSource[]> {
      return read<DataSource[]>(sql`
        SELECT ${COLUMNS} FROM data_sources d WHERE d.project_id = ANY(${projectIds}::uuid[])
        ORDER BY d.project_id, d.name`);
    },

    findByIds(ids: readonly string[]): Promise<DataSource[]> {
      return read<DataSource[]>(sql`SELECT ${COLUMNS} FROM data_sources d WHERE d.id = ANY(${ids}::uuid[])`);
    },

    findById(id: string, db: Db = prisma): Promise<DataSource | null> {
      return db.dataSource.findUnique({ where: { id } });
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
