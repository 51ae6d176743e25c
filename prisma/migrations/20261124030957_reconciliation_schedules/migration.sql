-- CreateTable
CREATE TABLE "reconciliation_schedules" (
    "project_id" UUID NOT NULL,
    "left_source_id" UUID NOT NULL,
    "right_source_id" UUID NOT NULL,
    "rule_set_id" UUID,
    "rule_set_name" TEXT,
    "on_new_uploads" BOOLEAN NOT NULL DEFAULT false,
    "cron" TEXT,
    "timezone" TEXT NOT NULL DEFAULT 'UTC',
    "next_run_at" TIMESTAMPTZ(3),
    "left_uploads_seen" INTEGER NOT NULL DEFAULT 0,
    "right_uploads_seen" INTEGER NOT NULL DEFAULT 0,
    "last_job_id" UUID,
    "last_run_at" TIMESTAMPTZ(3),
    "last_skip_reason" TEXT,
    "last_skipped_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "reconciliation_schedules_pkey" PRIMARY KEY ("project_id")
);

-- CreateIndex
CREATE INDEX "reconciliation_schedules_next_run_at_idx" ON "reconciliation_schedules"("next_run_at");

-- CreateIndex
CREATE INDEX "reconciliation_schedules_left_source_id_idx" ON "reconciliation_schedules"("left_source_id");

-- CreateIndex
CREATE INDEX "reconciliation_schedules_right_source_id_idx" ON "reconciliation_schedules"("right_source_id");

-- CreateIndex
CREATE INDEX "reconciliation_schedules_rule_set_id_idx" ON "reconciliation_schedules"("rule_set_id");

-- AddForeignKey
ALTER TABLE "reconciliation_schedules" ADD CONSTRAINT "reconciliation_schedules_project_id_fkey" FOREIGN KEY ("project_id") REFERENCES "projects"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "reconciliation_schedules" ADD CONSTRAINT "reconciliation_schedules_left_source_id_fkey" FOREIGN KEY ("left_source_id") REFERENCES "data_sources"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "reconciliation_schedules" ADD CONSTRAINT "reconciliation_schedules_right_source_id_fkey" FOREIGN KEY ("right_source_id") REFERENCES "data_sources"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "reconciliation_schedules" ADD CONSTRAINT "reconciliation_schedules_rule_set_id_fkey" FOREIGN KEY ("rule_set_id") REFERENCES "rule_sets"("id") ON DELETE SET NULL ON UPDATE CASCADE;
