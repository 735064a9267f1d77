//! What the server tests share: a real server on `127.0.0.1:0` over a real
//! store (an SQLite file in a temporary directory, or a database of its own
//! on the PostgreSQL server `CHATFLOW_TEST_POSTGRES` names), the demo API
//! the example flows call, the example modules, a gate endpoint that holds
//! a turn in flight, and a reqwest client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chatflow_demo_api::{DemoApi, HOST};
use chatflow_engine::EngineConfig;
use chatflow_engine::net::NetPolicy;
use chatflow_engine::sandbox::SandboxConfig;
use chatflow_server::{Clock, ServeConfig, Server};
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};

pub mod gate;

/// The environment variable naming a PostgreSQL server for the tests
/// (`postgres://user@127.0.0.1:55432/postgres`); `.ci/run` starts one.
pub const POSTGRES_ENV: &str = "CHATFLOW_TEST_POSTGRES";

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, empty store for one test: its URL, and what keeps it alive.
pub struct TestStore {
    pub kind: Kind,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    /// A new SQLite file, or a new PostgreSQL database; `None` (with a
    /// message) when PostgreSQL is asked for and not configured.
    pub async fn new(kind: Kind) -> Option<TestStore> {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite:{}", dir.path().join("chatflow.db").display());
                Some(TestStore {
                    kind,
                    url,
                    _dir: Some(dir),
                })
            }
            Kind::Postgres => {
                let Ok(admin) = std::env::var(POSTGRES_ENV) else {
                    eprintln!(
                        "skipped: {POSTGRES_ENV} is not set (`.ci/run` starts a PostgreSQL \
                         server and sets it)"
                    );
                    return None;
                };
                Some(TestStore {
                    kind,
                    url: new_database(&admin).await,
                    _dir: None,
                })
            }
        }
    }

    /// Counts the rows of `table` (from the store itself, to check that a
    /// refused request wrote nothing).
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table}");
        match self.kind {
            Kind::Sqlite => {
                let store = chatflow_server::store::sqlite::SqliteStore::open(&self.url)
                    .await
                    .unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(store.pool())
                    .await
                    .unwrap()
            }
            Kind::Postgres => {
                let store = chatflow_server::store::postgres::PgStore::open(&self.url)
                    .await
                    .unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(store.pool())
                    .await
                    .unwrap()
            }
        }
    }

    /// The store, opened directly (as another replica would).
    pub async fn open(&self) -> Arc<dyn chatflow_server::store::Store> {
        chatflow_server::store::open(&self.url).await.unwrap()
    }
}

/// Creates a database of its own on the server `admin` points at, so tests
/// run in parallel without seeing each other's rows.
async fn new_database(admin: &str) -> String {
    use sqlx::Connection as _;
    let name = format!("chatflow_test_{}", uuid_hex());
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .unwrap_or_else(|e| panic!("connecting to {POSTGRES_ENV}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(admin).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

fn uuid_hex() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    format!("{:016x}{:08x}", h.finish(), std::process::id())
}

/// Declares `$name` twice, `sqlite` and `postgres`, each calling
/// `$body(TestStore)`; the PostgreSQL one passes with a message when no
/// server is configured.
#[macro_export]
macro_rules! both_stores {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let store = $crate::support::TestStore::new($crate::support::Kind::Sqlite)
                    .await
                    .unwrap();
                super::$name(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(store) =
                    $crate::support::TestStore::new($crate::support::Kind::Postgres).await
                {
                    super::$name(store).await;
                }
            }
        }
    };
}

/// Where the example Code blocks were built (`crm_profile.wasm`, …).
pub fn modules_dir() -> PathBuf {
    Path::new(chatflow_test_artifacts::examples::CRM_PROFILE)
        .parent()
        .expect("a module path has a directory")
        .to_path_buf()
}

/// `examples/flows/`.
pub fn flows_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/flows")
}

/// The tests' compiled-module cache (compiling the example modules once per
/// run, not once per server).
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("chatflow-server-module-cache")
}

