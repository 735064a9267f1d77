//! Compiled Rust guests shared between tests.
//!
//! Compiling a Rust guest (100–200 KB of wasm) takes a few hundred
//! milliseconds, and the SDK, example and flow tests load the same dozen
//! modules in many sandboxes and engines. They all use one on-disk module
//! cache (the engine's authenticated artifact cache,
//! [`SandboxConfig::cache_dir`]) under cargo's per-test-target temporary
//! directory, so each module is compiled once, and reruns of the suite
//! compile only guests that changed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chatflow_engine::net::{HttpClient, NetPolicy};
use chatflow_engine::sandbox::{Sandbox, SandboxConfig};

/// The shared cache directory, created (with its key) on first use.
pub fn cache_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chatflow-module-cache");
        // One sandbox creates the directory and its key before any test
        // opens it concurrently (a half-written key file would be refused).
        let http = HttpClient::new(NetPolicy::default()).expect("default policy");
        Sandbox::new(
            SandboxConfig::default()
                .with_max_concurrent_runs(1)
                .with_cache_dir(&dir),
            http,
        )
        .unwrap_or_else(|e| panic!("module cache at {}: {e}", dir.display()));
        dir
    })
}

/// `config` with the shared module cache.
pub fn cached(config: SandboxConfig) -> SandboxConfig {
    config.with_cache_dir(cache_dir())
}

/// A flow of one Code block naming `module`: what the module-path tests
/// (the library's and the CLI's) load.
pub fn one_code_block_flow(module: &str) -> String {
    serde_json::json!({
        "name": "modules",
        "start": "a",
        "blocks": {"a": {"type": "code", "module": module}}
    })
    .to_string()
}
