-- When the publisher sent the irreversible call (Instagram `media_publish`) for the job's
-- stored container, and nothing has settled its outcome since: set in the statement that
-- checks the claim right before the call, cleared when a new container is stored. A later
-- attempt (or the deadline check) then reads the container and the account's media before
-- anything else, even when no result ever said `ambiguous` (a crash, a lost lease).
ALTER TABLE jobs ADD COLUMN publish_sent_at timestamptz;

-- A carousel's item containers (comma-separated, as Graph's `children`), stored as soon as
-- they exist: a later attempt reuses them while they are usable instead of creating more.
ALTER TABLE jobs ADD COLUMN child_container_ids text;

-- Until now a container was stored only right before `media_publish`: an open job with a
-- container may have sent it.
UPDATE jobs SET publish_sent_at = updated_at
    WHERE container_id IS NOT NULL
      AND status IN ('SCHEDULED', 'RETRY_SCHEDULED', 'IN_PROGRESS', 'DEAD_LETTERED');
