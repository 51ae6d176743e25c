-- CreateExtension
CREATE EXTENSION IF NOT EXISTS "pg_trgm";

-- CreateEnum
CREATE TYPE "Role" AS ENUM ('ADMIN', 'MANAGER', 'ANALYST', 'VIEWER');

-- CreateEnum
CREATE TYPE "ProjectRole" AS ENUM ('MANAGER', 'ANALYST', 'VIEWER');

-- CreateEnum
CREATE TYPE "ProjectStatus" AS ENUM ('ACTIVE', 'ARCHIVED');

-- CreateEnum
CREATE TYPE "DataSourceKind" AS ENUM ('BANK_STATEMENT', 'LEDGER', 'PSP_REPORT', 'OTHER');

-- CreateEnum
CREATE TYPE "DataSourceStatus" AS ENUM ('EMPTY', 'INGESTING', 'READY', 'FAILED');

-- CreateEnum
CREATE TYPE "UploadStatus" AS ENUM ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED');

-- CreateEnum
CREATE TYPE "RecordStatus" AS ENUM ('UNMATCHED', 'SUGGESTED', 'MATCHED', 'WRITTEN_OFF');

-- CreateEnum
CREATE TYPE "JobStatus" AS ENUM ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED');

-- CreateEnum
CREATE TYPE "MatchKind" AS ENUM ('ONE_TO_ONE', 'ONE_TO_MANY', 'MANY_TO_ONE', 'MANY_TO_MANY');

-- CreateEnum
CREATE TYPE "MatchOutcome" AS ENUM ('MATCHED', 'SUGGESTED', 'AMOUNT_MISMATCH', 'DATE_LAG', 'REFERENCE_MISMATCH', 'CURRENCY_MISMATCH', 'DUPLICATE');

-- CreateEnum
CREATE TYPE "MatchStatus" AS ENUM ('PROPOSED', 'CONFIRMED', 'REJECTED');

-- CreateTable
CREATE TABLE "users" (
    "id" UUID NOT NULL,
    "email" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "role" "Role" NOT NULL DEFAULT 'ANALYST',
    "is_active" BOOLEAN NOT NULL DEFAULT true,
    "password_hash" TEXT NOT NULL,
    "last_login_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "users_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "projects" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "status" "ProjectStatus" NOT NULL DEFAULT 'ACTIVE',
    "is_active" BOOLEAN NOT NULL DEFAULT true,
    "settings" JSONB NOT NULL DEFAULT '{}',
    "owner_id" UUID NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "projects_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "project_members" (
    "project_id" UUID NOT NULL,
    "user_id" UUID NOT NULL,
    "role" "ProjectRole" NOT NULL DEFAULT 'ANALYST',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "project_members_pkey" PRIMARY KEY ("project_id","user_id")
);

