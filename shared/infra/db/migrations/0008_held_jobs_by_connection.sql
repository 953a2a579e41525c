-- A job whose connection needs a new token waits RETRY_SCHEDULED (last_error.code =
-- 'needs_reauth') until a new token releases it. The release finds the connection's open
-- jobs by this index. Neither indexed column changes when the dispatcher marks a job
-- IN_PROGRESS, so that update stays heap-only (migration 0005).
CREATE INDEX jobs_open_by_connection ON jobs (connection_id) WHERE next_attempt_at IS NOT NULL;
