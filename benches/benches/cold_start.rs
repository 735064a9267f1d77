//! cold_start: from nothing to one finished run of a real Code block, with
//! chatflow and with raw wasmtime, side by side in one process.
//!
//! Group `cold_start` (criterion, small sample), on `crm_profile.wasm` (an
//! example Code block, about 165 KB):
//!
//! - `wasmtime`: `Engine::new(&Config::new())`, `Module::new`, instantiate
//!   (every import a trap) and call the `chatflow_abi_v1` export: raw
//!   wasmtime 48's compile + instantiate of the same module.
//! - `wasmtime-fuel`: the same with `Config::consume_fuel(true)`, the one
//!   setting of chatflow's that changes what is compiled (and the most
//!   expensive part of a cold start: see `docs/benchmarks.md`).
//! - `chatflow`: `Engine::new(EngineConfig::default())` (HTTP client,
//!   sandbox with its pool and ticker), `Sandbox::load` (validate, compile,
//!   check the ABI, pre-link), one run with the block's sample input: what
//!   an embedder does, with the defaults.
//! - `chatflow-epoch`: `chatflow` with fuel metering off
//!   (`SandboxConfig::with_fuel_metering(false)`: runs bounded by wall time
//!   and memory, interrupted with epochs).
//! - `chatflow-cli`: `chatflow` with what `chatflow code` uses, a one-slot
//!   pool (`SandboxConfig::with_max_concurrent_runs(1)`).
//! - `chatflow-disk-cache`: `chatflow-cli` with the on-disk module cache
//!   already holding the module: `load` deserializes the authenticated
//!   artifact instead of compiling (the second `chatflow code M.wasm`).
//!
//! After criterion, the cases are timed once each in turn, 30 rounds, and
//! the medians printed with each one's ratio to `wasmtime` and to
//! `wasmtime-fuel` (the figures `docs/benchmarks.md` quotes), saved to `target/chatflow-bench/cold_start.json`.
//! Costs a process pays only once (the first engine, the pagemap probe,
//! the first thread pools) are not in these figures: the example
//! `cold_start` measures fresh processes phase by phase.
//!
//! Run with `cargo bench -p chatflow-benches --bench cold_start`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use chatflow_benches::report;
use chatflow_engine::sandbox::SandboxConfig;
use chatflow_engine::{Engine, EngineConfig, Properties};
use criterion::Criterion;
use serde::Serialize;

/// The sample input of `crm_profile.wasm`, as the demo API answers.
const PROFILE: &str = r#"{"id":"cus_1042","phone":"+442079460000","name":{"first":"Ada","last":"Lovelace"},"email":"ada@example.com","tier":"gold","created_at":"2023-04-01T09:30:00Z"}"#;

const ROUNDS: usize = 30;

/// Raw wasmtime: engine, compile, instantiate, one call; with fuel
/// metering on if `fuel`.
fn wasmtime_cold(wasm: &[u8], fuel: bool) {
    use wasmtime::{Config, Engine, Linker, Module, Store};
    let mut config = Config::new();
    config.consume_fuel(fuel);
    let engine = Engine::new(&config).expect("engine");
    let module = Module::new(&engine, wasm).expect("compile");
    let mut linker = Linker::new(&engine);
    linker
        .define_unknown_imports_as_traps(&module)
        .expect("trap imports");
    let mut store = Store::new(&engine, ());
    if fuel {
        store.set_fuel(u64::MAX).expect("fuel");
    }
    let instance = linker.instantiate(&mut store, &module).expect("instance");
    instance
        .get_typed_func::<(), ()>(&mut store, "chatflow_abi_v1")
        .expect("export")
        .call(&mut store, ())
        .expect("call");
}

/// chatflow: engine (HTTP client, sandbox), load, one run.
fn chatflow_cold(rt: &tokio::runtime::Runtime, sandbox: SandboxConfig, wasm: &[u8]) {
    let engine = rt
        .block_on(async { Engine::new(EngineConfig::default().with_sandbox(sandbox)) })
        .expect("engine");
    let module = engine.sandbox().load(wasm).expect("load");
    let mut props = Properties::new();
    props.set("API Response", PROFILE);
    let sandbox = engine.sandbox();
    let outcome = rt.block_on(sandbox.run(&module, &props, &sandbox.default_limits()));
    let output = outcome.result.expect("crm_profile runs");
    assert_eq!(output.changes.get("tier"), Some(Some("gold")));
    black_box(output);
}

struct Case {
    name: &'static str,
    run: Box<dyn Fn()>,
}

fn cases(rt: &'static tokio::runtime::Runtime, wasm: &'static [u8], cache: &Path) -> Vec<Case> {
    let cli = || SandboxConfig::default().with_max_concurrent_runs(1);
    let cached = cli().with_cache_dir(cache);
    // Fill the disk cache once.
    chatflow_cold(rt, cached.clone(), wasm);
    vec![
        Case {
            name: "wasmtime",
            run: Box::new(move || wasmtime_cold(wasm, false)),
        },
        Case {
            name: "wasmtime-fuel",
            run: Box::new(move || wasmtime_cold(wasm, true)),
        },
        Case {
            name: "chatflow",
            run: Box::new(move || chatflow_cold(rt, SandboxConfig::default(), wasm)),
        },
        Case {
            name: "chatflow-epoch",
            run: Box::new(move || {
                chatflow_cold(rt, SandboxConfig::default().with_fuel_metering(false), wasm)
            }),
        },
        Case {
            name: "chatflow-cli",
            run: Box::new(move || chatflow_cold(rt, cli(), wasm)),
        },
        Case {
            name: "chatflow-disk-cache",
            run: Box::new(move || chatflow_cold(rt, cached.clone(), wasm)),
        },
    ]
}

#[derive(Debug, Serialize)]
struct Row {
    name: &'static str,
    median_ms: f64,
    ratio_to_wasmtime: f64,
    ratio_to_wasmtime_fuel: f64,
}

fn main() {
    let rt: &'static tokio::runtime::Runtime = Box::leak(Box::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime"),
    ));
    let wasm: &'static [u8] = std::fs::read(chatflow_test_artifacts::examples::CRM_PROFILE)
        .expect("crm_profile.wasm")
        .leak();
    let cache = tempfile::tempdir().expect("temp dir");
    let cases = cases(rt, wasm, cache.path());

    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("cold_start");
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
        for case in &cases {
            group.bench_function(case.name, |b| b.iter(|| (case.run)()));
        }
        group.finish();
    }
    c.final_summary();

    if report::quick_mode() {
        return;
    }
    // Interleaved single runs, for ratios measured under the same load.
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..ROUNDS {
        for (case, times) in cases.iter().zip(&mut times) {
            let started = Instant::now();
            (case.run)();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let medians: Vec<f64> = times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect();
    let rows: Vec<Row> = cases
        .iter()
        .zip(&medians)
        .map(|(case, &median_ms)| Row {
            name: case.name,
            median_ms,
            ratio_to_wasmtime: median_ms / medians[0],
            ratio_to_wasmtime_fuel: median_ms / medians[1],
        })
        .collect();
    println!("\ncold start, median of {ROUNDS} interleaved rounds:");
    for row in &rows {
        println!(
            "  {:<22} {:>8.2} ms  {:.2}x wasmtime  {:.2}x wasmtime-fuel",
            row.name, row.median_ms, row.ratio_to_wasmtime, row.ratio_to_wasmtime_fuel
        );
    }
    report::save("cold_start", &rows);
}
