//! chatflow-sandbox is the Code block runtime of chatflow: user-supplied
//! WebAssembly modules run on wasmtime under fuel, memory, time and I/O
//! limits, reading and writing a conversation's properties ([`properties`])
//! and making HTTP calls through the host. It is the host side of ABI v1
//! (`docs/abi.md`); `docs/security.md` is the threat model. It is usable on
//! its own, without flows or the REST API block (those are
//! `chatflow-engine`, which re-exports this crate as
//! `chatflow_engine::sandbox`): it depends on wasmtime, Tokio (timers and
//! the fiber-based async runs), serde, quick-xml and the network policy of
//! `chatflow-net`, whose HTTP client a guest's requests go through. It does
//! not depend on reqwest or a TLS stack: with `chatflow-net`'s `reqwest`
//! feature off, guests' requests go to the operator's own
//! [`Egress`](chatflow_net::Egress) (`HttpClient::with_egress`).
//!
//! One [`Sandbox`] per process (or per tenant class) holds the wasmtime
//! engine, the instance pool, the ticker thread and the module cache. Load a
//! module once ([`Sandbox::load`], cached by SHA-256), then run it as often
//! as needed ([`Sandbox::run`]); each run gets a fresh instance from the
//! pool, the conversation's property snapshot, and its own [`Limits`].
//!
//! ```
//! use chatflow_sandbox::Properties;
//! use chatflow_net::{HttpClient, NetPolicy};
//! use chatflow_sandbox::{Sandbox, SandboxConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let http = HttpClient::new(NetPolicy::default())?; // shared with the REST API block
//! let sandbox = Sandbox::new(SandboxConfig::default().with_max_concurrent_runs(4), http)?;
//! let wasm = wat::parse_str(r#"
//!     (module
//!       (import "chatflow" "property_set" (func $set (param i32 i32 i32 i32) (result i32)))
//!       (memory (export "memory") 1)
//!       (data (i32.const 0) "greetinghello")
//!       (func (export "chatflow_abi_v1"))
//!       (func (export "chatflow_run") (result i32)
//!         (drop (call $set (i32.const 0) (i32.const 8) (i32.const 8) (i32.const 5)))
//!         (i32.const 0)))
//! "#)?;
//! let module = sandbox.load(&wasm)?;
//!
//! let mut props = Properties::new();
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let outcome = rt.block_on(sandbox.run(&module, &props, &sandbox.default_limits()));
//! let output = outcome.result?;
//! props.apply(output.changes);
//! assert_eq!(props.get("greeting"), Some("hello"));
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - this file: [`Sandbox`], its construction ([`Sandbox::new`]) and the
//!   entry points: load ([`Sandbox::load`], [`Sandbox::load_cached`]) and
//!   run ([`Sandbox::run`], [`Sandbox::run_with_cancel`]);
//! - `config`: [`SandboxConfig`] (the operator's knobs and their defaults),
//!   the wasmtime configuration it stands for, [`ConfigError`];
//! - `cancel`: [`CancelToken`];
//! - `run`: one run: the store, the watchdog checking the deadline and the
//!   cancel token at each return from the host, and the one place that
//!   classifies how a run ended into a [`RunError`];
//! - `ticker`: the ticker thread pacing every run's checks (and the epoch);
//! - [`limits`]: what a run may consume ([`Limits`]);
//! - [`outcome`]: how a run ended ([`Outcome`], [`RunError`]);
//! - `module`: validation against ABI v1 ([`CodeModule`], [`LoadError`]);
//! - `cache`: compiled modules by hash, in memory and on disk;
//! - `block`: the Code block as a flow file describes it
//!   ([`CodeBlockConfig`], [`ModuleRef`], [`Sandbox::load_ref`]);
//! - [`host`]: the imports, one file per family, and the run's state.
//!
//! - [`properties`]: a conversation's property store ([`Properties`]) and a
//!   run's pending changes ([`ChangeSet`]).
//!
//! # Features
//!
//! - `fuzzing` (off): the host's selectors and their reference
//!   implementations as plain functions, for the fuzz targets.

