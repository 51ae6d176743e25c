-- Carry-forward: an exception still open when a later job of the same pair of sources finds the same records
-- unresolved again is continued by that job's exception (state, assignee, labels, SLA, comments, first opening).
ALTER TABLE "exceptions" ADD COLUMN "first_opened_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
ADD COLUMN "carried_from_id" UUID;
UPDATE "exceptions" SET "first_opened_at" = "created_at";
