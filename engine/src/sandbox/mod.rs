//! The Code block runtime: user-supplied WebAssembly modules run on wasmtime
//! under fuel, memory, time and I/O limits. This is the host side of ABI v1
//! (`docs/abi.md`); `docs/security.md` is the threat model.
//!
//! One [`Sandbox`] per process (or per tenant class) holds the wasmtime
//! engine, the instance pool, the ticker thread and the module cache. Load a
//! module once ([`Sandbox::load`], cached by SHA-256), then run it as often
//! as needed ([`Sandbox::run`]); each run gets a fresh instance from the
//! pool, the conversation's property snapshot, and its own [`Limits`].
//!
//! ```
//! use chatflow_engine::Properties;
//! use chatflow_engine::net::{HttpClient, NetPolicy};
//! use chatflow_engine::sandbox::{Sandbox, SandboxConfig};
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
//! Layout: [`limits`] (what a run may consume), [`outcome`] (how a run
//! ended), `module` (validation against ABI v1), `cache` (compiled modules
//! by hash), `host` (the imports, one file per family).

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::{Notify, Semaphore};
use wasmtime::{
    CallHook, CallHookHandler, Config, Engine, EngineWeak, Extern, InstanceAllocationStrategy,
    Linker, Module, PoolingAllocationConfig, Store, StoreContextMut, Strategy, Trap,
    UpdateDeadline, WasmBacktrace, WasmBacktraceDetails, WasmFeatures,
};

use crate::net::HttpClient;
use crate::properties::Properties;

mod block;
mod cache;
pub mod host;
pub mod limits;
mod module;
pub mod outcome;

pub use block::{CodeBlockConfig, ModuleRef};
pub use cache::CacheStats;
pub use limits::{HostMemory, LimitError, LimitKind, LimitOverrides, Limits};
pub use module::{AbiProblem, CodeModule, LoadError};
pub use outcome::{GuestMemoryError, LogEntry, LogLevel, Outcome, Output, RunError};

