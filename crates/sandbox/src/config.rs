//! How a [`Sandbox`](super::Sandbox) is set up: [`SandboxConfig`] (the
//! operator's knobs, their defaults and `with_*` setters), the wasmtime
//! [`Config`] it stands for, and [`ConfigError`] for a setting the sandbox
//! cannot be built with.

use std::path::PathBuf;
use std::time::Duration;

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Strategy,
    WasmBacktraceDetails, WasmFeatures,
};

use super::limits::{LimitError, Limits};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// How a [`Sandbox`](super::Sandbox) is set up: the operator's knobs.
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
    /// [`RunError::StackOverflow`](super::RunError::StackOverflow).
    /// Engine-wide.
    ///
    /// By default 512 KiB.
    pub max_wasm_stack: usize,
    /// The largest module [`Sandbox::load`](super::Sandbox::load) accepts,
    /// in bytes.
    ///
    /// By default 16 MiB.
    pub max_module_bytes: usize,
    /// How many runs may execute at once. Sizes the pooling allocator
    /// (instances, memories, tables and async stacks); runs past it wait for
    /// a free slot. Each slot reserves address space (not memory) for the
    /// largest allowed linear memory plus guard pages, all of it when the
    /// sandbox is created: about 2–3 ms of
    /// [`Sandbox::new`](super::Sandbox::new) for 1 000 slots, a fraction of
    /// a millisecond for a few (`docs/benchmarks.md`, "Cold start"). A
    /// process that runs one block at a time (the `chatflow` command line)
    /// needs one.
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
    pub(super) fn uses_epochs(&self) -> bool {
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

    /// Checks the settings that [`wasmtime_config`](Self::wasmtime_config)
    /// cannot: the default limits against the maximums, and the values
    /// that must not be zero.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        self.default_limits.check(&self.max_limits)?;
        if self.max_concurrent_runs == 0 {
            return Err(ConfigError::Invalid(
                "max_concurrent_runs must be at least 1".into(),
            ));
        }
        if self.fuel_yield_interval == Some(0) {
            return Err(ConfigError::Invalid(
                "fuel_yield_interval must be greater than zero".into(),
            ));
        }
        if self.epoch_tick.is_zero() {
            return Err(ConfigError::Invalid(
                "epoch_tick must be greater than zero".into(),
            ));
        }
        if self.max_limits.memory_bytes > 4 << 30 {
            return Err(ConfigError::Invalid(
                "max memory_bytes cannot exceed 4 GiB (32-bit memories)".into(),
            ));
        }
        Ok(())
    }

    /// The wasmtime configuration this sandbox config stands for.
    pub(super) fn wasmtime_config(&self) -> Result<Config, ConfigError> {
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

/// Why a [`Sandbox`](super::Sandbox) could not be created.
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn check_bad() {
        assert!(SandboxConfig::default().check().is_ok());
        let cases = [
            (
                SandboxConfig::default().with_max_concurrent_runs(0),
                "invalid sandbox config: max_concurrent_runs must be at least 1",
            ),
            (
                SandboxConfig::default().with_fuel_yield_interval(Some(0)),
                "invalid sandbox config: fuel_yield_interval must be greater than zero",
            ),
            (
                SandboxConfig::default().with_epoch_tick(Duration::ZERO),
                "invalid sandbox config: epoch_tick must be greater than zero",
            ),
            (
                SandboxConfig::default()
                    .with_max_limits(Limits::maximum().with_memory_bytes(8 << 30)),
                "invalid sandbox config: max memory_bytes cannot exceed 4 GiB (32-bit memories)",
            ),
            (
                SandboxConfig::default().with_default_limits(Limits::maximum().with_fuel(u64::MAX)),
                "default limits: limit fuel = 18446744073709551615 is over the maximum of 10000000000",
            ),
        ];
        for (config, want) in cases {
            let err = config.check().unwrap_err();
            assert_eq!(err.to_string(), want, "{config:?}");
        }
    }

    #[test]
    fn epochs_only_without_fuel_yields() {
        let config = SandboxConfig::default();
        assert!(!config.uses_epochs());
        assert!(config.clone().with_fuel_metering(false).uses_epochs());
        assert!(config.with_fuel_yield_interval(None).uses_epochs());
    }
}