#![deny(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::{Engine, Linker, Module};

use chatflow_net::HttpClient;

pub use crate::properties::{ChangeSet, Properties};

mod block;
mod cache;
mod cancel;
mod config;
pub mod host;
pub mod limits;
mod module;
pub mod outcome;
pub mod properties;
mod run;
mod ticker;

pub use block::{CodeBlockConfig, ModuleRef};
pub use cache::CacheStats;
pub use cancel::CancelToken;
pub use config::{ConfigError, SandboxConfig};
pub use limits::{HostMemory, LimitError, LimitKind, LimitOverrides, Limits};
pub use module::{AbiProblem, CodeModule, LoadError};
pub use outcome::{GuestMemoryError, LogEntry, LogLevel, Outcome, Output, RunError};

use host::RunState;
use module::ModuleInner;
use ticker::Ticker;

static NEXT_SANDBOX_ID: AtomicU64 = AtomicU64::new(1);

/// The Code block runtime: one wasmtime engine with its instance pool,
/// ticker thread and module cache.
///
/// `Send + Sync`; share it with an `Arc`. Dropping it stops its ticker
/// thread.
pub struct Sandbox {
    engine: Engine,
    http: HttpClient,
    linker: Linker<RunState>,
    config: SandboxConfig,
    cache: cache::ModuleCache,
    slots: Semaphore,
    id: u64,
    /// The ticker thread: the pace of every run's deadline checks and
    /// yields, and of the epoch when runs are interrupted with epochs.
    ticker: Ticker,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("id", &self.id)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Builds the engine, the instance pool, the ticker thread and the
    /// module cache. Guests' HTTP requests go through `http`, the engine's
    /// shared client, under its network policy (the REST API block's).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if a setting is out of range, the default limits are
    /// over the maximums, wasmtime refuses the configuration, or the cache
    /// directory cannot be set up.
    pub fn new(config: SandboxConfig, http: HttpClient) -> Result<Sandbox, ConfigError> {
        config.check()?;
        let engine = Engine::new(&config.wasmtime_config()?)
            .map_err(|e| ConfigError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker).map_err(|e| ConfigError::Engine(format!("{e:#}")))?;
        let cache = cache::ModuleCache::new(&engine, &config)?;
        let ticker = Ticker::spawn(engine.weak(), config.epoch_tick, config.uses_epochs())
            .map_err(|source| ConfigError::Io {
                what: "starting the ticker thread".into(),
                source,
            })?;
        Ok(Sandbox {
            slots: Semaphore::new(config.max_concurrent_runs as usize),
            engine,
            http,
            linker,
            config,
            cache,
            id: NEXT_SANDBOX_ID.fetch_add(1, Ordering::Relaxed),
            ticker,
        })
    }

    /// The HTTP client guests' requests go through.
    pub fn http_client(&self) -> &HttpClient {
        &self.http
    }

    /// The configuration this sandbox was built with.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// The operator's default limits.
    pub fn default_limits(&self) -> Limits {
        self.config.default_limits
    }

    /// Resolves a Code block's limit overrides against the operator's
    /// defaults and maximums.
    ///
    /// # Errors
    ///
    /// [`LimitError`] if an override is over its maximum.
    pub fn limits(&self, overrides: &LimitOverrides) -> Result<Limits, LimitError> {
        self.config
            .default_limits
            .resolve(overrides, &self.config.max_limits)
    }