use host::RunState;
use module::ModuleInner;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// How a [`Sandbox`] is set up: the operator's knobs.
///
/// Build with [`SandboxConfig::default`] and the `with_*` setters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SandboxConfig {
    /// Limits of a run whose Code block sets no overrides.
    ///
    /// By default [`Limits::default`].
    pub default_limits: Limits,
    /// The most a Code block may ask for; also sizes the instance pool's
    /// memory slots ([`Limits::memory_bytes`]).
    ///
    /// By default [`Limits::maximum`].
    pub max_limits: Limits,
    /// Whether wasm execution is metered with fuel (deterministic
    /// instruction counting, enforcing [`Limits::fuel`]). With it off, runs
    /// are bounded by wall-clock time and memory only (epoch interruption),
    /// and host work is not charged either. `docs/benchmarks.md` has the
    /// cost of each guard.
    ///
    /// By default `true`.
    pub fuel_metering: bool,
    /// With fuel metering on, a guest running wasm yields to the async
    /// executor every this many units of fuel, so one busy guest cannot
    /// hold a thread for long, and comes back through the run's deadline
    /// and cancellation checks (see [`epoch_tick`](Self::epoch_tick)): this
    /// is then how a loop without imports is stopped, and the wasm code
    /// carries no epoch checks (fuel and epoch checks together cost about
    /// twice as much as either; see `docs/benchmarks.md`). Host calls do
    /// not count towards it: each import's fuel charge restarts the
    /// countdown, and a guest calling imports is paced by the ticker
    /// instead. `None` disables fuel-based yields; running wasm is then
    /// interrupted with epochs, as with fuel metering off.
    ///
    /// By default `Some(10_000_000)` (a few milliseconds of wasm).
    pub fuel_yield_interval: Option<u64>,
    /// The period of the sandbox's ticker thread, which paces every run:
    ///
    /// - Whenever a guest comes back from the host (from any import, from
    ///   a fuel or epoch yield, from `memory.grow`), its cancel token is
    ///   checked, and if a tick has passed since the last such check (or
    ///   every 256 returns, should the ticker thread be starved), its
    ///   wall-clock deadline too, and the guest yields to the executor.
    ///   A guest calling imports in a loop (which fuel yields do not
    ///   interrupt) therefore cannot outlive its deadline, nor keep its
    ///   thread, by more than about a tick.
    /// - When epoch interruption is used (fuel metering off, or no
    ///   [`fuel_yield_interval`](SandboxConfig::fuel_yield_interval)), the
    ///   ticker also advances the engine's epoch: at every tick running
    ///   wasm yields to the executor and the same checks are made.
    ///
    /// So this is the precision of [`Limits::wall_time`] (plus one fuel
    /// yield interval for a loop without imports, with fuel yields on).
    ///
    /// By default 10 ms.
    pub epoch_tick: Duration,
    /// The wasm stack of a run, in bytes; overflowing it ends the run with
    /// [`RunError::StackOverflow`]. Engine-wide.
    ///
    /// By default 512 KiB.
    pub max_wasm_stack: usize,
    /// The largest module [`Sandbox::load`] accepts, in bytes.
    ///
    /// By default 16 MiB.
    pub max_module_bytes: usize,
    /// How many runs may execute at once. Sizes the pooling allocator
    /// (instances, memories, tables and async stacks); runs past it wait for
    /// a free slot. Each slot reserves address space (not memory) for the
    /// largest allowed linear memory plus guard pages, all of it when the
    /// sandbox is created: about 2–3 ms of [`Sandbox::new`] for 1 000 slots,
    /// a fraction of a millisecond for a few (`docs/benchmarks.md`, "Cold
    /// start"). A process that runs one block at a time (the `chatflow`
    /// command line) needs one.
    ///
    /// By default 1 000.
    pub max_concurrent_runs: u32,
    /// The most elements a module's table may have (at instantiation or by
    /// `table.grow`).
    ///
    /// By default 20 000.
    pub table_elements: u32,
    /// Bytes of each pooled linear memory that are reset in place after a
    /// run (and stay resident for the next one) instead of being returned
    /// to the kernel: a fresh instance then finds the pages it writes
    /// already mapped rather than taking a page fault for each, which is
    /// most of what a fresh instance costs beyond a reused one
    /// (`docs/benchmarks.md`). With [`pagemap_scan`](Self::pagemap_scan)
    /// only the pages the run wrote are reset; without it the first this
    /// many bytes of the memory (up to its size) are `memset` after every
    /// run, touched or not, which costs more than it saves for small
    /// blocks.
    ///
    /// Memory kept resident counts towards the process's RSS while the
    /// slot is idle: after a burst of large runs, up to this much per slot
    /// used stays resident (never more than what those runs wrote). Lower
    /// it if RSS after bursts matters more than speed.
    ///
    /// By default 16 MiB where the `PAGEMAP_SCAN` ioctl is available (Linux
    /// 6.7 or later), 0 elsewhere.
    pub linear_memory_keep_resident: usize,
    /// Reset linear memories after a run with Linux's `PAGEMAP_SCAN` ioctl
    /// (kernel 6.7 or later): only the pages the run actually wrote are
    /// reset, and those within
    /// [`linear_memory_keep_resident`](Self::linear_memory_keep_resident)
    /// stay resident for the next run instead of being returned to the
    /// kernel and faulted in again. Ignored where the ioctl is unavailable
    /// (other kernels and systems).
    ///
    /// By default `true`.
    pub pagemap_scan: bool,
    /// The same as [`linear_memory_keep_resident`](Self::linear_memory_keep_resident)
    /// for tables. A module's table is small (8 bytes per element, a few
    /// hundred elements for a Rust Code block), so resetting it in place is
    /// cheaper than a system call and a page fault.
    ///
    /// By default 64 KiB.
    pub table_keep_resident: usize,
    /// How many idle pool slots stay warm (their module's memory image
    /// mapped, and what [`linear_memory_keep_resident`](Self::linear_memory_keep_resident)
    /// keeps of the last run resident) besides those in use. Idle slots
    /// beyond it are returned to the kernel, so the memory pool slots hold
    /// between runs is at most (runs in flight + this) ×
    /// `linear_memory_keep_resident`. A run that finds a warm slot of its
    /// module starts faster; a block run after block needs only one.
    ///
    /// By default 100, as wasmtime.
    pub max_unused_warm_slots: u32,
    /// How many compiled modules the in-memory cache keeps (least recently
    /// used are evicted).
    ///
    /// By default 256.
    pub module_cache_capacity: usize,
    /// Zero each run's fiber stack (where wasm and host calls run) before
    /// it is reused. Defence in depth against a compiler bug that would
    /// read a stack slot before writing it; costs a `memset` of the stack
    /// per run.
    ///
    /// By default `false`.
    pub zero_fiber_stacks: bool,
    /// Write `/tmp/perf-<pid>.map` as modules are compiled, so that Linux
    /// `perf` names the wasm functions in its profiles (with the module's
    /// name section: build the module with `strip = false` to see Rust
    /// function names). For profiling; the file names every function of
    /// every module loaded.
    ///
    /// By default `false`.
    pub perf_map: bool,
    /// A directory for precompiled modules, so a restarted process does not
    /// compile again. The sandbox creates it (mode 0700) with a secret key
    /// and only ever loads artifacts authenticated with that key (see
    /// `docs/security.md`).
    ///
    /// By default `None` (no disk cache).
    pub cache_dir: Option<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            default_limits: Limits::default(),
            max_limits: Limits::maximum(),
            fuel_metering: true,
            fuel_yield_interval: Some(10_000_000),
            epoch_tick: Duration::from_millis(10),
            max_wasm_stack: 512 * KIB,
            max_module_bytes: 16 * MIB,
            max_concurrent_runs: 1_000,
            table_elements: 20_000,
            linear_memory_keep_resident: if pagemap_scan_available() {
                16 * MIB
            } else {
                0
            },
            pagemap_scan: true,
            table_keep_resident: 64 * KIB,
            max_unused_warm_slots: 100,
            module_cache_capacity: 256,
            zero_fiber_stacks: false,
            perf_map: false,
            cache_dir: None,
        }
    }
}

