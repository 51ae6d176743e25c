-- CreateEnum
CREATE TYPE "IngestPolicy" AS ENUM ('SKIP_INVALID_ROWS', 'REJECT_FILE');

-- CreateEnum
CREATE TYPE "RowIssueSeverity" AS ENUM ('ERROR', 'WARNING');

-- AlterTable
ALTER TABLE "uploaded_files" ADD COLUMN     "bytes_read" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "error_line" INTEGER,
ADD COLUMN     "forced" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN     "policy" "IngestPolicy" NOT NULL DEFAULT 'SKIP_INVALID_ROWS',
ADD COLUMN     "rows_flagged" INTEGER NOT NULL DEFAULT 0;

-- CreateTable
CREATE TABLE "upload_row_issues" (
    "id" BIGSERIAL NOT NULL,
    "file_id" UUID NOT NULL,
    "line" INTEGER NOT NULL,
    "column" TEXT NOT NULL,
    "reason" TEXT NOT NULL,
    "severity" "RowIssueSeverity" NOT NULL DEFAULT 'ERROR',

    CONSTRAINT "upload_row_issues_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "upload_row_issues_file_id_line_idx" ON "upload_row_issues"("file_id", "line");

-- AddForeignKey
ALTER TABLE "upload_row_issues" ADD CONSTRAINT "upload_row_issues_file_id_fkey" FOREIGN KEY ("file_id") REFERENCES "uploaded_files"("id") ON DELETE CASCADE ON UPDATE CASCADE;