    /// Counters of the module cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Validates and compiles a module (`.wasm` bytes), or returns the cached
    /// one with the same SHA-256.
    ///
    /// Compiling takes milliseconds to seconds of CPU: from async code, call
    /// it inside `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    ///
    /// [`LoadError`]: too large, not valid wasm, or not ABI v1 (listing every
    /// problem).
    pub fn load(&self, wasm: &[u8]) -> Result<CodeModule, LoadError> {
        if wasm.len() > self.config.max_module_bytes {
            return Err(LoadError::TooLarge {
                size: wasm.len(),
                max: self.config.max_module_bytes,
            });
        }
        let sha256: [u8; 32] = Sha256::digest(wasm).into();
        if let Some(module) = self.cached(&sha256)? {
            return Ok(module);
        }
        let compiled = Module::new(&self.engine, wasm).map_err(|e| LoadError::Invalid {
            message: format!("{e:#}"),
        })?;
        let module = self.prepare(compiled, sha256, wasm.len())?;
        self.cache.record_compile();
        self.cache.insert(&module);
        self.cache.store_on_disk(&module);
        Ok(module)
    }

    /// The cached module with this SHA-256 (from memory, or from the disk
    /// cache), as named by a `sha256:` module reference.
    ///
    /// # Errors
    ///
    /// [`LoadError::NotCached`] if no such module is cached.
    pub fn load_cached(&self, sha256: &[u8; 32]) -> Result<CodeModule, LoadError> {
        self.cached(sha256)?.ok_or_else(|| LoadError::NotCached {
            sha256: module::hex(sha256),
        })
    }

    /// The module with this SHA-256 if it is cached: from memory, or from
    /// the disk cache (an authenticated artifact, whose size is part of
    /// what was authenticated), then validated, pre-linked and kept in
    /// memory.
    fn cached(&self, sha256: &[u8; 32]) -> Result<Option<CodeModule>, LoadError> {
        if let Some(module) = self.cache.get(sha256) {
            return Ok(Some(module));
        }
        let Some((compiled, size)) = self.cache.load_from_disk(&self.engine, sha256) else {
            return Ok(None);
        };
        let module = self.prepare(compiled, *sha256, size)?;
        self.cache.insert(&module);
        Ok(Some(module))
    }

    /// Validates a compiled module against ABI v1 and pre-links it.
    fn prepare(
        &self,
        compiled: Module,
        sha256: [u8; 32],
        size: usize,
    ) -> Result<CodeModule, LoadError> {
        let problems = module::check_abi(&compiled);
        if !problems.is_empty() {
            return Err(LoadError::Abi { problems });
        }
        let pre = self
            .linker
            .instantiate_pre(&compiled)
            .map_err(|e| LoadError::Engine {
                message: format!("{e:#}"),
            })?;
        let export = |name| {
            compiled
                .get_export_index(name)
                .ok_or_else(|| LoadError::Engine {
                    message: format!("export {name} vanished after validation"),
                })
        };
        let memory = export(chatflow_abi::MEMORY_EXPORT)?;
        let run = export(chatflow_abi::RUN_EXPORT)?;
        let imports = compiled.imports().map(|i| i.name().to_string()).collect();
        let exports = compiled.exports().map(|e| e.name().to_string()).collect();
        Ok(CodeModule {
            inner: Arc::new(ModuleInner {
                sha256,
                size,
                module: compiled,
                pre,
                memory,
                run,
                imports,
                exports,
                sandbox_id: self.id,
            }),
        })
    }

    /// Runs a module once with the conversation's `props` (read-only
    /// snapshot) under `limits`.
    ///
    /// The [`Outcome`] holds the property changes and messages (to be
    /// committed and delivered by the caller) if the run succeeded, or the
    /// [`RunError`]; logs, fuel used, duration and HTTP calls either way.
    /// Dropping the future stops the run.
    pub async fn run(&self, module: &CodeModule, props: &Properties, limits: &Limits) -> Outcome {
        self.run_inner(module, props, limits, None).await
    }

