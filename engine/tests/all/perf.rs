//! What the speed work of issue 6 changed, checked in the real sandbox: the
//! SDK's bump allocator against the memory limit, the fuel-only guard (wall
//! time and cancellation at fuel yields), memory kept resident between
//! runs (it must still be reset), `Outcome::memory_bytes`, and the
//! `chatflow bench` command.

use std::time::{Duration, Instant};

use chatflow_engine::Properties;
use chatflow_engine::sandbox::{CodeModule, Limits, Outcome, RunError, Sandbox, SandboxConfig};
use chatflow_test_artifacts::{BENCH_PARSE_SET3, SDK_ALLOC, SDK_ALLOC_STD};

use crate::sandbox::{sandbox, sandbox_with};

const MIB: u64 = 1024 * 1024;

async fn run(
    sandbox: &Sandbox,
    module: &CodeModule,
    props: &Properties,
    limits: &Limits,
) -> Outcome {
    sandbox.run(module, props, limits).await
}

fn load(sandbox: &Sandbox, path: &str) -> CodeModule {
    sandbox.load(&std::fs::read(path).unwrap()).unwrap()
}

fn alloc_props(mode: &str, chunks: u32, chunk_kib: u32) -> Properties {
    [
        ("mode", mode.to_string()),
        ("chunks", chunks.to_string()),
        ("chunk_kib", chunk_kib.to_string()),
    ]
    .into_iter()
    .collect()
}

/// 32 blocks of 1 MiB under an 8 MiB memory limit, three ways, with the
/// SDK's default bump allocator and with Rust's standard one.
#[tokio::test]
async fn bump_allocator_against_the_memory_limit() {
    let sandbox = sandbox();
    let limits = sandbox.default_limits().with_memory_bytes(8 * MIB);
    let bump = load(&sandbox, SDK_ALLOC);
    let std_alloc = load(&sandbox, SDK_ALLOC_STD);

    for module in [&bump, &std_alloc] {
        // Holding 32 MiB cannot fit: a clean memory limit error, nothing
        // committed.
        let outcome = run(&sandbox, module, &alloc_props("hold", 32, 1024), &limits).await;
        assert!(
            matches!(outcome.result, Err(RunError::MemoryLimit { limit }) if limit == 8 * MIB),
            "{:?}",
            outcome.result
        );
        // Each block freed before the next: the bump allocator takes back
        // the most recent allocation, so 32 MiB in total fits in 8.
        let outcome = run(&sandbox, module, &alloc_props("lifo", 32, 1024), &limits).await;
        let output = outcome.result.expect("lifo fits");
        assert_eq!(output.changes.get("total_kib"), Some(Some("32768")));
        assert!(outcome.memory_bytes <= 8 * MIB, "{}", outcome.memory_bytes);
    }

    // Freed blocks that are not the most recent allocation are not reused
    // by the bump allocator (its documented trade-off), and are by the
    // standard one.
    let outcome = run(&sandbox, &bump, &alloc_props("churn", 32, 1024), &limits).await;
    assert!(
        matches!(outcome.result, Err(RunError::MemoryLimit { .. })),
        "{:?}",
        outcome.result
    );
    let outcome = run(
        &sandbox,
        &std_alloc,
        &alloc_props("churn", 32, 1024),
        &limits,
    )
    .await;
    assert!(outcome.is_ok(), "{:?}", outcome.result);

    // The same block still runs fine afterwards in the same pool slots.
    let outcome = run(&sandbox, &bump, &alloc_props("hold", 4, 1024), &limits).await;
    assert!(outcome.is_ok(), "{:?}", outcome.result);
}

#[tokio::test]
async fn memory_bytes_reports_the_peak() {
    let sandbox = sandbox();
    let limits = sandbox.default_limits();
    let module = load(&sandbox, SDK_ALLOC);
    let initial = module.initial_memory_bytes();
    assert!(
        initial >= 64 * 1024 && initial.is_multiple_of(64 * 1024),
        "{initial}"
    );

    let outcome = run(&sandbox, &module, &alloc_props("hold", 6, 1024), &limits).await;
    assert!(outcome.is_ok(), "{:?}", outcome.result);
    assert!(
        outcome.memory_bytes >= initial + 6 * MIB,
        "{} < {initial} + 6 MiB",
        outcome.memory_bytes
    );
    assert!(outcome.memory_bytes <= limits.memory_bytes);

    let outcome = run(&sandbox, &module, &alloc_props("hold", 1, 1), &limits).await;
    assert!(outcome.is_ok(), "{:?}", outcome.result);
    assert!(outcome.memory_bytes >= initial);
    assert!(outcome.memory_bytes < initial + 2 * MIB);
}

