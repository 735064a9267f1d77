//! Code blocks inside flows, with real Rust guests (the SDK test guests,
//! supplied to the loader as bytes): a block's writes committed only when
//! it succeeds, Ignore error on and off, its messages in the transcript in
//! order, and its limit overrides checked against the operator's maximums
//! when the flow loads and applied when it runs.

use std::path::Path;

use chatflow_engine::flow::{FlowError, ProblemKind, StepOutcome, StopError, TurnStatus};
use chatflow_engine::sandbox::{LimitKind, Limits, RunError, SandboxConfig};
use chatflow_engine::{Engine, Flow, Properties, Turn};
use chatflow_test_artifacts::{SDK_ERR, SDK_LARGE_VALUES, SDK_MESSAGES, SDK_PANIC, SDK_ROUNDTRIP};

use crate::support::{demo, loopback_policy};

fn engine() -> Engine {
    engine_with(SandboxConfig::default())
}

fn engine_with(sandbox: SandboxConfig) -> Engine {
    demo::engine_with(loopback_policy(), sandbox)
}

/// Loads `json`, whose Code blocks name the test guests as `<guest>.wasm`
/// (`sdk_err.wasm`, …).
fn try_load(engine: &Engine, json: &str) -> Result<Flow, FlowError> {
    let mut loader = engine.flow_loader();
    for path in [
        SDK_ERR,
        SDK_LARGE_VALUES,
        SDK_MESSAGES,
        SDK_PANIC,
        SDK_ROUNDTRIP,
    ] {
        let name = Path::new(path).file_name().unwrap().to_string_lossy();
        loader = loader.module(name, std::fs::read(path).unwrap());
    }
    loader.load_str("test.json", json, Path::new("."))
}

fn load(engine: &Engine, json: &str) -> Flow {
    try_load(engine, json).unwrap_or_else(|e| panic!("{e}"))
}

fn texts(turn: &Turn) -> Vec<&str> {
    turn.messages.iter().map(|m| m.text.as_str()).collect()
}

/// `set` → a Code block (`module`, `ignore_error`, `extra` fields) →
/// `after`, a message showing what the Code block left behind.
fn flow(module: &str, ignore_error: bool, extra: &str) -> String {
    format!(
        r#"{{"name": "code", "start": "set", "blocks": {{
            "set": {{"type": "set", "properties": {{"input": "héllo", "mode": "message"}}, "next": "code"}},
            "code": {{"type": "code", "module": "{module}", "ignore_error": {ignore_error}{extra}, "next": "after"}},
            "after": {{"type": "message", "text": "after: [{{{{before_err}}}}] [{{{{before_panic}}}}] [{{{{big_len}}}}]"}}
        }}}}"#
    )
}

#[tokio::test]
async fn writes_are_committed_for_the_next_blocks() {
    let engine = engine();
    let flow = load(
        &engine,
        r#"{"name": "rt", "start": "set", "blocks": {
            "set": {"type": "set", "properties": {"input": "Grüße 🌍", "to_remove": "x"}, "next": "code"},
            "code": {"type": "code", "module": "sdk_roundtrip.wasm", "next": "show"},
            "show": {"type": "message", "text": "{{output}} ({{input_len}} bytes), removed: [{{to_remove}}]"}
        }}"#,
    );
    let mut conv = engine.start(&flow, Properties::new());
    let turn = engine.run(&flow, &mut conv).await;
    assert_eq!(turn.status, TurnStatus::Completed, "{:?}", turn.error);
    assert_eq!(texts(&turn), ["Grüße 🌍 (12 bytes), removed: []"]);
    assert_eq!(
        conv.properties.get("read_back"),
        Some("written by sdk_roundtrip ✓")
    );
    assert!(!conv.properties.contains("to_remove"));
    let code = &turn.trace[1];
    assert_eq!(code.outcome, StepOutcome::Ok);
    assert!(code.changed.contains(&"to_remove".to_string()));
    assert_eq!(code.next.as_deref(), Some("show"));
}

