//! cold_start: where a cold start goes, phase by phase, next to raw
//! wasmtime compiling and instantiating the same module.
//!
//! ```sh
//! cargo run --release -p chatflow-benches --example cold_start -- [ROUNDS] [MODULE.wasm]
//! ```
//!
//! Every measurement is a fresh process (this program runs itself once per
//! scenario and round, scenarios interleaved), because what a command-line
//! invocation pays includes what a process pays once: page faults in the
//! code, the first thread pools, lazily initialised statics. The module is
//! `crm_profile.wasm` (an example Code block, about 165 KB) unless named.
//! Prints the median of each phase over ROUNDS rounds (default 11), in
//! milliseconds, and the ratio of each scenario's total to raw wasmtime's.
//!
//! Scenarios:
//!
//! - `chatflow-N`: what `chatflow code` does with an N-slot pool:
//!   `SandboxConfig::default()` (`config`, which probes `PAGEMAP_SCAN` once
//!   per process), `HttpClient::new` with the default policy (`http`),
//!   `Sandbox::new` (`sandbox`: wasmtime engine, instance pool, linker,
//!   ticker thread), `Sandbox::load` (`load`: validate, compile, ABI check,
//!   pre-link), one run with the block's sample input (`first-run`; a fresh
//!   instance, current-thread tokio runtime built outside the timing).
//! - `chatflow-N-cached`: the same, with the on-disk module cache already
//!   holding the module (a warm-up process wrote it): `load` deserializes
//!   the authenticated artifact instead of compiling.
//! - `wasmtime-default`: `Engine::new(&Config::new())` (`engine`),
//!   `Module::new` (`compile`), instantiate with every import defined as a
//!   trap and call the `chatflow_abi_v1` export (`instantiate+call`).
//! - `wasmtime-fuel`: the same with fuel metering on
//!   (`Config::consume_fuel`), nothing else changed.
//! - `wasmtime-chatflow-nofuel-1`: chatflow's settings (below) with fuel
//!   metering off: what the other settings cost.
//! - `wasmtime-chatflow-N`: the same, with the wasmtime settings a chatflow
//!   sandbox uses (fuel metering, the pooling allocator with N slots of
//!   1 GiB memories, its stack sizes and WebAssembly features), to tell
//!   what the settings cost from what chatflow adds around them.
//!
//! Run with `env -u RUST_BACKTRACE` on a quiet machine; `docs/benchmarks.md`
//! ("Cold start") has the figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use chatflow_engine::Properties;
use chatflow_engine::net::{HttpClient, NetPolicy};
use chatflow_engine::sandbox::{Sandbox, SandboxConfig};

/// The sample input of `crm_profile.wasm` (a CRM profile as the demo API
/// answers it); other modules run with it too and may fail, which is timed
/// the same.
const PROFILE: &str = r#"{"id":"cus_1042","phone":"+442079460000","name":{"first":"Ada","last":"Lovelace"},"email":"ada@example.com","tier":"gold","created_at":"2023-04-01T09:30:00Z"}"#;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        let [_, scenario, module, cache] = &args[..] else {
            bail!("usage: cold_start --child SCENARIO MODULE CACHE_DIR");
        };
        return child(scenario, Path::new(module), Path::new(cache));
    }
    let rounds: usize = args.first().map(|r| r.parse()).transpose()?.unwrap_or(11);
    let module = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(chatflow_test_artifacts::examples::CRM_PROFILE));
    let size = std::fs::metadata(&module)
        .with_context(|| format!("reading {}", module.display()))?
        .len();
    println!(
        "cold start of {} ({size} bytes), median of {rounds} fresh processes per scenario, ms",
        module.display()
    );

    let scenarios = [
        "wasmtime-default",
        "wasmtime-fuel",
        "wasmtime-chatflow-nofuel-1",
        "wasmtime-chatflow-1000",
        "wasmtime-chatflow-1",
        "chatflow-1000",
        "chatflow-1",
        "chatflow-1-cached",
    ];
    let cache = std::env::temp_dir().join(format!("chatflow-cold-start-{}", std::process::id()));
    // One process fills the disk cache for the `-cached` scenario.
    run_child("chatflow-1-warm", &module, &cache)?;
    let mut results: BTreeMap<&str, Vec<Vec<(String, f64)>>> = BTreeMap::new();
    for _ in 0..rounds {
        for scenario in scenarios {
            results
                .entry(scenario)
                .or_default()
                .push(run_child(scenario, &module, &cache)?);
        }
    }
    let _ = std::fs::remove_dir_all(&cache);

    let baseline = median(
        results["wasmtime-default"]
            .iter()
            .map(|phases| phases.iter().map(|(_, ms)| ms).sum())
            .collect(),
    );
    for scenario in scenarios {
        let rounds = &results[scenario];
        let mut line = format!("{scenario:<24}");
        for (i, (phase, _)) in rounds[0].iter().enumerate() {
            let ms = median(rounds.iter().map(|r| r[i].1).collect());
            line.push_str(&format!(" {phase} {ms:.1}"));
        }
        let total = median(
            rounds
                .iter()
                .map(|phases| phases.iter().map(|(_, ms)| ms).sum())
                .collect(),
        );
        line.push_str(&format!(
            " | total {total:.1} ({:.2}x wasmtime-default)",
            total / baseline
        ));
        println!("{line}");
    }
    Ok(())
}