-- CreateTable
CREATE TABLE "data_sources" (
    "id" UUID NOT NULL,
    "project_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "kind" "DataSourceKind" NOT NULL DEFAULT 'OTHER',
    "status" "DataSourceStatus" NOT NULL DEFAULT 'EMPTY',
    "column_mapping" JSONB NOT NULL DEFAULT '{}',
    "record_count" INTEGER NOT NULL DEFAULT 0,
    "is_active" BOOLEAN NOT NULL DEFAULT true,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "data_sources_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "uploaded_files" (
    "id" UUID NOT NULL,
    "project_id" UUID NOT NULL,
    "data_source_id" UUID NOT NULL,
    "uploaded_by" UUID NOT NULL,
    "file_name" TEXT NOT NULL,
    "sha256" TEXT NOT NULL,
    "size_bytes" BIGINT NOT NULL DEFAULT 0,
    "status" "UploadStatus" NOT NULL DEFAULT 'PENDING',
    "rows_read" INTEGER NOT NULL DEFAULT 0,
    "rows_ingested" INTEGER NOT NULL DEFAULT 0,
    "rows_rejected" INTEGER NOT NULL DEFAULT 0,
    "error" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "completed_at" TIMESTAMPTZ(3),

    CONSTRAINT "uploaded_files_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "records" (
    "id" UUID NOT NULL,
    "project_id" UUID NOT NULL,
    "data_source_id" UUID NOT NULL,
    "file_id" UUID,
    "external_id" TEXT NOT NULL,
    "amount" DECIMAL(20,4) NOT NULL,
    "currency" CHAR(3) NOT NULL,
    "booked_date" DATE NOT NULL,
    "value_date" DATE,
    "reference" TEXT NOT NULL DEFAULT '',
    "description" TEXT NOT NULL DEFAULT '',
    "counterparty" TEXT NOT NULL DEFAULT '',
    "row_number" INTEGER NOT NULL,
    "status" "RecordStatus" NOT NULL DEFAULT 'UNMATCHED',
    "extras" JSONB NOT NULL DEFAULT '{}',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "records_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "reconciliation_jobs" (
    "id" UUID NOT NULL,
    "project_id" UUID NOT NULL,
    "left_source_id" UUID NOT NULL,
    "right_source_id" UUID NOT NULL,
    "created_by" UUID NOT NULL,
    "rules" JSONB NOT NULL DEFAULT '{}',
    "status" "JobStatus" NOT NULL DEFAULT 'QUEUED',
    "phase" TEXT NOT NULL DEFAULT 'queued',
    "progress" REAL NOT NULL DEFAULT 0,
    "matched_count" INTEGER NOT NULL DEFAULT 0,
    "suggested_count" INTEGER NOT NULL DEFAULT 0,
    "discrepancy_count" INTEGER NOT NULL DEFAULT 0,
    "unmatched_left_count" INTEGER NOT NULL DEFAULT 0,
    "unmatched_right_count" INTEGER NOT NULL DEFAULT 0,
    "summary" JSONB NOT NULL DEFAULT '{}',
    "error" TEXT,
    "dry_run" BOOLEAN NOT NULL DEFAULT false,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),

    CONSTRAINT "reconciliation_jobs_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "match_groups" (
    "id" UUID NOT NULL,
    "job_id" UUID NOT NULL,
    "project_id" UUID NOT NULL,
    "left_record_ids" UUID[],
    "right_record_ids" UUID[],
    "kind" "MatchKind" NOT NULL DEFAULT 'ONE_TO_ONE',
    "outcome" "MatchOutcome" NOT NULL DEFAULT 'MATCHED',
    "status" "MatchStatus" NOT NULL DEFAULT 'PROPOSED',
    "confidence" DECIMAL(5,4) NOT NULL,
    "rule" TEXT NOT NULL DEFAULT '',
    "pass" INTEGER NOT NULL DEFAULT 1,
    "amount_delta" DECIMAL(20,4) NOT NULL DEFAULT 0,
    "date_delta_days" INTEGER NOT NULL DEFAULT 0,
    "score_breakdown" JSONB NOT NULL DEFAULT '{}',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "match_groups_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "audit_events" (
    "id" UUID NOT NULL,
    "user_id" UUID,
    "project_id" UUID,
    "action" TEXT NOT NULL,
    "resource_type" TEXT NOT NULL,
    "resource_id" TEXT NOT NULL,
    "before" JSONB,
    "after" JSONB,
    "request_id" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "audit_events_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "users_email_key" ON "users"("email");

-- CreateIndex
CREATE INDEX "users_is_active_idx" ON "users"("is_active");

