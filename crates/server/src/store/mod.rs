//! Where the service keeps everything: modules, flows (every version),
//! conversations and their turns. One [`Store`] trait, two implementations:
//! [`sqlite`] (embedded, the default) and [`postgres`] (for several replicas
//! sharing the load).
//!
//! The schema is versioned in the repository
//! (`crates/server/migrations/{sqlite,postgres}/`) and applied at start by
//! sqlx's migrator; both stores hold the same tables with each database's
//! types.
//!
//! The rules the service relies on, kept by every implementation:
//!
//! - a conversation's new state and its turn are written in one transaction
//!   ([`Store::commit_turn`]), and only by the holder of the conversation's
//!   lease (the lease token is checked in that transaction);
//! - a turn's identity is `(conversation, seq)`, and an idempotency key is
//!   unique within a conversation: a turn cannot be stored twice;
//! - a lease is taken only when none is held or the holder's has expired
//!   ([`Store::acquire_lease`]), in one atomic statement.

use futures::future::BoxFuture;

pub mod postgres;
pub mod sqlite;

/// What a [`Store`] method returns.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The `--store` value names no store this server has.
    #[error("unsupported store {0:?}: expected sqlite:PATH or postgres://…")]
    Url(String),
    /// The database could not be opened or reached at start.
    #[error("opening the store {url}: {source}")]
    Open {
        /// The store's address, without its password.
        url: String,
        /// What the driver said.
        #[source]
        source: sqlx::Error,
    },
    /// The schema migrations could not be applied (for example the
    /// database holds a newer schema than this server knows).
    #[error("applying the store's migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed (connection lost, constraint, …).
    #[error("store: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value does not read back (JSON that does not parse, …).
    #[error("stored data does not read back: {0}")]
    Corrupt(String),
}

/// A stored Code block module's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRecord {
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
    /// The `chatflow` imports it uses.
    pub imports: Vec<String>,
    /// Its exports.
    pub exports: Vec<String>,
    /// When it was first stored (Unix ms).
    pub created_at: i64,
}

/// A flow version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRecord {
    /// The flow's name (the URL's).
    pub name: String,
    /// The version id (increasing across all flows).
    pub version: i64,
    /// The flow file, as stored.
    pub source: String,
    /// When this version was stored (Unix ms).
    pub updated_at: i64,
}

/// What [`Store::put_flow`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowPut {
    /// The name had no flow before.
    pub created: bool,
    /// A new version was stored (false: the source is the current
    /// version's, byte for byte).
    pub changed: bool,
    /// The current version after the call.
    pub version: i64,
}

/// A conversation row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRecord {
    /// The conversation id.
    pub id: String,
    /// The flow name it was started on.
    pub flow_name: String,
    /// The flow version it runs (pinned at start).
    pub flow_version: i64,
    /// The engine's `Conversation` as JSON (properties and position).
    pub state: String,
    /// `waiting_for_input`, `completed` or `stopped`.
    pub status: String,
    /// How many turns are stored (the next turn's `seq`).
    pub turns: i64,
    /// Until when a replica holds the lease (Unix ms), if one does or did.
    pub lease_until: Option<i64>,
    /// When it started (Unix ms).
    pub created_at: i64,
    /// When its last turn was stored (Unix ms).
    pub updated_at: i64,
}

/// A conversation to create, with its first turn.
#[derive(Debug, Clone)]
pub struct NewConversation {
    /// The new id.
    pub id: String,
    /// The flow name.
    pub flow_name: String,
    /// The flow version.
    pub flow_version: i64,
    /// The state after the first turn.
    pub state: String,
    /// The status after the first turn.
    pub status: String,
    /// The client's `Idempotency-Key`, if it sent one (unique across
    /// conversations).
    pub create_key: Option<String>,
    /// Now (Unix ms).
    pub now: i64,
}

/// A stored turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnRecord {
    /// 0 for the turn that started the conversation, then 1, 2, … per
    /// answer.
    pub seq: i64,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
    /// SHA-256 of the request that ran it, to tell a retry from a
    /// different request reusing the key.
    pub request_sha256: String,
    /// `waiting_for_input`, `completed` or `stopped`.
    pub status: String,
    /// What the turn answered (messages, trace, error) as JSON.
    pub result: String,
    /// When it was stored (Unix ms).
    pub created_at: i64,
}

/// What [`Store::acquire_lease`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// The lease is ours until the given time; the row as it is now.
    Acquired(ConversationRecord),
    /// Another holder's lease runs until `until` (Unix ms).
    Busy {
        /// When it expires unless renewed.
        until: i64,
    },
    /// No such conversation.
    NotFound,
}

/// What [`Store::commit_turn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// The state and the turn are stored; the lease is released.
    Committed,
    /// The lease is no longer ours (it expired and another replica took the
    /// conversation, or it was deleted): nothing was written.
    LeaseLost,
}

/// What [`Store::create_conversation`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The conversation and its first turn are stored.
    Created,
    /// Another conversation was created with the same idempotency key
    /// (a concurrent retry won): nothing was written.
    KeyTaken {
        /// The conversation that has the key.
        conversation_id: String,
    },
}

/// What [`Store::delete_conversation`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The conversation and its turns are gone.
    Deleted,
    /// A turn is running (a lease is held until `until`): nothing deleted.
    Busy {
        /// When the lease expires unless renewed.
        until: i64,
    },
    /// No such conversation.
    NotFound,
}

