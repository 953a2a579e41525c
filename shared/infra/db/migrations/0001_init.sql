-- Herald's tables. The runner sets search_path to HERALD_DB_SCHEMA; no name is qualified.

CREATE TABLE tenants (
    id          text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    tenant_id   text REFERENCES tenants (id),          -- NULL for admin keys
    is_admin    boolean NOT NULL DEFAULT false,
    digest      bytea NOT NULL UNIQUE,                 -- SHA-256 of the random token
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE connections (
    id                uuid PRIMARY KEY,
    tenant_id         text NOT NULL REFERENCES tenants (id),
    platform          text NOT NULL,
    name              text NOT NULL,
    metadata          jsonb NOT NULL DEFAULT '{}',
    token_ciphertext  bytea,                           -- AES-GCM, key from HERALD_SECRET_KEY
    status            text NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'needs_reauth', 'disabled')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX connections_tenant ON connections (tenant_id, created_at, id);

CREATE TABLE jobs (
    id                 uuid PRIMARY KEY,
    tenant_id          text NOT NULL REFERENCES tenants (id),
    post_id            uuid NOT NULL,
    platform           text NOT NULL,
    connection_id      uuid NOT NULL REFERENCES connections (id),
    media_asset_ids    text[] NOT NULL,
    caption            text NOT NULL DEFAULT '',
    media_type         text,
    scheduled_at       timestamptz NOT NULL,
    publish_deadline   timestamptz NOT NULL,
    deadline_explicit  boolean NOT NULL DEFAULT false,
    status             text NOT NULL,
    attempt_count      integer NOT NULL DEFAULT 0,     -- dispatches so far = current attempt
    failed_attempts    integer NOT NULL DEFAULT 0,     -- failures counted against the budget
    next_attempt_at    timestamptz,
    queued             boolean NOT NULL DEFAULT false, -- handed to the Redis delayed queue
    dispatched_at      timestamptz,
    call_started_at    timestamptz,
    container_id       text,                           -- stored before media_publish
    published_at       timestamptz,
    provider_ids       jsonb NOT NULL DEFAULT '{}',
    last_error         jsonb,
    force_required     boolean NOT NULL DEFAULT false,
    request_hash       text NOT NULL,
    trace_id           text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_tenant_created ON jobs (tenant_id, created_at DESC, id DESC);
CREATE INDEX jobs_created ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_post ON jobs (post_id);
CREATE INDEX jobs_waiting ON jobs (next_attempt_at)
    WHERE status IN ('SCHEDULED', 'RETRY_SCHEDULED');
CREATE INDEX jobs_in_progress ON jobs (dispatched_at) WHERE status = 'IN_PROGRESS';

CREATE TABLE idempotency_keys (
    tenant_id     text NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    post_id       uuid NOT NULL,
    job_ids       uuid[] NOT NULL,
    multi         boolean NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

-- The publisher's claim of (job, attempt) before any platform call, and its outcome.
CREATE TABLE publish_claims (
    job_id       uuid NOT NULL,
    attempt      integer NOT NULL,
    worker       text NOT NULL,
    lease_until  timestamptz NOT NULL,
    result       jsonb,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE attempts (
    job_id             uuid NOT NULL REFERENCES jobs (id),
    attempt            integer NOT NULL,
    worker             text NOT NULL,
    started_at         timestamptz NOT NULL,
    finished_at        timestamptz NOT NULL,
    outcome            text NOT NULL,
    error_code         integer,
    error_subcode      integer,
    error_message      text,
    retry_after        double precision,
    provider_ids       jsonb NOT NULL DEFAULT '{}',
    provider_response  jsonb,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE dead_letters (
    id             uuid PRIMARY KEY,
    job_id         uuid,
    tenant_id      text,
    platform       text,
    connection_id  uuid,
    reason         text NOT NULL,
    attempt        integer,
    last_error     jsonb,
    raw            bytea,
    source_topic   text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    redriven_at    timestamptz
);
CREATE INDEX dead_letters_open ON dead_letters (created_at, id) WHERE redriven_at IS NULL;
CREATE INDEX dead_letters_job ON dead_letters (job_id);

-- Transactional outbox: events written with the state change, relayed to Kafka.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    key         text NOT NULL,
    value       bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Posts the sandbox platform accepted (one row per accepted post).
CREATE TABLE sandbox_posts (
    id             bigserial PRIMARY KEY,
    job_id         uuid NOT NULL,
    attempt        integer NOT NULL,
    connection_id  uuid NOT NULL,
    published_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sandbox_posts_job ON sandbox_posts (job_id);
