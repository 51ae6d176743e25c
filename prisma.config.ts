// Prisma CLI configuration. The database URL comes from DATABASE_URL; commands that need no database
// (generate) work without it.
import { defineConfig } from "prisma/config";

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "postgresql://localhost:5432/recon" },
});
