-- records get one foreign key, to their upload, carrying its data source and project: one check per inserted
-- row instead of three. Deleting a project or data source still deletes its records (through its uploads).
-- Every record has an upload (ingest and seed always set it), hence file_id NOT NULL.

-- DropForeignKey
ALTER TABLE "records" DROP CONSTRAINT "records_project_id_fkey";

-- DropForeignKey
ALTER TABLE "records" DROP CONSTRAINT "records_data_source_id_fkey";

-- DropForeignKey
ALTER TABLE "records" DROP CONSTRAINT "records_file_id_fkey";

-- AlterTable
ALTER TABLE "records" ALTER COLUMN "file_id" SET NOT NULL;

-- CreateIndex
CREATE UNIQUE INDEX "uploaded_files_id_data_source_id_project_id_key" ON "uploaded_files"("id", "data_source_id", "project_id");

-- AddForeignKey
ALTER TABLE "records" ADD CONSTRAINT "records_file_id_data_source_id_project_id_fkey" FOREIGN KEY ("file_id", "data_source_id", "project_id") REFERENCES "uploaded_files"("id", "data_source_id", "project_id") ON DELETE CASCADE ON UPDATE CASCADE;
