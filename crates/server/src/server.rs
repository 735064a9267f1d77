//! Starting and stopping a server: [`Server::bind`] opens the store, imports
//! `--flows`/`--modules` and binds the address; [`Server::run`] serves until
//! the shutdown future resolves, then drains.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chatflow_engine::Engine;
use tokio::net::TcpListener;

use crate::catalog::{self, FlowCache};
use crate::config::{Clock, ServeConfig};
use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::store::{self, Store};
use crate::turns::Running;

/// The shortest token accepted.
pub const MIN_TOKEN_BYTES: usize = 16;

/// What every request handler shares.
pub(crate) struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) engine: Engine,
    pub(crate) flows: FlowCache,
    pub(crate) metrics: Metrics,
    pub(crate) clock: Clock,
    pub(crate) lease_ttl: Duration,
    pub(crate) history_turns: u32,
    pub(crate) max_body_bytes: usize,
    /// SHA-256 of each accepted token.
    pub(crate) tokens: Vec<[u8; 32]>,
    pub(crate) draining: AtomicBool,
    pub(crate) running: Arc<Running>,
    /// Lease releases of turns that failed or were cancelled, awaited
    /// before the server returns.
    pub(crate) releases: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// A server bound to its address, with its store open and its flows
/// imported: call [`Server::run`].
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
    grace: Duration,
}

impl Server {
    /// Checks the configuration, builds the engine, opens the store (applying
    /// its migrations), imports `modules_dir` and `flows_dir`, and binds the
    /// listen address.
    ///
    /// # Errors
    ///
    /// [`ServeError`]: no token on a non-loopback address, a short token,
    /// the engine's configuration, the store, an invalid flow or module in
    /// the directories, or the address.
    pub async fn bind(config: ServeConfig) -> Result<Server, ServeError> {
        if config.tokens.is_empty() && !config.listen.ip().is_loopback() {
            return Err(ServeError::NoToken {
                addr: config.listen,
            });
        }
        if let Some(short) = config.tokens.iter().find(|t| t.len() < MIN_TOKEN_BYTES) {
            return Err(ServeError::WeakToken {
                len: short.len(),
                min: MIN_TOKEN_BYTES,
            });
        }
        if config.lease_ttl < Duration::from_millis(30) {
            return Err(ServeError::Config(format!(
                "lease_ttl {:?} is too short (at least 30 ms)",
                config.lease_ttl
            )));
        }
        let engine = Engine::new(config.engine.clone())?;
        let store = store::open(&config.store).await?;
        let now = config.clock.now();
        if let Some(dir) = &config.modules_dir {
            let count = catalog::import_modules(&engine, store.as_ref(), dir, now).await?;
            tracing::info!(count, dir = %dir.display(), "modules imported");
        }
        if let Some(dir) = &config.flows_dir {
            let names = catalog::import_flows(
                &engine,
                store.as_ref(),
                dir,
                config.modules_dir.as_deref(),
                now,
            )
            .await?;
            tracing::info!(?names, dir = %dir.display(), "flows imported");
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let tokens = config
            .tokens
            .iter()
            .map(|t| crate::auth::digest(t.as_bytes()))
            .collect();
        let state = Arc::new(AppState {
            store,
            engine,
            flows: FlowCache::new(config.flow_cache),
            metrics: Metrics::new(),
            clock: config.clock.clone(),
            lease_ttl: config.lease_ttl,
            history_turns: config.history_turns,
            max_body_bytes: config.max_body_bytes,
            tokens,
            draining: AtomicBool::new(false),
            running: Running::new(),
            releases: std::sync::Mutex::new(Vec::new()),
        });
        Ok(Server {
            listener,
            state,
            grace: config.shutdown_grace,
        })
    }

    /// The address the server listens on (the port chosen, if the
    /// configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// `sqlite` or `postgres`.
    pub fn store_kind(&self) -> &'static str {
        self.state.store.kind()
    }

    /// Serves until `shutdown` resolves. Then: stops accepting connections,
    /// answers `503 shutting_down` to requests that arrive on open ones,
    /// lets the turns in flight finish for up to
    /// [`ServeConfig::shutdown_grace`], cancels those still running (their
    /// conversations stay as before the turn), and returns.
    ///
    /// # Errors
    ///
    /// [`ServeError::Serve`] if the listener fails.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let state = self.state.clone();
        let app = crate::api::router(self.state.clone());
        let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
        let signal_state = state.clone();
        let signal = async move {
            shutdown.await;
            signal_state.draining.store(true, Ordering::SeqCst);
            tracing::info!(
                in_flight = signal_state.running.len(),
                "shutting down: no new requests, finishing turns in flight"
            );
            let _ = drained_tx.send(());
        };
        let server = axum::serve(self.listener, app).with_graceful_shutdown(signal);
        let mut serving = tokio::spawn(async move { server.await });
        tokio::select! {
            // The listener failed before any shutdown signal.
            ended = &mut serving => return finished(ended),
            _ = drained_rx => {}
        }
        // Give the turns in flight the grace period.
        if tokio::time::timeout(self.grace, state.running.idle())
            .await
            .is_err()
        {
            tracing::warn!(
                cancelled = state.running.len(),
                "shutdown grace period over: cancelling the turns still running"
            );
            state.running.abort_all();
            state.running.idle().await;
        }
        // Cancelled turns give their leases back, so that another replica
        // (or this one, restarted) runs them at once.
        let releases =
            std::mem::take(&mut *state.releases.lock().unwrap_or_else(|e| e.into_inner()));
        for release in releases {
            let _ = release.await;
        }
        // Connections whose requests have all been answered close now; one
        // held open by a slow client is not waited for past the grace.
        match tokio::time::timeout(self.grace, serving).await {
            Ok(ended) => finished(ended),
            Err(_) => Ok(()),
        }
    }
}

fn finished(ended: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<(), ServeError> {
    match ended {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ServeError::Serve(e)),
        Err(join) => Err(ServeError::Serve(std::io::Error::other(join))),
    }
}

/// Binds a server with `config` and serves until `shutdown` resolves: what
/// `chatflow serve` does, with a future that resolves on SIGTERM or Ctrl-C
/// ([`shutdown_signal`]).
///
/// # Errors
///
/// Every error of [`Server::bind`] and [`Server::run`].
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let server = Server::bind(config).await?;
    tracing::info!(addr = %server.local_addr(), store = server.store_kind(), "listening");
    server.run(shutdown).await
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C); on other platforms on Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