fn run_child(scenario: &str, module: &Path, cache: &Path) -> Result<Vec<(String, f64)>> {
    let out = Command::new(std::env::current_exe()?)
        .arg("--child")
        .arg(scenario)
        .arg(module)
        .arg(cache)
        .output()
        .context("running a child")?;
    if !out.status.success() {
        bail!(
            "{scenario}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout)?;
    text.lines()
        .map(|line| {
            let (phase, ms) = line.split_once(' ').context("phase line")?;
            Ok((phase.to_string(), ms.parse()?))
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Times `f`, printing `phase ms` for the parent.
fn phase<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let started = Instant::now();
    let value = f()?;
    println!("{name} {:.3}", started.elapsed().as_secs_f64() * 1000.0);
    Ok(value)
}

fn child(scenario: &str, module: &Path, cache: &Path) -> Result<()> {
    let wasm = std::fs::read(module)?;
    if scenario == "wasmtime-default" {
        return raw_wasmtime(wasmtime::Config::new(), false, &wasm);
    }
    if scenario == "wasmtime-fuel" {
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        return raw_wasmtime(config, true, &wasm);
    }
    if let Some(slots) = scenario.strip_prefix("wasmtime-chatflow-nofuel-") {
        let mut config = chatflow_like_config(slots.parse()?);
        config.consume_fuel(false);
        return raw_wasmtime(config, false, &wasm);
    }
    if let Some(slots) = scenario.strip_prefix("wasmtime-chatflow-") {
        return raw_wasmtime(chatflow_like_config(slots.parse()?), true, &wasm);
    }
    let Some(rest) = scenario.strip_prefix("chatflow-") else {
        bail!("unknown scenario {scenario}");
    };
    let (slots, cached) = match rest.split_once('-') {
        Some((slots, "cached" | "warm")) => (slots, true),
        None => (rest, false),
        _ => bail!("unknown scenario {scenario}"),
    };
    let slots: u32 = slots.parse()?;
    // Outside the timing: the CLI builds its runtime before the sandbox,
    // and so does an embedder.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let config = phase("config", || Ok(SandboxConfig::default()))?;
    let mut config = config.with_max_concurrent_runs(slots);
    if cached {
        config = config.with_cache_dir(cache);
    }
    let http = phase("http", || {
        Ok(rt.block_on(async { HttpClient::new(NetPolicy::default()) })?)
    })?;
    let sandbox = phase("sandbox", || Ok(Sandbox::new(config, http)?))?;
    let module = phase("load", || Ok(sandbox.load(&wasm)?))?;
    let mut props = Properties::new();
    props.set("API Response", PROFILE);
    phase("first-run", || {
        let outcome = rt.block_on(sandbox.run(&module, &props, &sandbox.default_limits()));
        // A module other than crm_profile may fail on this input; the run
        // is timed all the same.
        let _ = outcome.result;
        Ok(())
    })?;
    let stats = sandbox.cache_stats();
    if rest.ends_with("cached") && stats.disk_hits != 1 {
        bail!("expected a disk cache hit: {stats:?}");
    }
    Ok(())
}

/// The wasmtime settings `SandboxConfig::default()` stands for (see
/// `SandboxConfig::wasmtime_config` in the engine), with `slots` pool slots.
fn chatflow_like_config(slots: u32) -> wasmtime::Config {
    use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig, WasmFeatures};
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(slots)
        .total_memories(slots)
        .total_tables(slots)
        .total_stacks(slots)
        .max_memory_size(1 << 30)
        .table_elements(20_000)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .linear_memory_keep_resident(16 << 20)
        .table_keep_resident(64 << 10)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = Config::new();
    config
        .consume_fuel(true)
        .max_wasm_stack(512 << 10)
        .async_stack_size((512 << 10) + (1 << 20))
        .memory_init_cow(true)
        .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
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
    config
}

fn raw_wasmtime(config: wasmtime::Config, fuel: bool, wasm: &[u8]) -> Result<()> {
    use wasmtime::{Engine, Linker, Module, Store};
    let engine = phase("engine", || Ok(Engine::new(&config)?))?;
    let module = phase("compile", || Ok(Module::new(&engine, wasm)?))?;
    phase("instantiate+call", || {
        let mut linker = Linker::new(&engine);
        linker.define_unknown_imports_as_traps(&module)?;
        let mut store = Store::new(&engine, ());
        if fuel {
            store.set_fuel(u64::MAX)?;
        }
        let instance = linker.instantiate(&mut store, &module)?;
        instance
            .get_typed_func::<(), ()>(&mut store, "chatflow_abi_v1")?
            .call(&mut store, ())?;
        Ok(())
    })
}