impl SandboxConfig {
    /// Whether running wasm is interrupted with epochs (the ticker advances
    /// the engine's epoch, checked by code compiled into every loop and
    /// function entry) rather than at fuel yields: when fuel metering or
    /// fuel yields are off.
    fn uses_epochs(&self) -> bool {
        !(self.fuel_metering && self.fuel_yield_interval.is_some())
    }

    /// Sets [`default_limits`](Self::default_limits).
    pub fn with_default_limits(mut self, limits: Limits) -> Self {
        self.default_limits = limits;
        self
    }

    /// Sets [`max_limits`](Self::max_limits).
    pub fn with_max_limits(mut self, limits: Limits) -> Self {
        self.max_limits = limits;
        self
    }

    /// Sets [`fuel_metering`](Self::fuel_metering).
    pub fn with_fuel_metering(mut self, enable: bool) -> Self {
        self.fuel_metering = enable;
        self
    }

    /// Sets [`fuel_yield_interval`](Self::fuel_yield_interval).
    pub fn with_fuel_yield_interval(mut self, interval: Option<u64>) -> Self {
        self.fuel_yield_interval = interval;
        self
    }

    /// Sets [`epoch_tick`](Self::epoch_tick).
    pub fn with_epoch_tick(mut self, tick: Duration) -> Self {
        self.epoch_tick = tick;
        self
    }

    /// Sets [`max_wasm_stack`](Self::max_wasm_stack).
    pub fn with_max_wasm_stack(mut self, bytes: usize) -> Self {
        self.max_wasm_stack = bytes;
        self
    }

    /// Sets [`max_module_bytes`](Self::max_module_bytes).
    pub fn with_max_module_bytes(mut self, bytes: usize) -> Self {
        self.max_module_bytes = bytes;
        self
    }

    /// Sets [`max_concurrent_runs`](Self::max_concurrent_runs).
    pub fn with_max_concurrent_runs(mut self, runs: u32) -> Self {
        self.max_concurrent_runs = runs;
        self
    }

    /// Sets [`table_elements`](Self::table_elements).
    pub fn with_table_elements(mut self, elements: u32) -> Self {
        self.table_elements = elements;
        self
    }

    /// Sets [`max_unused_warm_slots`](Self::max_unused_warm_slots).
    pub fn with_max_unused_warm_slots(mut self, slots: u32) -> Self {
        self.max_unused_warm_slots = slots;
        self
    }

    /// Sets [`linear_memory_keep_resident`](Self::linear_memory_keep_resident).
    pub fn with_linear_memory_keep_resident(mut self, bytes: usize) -> Self {
        self.linear_memory_keep_resident = bytes;
        self
    }

    /// Sets [`pagemap_scan`](Self::pagemap_scan).
    pub fn with_pagemap_scan(mut self, enable: bool) -> Self {
        self.pagemap_scan = enable;
        self
    }

