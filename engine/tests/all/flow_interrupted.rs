//! A turn dropped in the middle of a block (the caller's timeout, a client
//! gone) leaves the conversation at that block, with the properties
//! committed before it and nothing the block wrote; running the
//! conversation again re-runs the block (at-least-once for its external
//! calls, `docs/flow-format.md`).

use std::path::Path;
use std::time::Duration;

use chatflow_engine::flow::{Position, TurnStatus};
use chatflow_engine::sandbox::SandboxConfig;
use chatflow_engine::{Conversation, Engine, Flow, Properties};

use crate::support::hanging::HangingServer;
use crate::support::{demo, loopback_policy};

/// How long the first turn may run before the test drops it: the block is
/// then waiting on the server, which does not answer that first request.
const DROP_AFTER: Duration = Duration::from_millis(300);

fn engine() -> Engine {
    demo::engine_with(loopback_policy(), SandboxConfig::default())
}

/// `before` (sets `step`) → `block` (the JSON given) → `after`, a message
/// showing `shown`.
fn load(engine: &Engine, block: &str, shown: &str, modules: &[(&str, Vec<u8>)]) -> Flow {
    let json = format!(
        r#"{{"name": "interrupted", "start": "before", "blocks": {{
            "before": {{"type": "set", "properties": {{"step": "before"}}, "next": "call"}},
            "call": {block},
            "after": {{"type": "message", "text": "got {{{{{shown}}}}}"}}
        }}}}"#
    );
    let mut loader = engine.flow_loader();
    for (name, bytes) in modules {
        loader = loader.module(*name, bytes.clone());
    }
    loader
        .load_str("interrupted.json", &json, Path::new("."))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a turn and drops it after [`DROP_AFTER`]; it must not have ended.
async fn run_and_drop(engine: &Engine, flow: &Flow, conv: &mut Conversation) {
    let turn = tokio::time::timeout(DROP_AFTER, engine.run(flow, conv)).await;
    assert!(
        turn.is_err(),
        "the turn ended: {:?}",
        turn.map(|t| t.status)
    );
}

/// After the drop: at `call`, with `step` committed and nothing else; then
/// the next turn re-runs `call` (a second request) and completes.
async fn check_resumes(
    engine: &Engine,
    flow: &Flow,
    conv: &mut Conversation,
    server: &HangingServer,
    shown: &str,
) {
    assert_eq!(conv.position, Position::At("call".into()));
    let names: Vec<&str> = conv.properties.iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["step"]);
    assert_eq!(server.connections(), 1);

    // The position survives a save and restore.
    let saved = serde_json::to_string(&*conv).unwrap();
    *conv = serde_json::from_str(&saved).unwrap();

    let turn = engine.run(flow, conv).await;
    assert_eq!(turn.status, TurnStatus::Completed, "{:?}", turn.error);
    let blocks: Vec<&str> = turn.trace.iter().map(|s| s.block.as_str()).collect();
    assert_eq!(blocks, ["call", "after"]);
    let texts: Vec<&str> = turn.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["got ok"]);
    assert_eq!(conv.properties.get(shown), Some("ok"));
    assert_eq!(conv.position, Position::Completed);
    assert_eq!(server.connections(), 2, "the block ran again");
}

#[tokio::test]
async fn dropped_during_a_code_block_resumes_at_it() {
    let server = HangingServer::start(1);
    let request = format!(r#"{{"method":"GET","url":"{}"}}"#, server.url("/x"));
    let escaped: String = request.bytes().map(|b| format!("\\{b:02x}")).collect();
    // Sets `touched` (never committed: the run does not finish), then
    // stores the response body in `body`.
    let wasm = wat::parse_str(format!(
        r#"(module
          (import "chatflow" "property_set" (func $property_set (param i32 i32 i32 i32) (result i32)))
          (import "chatflow" "http_request" (func $http_request (param i32 i32) (result i32)))
          (import "chatflow" "http_response_body" (func $http_response_body (param i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "touchedyesbody")
          (data (i32.const 64) "{escaped}")
          (func (export "chatflow_abi_v1"))
          (func (export "chatflow_run") (result i32)
            (local $h i32) (local $n i32)
            (drop (call $property_set (i32.const 0) (i32.const 7) (i32.const 7) (i32.const 3)))
            (local.set $h (call $http_request (i32.const 64) (i32.const {len})))
            (if (i32.lt_s (local.get $h) (i32.const 0)) (then (return (local.get $h))))
            (local.set $n (call $http_response_body (local.get $h) (i32.const 1024) (i32.const 1024)))
            (drop (call $property_set (i32.const 10) (i32.const 4) (i32.const 1024) (local.get $n)))
            (i32.const 0)))"#,
        len = request.len(),
    ))
    .unwrap();
    let engine = engine();
    let flow = load(
        &engine,
        r#"{"type": "code", "module": "wait.wasm", "next": "after"}"#,
        "body",
        &[("wait.wasm", wasm)],
    );
    let mut conv = engine.start(&flow, Properties::new());
    run_and_drop(&engine, &flow, &mut conv).await;
    check_resumes(&engine, &flow, &mut conv, &server, "body").await;
    // The second run kept `touched` this time: it finished.
    assert_eq!(conv.properties.get("touched"), Some("yes"));
}

#[tokio::test]
async fn dropped_during_a_rest_block_resumes_at_it() {
    let server = HangingServer::start(1);
    let engine = engine();
    let block = format!(
        r#"{{"type": "rest_api", "method": "GET", "url": "{}", "next": "after"}}"#,
        server.url("/x")
    );
    let flow = load(&engine, &block, "API Response", &[]);
    let mut conv = engine.start(&flow, Properties::new());
    run_and_drop(&engine, &flow, &mut conv).await;
    check_resumes(&engine, &flow, &mut conv, &server, "API Response").await;
}
