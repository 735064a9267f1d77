//! The guest SDK (`chatflow-sdk`) inside the real sandbox: the test guests
//! of `test-guests/src/bin/sdk_*.rs`, built for wasm32 by
//! `chatflow-test-artifacts`, run with the expectations of
//! `test-guests/tests/native.rs` (where the same guests run against the
//! SDK's native test host). If a guest behaves differently here, the engine
//! or the SDK's wasm path is wrong, not the guest.

use std::path::PathBuf;
use std::time::Duration;

use chatflow_engine::Properties;
use chatflow_engine::net::HttpClient;
use chatflow_engine::sandbox::{
    CodeModule, Limits, Outcome, Output, RunError, Sandbox, SandboxConfig,
};

use crate::support::modules::cached;

mod check;
mod failures;
mod http;
mod messages;
mod properties;
mod selectors;

/// A sandbox like the engine's sandbox tests use (small pool, loopback
/// allowed for the test servers), sharing compiled guests between tests.
pub fn sandbox() -> Sandbox {
    sandbox_for(crate::support::loopback_client())
}

/// The same with another HTTP client (another network policy).
pub fn sandbox_for(http: HttpClient) -> Sandbox {
    let config = cached(SandboxConfig::default())
        .with_max_concurrent_runs(8)
        .with_epoch_tick(Duration::from_millis(5));
    Sandbox::new(config, http).expect("sandbox")
}

/// Loads a built guest (a `chatflow_test_artifacts` path) into `sandbox`.
pub fn load(sandbox: &Sandbox, path: &str) -> CodeModule {
    let wasm = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    sandbox
        .load(&wasm)
        .unwrap_or_else(|e| panic!("loading {path}: {e}"))
}

/// Properties from pairs.
pub fn props<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Properties {
    pairs.into_iter().collect()
}

/// Runs `path` once with `props` and the sandbox's default limits.
pub async fn run(sandbox: &Sandbox, path: &str, props: &Properties) -> Outcome {
    run_with(sandbox, path, props, &sandbox.default_limits()).await
}

/// Runs `path` once with `props` and `limits`.
pub async fn run_with(
    sandbox: &Sandbox,
    path: &str,
    props: &Properties,
    limits: &Limits,
) -> Outcome {
    let module = load(sandbox, path);
    sandbox.run(&module, props, limits).await
}

/// The output of a run that must succeed (the logs are shown if it did not).
#[track_caller]
pub fn ok(outcome: Outcome) -> Output {
    match outcome.result {
        Ok(output) => output,
        Err(err) => panic!(
            "run failed: {err}\nfail message: {:?}\nlogs: {:#?}",
            outcome.fail_message, outcome.logs
        ),
    }
}

/// The error of a run that must fail; asserts that it has no output (so
/// nothing can be committed or delivered).
#[track_caller]
pub fn failed(outcome: &Outcome) -> &RunError {
    assert!(outcome.output().is_none(), "a failed run has no output");
    match &outcome.result {
        Err(err) => err,
        Ok(output) => panic!("expected the run to fail, it produced {output:?}"),
    }
}

/// The value a successful run set for `name` (`None` if it did not set it).
pub fn set<'o>(output: &'o Output, name: &str) -> Option<&'o str> {
    output.changes.get(name).flatten()
}

/// The shared corpus directory (`CHATFLOW_CORPUS`, by default
/// `<workspace>/../shared/corpus`), or `None` with a message saying the
/// test is skipped.
pub fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("CHATFLOW_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            [env!("CARGO_MANIFEST_DIR"), "..", "..", "shared", "corpus"]
                .iter()
                .collect()
        });
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: no corpus at {} (set CHATFLOW_CORPUS to its directory)",
            dir.display()
        );
        None
    }
}