-- CreateIndex
CREATE INDEX "users_created_at_id_idx" ON "users"("created_at" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "projects_owner_id_is_active_idx" ON "projects"("owner_id", "is_active");

-- CreateIndex
CREATE INDEX "projects_status_idx" ON "projects"("status");

-- CreateIndex
CREATE INDEX "projects_created_at_id_idx" ON "projects"("created_at" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "projects_name_trgm_idx" ON "projects" USING GIST ("name" gist_trgm_ops);

-- CreateIndex
CREATE INDEX "project_members_user_id_project_id_idx" ON "project_members"("user_id", "project_id");

-- CreateIndex
CREATE INDEX "data_sources_project_id_is_active_idx" ON "data_sources"("project_id", "is_active");

-- CreateIndex
CREATE INDEX "data_sources_project_id_status_idx" ON "data_sources"("project_id", "status");

-- CreateIndex
CREATE UNIQUE INDEX "data_sources_project_id_name_key" ON "data_sources"("project_id", "name");

-- CreateIndex
CREATE INDEX "uploaded_files_project_id_status_idx" ON "uploaded_files"("project_id", "status");

-- CreateIndex
CREATE INDEX "uploaded_files_uploaded_by_idx" ON "uploaded_files"("uploaded_by");

-- CreateIndex
CREATE INDEX "uploaded_files_data_source_id_sha256_idx" ON "uploaded_files"("data_source_id", "sha256");

-- CreateIndex
CREATE INDEX "records_project_id_booked_date_idx" ON "records"("project_id", "booked_date");

-- CreateIndex
CREATE INDEX "records_project_id_status_idx" ON "records"("project_id", "status");

-- CreateIndex
CREATE INDEX "records_data_source_id_external_id_idx" ON "records"("data_source_id", "external_id");

-- CreateIndex
CREATE INDEX "records_file_id_idx" ON "records"("file_id");

-- CreateIndex
CREATE INDEX "reconciliation_jobs_project_id_status_idx" ON "reconciliation_jobs"("project_id", "status");

-- CreateIndex
CREATE INDEX "reconciliation_jobs_project_id_created_at_idx" ON "reconciliation_jobs"("project_id", "created_at" DESC);

-- CreateIndex
CREATE INDEX "reconciliation_jobs_status_created_at_idx" ON "reconciliation_jobs"("status", "created_at");

-- CreateIndex
CREATE INDEX "reconciliation_jobs_created_by_idx" ON "reconciliation_jobs"("created_by");

-- CreateIndex
CREATE INDEX "match_groups_job_id_confidence_idx" ON "match_groups"("job_id", "confidence");

-- CreateIndex
CREATE INDEX "match_groups_job_id_status_idx" ON "match_groups"("job_id", "status");

-- CreateIndex
CREATE INDEX "match_groups_job_id_created_at_idx" ON "match_groups"("job_id", "created_at");

-- CreateIndex
CREATE INDEX "match_groups_project_id_idx" ON "match_groups"("project_id");

-- CreateIndex
CREATE INDEX "audit_events_user_id_created_at_idx" ON "audit_events"("user_id", "created_at");

-- CreateIndex
CREATE INDEX "audit_events_resource_type_resource_id_idx" ON "audit_events"("resource_type", "resource_id");

-- CreateIndex
CREATE INDEX "audit_events_project_id_created_at_idx" ON "audit_events"("project_id", "created_at" DESC);

-- CreateIndex
CREATE INDEX "audit_events_created_at_id_idx" ON "audit_events"("created_at" DESC, "id" DESC);

-- AddForeignKey
ALTER TABLE "projects" ADD CONSTRAINT "projects_owner_id_fkey" FOREIGN KEY ("owner_id") REFERENCES "users"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "project_members" ADD CONSTRAINT "project_members_project_id_fkey" FOREIGN KEY ("project_id") REFERENCES "projects"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "project_members" ADD CONSTRAINT "project_members_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "data_sources" ADD CONSTRAINT "data_sources_project_id_fkey" FOREIGN KEY ("project_id") REFERENCES "projects"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "uploaded_files" ADD CONSTRAINT "uploaded_files_project_id_fkey" FOREIGN KEY ("project_id") REFERENCES "projects"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "uploaded_files" ADD CONSTRAINT "uploaded_files_data_source_id_fkey" FOREIGN KEY ("data_source_id") REFERENCES "data_sources"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "uploaded_files" ADD CONSTRAINT "uploaded_files_uploaded_by_fkey" FOREIGN KEY ("uploaded_by") REFERENCES "users"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "records" ADD CONSTRAINT "records_project_id_fkey" FOREIGN KEY ("project_id") REFERENCES "projects"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "records" ADD CONSTRAINT "records_data_source_id_fkey" FOREIGN KEY ("data_source_id") REFERENCES "data_sources"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "records" ADD CONSTRAINT "records_file_id_fkey" FOREIGN KEY ("file_id") REFERENCES "uploaded_files"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "reconciliation_jobs" ADD CONSTRAINT "reconciliation_jobs_project_id_fkey" FOREIGN KEY ("project_id") REFERENCES "projects"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "reconciliation_jobs" ADD CONSTRAINT "reconciliation_jobs_left_source_id_fkey" FOREIGN KEY ("left_source_id") REFERENCES "data_sources"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "reconciliation_jobs" ADD CONSTRAINT "reconciliation_jobs_right_source_id_fkey" FOREIGN KEY ("right_source_id") REFERENCES "data_sources"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "reconciliation_jobs" ADD CONSTRAINT "reconciliation_jobs_created_by_fkey" FOREIGN KEY ("created_by") REFERENCES "users"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "match_groups" ADD CONSTRAINT "match_groups_job_id_fkey" FOREIGN KEY ("job_id") REFERENCES "reconciliation_jobs"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "match_groups" ADD CONSTRAINT "match_groups_project_id_fkey" FOREIGN KEY ("project_id") REFERENCES "projects"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "audit_events" ADD CONSTRAINT "audit_events_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- Emails are stored lower-cased, which makes the unique index on "email" the case-insensitive lower(email) index.
-- Prisma cannot declare CHECK constraints, and its diff ignores them.
ALTER TABLE "users" ADD CONSTRAINT "users_email_lowercase" CHECK ("email" = lower("email"));
