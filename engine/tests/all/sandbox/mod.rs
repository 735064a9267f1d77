//! The Code block runtime against real wasm: hand-written WAT modules for
//! each hostile case and each import.

use std::time::Duration;

use chatflow_engine::Properties;
use chatflow_engine::sandbox::{CodeModule, LimitKind, Outcome, RunError, Sandbox, SandboxConfig};

mod abi;
mod cache;
mod concurrency;
mod fuel;
mod host_memory;
mod hostile;
mod http;
mod load;
mod selector_attacks;
mod selectors;
mod wall_time;

/// A sandbox with a small pool (tests run in parallel, each pool slot
/// reserves address space) whose HTTP client may reach 127.0.0.1 (the test
/// servers) and nothing else that is not public.
pub fn sandbox() -> Sandbox {
    sandbox_with(SandboxConfig::default())
}

pub fn sandbox_with(config: SandboxConfig) -> Sandbox {
    Sandbox::new(
        config
            .with_max_concurrent_runs(8)
            .with_epoch_tick(Duration::from_millis(5)),
        crate::support::loopback_client(),
    )
    .expect("sandbox")
}

/// Every non-HTTP ABI v1 import, named `$<import>`.
pub const IMPORTS: &str = r#"
  (import "chatflow" "property_get" (func $property_get (param i32 i32 i32 i32) (result i32)))
  (import "chatflow" "property_set" (func $property_set (param i32 i32 i32 i32) (result i32)))
  (import "chatflow" "property_remove" (func $property_remove (param i32 i32) (result i32)))
  (import "chatflow" "message_send" (func $message_send (param i32 i32) (result i32)))
  (import "chatflow" "log" (func $log (param i32 i32 i32)))
  (import "chatflow" "fail" (func $fail (param i32 i32)))
  (import "chatflow" "last_error" (func $last_error (param i32 i32) (result i32)))
"#;

/// A module with all non-HTTP imports, one page of memory, the marker, and
/// `body` (which defines `chatflow_run` and any data).
pub fn wat(body: &str) -> String {
    format!(
        r#"(module {IMPORTS}
  (memory (export "memory") 1)
  (func (export "chatflow_abi_v1"))
  {body})"#
    )
}

pub fn load(sandbox: &Sandbox, body: &str) -> CodeModule {
    let wasm = wat::parse_str(wat(body)).expect("valid WAT");
    sandbox.load(&wasm).expect("valid module")
}

/// A module whose run sets `done` to `yes`: the "host is still healthy"
/// check after each hostile run.
pub const HEALTHY: &str = r#"
  (data (i32.const 0) "doneyes")
  (func (export "chatflow_run") (result i32)
    (drop (call $property_set (i32.const 0) (i32.const 4) (i32.const 4) (i32.const 3)))
    (i32.const 0))
"#;

/// Asserts that the run failed, committed nothing, and that the sandbox
/// still runs a normal module afterwards; returns the error.
pub async fn failed(sandbox: &Sandbox, outcome: Outcome) -> RunError {
    assert!(outcome.output().is_none(), "a failed run has no output");
    let error = match outcome.result {
        Err(error) => error,
        Ok(output) => panic!("expected a failure, got {output:?}"),
    };
    let healthy = load(sandbox, HEALTHY);
    let after = sandbox
        .run(&healthy, &Properties::new(), &sandbox.default_limits())
        .await;
    let output = after
        .result
        .expect("a normal run after the failure succeeds");
    assert_eq!(output.changes.get("done"), Some(Some("yes")));
    error
}

/// A run that must end on the limit `which` = `value`, committing nothing
/// (and checked as [`failed`] checks any failure).
pub async fn failed_limit(sandbox: &Sandbox, outcome: Outcome, which: LimitKind, value: u64) {
    match failed(sandbox, outcome).await {
        RunError::Limit { which: w, value: v } if w == which && v == value => {}
        other => panic!("expected limit {which} = {value}, got {other:?}"),
    }
}

/// The output of a run that must succeed.
pub fn ok(outcome: Outcome) -> chatflow_engine::sandbox::Output {
    match outcome.result {
        Ok(output) => output,
        Err(err) => panic!("run failed: {err} (logs: {:?})", outcome.logs),
    }
}
