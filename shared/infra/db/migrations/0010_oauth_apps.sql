-- The app Herald registered on each host whose platform has an app per host (a Mastodon
-- instance: `POST /api/v1/apps`), reused by every sign-in there with the same redirect URI
-- (a new API address registers a new app). The client secret is encrypted with the key
-- ring (bound to the row's id), as connection tokens are.
CREATE TABLE oauth_apps (
    id uuid PRIMARY KEY,
    platform text NOT NULL,
    host text NOT NULL,
    redirect_uri text NOT NULL,
    client_id text NOT NULL,
    client_secret_ciphertext bytea NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (platform, host, redirect_uri)
);