    /// [`run`](Self::run), stoppable with `cancel`: a cancelled run ends
    /// promptly with [`RunError::Cancelled`].
    pub async fn run_with_cancel(
        &self,
        module: &CodeModule,
        props: &Properties,
        limits: &Limits,
        cancel: &CancelToken,
    ) -> Outcome {
        self.run_inner(module, props, limits, Some(cancel)).await
    }
}

#[cfg(test)]
mod tests {
    use std::pin::{Pin, pin};
    use std::task::Poll;
    use std::time::Duration;

    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn shareable_across_tasks() {
        assert_send_sync::<Sandbox>();
        assert_send_sync::<CodeModule>();
        assert_send_sync::<CancelToken>();
        assert_send_sync::<Outcome>();
    }

    /// A sandbox with one slot, and a module whose `chatflow_run` is `body`.
    fn one_slot_with(body: &str) -> (Sandbox, CodeModule) {
        let http = HttpClient::new(chatflow_net::NetPolicy::default()).unwrap();
        let sandbox =
            Sandbox::new(SandboxConfig::default().with_max_concurrent_runs(1), http).unwrap();
        let wasm = wat::parse_str(format!(
            r#"(module (memory (export "memory") 1) (func (export "chatflow_abi_v1"))
                 (func (export "chatflow_run") (result i32) {body}))"#
        ))
        .unwrap();
        let module = sandbox.load(&wasm).unwrap();
        (sandbox, module)
    }

    #[test]
    fn run_futures_are_send() {
        let (sandbox, module) = one_slot_with("(i32.const 0)");
        let props = Properties::new();
        let limits = sandbox.default_limits();
        let cancel = CancelToken::new();
        assert_send(&sandbox.run(&module, &props, &limits));
        assert_send(&sandbox.run_with_cancel(&module, &props, &limits, &cancel));
    }

    /// Polls `fut` once, from inside a task.
    async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
    }

    #[test]
    fn cancel_while_waiting_for_a_slot() {
        let (sandbox, module) = one_slot_with("(loop (br 0)) (i32.const 0)");
        let props = Properties::new();
        let limits = sandbox.default_limits().with_fuel(Limits::maximum().fuel);
        let (busy, waiting) = (CancelToken::new(), CancelToken::new());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // The first run takes the only slot and loops (yielding at
            // each fuel yield); the second waits for the slot.
            let mut first = pin!(sandbox.run_with_cancel(&module, &props, &limits, &busy));
            assert!(poll_once(&mut first).await.is_pending());
            let mut second = pin!(sandbox.run_with_cancel(&module, &props, &limits, &waiting));
            assert!(poll_once(&mut second).await.is_pending());
            waiting.cancel();
            let Poll::Ready(outcome) = poll_once(&mut second).await else {
                panic!("a cancelled wait for a slot must end at once");
            };
            assert!(
                matches!(outcome.error(), Some(RunError::Cancelled)),
                "{outcome:?}"
            );
            // It never started.
            assert_eq!(
                (outcome.duration, outcome.fuel_used, outcome.memory_bytes),
                (Duration::ZERO, 0, 0)
            );
            busy.cancel();
            let outcome = first.await;
            assert!(
                matches!(outcome.error(), Some(RunError::Cancelled)),
                "{outcome:?}"
            );
            assert!(outcome.fuel_used > 0);
        });
    }

    #[test]
    fn config_bad() {
        let http = || HttpClient::new(chatflow_net::NetPolicy::default()).unwrap();
        let cases = [
            SandboxConfig::default().with_max_concurrent_runs(0),
            SandboxConfig::default().with_epoch_tick(Duration::ZERO),
            SandboxConfig::default().with_fuel_yield_interval(Some(0)),
            SandboxConfig::default().with_module_cache_capacity(0),
            SandboxConfig::default().with_default_limits(Limits::maximum().with_fuel(u64::MAX)),
        ];
        for config in cases {
            assert!(Sandbox::new(config.clone(), http()).is_err(), "{config:?}");
        }
    }
}