/// A Code block that sets a property, sends a message and logs, then fails
/// (an `Err`, a panic, a limit): with Ignore error the conversation goes on
/// with nothing of it committed or delivered, its logs and error in the
/// trace; without, it stops with `StopError::Code` and the properties are
/// exactly what they were before the block.
#[tokio::test]
async fn a_failing_code_block_with_and_without_ignore_error() {
    let engine = engine();
    let limit = r#", "limits": {"property_value_bytes": 1000}"#;
    let cases = [
        (
            "sdk_err.wasm",
            "",
            "guest_failed",
            "sdk_err: deliberate failure",
        ),
        (
            "sdk_panic.wasm",
            "",
            "guest_failed",
            "panicked at test-guests/src/bin/sdk_panic.rs",
        ),
        (
            "sdk_large_values.wasm",
            limit,
            "limit",
            "property_value_bytes",
        ),
    ];
    for (module, extra, kind, needle) in cases {
        // Ignore error on: the conversation goes on, nothing committed.
        let f = load(&engine, &flow(module, true, extra));
        let start: Properties = [("big", "x".repeat(5000).as_str())].into_iter().collect();
        let mut conv = engine.start(&f, start.clone());
        let turn = engine.run(&f, &mut conv).await;
        assert_eq!(
            turn.status,
            TurnStatus::Completed,
            "{module}: {:?}",
            turn.error
        );
        assert_eq!(
            texts(&turn),
            ["after: [] [] []"],
            "{module}: no partial writes"
        );
        let code = &turn.trace[1];
        assert_eq!(code.outcome, StepOutcome::IgnoredError, "{module}");
        let error = code.error.as_deref().unwrap();
        assert!(error.contains(needle), "{module}: {error}");
        assert!(code.changed.is_empty(), "{module}");
        assert_eq!(code.next.as_deref(), Some("after"));
        let mut expected = start.clone();
        expected.set("input", "héllo");
        expected.set("mode", "message");
        assert_eq!(conv.properties, expected, "{module}");
        if module == "sdk_err.wasm" {
            assert_eq!(code.logs.len(), 1, "logs of a failed block are kept");
        }

        // Ignore error off: the conversation stops at the block.
        let f = load(&engine, &flow(module, false, extra));
        let mut conv = engine.start(&f, start.clone());
        let turn = engine.run(&f, &mut conv).await;
        assert_eq!(turn.status, TurnStatus::Stopped, "{module}");
        let Some(StopError::Code { block, source }) = &turn.error else {
            panic!("{module}: expected StopError::Code, got {:?}", turn.error);
        };
        assert_eq!(block, "code");
        assert_eq!(source.kind(), kind, "{module}: {source}");
        assert!(source.to_string().contains(needle), "{module}: {source}");
        assert!(turn.messages.is_empty(), "{module}: nothing delivered");
        assert_eq!(turn.trace.len(), 2);
        assert_eq!(turn.trace[1].outcome, StepOutcome::Stopped);
        assert_eq!(conv.properties, expected, "{module}: no partial writes");
        assert!(conv.is_finished());
    }
}

/// Messages from message blocks and from a Code block, in flow order; each
/// names the block (and trace step) that produced it.
#[tokio::test]
async fn code_block_messages_appear_in_the_transcript_in_order() {
    let engine = engine();
    let flow = load(
        &engine,
        r#"{"name": "msgs", "start": "before", "blocks": {
            "before": {"type": "message", "text": "before", "next": "count"},
            "count": {"type": "set", "properties": {"count": "3"}, "next": "code"},
            "code": {"type": "code", "module": "sdk_messages.wasm", "next": "after"},
            "after": {"type": "message", "text": "after"}
        }}"#,
    );
    let mut conv = engine.start(&flow, Properties::new());
    let turn = engine.run(&flow, &mut conv).await;
    assert_eq!(turn.status, TurnStatus::Completed, "{:?}", turn.error);
    assert_eq!(
        texts(&turn),
        ["before", "message 1", "message 2", "message 3", "after"]
    );
    let sources: Vec<(&str, usize)> = turn
        .messages
        .iter()
        .map(|m| (m.block.as_str(), m.step))
        .collect();
    assert_eq!(
        sources,
        [
            ("before", 0),
            ("code", 2),
            ("code", 2),
            ("code", 2),
            ("after", 3)
        ]
    );
    assert_eq!(turn.trace[2].logs.len(), 4, "the Code block's logs");
}

