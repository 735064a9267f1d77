//! chatflow's guests on raw wasmtime 48: the engine configured exactly as
//! chatflow configures its own (`wasmtime_config` in
//! `crates/sandbox/src/config.rs`, from the same `SandboxConfig::default()`
//! values: the pooling allocator and its sizes, memory kept resident, the
//! wasm features, the stack), and the least host a module needs: the
//! `chatflow` imports the bench guests call (`property_get`,
//! `property_set`, `fail`, `log`, `last_error`), written plainly, each
//! other import a trap. So `chatflow` against `wasmtime` is what
//! chatflow's host adds over wasmtime itself, and `wasmtime` against
//! `wasmtime-nofuel` what fuel metering costs.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use chatflow_engine::sandbox::{Limits, SandboxConfig};
use wasmtime::{
    Caller, Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Memory, Module,
    PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder, Strategy, TypedFunc,
    WasmBacktraceDetails, WasmFeatures,
};

/// The properties a run sees (name to value).
pub type Props = Arc<HashMap<String, Vec<u8>>>;

/// One store's state: the run's inputs and what it wrote.
pub struct State {
    props: Props,
    /// `(name, value)` of every `property_set`, in order.
    pub changes: Vec<(String, String)>,
    fail: Option<String>,
    logs: Vec<String>,
    memory: Option<Memory>,
    limits: StoreLimits,
}

impl State {
    fn new(props: Props, memory_bytes: usize) -> State {
        State {
            props,
            changes: Vec::new(),
            fail: None,
            logs: Vec::new(),
            memory: None,
            limits: StoreLimitsBuilder::new().memory_size(memory_bytes).build(),
        }
    }
}

/// A wasmtime engine configured as chatflow's, with or without fuel.
pub struct Raw {
    engine: Engine,
    linker: Linker<State>,
    fuel: Option<u64>,
    memory_bytes: usize,
}

