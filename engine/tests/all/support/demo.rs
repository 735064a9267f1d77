//! The demo business API as the example flows and Code blocks reach it:
//! `http://demo.chatflow.test`, pinned to the server's loopback address.

use std::path::{Path, PathBuf};

use chatflow_demo_api::{DemoApi, HOST};
use chatflow_engine::net::NetPolicy;
use chatflow_engine::sandbox::SandboxConfig;
use chatflow_engine::{Engine, EngineConfig};

use super::modules::cached;

/// The policy an operator running the demo configures: only the demo host,
/// pinned to the demo API's loopback address.
pub fn policy(api: &DemoApi) -> NetPolicy {
    let mut policy = NetPolicy::default();
    policy.allow_host(HOST).unwrap();
    policy.allow_loopback = true;
    policy.resolve.insert(HOST.into(), api.addr());
    policy
}

/// An engine with [`policy`], a small instance pool and the tests' shared
/// module cache.
pub fn engine(api: &DemoApi) -> Engine {
    engine_with(policy(api), SandboxConfig::default())
}

/// An engine with `net` and `sandbox` (plus a small pool and the shared
/// module cache).
pub fn engine_with(net: NetPolicy, sandbox: SandboxConfig) -> Engine {
    let sandbox = cached(sandbox).with_max_concurrent_runs(8);
    Engine::new(EngineConfig::default().with_net(net).with_sandbox(sandbox)).unwrap()
}

/// Where the example Code blocks were built (`crm_profile.wasm`, …): what
/// the example flows' module names resolve against.
pub fn module_dir() -> PathBuf {
    Path::new(chatflow_test_artifacts::examples::CRM_PROFILE)
        .parent()
        .expect("a module path has a directory")
        .to_path_buf()
}

/// `examples/flows/<name>`, from the workspace root (this file is shared
/// by the tests of `engine/` and `crates/cli/`).
pub fn flow_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("examples/flows"))
        .find(|dir| dir.is_dir())
        .expect("the workspace's examples/flows")
        .join(name)
}