    /// Sets [`table_keep_resident`](Self::table_keep_resident).
    pub fn with_table_keep_resident(mut self, bytes: usize) -> Self {
        self.table_keep_resident = bytes;
        self
    }

    /// Sets [`module_cache_capacity`](Self::module_cache_capacity).
    pub fn with_module_cache_capacity(mut self, modules: usize) -> Self {
        self.module_cache_capacity = modules;
        self
    }

    /// Sets [`zero_fiber_stacks`](Self::zero_fiber_stacks).
    pub fn with_zero_fiber_stacks(mut self, enable: bool) -> Self {
        self.zero_fiber_stacks = enable;
        self
    }

    /// Sets [`perf_map`](Self::perf_map).
    pub fn with_perf_map(mut self, enable: bool) -> Self {
        self.perf_map = enable;
        self
    }

    /// Sets [`cache_dir`](Self::cache_dir).
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// The wasmtime configuration this sandbox config stands for.
    fn wasmtime_config(&self) -> Result<Config, ConfigError> {
        let mut pool = PoolingAllocationConfig::new();
        let runs = self.max_concurrent_runs;
        let max_memory = usize::try_from(self.max_limits.memory_bytes)
            .map_err(|_| ConfigError::Invalid("max memory does not fit in usize".into()))?;
        pool.total_core_instances(runs)
            .total_memories(runs)
            .total_tables(runs)
            .total_stacks(runs)
            .max_memory_size(max_memory)
            .table_elements(self.table_elements as usize)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .linear_memory_keep_resident(self.linear_memory_keep_resident)
            .table_keep_resident(self.table_keep_resident)
            .max_unused_warm_slots(self.max_unused_warm_slots)
            .pagemap_scan(if self.pagemap_scan {
                wasmtime::Enabled::Auto
            } else {
                wasmtime::Enabled::No
            });

        let mut config = Config::new();
        config
            .strategy(Strategy::Cranelift)
            .consume_fuel(self.fuel_metering)
            .epoch_interruption(self.uses_epochs())
            .max_wasm_stack(self.max_wasm_stack)
            // Host functions run on the same fiber stack as wasm; leave them
            // at least 1 MiB beyond the wasm stack.
            .async_stack_size(self.max_wasm_stack + MIB)
            .async_stack_zeroing(self.zero_fiber_stacks)
            .memory_init_cow(true)
            // Function names come from the name section; DWARF from an
            // untrusted module is not parsed.
            .wasm_backtrace_details(WasmBacktraceDetails::Disable)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if self.perf_map {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        // What rustc's wasm32-unknown-unknown output uses stays on; proposals
        // that widen the attack surface or the engine's state are off (see
        // docs/security.md, "WebAssembly features").
        config.wasm_features(
            WasmFeatures::SIMD
                | WasmFeatures::BULK_MEMORY
                | WasmFeatures::REFERENCE_TYPES
                | WasmFeatures::MULTI_VALUE
                | WasmFeatures::SIGN_EXTENSION
                | WasmFeatures::SATURATING_FLOAT_TO_INT
                | WasmFeatures::MUTABLE_GLOBAL
                | WasmFeatures::TAIL_CALL
                | WasmFeatures::EXTENDED_CONST,
            true,
        );
        config.wasm_features(
            WasmFeatures::THREADS
                | WasmFeatures::SHARED_EVERYTHING_THREADS
                | WasmFeatures::MEMORY64
                | WasmFeatures::MULTI_MEMORY
                | WasmFeatures::GC
                | WasmFeatures::GC_TYPES
                | WasmFeatures::FUNCTION_REFERENCES
                | WasmFeatures::EXCEPTIONS
                | WasmFeatures::LEGACY_EXCEPTIONS
                | WasmFeatures::STACK_SWITCHING
                | WasmFeatures::COMPONENT_MODEL
                | WasmFeatures::RELAXED_SIMD
                | WasmFeatures::WIDE_ARITHMETIC
                | WasmFeatures::CUSTOM_PAGE_SIZES
                | WasmFeatures::MEMORY_CONTROL,
            false,
        );
        Ok(config)
    }
}

/// Whether the `PAGEMAP_SCAN` ioctl works here (Linux 6.7 or later, not
/// filtered by a sandbox): asks wasmtime to require it in a minimal pool,
/// once per process.
fn pagemap_scan_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if !cfg!(target_os = "linux") {
            return false;
        }
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(1)
            .total_memories(1)
            .total_tables(1)
            .total_stacks(1)
            .max_memory_size(64 * KIB)
            .linear_memory_keep_resident(64 * KIB)
            .pagemap_scan(wasmtime::Enabled::Yes);
        let mut config = Config::new();
        config
            .memory_reservation(64 * KIB as u64)
            .memory_guard_size(0)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        Engine::new(&config).is_ok()
    })
}

