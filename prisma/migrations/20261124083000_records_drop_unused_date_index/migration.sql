-- records' (project_id, booked_date) index served no query (a job reads a data source's records by data_source_id
-- and sorts the few it streams, the API reads records by id), yet every ingested row paid to maintain it.
DROP INDEX "records_project_id_booked_date_idx";
