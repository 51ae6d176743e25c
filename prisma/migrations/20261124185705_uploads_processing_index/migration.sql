-- Recovery looks for PROCESSING uploads every minute on every instance: a partial index of just those.
-- CreateIndex
CREATE INDEX "uploaded_files_processing_idx" ON "uploaded_files"("created_at") WHERE (status = 'PROCESSING');
