-- The (job_id, outcome, id) index leaves out the pairs an exact first pass makes in PostgreSQL (exact-pushdown.ts):
-- they are MATCHED, their ids are the job's first 64 bits, then 0000, then a counter, and a job's are read by that
-- range of the primary key (src/modules/jobs/group-scan.ts). At 1M x 1M that is 882,000 index entries a job does not
-- write. Every other group (the engine's: ...-0001-..., manual ones: ...-4000-..., random ids) stays in the index.

-- DropIndex
DROP INDEX "match_groups_job_id_outcome_id_idx";

-- CreateIndex
CREATE INDEX "match_groups_job_id_outcome_id_idx" ON "match_groups"("job_id", "outcome", "id") WHERE (outcome <> 'MATCHED' OR substring(uuid_send(id) from 9 for 2) <> '\x0000'::bytea);

-- Deleting jobs deletes their groups in two statements, one per place a job's groups are found: through the index
-- (its predicate repeated, so that the planner may use it) and the pushed pairs through their range of the
-- primary key. One statement by job_id alone could use neither and would scan every job's groups.
CREATE OR REPLACE FUNCTION "delete_match_groups_of_deleted_jobs"() RETURNS trigger LANGUAGE plpgsql AS E'BEGIN DELETE FROM "match_groups" g USING "deleted_jobs" d WHERE g."job_id" = d."id" AND (g."outcome" <> ''MATCHED'' OR substring(uuid_send(g."id") from 9 for 2) <> ''\\x0000''::bytea)\073 DELETE FROM "match_groups" g USING "deleted_jobs" d WHERE g."id" BETWEEN (left(replace(d."id"::text, ''-'', ''''), 16) || ''0000000000000000'')::uuid AND (left(replace(d."id"::text, ''-'', ''''), 16) || ''0000ffffffffffff'')::uuid AND g."job_id" = d."id"\073 DELETE FROM "exceptions" WHERE "job_id" IN (SELECT "id" FROM "deleted_jobs")\073 RETURN NULL\073 END';
