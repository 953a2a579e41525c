-- The open-jobs index gets the job id as its second column, so the reconciler can page
-- through the waiting jobs due soon in (next_attempt_at, id) order, each page starting in
-- the index where the last one ended. Paging in id order instead made Postgres read every
-- open job due for each page once a table had many finished jobs (a plan that reads the
-- index and sorts): a backlog of N due jobs cost N * N / 5,000 row reads a pass. The id
-- never changes and the due instant does not change when the dispatcher marks a job, so
-- that update stays heap-only (migration 0005).
CREATE INDEX jobs_open_by_due_and_id ON jobs (next_attempt_at, id)
    WHERE next_attempt_at IS NOT NULL;
DROP INDEX jobs_open;
ALTER INDEX jobs_open_by_due_and_id RENAME TO jobs_open;
