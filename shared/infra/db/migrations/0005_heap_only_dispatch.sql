-- The dispatcher's mark (SCHEDULED/RETRY_SCHEDULED -> IN_PROGRESS) and the publisher's
-- call_started_at stamp become heap-only (HOT) updates: they change no indexed column, and
-- the pages keep room for the new row version. Before, each mark rewrote every index of the
-- wide job row (primary key, tenant listing, listing, post, in-progress), which made it the
-- costliest statement of a burst (decision 0011).
--
-- One partial index, on next_attempt_at, now serves the reconciler for both waiting and
-- in-progress jobs. next_attempt_at keeps the due instant of the current attempt while the
-- job is IN_PROGRESS (the API and status events still show it only while the job waits),
-- and is NULL exactly when the job is in a terminal state.
UPDATE jobs SET next_attempt_at = coalesce(dispatched_at, updated_at)
    WHERE status = 'IN_PROGRESS' AND next_attempt_at IS NULL;
UPDATE jobs SET next_attempt_at = coalesce(scheduled_at, now())
    WHERE status IN ('SCHEDULED', 'RETRY_SCHEDULED') AND next_attempt_at IS NULL;
UPDATE jobs SET next_attempt_at = NULL
    WHERE status NOT IN ('SCHEDULED', 'RETRY_SCHEDULED', 'IN_PROGRESS')
      AND next_attempt_at IS NOT NULL;
ALTER TABLE jobs ADD CONSTRAINT jobs_next_attempt_while_open CHECK (
    (next_attempt_at IS NOT NULL) = (status IN ('SCHEDULED', 'RETRY_SCHEDULED', 'IN_PROGRESS'))
);

DROP INDEX jobs_waiting;
DROP INDEX jobs_in_progress;
CREATE INDEX jobs_open ON jobs (next_attempt_at) WHERE next_attempt_at IS NOT NULL;

-- Room on each page for the new versions of its rows (applies to pages written from now on).
ALTER TABLE jobs SET (fillfactor = 70);
