/** The only code that reads or writes data sources. */
import type { Db, DbClient } from "../../db/database.js";
import type { Prisma } from "../../db/sql.js";
import type { DataSource } from "../../graphql/models.js";


export function createDataSourceRepository(prisma: DbClient) {
  return {
    /** Data sources of each project, by name, in one query. */
    listByProjects(projectIds: readonly string[]): Promise<DataSource[]> {
      return prisma.dataSource.findMany({
        where: { projectId: { in: [...projectIds] } },
        orderBy: [{ projectId: "asc" }, { name: "asc" }],
      });
    },

    findByIds(ids: readonly string[]): Promise<DataSource[]> {
      return prisma.dataSource.findMany({ where: { id: { in: [...ids] } } });
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
