-- A connection's token lifecycle, in plain columns beside the encrypted token: when the
-- token was stored, when it expires (NULL: unknown, or it does not expire), and when the
-- token keeper refreshes it next (NULL: never; its platform does not refresh tokens).
ALTER TABLE connections ADD COLUMN token_issued_at timestamptz;
ALTER TABLE connections ADD COLUMN token_expires_at timestamptz;
ALTER TABLE connections ADD COLUMN token_refresh_at timestamptz;
-- Why the last refresh failed (scrubbed of the token), cleared by a good one.
ALTER TABLE connections ADD COLUMN token_refresh_error text;

-- Tokens stored before: their age is unknown, so take the last change. The token keeper
-- looks at them a day later (a token younger than a day cannot be refreshed), asks each
-- platform whether it refreshes them, and learns the expiry from the refresh.
UPDATE connections SET token_issued_at = updated_at,
    token_refresh_at = greatest(updated_at + interval '1 day', now())
    WHERE token_ciphertext IS NOT NULL;

CREATE INDEX connections_token_refresh ON connections (token_refresh_at)
    WHERE token_refresh_at IS NOT NULL;
