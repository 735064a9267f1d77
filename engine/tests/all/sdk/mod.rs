//! The guest SDK (`chatflow-sdk`) inside the real sandbox: the test guests
//! of `test-guests/src/bin/sdk_*.rs`, built for wasm32 by
//! `chatflow-test-artifacts`, run with the expectations of
//! `test-guests/tests/native.rs` (where the same guests run against the
//! SDK's native test host). If a guest behaves differently here, the engine
//! or the SDK's wasm path is wrong, not the guest.

use std::path::PathBuf;

use chatflow_engine::sandbox::{CodeModule, Outcome, Output, Sandbox};

mod selectors;

/// The sandbox of the engine's sandbox tests: a small pool, loopback
/// allowed for the test servers.
pub fn sandbox() -> Sandbox {
    crate::sandbox::sandbox()
}

/// Loads a built guest (a `chatflow_test_artifacts` path) into `sandbox`.
pub fn load(sandbox: &Sandbox, path: &str) -> CodeModule {
    let wasm = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    sandbox
        .load(&wasm)
        .unwrap_or_else(|e| panic!("loading {path}: {e}"))
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
