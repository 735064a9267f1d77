-- chatflow serve, SQLite schema version 1. Times are Unix milliseconds;
-- JSON is stored as text. Applied at start by sqlx's migrator (table
-- _sqlx_migrations); never edit a released migration, add the next one.

-- Code block modules, by the SHA-256 of their bytes (content-addressed:
-- uploading the same bytes twice stores one row).
CREATE TABLE modules (
    sha256     TEXT PRIMARY KEY,
    bytes      BLOB NOT NULL,
    size       INTEGER NOT NULL,
    imports    TEXT NOT NULL,
    exports    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Every version of every flow ever stored; immutable. A conversation pins
-- the version it started on, so replacing a flow never changes a
-- conversation in progress.
CREATE TABLE flow_versions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    source     TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- The current version of each flow name.
CREATE TABLE flows (
    name       TEXT PRIMARY KEY,
    version    INTEGER NOT NULL REFERENCES flow_versions (id),
    updated_at INTEGER NOT NULL
);

-- One row per conversation: its state between turns (the engine's
-- Conversation as JSON), and the lease of the replica running a turn.
CREATE TABLE conversations (
    id           TEXT PRIMARY KEY,
    flow_name    TEXT NOT NULL,
    flow_version INTEGER NOT NULL REFERENCES flow_versions (id),
    state        TEXT NOT NULL,
    status       TEXT NOT NULL,
    turns        INTEGER NOT NULL,
    create_key   TEXT UNIQUE,
    lease_token  TEXT,
    lease_until  INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- One row per committed turn, written in the same transaction as the
-- conversation's new state. (conversation_id, seq) is the turn's identity:
-- a turn cannot be stored twice.
CREATE TABLE turns (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    idempotency_key TEXT,
    request_sha256  TEXT NOT NULL,
    status          TEXT NOT NULL,
    result          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, idempotency_key)
);