/// Why a [`Sandbox`] could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting is out of range.
    #[error("invalid sandbox config: {0}")]
    Invalid(String),
    /// The default limits are over the maximums.
    #[error("default limits: {0}")]
    Limits(#[from] LimitError),
    /// wasmtime refused the configuration (for example the pool does not fit
    /// in the address space).
    #[error("creating the wasm engine: {0}")]
    Engine(String),
    /// The ticker thread or the cache directory could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A handle to cancel a run started with [`Sandbox::run_with_cancel`].
///
/// Cloning gives another handle to the same token. Cancelling stops the run
/// the next time its guest comes back from the host: at once in a loop
/// calling imports, at the next fuel yield or epoch tick in a loop without
/// any, at once while it waits on HTTP or for a free instance slot; the run
/// ends with [`RunError::Cancelled`]. Dropping the run's future also stops
/// it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    inner: Arc<CancelInner>,
}

#[derive(Debug, Default)]
struct CancelInner {
    cancelled: AtomicBool,
    notify: Notify,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every run holding this token.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Completes once the token is cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// Awaits `fut` unless `cancel` fires first.
pub(crate) async fn or_cancelled<F: Future>(
    cancel: Option<&CancelToken>,
    fut: F,
) -> Option<F::Output> {
    match cancel {
        None => Some(fut.await),
        Some(token) => tokio::select! {
            out = fut => Some(out),
            () = token.cancelled() => None,
        },
    }
}

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
        config.default_limits.check(&config.max_limits)?;
        if config.max_concurrent_runs == 0 {
            return Err(ConfigError::Invalid(
                "max_concurrent_runs must be at least 1".into(),
            ));
        }
        if config.fuel_yield_interval == Some(0) {
            return Err(ConfigError::Invalid(
                "fuel_yield_interval must be greater than zero".into(),
            ));
        }
        if config.epoch_tick.is_zero() {
            return Err(ConfigError::Invalid(
                "epoch_tick must be greater than zero".into(),
            ));
        }
        if config.max_limits.memory_bytes > 4 << 30 {
            return Err(ConfigError::Invalid(
                "max memory_bytes cannot exceed 4 GiB (32-bit memories)".into(),
            ));
        }
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
        if let Some(module) = self.cache.get(&sha256) {
            return Ok(module);
        }
        if let Some((module, _)) = self.cache.load_from_disk(&self.engine, &sha256) {
            let module = self.prepare(module, sha256, wasm.len())?;
            self.cache.insert(&module);
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
        if let Some(module) = self.cache.get(sha256) {
            return Ok(module);
        }
        if let Some((module, size)) = self.cache.load_from_disk(&self.engine, sha256) {
            let module = self.prepare(module, *sha256, size)?;
            self.cache.insert(&module);
            return Ok(module);
        }
        Err(LoadError::NotCached {
            sha256: module::hex(sha256),
        })
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
        let memory = export(module::MEMORY_EXPORT)?;
        let run = export(module::RUN_EXPORT)?;
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

    async fn run_inner(
        &self,
        module: &CodeModule,
        props: &Properties,
        limits: &Limits,
        cancel: Option<&CancelToken>,
    ) -> Outcome {
        if let Err(err) = limits.check(&self.config.max_limits) {
            return Outcome::failed(err.into());
        }
        if module.inner.sandbox_id != self.id {
            return Outcome::failed(RunError::InvalidModule(LoadError::Engine {
                message: "the module was loaded by another sandbox".into(),
            }));
        }
        // Wait for a pool slot rather than fail when all are busy.
        let Some(permit) = or_cancelled(cancel, self.slots.acquire()).await else {
            return Outcome::failed(RunError::Cancelled);
        };
        let _permit = permit.expect("the semaphore is never closed");
        if cancel.is_some_and(CancelToken::is_cancelled) {
            return Outcome::failed(RunError::Cancelled);
        }

        let start = Instant::now();
        let state = RunState::new(
            &self.config,
            &self.http,
            props,
            limits,
            start + limits.wall_time,
            cancel.cloned(),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        if self.config.fuel_metering {
            let fueled = store
                .set_fuel(limits.fuel)
                .and_then(|()| store.fuel_async_yield_interval(self.config.fuel_yield_interval));
            if let Err(err) = fueled {
                return Outcome::failed(RunError::Engine {
                    message: format!("{err:#}"),
                });
            }
        }
        // Every return from the host (an import, a fuel or epoch yield,
        // memory growth) checks the cancel token, and once a tick the
        // deadline, yielding to the executor then.
        store.call_hook_async(Watchdog::new(
            start,
            limits.wall_time,
            cancel.cloned(),
            self.ticker.ticks.clone(),
            self.config.epoch_tick,
        ));
        if self.config.uses_epochs() {
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(|ctx| {
                let state = ctx.data();
                if state.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
                    return Err(RunError::Cancelled.into());
                }
                if Instant::now() >= state.deadline {
                    return Err(RunError::Timeout {
                        limit: state.limits.wall_time,
                    }
                    .into());
                }
                Ok(UpdateDeadline::Yield(1))
            });
        }
        let result = call(&mut store, &module.inner).await;
        let fuel_used = if self.config.fuel_metering {
            limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0))
        } else {
            0
        };
        let duration = start.elapsed();
        let state = store.into_data();
        let result = match result {
            Ok(0) => Ok(Output {
                changes: state.changes,
                messages: state.messages,
            }),
            Ok(code) => Err(RunError::GuestFailed {
                message: state
                    .fail_message
                    .clone()
                    .unwrap_or_else(|| format!("chatflow_run returned {code}")),
                code: Some(code),
            }),
            Err(err) => Err(classify(err, &state)),
        };
        let result = match (result, &state.http.denied) {
            (Err(RunError::GuestFailed { .. } | RunError::Trap { .. }), Some(reason)) => {
                Err(RunError::HttpDenied {
                    reason: reason.clone(),
                })
            }
            (result, _) => result,
        };
        Outcome {
            result,
            logs: state.logs,
            logs_dropped: state.logs_dropped,
            fail_message: state.fail_message,
            fuel_used,
            duration,
            http_calls: state.http.calls,
            memory_bytes: state.limiter.memory_peak as u64,
        }
    }
}

