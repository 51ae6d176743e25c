-- The reconciliation engine: saved, versioned rule sets, job progress counters, match groups that also hold
-- single records (unmatched, duplicates) so every record of a job ends in exactly one group.
-- match_groups loses its foreign keys: jobs write up to millions of groups with COPY and a per-row FK check would
-- cost more than the matching, and the groups of deleted jobs are deleted by a statement-level trigger instead (one
-- DELETE per statement however many jobs it removed, cascades from projects and data sources included).

-- AlterEnum
ALTER TYPE "MatchKind" ADD VALUE 'SINGLE';

-- AlterEnum
-- This migration adds more than one value to an enum.
-- With PostgreSQL versions 11 and earlier, this is not possible
-- in a single migration. This can be worked around by creating
-- multiple migrations, each migration adding only one value to
-- the enum.


ALTER TYPE "MatchOutcome" ADD VALUE 'UNMATCHED_LEFT';
ALTER TYPE "MatchOutcome" ADD VALUE 'UNMATCHED_RIGHT';

-- DropForeignKey
ALTER TABLE "match_groups" DROP CONSTRAINT "match_groups_job_id_fkey";

-- DropForeignKey
ALTER TABLE "match_groups" DROP CONSTRAINT "match_groups_project_id_fkey";

-- DropIndex
DROP INDEX "match_groups_job_id_confidence_idx";

-- DropIndex
DROP INDEX "match_groups_job_id_status_idx";

-- DropIndex
DROP INDEX "match_groups_job_id_created_at_idx";

-- DropIndex
DROP INDEX "match_groups_project_id_idx";

-- AlterTable
ALTER TABLE "reconciliation_jobs" ADD COLUMN     "attempts" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "processed" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "rule_set_id" UUID,
ADD COLUMN     "total" INTEGER NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "match_groups" ADD COLUMN     "ambiguous" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN     "duplicate_of" UUID,
ALTER COLUMN "score_breakdown" SET DEFAULT '[]';

-- CreateTable
CREATE TABLE "rule_sets" (
    "id" UUID NOT NULL,
    "project_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "rules" JSONB NOT NULL,
    "created_by" UUID NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "rule_sets_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "rule_sets_project_id_name_version_key" ON "rule_sets"("project_id", "name", "version");

-- CreateIndex
CREATE INDEX "reconciliation_jobs_rule_set_id_idx" ON "reconciliation_jobs"("rule_set_id");

-- CreateIndex
CREATE INDEX "match_groups_job_id_outcome_id_idx" ON "match_groups"("job_id", "outcome", "id");

-- AddForeignKey
ALTER TABLE "rule_sets" ADD CONSTRAINT "rule_sets_project_id_fkey" FOREIGN KEY ("project_id") REFERENCES "projects"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "rule_sets" ADD CONSTRAINT "rule_sets_created_by_fkey" FOREIGN KEY ("created_by") REFERENCES "users"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "reconciliation_jobs" ADD CONSTRAINT "reconciliation_jobs_rule_set_id_fkey" FOREIGN KEY ("rule_set_id") REFERENCES "rule_sets"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- Deleting jobs deletes their match groups (what ON DELETE CASCADE did, once per statement). The body is an escape
-- string with \073 for the semicolons because the migration runner splits scripts on every semicolon, even inside
-- dollar quotes.
CREATE FUNCTION "delete_match_groups_of_deleted_jobs"() RETURNS trigger LANGUAGE plpgsql AS E'BEGIN DELETE FROM "match_groups" WHERE "job_id" IN (SELECT "id" FROM "deleted_jobs")\073 RETURN NULL\073 END';

-- CreateTrigger
CREATE TRIGGER "reconciliation_jobs_delete_match_groups" AFTER DELETE ON "reconciliation_jobs" REFERENCING OLD TABLE AS "deleted_jobs" FOR EACH STATEMENT EXECUTE FUNCTION "delete_match_groups_of_deleted_jobs"();
