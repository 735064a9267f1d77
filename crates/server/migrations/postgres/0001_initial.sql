-- chatflow serve, PostgreSQL schema version 1. Times are Unix milliseconds
-- (BIGINT, from the replicas' clocks); JSON is stored as JSONB so an
-- operator can query it. Applied at start by sqlx's migrator (table
-- _sqlx_migrations, under an advisory lock, so replicas starting together
-- apply it once); never edit a released migration, add the next one.

-- Code block modules, by the SHA-256 of their bytes.
CREATE TABLE modules (
    sha256     TEXT PRIMARY KEY,
    bytes      BYTEA NOT NULL,
    size       BIGINT NOT NULL,
    imports    JSONB NOT NULL,
    exports    JSONB NOT NULL,
    created_at BIGINT NOT NULL
);

-- Every version of every flow ever stored; immutable. A conversation pins
-- the version it started on.
CREATE TABLE flow_versions (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL,
    source     TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The current version of each flow name.
CREATE TABLE flows (
    name       TEXT PRIMARY KEY,
    version    BIGINT NOT NULL REFERENCES flow_versions (id),
    updated_at BIGINT NOT NULL
);

-- One row per conversation: its state between turns, and the lease of the
-- replica running a turn.
CREATE TABLE conversations (
    id           TEXT PRIMARY KEY,
    flow_name    TEXT NOT NULL,
    flow_version BIGINT NOT NULL REFERENCES flow_versions (id),
    state        JSONB NOT NULL,
    status       TEXT NOT NULL,
    turns        BIGINT NOT NULL,
    create_key   TEXT UNIQUE,
    lease_token  TEXT,
    lease_until  BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- One row per committed turn, written in the same transaction as the
-- conversation's new state.
CREATE TABLE turns (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    idempotency_key TEXT,
    request_sha256  TEXT NOT NULL,
    status          TEXT NOT NULL,
    result          JSONB NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, idempotency_key)
);
