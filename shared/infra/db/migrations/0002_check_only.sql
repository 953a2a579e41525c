-- A dispatch that only confirms whether an ambiguous post went live (no new publish):
-- used when the failure budget ends on an `ambiguous` outcome.
ALTER TABLE jobs ADD COLUMN check_only boolean NOT NULL DEFAULT false;
