-- Exceptions and manual work (issue 6): the exceptions of completed jobs (one per discrepancy or unmatched group,
-- written in the job's own transaction), their comments, and the pairs reviewers rejected (keyed by external ids so
-- a rejection survives re-uploads). Manual work adds match groups to a finished job: their ids are the job's prefix
-- followed by 2^62 plus a number from manual_match_group_seq, above the ranges of pushed pairs (from 1) and of the
-- engine (from 2^48), so they never collide and still ascend within the job.

CREATE SEQUENCE "manual_match_group_seq" AS bigint MINVALUE 1 START 1;

-- CreateEnum
CREATE TYPE "ExceptionStatus" AS ENUM ('OPEN', 'ASSIGNED', 'PENDING', 'RESOLVED');

-- CreateEnum
CREATE TYPE "ExceptionResolution" AS ENUM ('EXPLAINED', 'MATCHED', 'SUPERSEDED', 'WRITTEN_OFF', 'ADJUSTED');

-- CreateTable
CREATE TABLE "exceptions" (
    "id" UUID NOT NULL,
    "job_id" UUID NOT NULL,
    "project_id" UUID NOT NULL,
    "type" "MatchOutcome" NOT NULL,
    "status" "ExceptionStatus" NOT NULL DEFAULT 'OPEN',
    "left_record_ids" UUID[],
    "right_record_ids" UUID[],
    "amount" DECIMAL(20,4) NOT NULL,
    "currency" CHAR(3) NOT NULL,
    "booked_date" DATE NOT NULL,
    "sla_due_at" TIMESTAMPTZ(3) NOT NULL,
    "assignee_id" UUID,
    "labels" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "resolution" "ExceptionResolution",
    "resolution_amount" DECIMAL(20,4),
    "resolution_group_id" UUID,
    "resolved_at" TIMESTAMPTZ(3),
    "resolved_by" UUID,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "exceptions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "exception_comments" (
    "id" UUID NOT NULL,
    "exception_id" UUID NOT NULL,
    "author_id" UUID NOT NULL,
    "body" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "exception_comments_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "rejected_pairs" (
    "project_id" UUID NOT NULL,
    "left_source_id" UUID NOT NULL,
    "left_external_id" TEXT NOT NULL,
    "right_source_id" UUID NOT NULL,
    "right_external_id" TEXT NOT NULL,
    "left_record_id" UUID NOT NULL,
    "right_record_id" UUID NOT NULL,
    "job_id" UUID NOT NULL,
    "rejected_by" UUID NOT NULL,
    "reason" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "rejected_pairs_pkey" PRIMARY KEY ("left_source_id","right_source_id","left_external_id","right_external_id")
);

-- CreateIndex
CREATE INDEX "exceptions_project_id_created_at_id_idx" ON "exceptions"("project_id", "created_at" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "exceptions_job_id_status_idx" ON "exceptions"("job_id", "status");

-- CreateIndex
CREATE INDEX "exceptions_assignee_id_status_idx" ON "exceptions"("assignee_id", "status");

-- CreateIndex
CREATE INDEX "exception_comments_exception_id_created_at_idx" ON "exception_comments"("exception_id", "created_at");

-- CreateIndex
CREATE INDEX "rejected_pairs_project_id_idx" ON "rejected_pairs"("project_id");

-- AddForeignKey
ALTER TABLE "exceptions" ADD CONSTRAINT "exceptions_assignee_id_fkey" FOREIGN KEY ("assignee_id") REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "exception_comments" ADD CONSTRAINT "exception_comments_exception_id_fkey" FOREIGN KEY ("exception_id") REFERENCES "exceptions"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "exception_comments" ADD CONSTRAINT "exception_comments_author_id_fkey" FOREIGN KEY ("author_id") REFERENCES "users"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "rejected_pairs" ADD CONSTRAINT "rejected_pairs_project_id_fkey" FOREIGN KEY ("project_id") REFERENCES "projects"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Deleting jobs deletes their exceptions, as it does their match groups (no foreign key: a job opens its exceptions
-- in bulk and the per-row check cost a sixth of that). The body is an escape string with \073 for the semicolons
-- because the migration runner splits scripts on every semicolon.
CREATE OR REPLACE FUNCTION "delete_match_groups_of_deleted_jobs"() RETURNS trigger LANGUAGE plpgsql AS E'BEGIN DELETE FROM "match_groups" WHERE "job_id" IN (SELECT "id" FROM "deleted_jobs")\073 DELETE FROM "exceptions" WHERE "job_id" IN (SELECT "id" FROM "deleted_jobs")\073 RETURN NULL\073 END';
