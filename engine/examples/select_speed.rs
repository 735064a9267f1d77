//! Compares `json_select` (three fields pulled out of `twitter.json` by a
//! Code block, fresh instance per run, fuel on) with a native full parse of
//! the same document into a `serde_json::Value`.
//!
//! Run with: `cargo run --release -p chatflow-engine --example select_speed`
//! (reads `$CHATFLOW_CORPUS/json/twitter.json`, by default
//! `../shared/corpus` beside the workspace).
//!
//! Quick check only; the criterion benches (`benches/`) are the reference.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chatflow_engine::Properties;
use chatflow_engine::net::{HttpClient, NetPolicy};
use chatflow_engine::sandbox::{Sandbox, SandboxConfig};

const POINTERS: [&str; 3] = [
    "/statuses/0/user/screen_name",
    "/statuses/0/id_str",
    "/search_metadata/count",
];

fn main() -> anyhow::Result<()> {
    let corpus = std::env::var_os("CHATFLOW_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            [env!("CARGO_MANIFEST_DIR"), "..", "..", "shared", "corpus"]
                .iter()
                .collect()
        });
    let text = std::fs::read_to_string(corpus.join("json/twitter.json"))?;

    // The guest: for each pointer i at 64*i, select from property `doc`
    // into 4096.. and set property `f<i>`.
    let mut data = String::new();
    let mut calls = String::new();
    for (i, pointer) in POINTERS.iter().enumerate() {
        let at = 64 * (i + 1);
        data.push_str(&format!("(data (i32.const {at}) \"{pointer}\")\n"));
        data.push_str(&format!("(data (i32.const {}) \"f{i}\")\n", 1024 + 8 * i));
        calls.push_str(&format!(
            "(local.set $n (call $sel (i32.const 0) (i32.const 3) (i32.const {at}) (i32.const {len}) (i32.const 4096) (i32.const 4096)))
             (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (local.get $n))))
             (drop (call $set (i32.const {name}) (i32.const 2) (i32.const 4096) (local.get $n)))\n",
            len = pointer.len(),
            name = 1024 + 8 * i,
        ));
    }
    let wat = format!(
        r#"(module
          (import "chatflow" "json_select" (func $sel (param i32 i32 i32 i32 i32 i32) (result i32)))
          (import "chatflow" "property_set" (func $set (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "doc")
          {data}
          (func (export "chatflow_abi_v1"))
          (func (export "chatflow_run") (result i32) (local $n i32) {calls} (i32.const 0)))"#
    );
    let sandbox = Sandbox::new(
        SandboxConfig::default(),
        HttpClient::new(NetPolicy::default())?,
    )?;
    let module = sandbox.load(&wat::parse_str(wat)?)?;
    let props: Properties = [("doc", text.as_str())].into_iter().collect();
    let limits = sandbox.default_limits();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let runs = 300;
    let mut sandboxed = Vec::with_capacity(runs);
    let mut fuel = 0;
    rt.block_on(async {
        for _ in 0..runs {
            let start = Instant::now();
            let outcome = sandbox.run(&module, &props, &limits).await;
            sandboxed.push(start.elapsed());
            fuel = outcome.fuel_used;
            let output = outcome.result.expect("the guest succeeds");
            assert_eq!(output.changes.get("f2"), Some(Some("100")));
        }
    });
    let mut native = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let value: serde_json::Value = serde_json::from_str(&text)?;
        let fields: Vec<_> = POINTERS.iter().map(|p| value.pointer(p).cloned()).collect();
        native.push(start.elapsed());
        assert!(fields.iter().all(Option::is_some));
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (s, n) = (median(&mut sandboxed), median(&mut native));
    let mbps = |d: Duration| text.len() as f64 / d.as_secs_f64() / 1e6;
    println!(
        "twitter.json ({} bytes), three fields, median of {runs}:",
        text.len()
    );
    println!(
        "  sandbox json_select: {:>8.1} us  {:>7.1} MB/s  (fuel {fuel})",
        s.as_secs_f64() * 1e6,
        mbps(s)
    );
    println!(
        "  native full parse:   {:>8.1} us  {:>7.1} MB/s",
        n.as_secs_f64() * 1e6,
        mbps(n)
    );
    println!(
        "  ratio (sandbox speed / native speed): {:.2}x",
        n.as_secs_f64() / s.as_secs_f64()
    );
    Ok(())
}