/// Instantiates the module in `store` and calls `chatflow_run`.
async fn call(store: &mut Store<RunState>, module: &ModuleInner) -> wasmtime::Result<i32> {
    let instance = module.pre.instantiate_async(&mut *store).await?;
    let memory = instance
        .get_module_export(&mut *store, &module.memory)
        .and_then(Extern::into_memory)
        .ok_or_else(|| wasmtime::Error::msg("memory export not found"))?;
    store.data_mut().memory = Some(memory);
    let run = instance
        .get_module_export(&mut *store, &module.run)
        .and_then(Extern::into_func)
        .ok_or_else(|| wasmtime::Error::msg("chatflow_run export not found"))?
        .typed::<(), i32>(&*store)?;
    run.call_async(&mut *store, ()).await
}

/// Checks a run's cancel token every time its guest comes back from the
/// host, and once a tick (the sandbox's [`Ticker`]) its deadline, making
/// the guest yield to the executor at the same time. It also reads the
/// clock every [`CLOCK_EVERY`] returns, and then makes the guest yield if
/// it has not for a tick, so a starved ticker thread delays neither.
///
/// wasmtime calls it around every host call: each import, and each libcall
/// (a fuel yield, an epoch yield, `memory.grow`). So a guest cannot stay
/// past its deadline, ignore its cancel token or keep its thread by calling
/// imports, which neither fuel yields (every import's fuel charge restarts
/// wasmtime's countdown to the next yield: `Store::set_fuel` refills the
/// yield slice) nor epoch checks (compiled into loop heads and function
/// entries only) would stop; a pure wasm loop comes back through here at
/// each fuel or epoch yield. Between ticks the check is two atomic loads:
/// reading the clock at every import would cost more than the cheapest
/// imports themselves (`docs/benchmarks.md`, "Wall time and cancellation").
struct Watchdog {
    started: Instant,
    deadline: Instant,
    wall_time: Duration,
    cancel: Option<CancelToken>,
    /// The sandbox's tick count.
    ticks: Arc<AtomicU64>,
    /// The ticker's period, in nanoseconds.
    tick_nanos: u64,
    // The rest is the run's own bookkeeping. Only the run's fiber touches
    // it (atomics because the hook is called through `&self`).
    /// The tick count at the last check.
    seen: AtomicU64,
    /// Host returns so far.
    returns: AtomicU64,
    /// When the guest is next made to yield if no tick comes first, in
    /// nanoseconds after `started`.
    next_yield: AtomicU64,
}

