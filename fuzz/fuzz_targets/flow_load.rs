//! Loads arbitrary bytes as a flow file through the public loader, on an
//! engine whose network policy allows no reachable host: loading must never
//! panic, and must either succeed (consistently) or return typed problems
//! that never show a module file's contents. The checks are
//! `engine/tests/all/support/invariants.rs`, shared with the proptest
//! properties that run in CI.
//!
//! Code blocks resolve modules in a scratch directory holding valid modules
//! (`m.wasm`, `blocks/m.wasm`), a text file holding a marker secret
//! (`secret.wasm`) and a directory (`dir`); `supplied.wasm` is supplied as
//! bytes.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use chatflow_engine::net::NetPolicy;
use chatflow_engine::sandbox::SandboxConfig;
use chatflow_engine::{Engine, EngineConfig};
use libfuzzer_sys::fuzz_target;

#[path = "../../engine/tests/all/support/invariants.rs"]
mod invariants;

fn state() -> &'static (Engine, PathBuf) {
    static STATE: OnceLock<(Engine, PathBuf)> = OnceLock::new();
    STATE.get_or_init(|| {
        let mut net = NetPolicy::default();
        net.allow_host("fuzz.invalid").expect("a valid pattern");
        let sandbox = SandboxConfig::default().with_max_concurrent_runs(1);
        let engine = Engine::new(EngineConfig::default().with_net(net).with_sandbox(sandbox))
            .expect("the engine starts");
        let dir =
            std::env::temp_dir().join(format!("chatflow-fuzz-flow-load-{}", std::process::id()));
        invariants::module_dir(&dir);
        (engine, dir)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let (engine, dir) = state();
    let _ = invariants::flow_load(engine, json, dir);
});