/// A guest that checks that its memory starts out as the module says
/// (data segment intact, heap zero) and then scribbles over both. Pages
/// kept resident between runs (`linear_memory_keep_resident`, PAGEMAP_SCAN)
/// must be reset: a run must never see the previous run's writes.
const SCRIBBLER: &str = r#"(module
  (memory (export "memory") 2)
  (data (i32.const 100) "original")
  (func (export "chatflow_abi_v1"))
  (func (export "chatflow_run") (result i32) (local $i i32)
    ;; the data segment is intact
    (if (i64.ne (i64.load (i32.const 100)) (i64.load (i32.const 200)))
      (then (return (i32.const 1))))
    ;; grow by 16 pages; every word of the old and new heap is zero
    (drop (memory.grow (i32.const 16)))
    (local.set $i (i32.const 4096))
    (block $done
      (loop $check
        (br_if $done (i32.ge_u (local.get $i) (i32.const 1179648)))
        (if (i64.ne (i64.load (local.get $i)) (i64.const 0))
          (then (return (i32.const 2))))
        (i64.store (local.get $i) (i64.const -1))
        (local.set $i (i32.add (local.get $i) (i32.const 4088)))
        (br $check)))
    (i64.store (i32.const 100) (i64.const 42))
    (i32.const 0))
  (data (i32.const 200) "original"))"#;

#[tokio::test]
async fn memory_kept_resident_is_reset_between_runs() {
    for config in [
        SandboxConfig::default(),
        SandboxConfig::default().with_pagemap_scan(false),
        SandboxConfig::default().with_linear_memory_keep_resident(0),
    ] {
        let sandbox = sandbox_with(config.clone());
        let module = sandbox.load(&wat::parse_str(SCRIBBLER).unwrap()).unwrap();
        let limits = sandbox.default_limits();
        for i in 0..20 {
            let outcome = run(&sandbox, &module, &Properties::new(), &limits).await;
            assert!(
                outcome.is_ok(),
                "run {i} saw the previous run's writes ({config:?}): {:?}",
                outcome.result
            );
        }
    }
}

const SPIN: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "chatflow_abi_v1"))
  (func (export "chatflow_run") (result i32)
    (loop $l (br $l))
    (i32.const 0)))"#;

/// Wall time is enforced in every guard mode: fuel yields (the default),
/// fuel without yields (epochs), no fuel (epochs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_time_in_every_guard_mode() {
    for config in [
        SandboxConfig::default(),
        SandboxConfig::default().with_fuel_yield_interval(None),
        SandboxConfig::default().with_fuel_metering(false),
    ] {
        let sandbox = sandbox_with(config.clone());
        let module = sandbox.load(&wat::parse_str(SPIN).unwrap()).unwrap();
        let limits = Limits::maximum()
            .with_fuel(10_000_000_000)
            .with_wall_time(Duration::from_millis(100));
        let started = Instant::now();
        let outcome = run(&sandbox, &module, &Properties::new(), &limits).await;
        let took = started.elapsed();
        assert!(
            matches!(outcome.result, Err(RunError::Timeout { limit }) if limit == Duration::from_millis(100)),
            "{config:?}: {:?}",
            outcome.result
        );
        // Checked every fuel yield (a few ms of wasm) or epoch tick (5 ms
        // in these tests), with slack for a loaded machine.
        assert!(took < Duration::from_secs(2), "{config:?}: took {took:?}");
    }
}

/// A typical small block fits well within the default limits and reports
/// what it used.
#[tokio::test]
async fn small_block_outcome_figures() {
    let sandbox = sandbox();
    let module = load(&sandbox, BENCH_PARSE_SET3);
    let props: Properties = [(
        "API Response",
        r#"{"Image": {"Title": "T", "Thumbnail": {"Url": "u"}, "IDs": [7]}}"#,
    )]
    .into_iter()
    .collect();
    let outcome = run(&sandbox, &module, &props, &sandbox.default_limits()).await;
    let output = outcome.result.as_ref().expect("runs");
    assert_eq!(output.changes.get("first_id"), Some(Some("7")));
    assert!(outcome.fuel_used > 0);
    // The bump allocator starts in the initial memory's free tail: no
    // growth for a small response.
    assert_eq!(outcome.memory_bytes, module.initial_memory_bytes());
}