/// The policy the demo needs: its host, pinned to its loopback address,
/// and the gate's loopback address.
pub fn policy(api: &DemoApi) -> NetPolicy {
    let mut policy = NetPolicy::default();
    policy.allow_host(HOST).unwrap();
    policy.allow_host("127.0.0.1").unwrap();
    policy.allow_loopback = true;
    policy.resolve.insert(HOST.into(), api.addr());
    policy
}

/// A clock the test moves by hand.
#[derive(Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new() -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(1_700_000_000_000)))
    }

    pub fn clock(&self) -> Clock {
        let now = self.0.clone();
        Clock::from_fn(move || now.load(Ordering::SeqCst))
    }

    pub fn advance(&self, by: Duration) {
        self.0
            .fetch_add(i64::try_from(by.as_millis()).unwrap(), Ordering::SeqCst);
    }
}

/// A configuration for tests: loopback port 0, `store`, the demo's policy,
/// a small sandbox with the shared module cache.
pub fn config(store: &TestStore, api: &DemoApi) -> ServeConfig {
    let sandbox = SandboxConfig::default()
        .with_max_concurrent_runs(8)
        .with_cache_dir(cache_dir());
    ServeConfig::default()
        .with_listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .with_store(store.url.clone())
        .with_engine(
            EngineConfig::default()
                .with_net(policy(api))
                .with_sandbox(sandbox),
        )
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub token: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), chatflow_server::ServeError>>,
}

impl Running {
    /// Binds and runs a server with `config`.
    pub async fn start(config: ServeConfig) -> Running {
        let token = config.tokens.first().cloned();
        let server = Server::bind(config)
            .await
            .unwrap_or_else(|e| panic!("starting the server: {e}"));
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Running {
            addr,
            http: reqwest::Client::new(),
            token,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// A request with the server's token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.auth(self.http.request(method, self.url(path)))
    }

    /// Sends `req` and reads the status and JSON body (`null` if empty).
    pub async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let response = req.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.request(reqwest::Method::POST, path).json(body))
            .await
    }

    pub async fn put_flow(&self, name: &str, flow: &Value) -> (u16, Value) {
        self.send(
            self.request(reqwest::Method::PUT, &format!("/v1/flows/{name}"))
                .json(flow),
        )
        .await
    }

    pub async fn put_module(&self, bytes: Vec<u8>) -> (u16, Value) {
        self.send(
            self.request(reqwest::Method::PUT, "/v1/modules")
                .header("content-type", "application/wasm")
                .body(bytes),
        )
        .await
    }

    /// Starts a conversation on flow `name`; the 201 body.
    pub async fn start_conversation(&self, name: &str, properties: Value) -> Value {
        let (status, body) = self
            .post(
                &format!("/v1/flows/{name}/conversations"),
                &json!({ "properties": properties }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Sends an answer; the status and body.
    pub async fn answer(&self, id: &str, text: &str) -> (u16, Value) {
        self.post(
            &format!("/v1/conversations/{id}/answers"),
            &json!({ "text": text }),
        )
        .await
    }

    /// Stops the server as SIGTERM would and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
    }

    /// Asks the server to stop and returns the task to await.
    pub fn begin_stop(
        mut self,
    ) -> tokio::task::JoinHandle<Result<(), chatflow_server::ServeError>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        std::mem::replace(&mut self.task, tokio::spawn(async { Ok(()) }))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The texts of a turn's messages.
pub fn texts(turn: &Value) -> Vec<String> {
    turn["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages: {turn}"))
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect()
}

/// A flow that asks a question, then calls the gate (a REST API block that
/// waits until the test opens it), then says `done`.
pub fn gated_flow(gate: &gate::Gate) -> Value {
    json!({
        "name": "gated",
        "start": "ask",
        "blocks": {
            "ask": {"type": "input", "prompt": "Go?", "property": "go", "next": "call"},
            "call": {"type": "rest_api", "method": "GET", "url": gate.url(), "next": "done"},
            "done": {"type": "message", "text": "done: {{API Response}}"}
        }
    })
}

/// Waits until `notify` fires, at most 10 s.
pub async fn within(notify: &Notify) {
    tokio::time::timeout(Duration::from_secs(10), notify.notified())
        .await
        .expect("waited 10 s");
}