/// The service's storage. Implementations: [`sqlite::SqliteStore`],
/// [`postgres::PgStore`]; open one from a URL with [`open`].
///
/// Times are Unix milliseconds supplied by the caller (the server's clock),
/// so that lease expiry can be tested without waiting.
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;

    /// Checks that the database answers (for `/readyz`).
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Stores a module unless one with the same hash is stored; `true` if
    /// it was new.
    fn put_module<'a>(&'a self, module: &'a ModuleRecord, bytes: &'a [u8])
    -> StoreFuture<'a, bool>;

    /// A module's metadata.
    fn module<'a>(&'a self, sha256: &'a str) -> StoreFuture<'a, Option<ModuleRecord>>;

    /// A module's bytes.
    fn module_bytes<'a>(&'a self, sha256: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;

    /// Stores `source` as the current version of flow `name`, unless it is
    /// the current version already (same `sha256`).
    fn put_flow<'a>(
        &'a self,
        name: &'a str,
        source: &'a str,
        sha256: &'a str,
        now: i64,
    ) -> StoreFuture<'a, FlowPut>;

    /// The current version of flow `name`.
    fn flow<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<FlowRecord>>;

    /// A flow version by id (current or not).
    fn flow_version(&self, version: i64) -> StoreFuture<'_, Option<FlowRecord>>;

    /// The current version of every flow, by name.
    fn flows(&self) -> StoreFuture<'_, Vec<FlowRecord>>;

    /// Removes flow `name` (its versions stay for the conversations that
    /// run them); `true` if there was one.
    fn delete_flow<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool>;

    /// Stores a new conversation and its first turn (`seq` 0) in one
    /// transaction.
    fn create_conversation<'a>(
        &'a self,
        conversation: &'a NewConversation,
        turn: &'a TurnRecord,
    ) -> StoreFuture<'a, Created>;

    /// The conversation created with this idempotency key.
    fn conversation_by_create_key<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>>;

    /// A conversation.
    fn conversation<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ConversationRecord>>;

    /// Takes the conversation's lease with `token` until `until`, if no
    /// lease is held or the held one expired before `now`.
    fn acquire_lease<'a>(
        &'a self,
        id: &'a str,
        token: &'a str,
        now: i64,
        until: i64,
    ) -> StoreFuture<'a, Lease>;

    /// Extends our lease to `until`; `false` if it is no longer ours.
    fn renew_lease<'a>(&'a self, id: &'a str, token: &'a str, until: i64) -> StoreFuture<'a, bool>;

    /// Gives our lease up (no-op if it is no longer ours).
    fn release_lease<'a>(&'a self, id: &'a str, token: &'a str) -> StoreFuture<'a, ()>;

    /// Stores the conversation's new `state` and `status` and the turn, and
    /// releases the lease, in one transaction, if the lease is still held
    /// with `token` and the turn is the next one (`turn.seq` equals the
    /// stored turn count).
    fn commit_turn<'a>(
        &'a self,
        id: &'a str,
        token: &'a str,
        state: &'a str,
        turn: &'a TurnRecord,
    ) -> StoreFuture<'a, Commit>;

    /// The turn stored with this idempotency key.
    fn turn_by_key<'a>(&'a self, id: &'a str, key: &'a str) -> StoreFuture<'a, Option<TurnRecord>>;

    /// The last `n` turns, oldest first.
    fn last_turns<'a>(&'a self, id: &'a str, n: i64) -> StoreFuture<'a, Vec<TurnRecord>>;

    /// Deletes a conversation and its turns unless a lease is held.
    fn delete_conversation<'a>(&'a self, id: &'a str, now: i64) -> StoreFuture<'a, Deleted>;
}

/// Opens the store `url` names and applies its migrations:
/// `sqlite:PATH` (the file is created if missing; `sqlite::memory:` for a
/// throwaway one) or `postgres://…` / `postgresql://…`.
///
/// # Errors
///
/// [`StoreError::Url`] for another scheme, [`StoreError::Open`] if the
/// database cannot be reached, [`StoreError::Migrate`] if the schema cannot
/// be brought up to date.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(postgres::PgStore::open(url).await?))
    } else {
        Err(StoreError::Url(redact(url)))
    }
}

/// `url` without a password, for messages and logs.
pub fn redact(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url)
        && parsed.has_host()
    {
        if parsed.password().is_some() {
            let _ = parsed.set_password(Some("***"));
        }
        if parsed
            .query()
            .is_some_and(|q| q.to_ascii_lowercase().contains("password"))
        {
            parsed.set_query(Some("***"));
        }
        return parsed.to_string();
    }
    if !url.contains('@') && !url.to_ascii_lowercase().contains("password") {
        return url.to_string();
    }
    // Not a URL we understand but it may hold a secret: show what comes
    // before the first `:` only.
    match url.split_once(':') {
        Some((head, _)) => format!("{head}:***"),
        None => "***".to_string(),
    }
}

/// The migrations of one store, embedded in the binary.
fn migrator(files: &[(i64, &'static str, &'static str)]) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr as _;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        files
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    (*description).into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        let cases = [
            (
                "postgres://app:s3cret@db.example:5432/chatflow",
                "postgres://app:***@db.example:5432/chatflow",
            ),
            (
                "postgres://db.example/chatflow",
                "postgres://db.example/chatflow",
            ),
            ("sqlite:chatflow.db", "sqlite:chatflow.db"),
            (
                "postgres://db.example/chatflow?user=app&password=s3cret",
                "postgres://db.example/chatflow?***",
            ),
        ];
        for (url, shown) in cases {
            assert_eq!(redact(url), shown);
        }
    }

    #[test]
    fn redacts_passwords_bad() {
        // Not a URL at all: nothing after an `@` is shown.
        assert_eq!(redact("user:pw@host"), "user:***");
        assert_eq!(redact("pw@host"), "***");
        assert!(!redact("mysql//u:secret@h").contains("secret"));
    }
}
