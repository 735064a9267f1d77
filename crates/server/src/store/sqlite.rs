//! The embedded store: one SQLite file (`sqlite:chatflow.db`), nothing to
//! install. WAL journal with `synchronous=FULL`: a committed turn survives a
//! killed process and a power cut. Write transactions start with `BEGIN
//! IMMEDIATE`, so two writers queue on the busy timeout instead of failing
//! halfway.
//!
//! Several processes may open the same file on one machine (the leases work
//! across them), but SQLite is one writer at a time: to spread the load over
//! machines, use PostgreSQL.

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::{
    Commit, ConversationRecord, Created, Deleted, FlowPut, FlowRecord, Lease, ModuleRecord,
    NewConversation, Store, StoreError, StoreFuture, TurnRecord, redact,
};

const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "initial",
    include_str!("../../migrations/sqlite/0001_initial.sql"),
)];

const CONVERSATION_COLUMNS: &str =
    "id, flow_name, flow_version, state, status, turns, lease_until, created_at, updated_at";

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it if missing) the database `url` names
    /// (`sqlite:PATH`, or `sqlite::memory:`) and applies the migrations.
    ///
    /// # Errors
    ///
    /// [`StoreError::Open`] if the file cannot be opened,
    /// [`StoreError::Migrate`] if the schema cannot be brought up to date.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let open_err = |source| StoreError::Open {
            url: redact(url),
            source,
        };
        let memory = url.contains(":memory:");
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // An in-memory database exists once per connection: keep exactly one.
        let pool = SqlitePoolOptions::new()
            .max_connections(if memory { 1 } else { 4 })
            .min_connections(u32::from(memory))
            .idle_timeout((!memory).then_some(Duration::from_secs(600)))
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        super::migrator(MIGRATIONS).run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    /// The connection pool, for tools that inspect the store (the load
    /// example checks every turn from it).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn strings(json: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("string list: {e}")))
}

fn module(row: &SqliteRow) -> Result<ModuleRecord, StoreError> {
    Ok(ModuleRecord {
        sha256: row.try_get("sha256")?,
        size: row.try_get("size")?,
        imports: strings(row.try_get("imports")?)?,
        exports: strings(row.try_get("exports")?)?,
        created_at: row.try_get("created_at")?,
    })
}