/// The operator's maximums bound what a Code block may ask for: a flow
/// asking for more does not load (typed problem naming the block and
/// field); one within them loads, and the lowered limits apply at run
/// time.
#[tokio::test]
async fn limit_overrides_are_checked_at_load_and_applied_at_run() {
    let max = Limits::maximum().with_messages(5).with_fuel(2_000_000_000);
    let config = SandboxConfig::default()
        .with_default_limits(Limits::default().with_messages(5))
        .with_max_limits(max);
    let engine = engine_with(config);
    for (over, which) in [
        (r#""messages": 6"#, "messages"),
        (r#""fuel": 3000000000"#, "fuel"),
    ] {
        let json = format!(
            r#"{{"name": "l", "start": "code", "blocks": {{
                "code": {{"type": "code", "module": "sdk_messages.wasm", "limits": {{{over}}}}}
            }}}}"#
        );
        let err = try_load(&engine, &json).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        let problem = &err.problems[0];
        assert_eq!(problem.block.as_deref(), Some("code"));
        assert_eq!(problem.field, Some(format!("limits.{which}")));
        assert!(matches!(problem.kind, ProblemKind::Limits(_)), "{err}");
        let message = err.to_string();
        assert!(message.contains(which), "{message}");
        assert!(message.contains("over the maximum"), "{message}");
    }

    // Several at once: one problem each.
    let json = r#"{"name": "l", "start": "code", "blocks": {
        "code": {"type": "code", "module": "sdk_messages.wasm", "limits": {"messages": 6, "fuel": 3000000000, "wall_time_ms": 0}}
    }}"#;
    let fields: Vec<Option<String>> = try_load(&engine, json)
        .unwrap_err()
        .problems
        .into_iter()
        .map(|p| p.field)
        .collect();
    assert_eq!(
        fields,
        [
            Some("limits.fuel".to_string()),
            Some("limits.wall_time_ms".to_string()),
            Some("limits.messages".to_string())
        ]
    );

    let within = r#"{"name": "l", "start": "count", "blocks": {
        "count": {"type": "set", "properties": {"count": "3"}, "next": "code"},
        "code": {"type": "code", "module": "sdk_messages.wasm", "limits": {"messages": 2}}
    }}"#;
    let flow = load(&engine, within);
    let mut conv = engine.start(&flow, Properties::new());
    let turn = engine.run(&flow, &mut conv).await;
    assert!(
        matches!(
            turn.error,
            Some(StopError::Code {
                source: RunError::Limit {
                    which: LimitKind::Messages,
                    value: 2
                },
                ..
            })
        ),
        "{:?}",
        turn.error
    );
}

/// A `sha256:` reference runs the bytes supplied with
/// `FlowLoader::module_bytes` when they hash to it, and is looked up in the
/// sandbox's cache otherwise (here a cache that has never seen the module).
#[tokio::test]
async fn sha256_references_resolve_to_supplied_bytes() {
    use chatflow_engine::sandbox::LoadError;
    use sha2::Digest as _;

    let engine = Engine::new(chatflow_engine::EngineConfig::default()).unwrap();
    let wasm = wat::parse_str(
        r#"(module
             (import "chatflow" "property_set" (func $set (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (data (i32.const 0) "greetingby hash")
             (func (export "chatflow_abi_v1"))
             (func (export "chatflow_run") (result i32)
               (drop (call $set (i32.const 0) (i32.const 8) (i32.const 8) (i32.const 7)))
               (i32.const 0)))"#,
    )
    .unwrap();
    let hex: String = sha2::Sha256::digest(&wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let json = format!(
        r#"{{"name": "by hash", "start": "code", "blocks": {{
            "code": {{"type": "code", "module": "sha256:{hex}", "next": "show"}},
            "show": {{"type": "message", "text": "{{{{greeting}}}}"}}
        }}}}"#
    );
    let not_cached = |loader: chatflow_engine::flow::FlowLoader<'_>| {
        let err = loader
            .load_str("hash.json", &json, Path::new("."))
            .unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        let problem = &err.problems[0];
        assert_eq!(problem.block.as_deref(), Some("code"));
        assert_eq!(problem.field.as_deref(), Some("module"));
        assert!(
            matches!(&problem.kind, ProblemKind::Module(LoadError::NotCached { sha256 }) if *sha256 == hex),
            "{problem}"
        );
    };
    // Neither supplied nor cached; other bytes do not stand in for it.
    not_cached(engine.flow_loader());
    not_cached(
        engine
            .flow_loader()
            .module_bytes(b"\0asm\x01\0\0\0".to_vec()),
    );

    let flow = engine
        .flow_loader()
        .module_bytes(wasm)
        .load_str("hash.json", &json, Path::new("."))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut conv = engine.start(&flow, Properties::new());
    let turn = engine.run(&flow, &mut conv).await;
    assert_eq!(turn.status, TurnStatus::Completed, "{:?}", turn.error);
    assert_eq!(texts(&turn), ["by hash"]);
}