/// Every this many host returns the clock is read even if the ticker has
/// not ticked, so the deadline holds even if the ticker thread is starved
/// of CPU (a clock read every 256 returns adds well under a nanosecond to
/// each).
const CLOCK_EVERY: u64 = 256;

/// What [`Watchdog`] decided at one return from the host.
enum Verdict {
    Proceed,
    Yield,
    Stop(RunError),
}

impl Watchdog {
    fn new(
        started: Instant,
        wall_time: Duration,
        cancel: Option<CancelToken>,
        ticks: Arc<AtomicU64>,
        tick: Duration,
    ) -> Watchdog {
        let seen = AtomicU64::new(ticks.load(Ordering::Relaxed));
        let tick_nanos = u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX);
        Watchdog {
            started,
            deadline: started + wall_time,
            wall_time,
            cancel,
            ticks,
            tick_nanos,
            seen,
            returns: AtomicU64::new(0),
            next_yield: AtomicU64::new(tick_nanos),
        }
    }

    fn verdict(&self) -> Verdict {
        if self.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
            return Verdict::Stop(RunError::Cancelled);
        }
        let ticks = self.ticks.load(Ordering::Relaxed);
        let ticked = ticks != self.seen.load(Ordering::Relaxed);
        let returns = self.returns.load(Ordering::Relaxed).wrapping_add(1);
        self.returns.store(returns, Ordering::Relaxed);
        if !ticked && !returns.is_multiple_of(CLOCK_EVERY) {
            return Verdict::Proceed;
        }
        let now = Instant::now();
        if now >= self.deadline {
            return Verdict::Stop(RunError::Timeout {
                limit: self.wall_time,
            });
        }
        let elapsed =
            u64::try_from(now.duration_since(self.started).as_nanos()).unwrap_or(u64::MAX);
        if ticked || elapsed >= self.next_yield.load(Ordering::Relaxed) {
            self.seen.store(ticks, Ordering::Relaxed);
            self.next_yield
                .store(elapsed.saturating_add(self.tick_nanos), Ordering::Relaxed);
            return Verdict::Yield;
        }
        Verdict::Proceed
    }
}

// The signature is what `#[async_trait]` makes of the trait's `async fn`,
// written out so that the common case costs no allocation: the boxed
// future is zero-sized unless the run yields or stops.
impl CallHookHandler<RunState> for Watchdog {
    fn handle_call_event<'life0, 'life1, 'async_trait>(
        &'life0 self,
        _store: StoreContextMut<'life1, RunState>,
        hook: CallHook,
    ) -> Pin<Box<dyn Future<Output = wasmtime::Result<()>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        if !hook.exiting_host() {
            return Box::pin(Proceed);
        }
        match self.verdict() {
            Verdict::Proceed => Box::pin(Proceed),
            Verdict::Yield => Box::pin(YieldOnce { yielded: false }),
            Verdict::Stop(err) => Box::pin(std::future::ready(Err(err.into()))),
        }
    }
}

/// A future that is ready at once (zero-sized: boxing it allocates nothing).
struct Proceed;

impl Future for Proceed {
    type Output = wasmtime::Result<()>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(()))
    }
}

/// Returns to the executor once (asking to be polled again at once), as
/// wasmtime's own fuel and epoch yields do.
struct YieldOnce {
    yielded: bool,
}

