//! [`ServeConfig`]: everything a server is started with.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chatflow_engine::EngineConfig;

/// How a server is set up. Every field has a default suited to one machine
/// (loopback, an SQLite file in the working directory, no tokens); build
/// with [`ServeConfig::default`] and the `with_*` setters.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServeConfig {
    /// The address to listen on. Anything but a loopback address needs at
    /// least one token ([`tokens`](ServeConfig::tokens)).
    ///
    /// By default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// The store: `sqlite:PATH` (created if missing) or `postgres://…`.
    ///
    /// By default `sqlite:chatflow.db`.
    pub store: String,
    /// A directory of flow files (`*.json`) stored at start under their file
    /// name without `.json`, as `PUT /v1/flows/{name}` would. A Code block
    /// whose module is a path is resolved against
    /// [`modules_dir`](ServeConfig::modules_dir) (or the flow file's
    /// directory), uploaded, and named by its hash in the stored flow.
    ///
    /// By default none.
    pub flows_dir: Option<PathBuf>,
    /// A directory of Code block modules (`*.wasm`) uploaded at start, as
    /// `PUT /v1/modules` would.
    ///
    /// By default none.
    pub modules_dir: Option<PathBuf>,
    /// The engine: network policy, sandbox limits, step limit.
    ///
    /// By default [`EngineConfig::default`] (public addresses only).
    pub engine: EngineConfig,
    /// Bearer tokens a client may send (`Authorization: Bearer TOKEN`);
    /// each at least 16 bytes. With none, the server only listens on
    /// loopback and checks that requests name a loopback host (so that a
    /// web page cannot reach it through DNS rebinding).
    ///
    /// By default none.
    pub tokens: Vec<String>,
    /// The largest JSON request body (flows, new conversations, answers);
    /// larger ones get `413 body_too_large`.
    ///
    /// By default 1 MiB.
    pub max_body_bytes: usize,
    /// How long a replica's lease on a conversation lasts without renewal.
    /// A replica running a turn renews it every third of this; when a
    /// replica dies, another can continue the conversation after at most
    /// this long.
    ///
    /// By default 30 seconds.
    pub lease_ttl: Duration,
    /// On shutdown, how long turns in flight may take to finish before they
    /// are cancelled (their conversations stay as they were before the
    /// turn, and run it again on the next request).
    ///
    /// By default 30 seconds.
    pub shutdown_grace: Duration,
    /// How many of the last turns `GET /v1/conversations/{id}` shows.
    ///
    /// By default 5.
    pub history_turns: u32,
    /// How many compiled flow versions a replica keeps in memory.
    ///
    /// By default 256.
    pub flow_cache: usize,
    /// The clock leases are measured with (Unix milliseconds). Replicas
    /// sharing a database must agree on the time to well within
    /// [`lease_ttl`](ServeConfig::lease_ttl) (NTP does); tests replace it.
    ///
    /// By default the system clock.
    pub clock: Clock,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            store: "sqlite:chatflow.db".into(),
            flows_dir: None,
            modules_dir: None,
            engine: EngineConfig::default(),
            tokens: Vec::new(),
            max_body_bytes: 1 << 20,
            lease_ttl: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            history_turns: 5,
            flow_cache: 256,
            clock: Clock::system(),
        }
    }
}

impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("store", &crate::store::redact(&self.store))
            .field("flows_dir", &self.flows_dir)
            .field("modules_dir", &self.modules_dir)
            .field("engine", &self.engine)
            .field("tokens", &self.tokens.len())
            .field("max_body_bytes", &self.max_body_bytes)
            .field("lease_ttl", &self.lease_ttl)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("history_turns", &self.history_turns)
            .field("flow_cache", &self.flow_cache)
            .finish_non_exhaustive()
    }
}

impl ServeConfig {
    /// Sets the listen address.
    pub fn with_listen(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        self
    }

    /// Sets the store URL.
    pub fn with_store(mut self, store: impl Into<String>) -> Self {
        self.store = store.into();
        self
    }

    /// Sets the directory of flows imported at start.
    pub fn with_flows_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.flows_dir = Some(dir.into());
        self
    }

    /// Sets the directory of modules uploaded at start.
    pub fn with_modules_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.modules_dir = Some(dir.into());
        self
    }

    /// Sets the engine configuration.
    pub fn with_engine(mut self, engine: EngineConfig) -> Self {
        self.engine = engine;
        self
    }

    /// Sets the accepted bearer tokens.
    pub fn with_tokens(mut self, tokens: Vec<String>) -> Self {
        self.tokens = tokens;
        self
    }

    /// Sets the largest JSON request body.
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Sets the lease duration.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Sets the shutdown grace period.
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Sets how many turns a conversation's `GET` shows.
    pub fn with_history_turns(mut self, turns: u32) -> Self {
        self.history_turns = turns;
        self
    }

    /// Sets the clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

/// A clock in Unix milliseconds. Cheap to clone.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Arc::new(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        }))
    }

    /// A clock that reads `now`.
    pub fn from_fn(now: impl Fn() -> i64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    /// The time now, in Unix milliseconds.
    pub fn now(&self) -> i64 {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

/// `ms` (Unix milliseconds) as an RFC 3339 UTC timestamp,
/// `2025-01-31T12:00:00.000Z`.
pub(crate) fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
            (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
        ];
        for (ms, text) in cases {
            assert_eq!(rfc3339(ms), text, "{ms}");
        }
    }

    #[test]
    fn timestamps_bad() {
        // Before the epoch still reads as a date, not garbage.
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }
}