fn flow(row: &SqliteRow) -> Result<FlowRecord, StoreError> {
    Ok(FlowRecord {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        source: row.try_get("source")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn conversation(row: &SqliteRow) -> Result<ConversationRecord, StoreError> {
    Ok(ConversationRecord {
        id: row.try_get("id")?,
        flow_name: row.try_get("flow_name")?,
        flow_version: row.try_get("flow_version")?,
        state: row.try_get("state")?,
        status: row.try_get("status")?,
        turns: row.try_get("turns")?,
        lease_until: row.try_get("lease_until")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn turn(row: &SqliteRow) -> Result<TurnRecord, StoreError> {
    Ok(TurnRecord {
        seq: row.try_get("seq")?,
        idempotency_key: row.try_get("idempotency_key")?,
        request_sha256: row.try_get("request_sha256")?,
        status: row.try_get("status")?,
        result: row.try_get("result")?,
        created_at: row.try_get("created_at")?,
    })
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
    }

    fn put_module<'a>(
        &'a self,
        module: &'a ModuleRecord,
        bytes: &'a [u8],
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let imports = serde_json::to_string(&module.imports).expect("strings serialize");
            let exports = serde_json::to_string(&module.exports).expect("strings serialize");
            let done = sqlx::query(
                "INSERT INTO modules (sha256, bytes, size, imports, exports, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(&module.sha256)
            .bind(bytes)
            .bind(module.size)
            .bind(imports)
            .bind(exports)
            .bind(module.created_at)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn module<'a>(&'a self, sha256: &'a str) -> StoreFuture<'a, Option<ModuleRecord>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT sha256, size, imports, exports, created_at FROM modules WHERE sha256 = $1",
            )
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(module).transpose()
        })
    }

    fn module_bytes<'a>(&'a self, sha256: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT bytes FROM modules WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.map(|r| r.try_get("bytes")).transpose()?)
        })
    }

    fn put_flow<'a>(
        &'a self,
        name: &'a str,
        source: &'a str,
        sha256: &'a str,
        now: i64,
    ) -> StoreFuture<'a, FlowPut> {
        Box::pin(async move {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            let current = sqlx::query(
                "SELECT f.version, v.sha256 FROM flows f JOIN flow_versions v ON v.id = f.version \
                 WHERE f.name = $1",
            )
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = &current {
                let current_sha: String = row.try_get("sha256")?;
                if current_sha == sha256 {
                    return Ok(FlowPut {
                        created: false,
                        changed: false,
                        version: row.try_get("version")?,
                    });
                }
            }
            let version: i64 = sqlx::query_scalar(
                "INSERT INTO flow_versions (name, source, sha256, created_at) \
                 VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(name)
            .bind(source)
            .bind(sha256)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO flows (name, version, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET version = excluded.version, \
                 updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(version)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(FlowPut {
                created: current.is_none(),
                changed: true,
                version,
            })
        })
    }

    fn flow<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<FlowRecord>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT f.name, f.version, v.source, v.created_at AS updated_at \
                 FROM flows f JOIN flow_versions v ON v.id = f.version WHERE f.name = $1",
            )
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(flow).transpose()
        })
    }

    fn flow_version(&self, version: i64) -> StoreFuture<'_, Option<FlowRecord>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT name, id AS version, source, created_at AS updated_at \
                 FROM flow_versions WHERE id = $1",
            )
            .bind(version)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(flow).transpose()
        })
    }

    fn flows(&self) -> StoreFuture<'_, Vec<FlowRecord>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT f.name, f.version, v.source, v.created_at AS updated_at \
                 FROM flows f JOIN flow_versions v ON v.id = f.version ORDER BY f.name",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(flow).collect()
        })
    }

    fn delete_flow<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM flows WHERE name = $1")
                .bind(name)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn create_conversation<'a>(
        &'a self,
        c: &'a NewConversation,
        turn: &'a TurnRecord,
    ) -> StoreFuture<'a, Created> {
        Box::pin(async move {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            let inserted = sqlx::query(
                "INSERT INTO conversations (id, flow_name, flow_version, state, status, turns, \
                 create_key, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $7)",
            )
            .bind(&c.id)
            .bind(&c.flow_name)
            .bind(c.flow_version)
            .bind(&c.state)
            .bind(&c.status)
            .bind(&c.create_key)
            .bind(c.now)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) && c.create_key.is_some() => {
                    drop(tx);
                    let id = self
                        .conversation_by_create_key(c.create_key.as_deref().unwrap_or_default())
                        .await?
                        .ok_or_else(|| StoreError::Database(e))?;
                    return Ok(Created::KeyTaken {
                        conversation_id: id,
                    });
                }
                Err(e) => return Err(e.into()),
            }
            insert_turn(&mut tx, &c.id, turn).await?;
            tx.commit().await?;
            Ok(Created::Created)
        })
    }

    fn conversation_by_create_key<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            Ok(
                sqlx::query_scalar("SELECT id FROM conversations WHERE create_key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?,
            )
        })
    }

    fn conversation<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<ConversationRecord>> {
        Box::pin(async move {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(conversation).transpose()
        })
    }

    fn acquire_lease<'a>(
        &'a self,
        id: &'a str,
        token: &'a str,
        now: i64,
        until: i64,
    ) -> StoreFuture<'a, Lease> {
        Box::pin(async move {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE conversations SET lease_token = $2, lease_until = $3 \
                 WHERE id = $1 AND (lease_token IS NULL OR lease_until < $4) \
                 RETURNING {CONVERSATION_COLUMNS}"
            )))
            .bind(id)
            .bind(token)
            .bind(until)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                return Ok(Lease::Acquired(conversation(&row)?));
            }
            let held: Option<Option<i64>> =
                sqlx::query_scalar("SELECT lease_until FROM conversations WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
            Ok(match held {
                None => Lease::NotFound,
                Some(until) => Lease::Busy {
                    until: until.unwrap_or(now),
                },
            })
        })
    }

    fn renew_lease<'a>(&'a self, id: &'a str, token: &'a str, until: i64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE conversations SET lease_until = $3 WHERE id = $1 AND lease_token = $2",
            )
            .bind(id)
            .bind(token)
            .bind(until)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn release_lease<'a>(&'a self, id: &'a str, token: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "UPDATE conversations SET lease_token = NULL, lease_until = NULL \
                 WHERE id = $1 AND lease_token = $2",
            )
            .bind(id)
            .bind(token)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn commit_turn<'a>(
        &'a self,
        id: &'a str,
        token: &'a str,
        state: &'a str,
        turn: &'a TurnRecord,
    ) -> StoreFuture<'a, Commit> {
        Box::pin(async move {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            let done = sqlx::query(
                "UPDATE conversations SET state = $3, status = $4, turns = turns + 1, \
                 lease_token = NULL, lease_until = NULL, updated_at = $5 \
                 WHERE id = $1 AND lease_token = $2 AND turns = $6",
            )
            .bind(id)
            .bind(token)
            .bind(state)
            .bind(&turn.status)
            .bind(turn.created_at)
            .bind(turn.seq)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Ok(Commit::LeaseLost);
            }
            insert_turn(&mut tx, id, turn).await?;
            tx.commit().await?;
            Ok(Commit::Committed)
        })
    }

    fn turn_by_key<'a>(&'a self, id: &'a str, key: &'a str) -> StoreFuture<'a, Option<TurnRecord>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT seq, idempotency_key, request_sha256, status, result, created_at \
                 FROM turns WHERE conversation_id = $1 AND idempotency_key = $2",
            )
            .bind(id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(turn).transpose()
        })
    }

    fn last_turns<'a>(&'a self, id: &'a str, n: i64) -> StoreFuture<'a, Vec<TurnRecord>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT seq, idempotency_key, request_sha256, status, result, created_at \
                 FROM turns WHERE conversation_id = $1 ORDER BY seq DESC LIMIT $2",
            )
            .bind(id)
            .bind(n)
            .fetch_all(&self.pool)
            .await?;
            let mut turns = rows.iter().map(turn).collect::<Result<Vec<_>, _>>()?;
            turns.reverse();
            Ok(turns)
        })
    }

    fn delete_conversation<'a>(&'a self, id: &'a str, now: i64) -> StoreFuture<'a, Deleted> {
        Box::pin(async move {
            let done = sqlx::query(
                "DELETE FROM conversations WHERE id = $1 \
                 AND (lease_token IS NULL OR lease_until < $2)",
            )
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 1 {
                return Ok(Deleted::Deleted);
            }
            let held: Option<Option<i64>> =
                sqlx::query_scalar("SELECT lease_until FROM conversations WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
            Ok(match held {
                None => Deleted::NotFound,
                Some(until) => Deleted::Busy {
                    until: until.unwrap_or(now),
                },
            })
        })
    }
}

async fn insert_turn(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    id: &str,
    turn: &TurnRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO turns (conversation_id, seq, idempotency_key, request_sha256, status, \
         result, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(turn.seq)
    .bind(&turn.idempotency_key)
    .bind(&turn.request_sha256)
    .bind(&turn.status)
    .bind(&turn.result)
    .bind(turn.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