/// The wasmtime configuration chatflow builds from `config` (a copy of
/// `SandboxConfig::wasmtime_config`, which is private), with fuel on or
/// off; epochs are never on here (chatflow compiles none with fuel on).
fn wasmtime_config(config: &SandboxConfig, fuel: bool) -> Result<Config> {
    const MIB: usize = 1024 * 1024;
    let mut pool = PoolingAllocationConfig::new();
    let runs = config.max_concurrent_runs;
    pool.total_core_instances(runs)
        .total_memories(runs)
        .total_tables(runs)
        .total_stacks(runs)
        .max_memory_size(usize::try_from(config.max_limits.memory_bytes)?)
        .table_elements(config.table_elements as usize)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .linear_memory_keep_resident(config.linear_memory_keep_resident)
        .table_keep_resident(config.table_keep_resident)
        .pagemap_scan(if config.pagemap_scan {
            wasmtime::Enabled::Auto
        } else {
            wasmtime::Enabled::No
        });
    let mut c = Config::new();
    c.strategy(Strategy::Cranelift)
        .consume_fuel(fuel)
        .epoch_interruption(false)
        .max_wasm_stack(config.max_wasm_stack)
        .async_stack_size(config.max_wasm_stack + MIB)
        .async_stack_zeroing(config.zero_fiber_stacks)
        .memory_init_cow(true)
        .wasm_backtrace_details(WasmBacktraceDetails::Disable)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    c.wasm_features(
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
    c.wasm_features(
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
    Ok(c)
}

/// The guest's memory as a byte slice, and `[ptr, ptr + len)` of it.
fn span(caller: &Caller<'_, State>, ptr: i32, len: i32) -> Option<std::ops::Range<usize>> {
    let memory = caller.data().memory?;
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    let end = ptr.checked_add(len)?;
    (end <= memory.data_size(caller)).then_some(ptr..end)
}

fn read_str(caller: &Caller<'_, State>, ptr: i32, len: i32) -> Option<String> {
    let range = span(caller, ptr, len)?;
    let memory = caller.data().memory?;
    std::str::from_utf8(&memory.data(caller)[range])
        .ok()
        .map(str::to_string)
}

impl Raw {
    /// An engine with chatflow's default sandbox configuration; `fuel`
    /// metered (with chatflow's default fuel limit per run) or not.
    pub fn new(fuel: bool) -> Result<Raw> {
        let config = SandboxConfig::default();
        let engine = Engine::new(&wasmtime_config(&config, fuel)?)?;
        let mut linker = Linker::new(&engine);
        linker.func_wrap(
            "chatflow",
            "property_get",
            |mut caller: Caller<'_, State>,
             name_ptr: i32,
             name_len: i32,
             buf: i32,
             cap: i32|
             -> wasmtime::Result<i32> {
                let Some(name) = read_str(&caller, name_ptr, name_len) else {
                    return Err(wasmtime::Error::msg("property_get: name out of bounds"));
                };
                let props = caller.data().props.clone();
                let Some(value) = props.get(&name) else {
                    return Ok(-1);
                };
                let n = value.len().min(cap as u32 as usize);
                let range = span(&caller, buf, n as i32)
                    .ok_or_else(|| wasmtime::Error::msg("property_get: buffer"))?;
                let memory = caller.data().memory.expect("memory");
                memory.data_mut(&mut caller)[range].copy_from_slice(&value[..n]);
                Ok(value.len() as i32)
            },
        )?;
        linker.func_wrap(
            "chatflow",
            "property_set",
            |mut caller: Caller<'_, State>, np: i32, nl: i32, vp: i32, vl: i32| {
                let (Some(name), Some(value)) =
                    (read_str(&caller, np, nl), read_str(&caller, vp, vl))
                else {
                    return Ok(-2);
                };
                caller.data_mut().changes.push((name, value));
                Ok(0)
            },
        )?;
        linker.func_wrap(
            "chatflow",
            "fail",
            |mut caller: Caller<'_, State>, ptr: i32, len: i32| {
                let message = read_str(&caller, ptr, len).unwrap_or_default();
                caller.data_mut().fail = Some(message);
            },
        )?;
        linker.func_wrap(
            "chatflow",
            "log",
            |mut caller: Caller<'_, State>, _level: i32, ptr: i32, len: i32| {
                let line = read_str(&caller, ptr, len).unwrap_or_default();
                caller.data_mut().logs.push(line);
            },
        )?;
        linker.func_wrap(
            "chatflow",
            "last_error",
            |_: Caller<'_, State>, _buf: i32, _cap: i32| -1i32,
        )?;
        Ok(Raw {
            engine,
            linker,
            fuel: fuel.then_some(Limits::default().fuel),
            memory_bytes: usize::try_from(Limits::default().memory_bytes)?,
        })
    }

    /// Compiles a chatflow module and links it (every import the host does
    /// not define traps when called).
    pub fn load(&self, wasm: &[u8]) -> Result<InstancePre<State>> {
        let module = Module::new(&self.engine, wasm)?;
        let mut linker = self.linker.clone();
        linker.define_unknown_imports_as_traps(&module)?;
        Ok(linker.instantiate_pre(&module)?)
    }

    fn store(&self, props: &Props) -> Result<Store<State>> {
        let mut store = Store::new(&self.engine, State::new(props.clone(), self.memory_bytes));
        store.limiter(|state| &mut state.limits);
        if let Some(fuel) = self.fuel {
            store.set_fuel(fuel)?;
        }
        Ok(store)
    }

    /// One run in a fresh instance: the properties it set.
    pub fn run_fresh(
        &self,
        pre: &InstancePre<State>,
        props: &Props,
    ) -> Result<Vec<(String, String)>> {
        let mut store = self.store(props)?;
        let instance = pre.instantiate(&mut store)?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .context("no memory export")?;
        store.data_mut().memory = Some(memory);
        let run = instance.get_typed_func::<(), i32>(&mut store, "chatflow_run")?;
        finish(run.call(&mut store, ())?, store.into_data())
    }

    /// [`run_fresh`](Self::run_fresh), timing only the call of
    /// `chatflow_run` (not instantiation), by the thread's CPU time: the
    /// codegen comparison's wasmtime side (`codegen.py`).
    pub fn time_call(
        &self,
        pre: &InstancePre<State>,
        props: &Props,
    ) -> Result<(std::time::Duration, Vec<(String, String)>)> {
        let mut store = self.store(props)?;
        let instance = pre.instantiate(&mut store)?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .context("no memory export")?;
        store.data_mut().memory = Some(memory);
        let run = instance.get_typed_func::<(), i32>(&mut store, "chatflow_run")?;
        let start = crate::thread_cpu_time();
        let code = run.call(&mut store, ())?;
        let elapsed = crate::thread_cpu_time().saturating_sub(start);
        Ok((elapsed, finish(code, store.into_data())?))
    }

    /// An instance kept for many runs ([`Reused::run`]).
    pub fn reused(&self, pre: &InstancePre<State>, props: &Props) -> Result<Reused> {
        let mut store = self.store(props)?;
        let instance = pre.instantiate(&mut store)?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .context("no memory export")?;
        store.data_mut().memory = Some(memory);
        let run = instance.get_typed_func::<(), i32>(&mut store, "chatflow_run")?;
        Ok(Reused {
            store,
            run,
            fuel: self.fuel,
        })
    }
}

fn finish(code: i32, state: State) -> Result<Vec<(String, String)>> {
    if code != 0 {
        bail!(
            "chatflow_run returned {code}: {}",
            state.fail.unwrap_or_default()
        );
    }
    Ok(state.changes)
}

/// One instance, called again and again (the guest must free what it
/// allocates: the standard-allocator twins).
pub struct Reused {
    store: Store<State>,
    run: TypedFunc<(), i32>,
    fuel: Option<u64>,
}

impl Reused {
    /// One call of `chatflow_run` on the kept instance: the properties it
    /// set.
    pub fn run(&mut self) -> Result<Vec<(String, String)>> {
        if let Some(fuel) = self.fuel {
            self.store.set_fuel(fuel)?;
        }
        self.store.data_mut().changes.clear();
        let code = self.run.call(&mut self.store, ())?;
        if code != 0 {
            bail!("chatflow_run returned {code}");
        }
        Ok(std::mem::take(&mut self.store.data_mut().changes))
    }
}