impl Future for YieldOnce {
    type Output = wasmtime::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.yielded {
            return Poll::Ready(Ok(()));
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Maps how wasmtime ended a run to the run's error.
fn classify(err: wasmtime::Error, state: &RunState) -> RunError {
    let limits = &state.limits;
    let err = match err.downcast::<RunError>() {
        Ok(run_error) => return run_error,
        Err(err) => err,
    };
    let memory_limit = RunError::MemoryLimit {
        limit: limits.memory_bytes,
    };
    let Some(trap) = err.downcast_ref::<Trap>() else {
        // Not a trap: instantiation failed (e.g. the initial memory is over
        // the run's limit, which the limiter refused).
        if state.limiter.memory_denied {
            return memory_limit;
        }
        return RunError::Engine {
            message: format!("{err:#}"),
        };
    };
    match trap {
        Trap::OutOfFuel => RunError::FuelExhausted { limit: limits.fuel },
        Trap::Interrupt => RunError::Timeout {
            limit: limits.wall_time,
        },
        Trap::StackOverflow => RunError::StackOverflow,
        _ if state.limiter.memory_denied => memory_limit,
        Trap::UnreachableCodeReached if state.fail_message.is_some() => RunError::GuestFailed {
            message: state.fail_message.clone().unwrap_or_default(),
            code: None,
        },
        trap => RunError::Trap {
            message: trap.to_string(),
            backtrace: err
                .downcast_ref::<WasmBacktrace>()
                .map(|bt| bt.to_string())
                .filter(|bt| !bt.trim().is_empty()),
        },
    }
}

impl Outcome {
    /// An outcome for a run that failed before the guest ran.
    fn failed(error: RunError) -> Outcome {
        Outcome {
            result: Err(error),
            logs: Vec::new(),
            logs_dropped: 0,
            fail_message: None,
            fuel_used: 0,
            duration: Duration::ZERO,
            http_calls: 0,
            memory_bytes: 0,
        }
    }
}

/// The sandbox's ticker thread: every `epoch_tick` it advances the tick
/// count each run's [`Watchdog`] watches and, when runs are interrupted with
/// epochs, the engine's epoch. It holds only a weak reference to the
/// engine, and is told to stop when the sandbox is dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    ticks: Arc<AtomicU64>,
    thread: std::thread::Thread,
}

impl Ticker {
    fn spawn(engine: EngineWeak, tick: Duration, epochs: bool) -> std::io::Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let ticks = Arc::new(AtomicU64::new(0));
        let (stop_flag, counter) = (stop.clone(), ticks.clone());
        let handle = std::thread::Builder::new()
            .name("chatflow-ticker".into())
            .spawn(move || {
                loop {
                    std::thread::park_timeout(tick);
                    if stop_flag.load(Ordering::Acquire) {
                        break;
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                    if epochs {
                        match engine.upgrade() {
                            Some(engine) => engine.increment_epoch(),
                            None => break,
                        }
                    }
                }
            })?;
        Ok(Ticker {
            stop,
            ticks,
            thread: handle.thread().clone(),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn run_futures_are_send() {
        let http = HttpClient::new(crate::net::NetPolicy::default()).unwrap();
        let sandbox =
            Sandbox::new(SandboxConfig::default().with_max_concurrent_runs(1), http).unwrap();
        let wasm = wat::parse_str(
            r#"(module (memory (export "memory") 1) (func (export "chatflow_abi_v1"))
                 (func (export "chatflow_run") (result i32) (i32.const 0)))"#,
        )
        .unwrap();
        let module = sandbox.load(&wasm).unwrap();
        let props = Properties::new();
        let limits = sandbox.default_limits();
        let cancel = CancelToken::new();
        assert_send(&sandbox.run(&module, &props, &limits));
        assert_send(&sandbox.run_with_cancel(&module, &props, &limits, &cancel));
    }

    #[test]
    fn keep_resident_defaults_follow_pagemap_scan() {
        let config = SandboxConfig::default();
        let want = if pagemap_scan_available() {
            16 * MIB
        } else {
            0
        };
        assert_eq!(config.linear_memory_keep_resident, want);
        assert_eq!(config.table_keep_resident, 64 * KIB);
        // Linux 6.7 and later have the ioctl; this is where the benchmark
        // figures come from, so say which case the tests ran in.
        eprintln!("PAGEMAP_SCAN available: {}", pagemap_scan_available());
    }

    #[test]
    fn epochs_only_without_fuel_yields() {
        let config = SandboxConfig::default();
        assert!(!config.uses_epochs());
        assert!(config.clone().with_fuel_metering(false).uses_epochs());
        assert!(config.with_fuel_yield_interval(None).uses_epochs());
    }

    #[test]
    fn config_bad() {
        let http = || HttpClient::new(crate::net::NetPolicy::default()).unwrap();
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
