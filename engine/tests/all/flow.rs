//! Flows: loading errors (golden files), and conversations run through the
//! library against a real loopback server. Code blocks in flows are covered
//! by `flow_code` with real wasm, the example flows by `flow_examples`.

use std::path::Path;

use chatflow_engine::flow::{
    Conversation, Position, ProblemKind, StepOutcome, StopError, TurnStatus,
};
use chatflow_engine::net::{NetError, StatusCode};
use chatflow_engine::rest::RestError;
use chatflow_engine::{Engine, EngineConfig, Flow, Properties};

use crate::support::server::TestServer;
use crate::support::{golden, loopback_policy};

/// Host name the flows in these tests use for the test server, pinned to
/// its loopback address with `NetPolicy::resolve`.
const API: &str = "http://api.chatflow.test";

fn engine_for(server: &TestServer) -> Engine {
    let mut policy = loopback_policy();
    policy.allow_host("api.chatflow.test").unwrap();
    policy.allow_loopback = true;
    policy
        .resolve
        .insert("api.chatflow.test".into(), server.addr);
    Engine::new(EngineConfig::default().with_net(policy)).unwrap()
}

fn load(engine: &Engine, json: &str) -> Flow {
    engine
        .flow_loader()
        .load_str("test.json", json, Path::new("."))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A minimal valid ABI v1 module, supplied to the golden flows' loader as
/// `abi-v1-minimal.wasm` so that a golden flow can name a module that loads
/// on every machine (and its `.err` shows only the problem under test).
const MINIMAL_MODULE: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "chatflow_abi_v1"))
  (func (export "chatflow_run") (result i32) (i32.const 0)))"#;

/// Every `tests/ui/flows/*.json` must fail to load with exactly the message
/// in the `.err` file beside it. `BLESS=1` rewrites the `.err` files.
#[test]
fn malformed_flows_give_precise_errors() {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    // Module paths resolve against the golden directory, relative to the
    // package, so messages naming them are the same on every machine.
    let dir = Path::new("tests/ui/flows");
    golden::check("flows", "json", |file, json| {
        let loader = engine.flow_loader().module(
            "abi-v1-minimal.wasm",
            wat::parse_str(MINIMAL_MODULE).unwrap(),
        );
        match loader.load_str(file, json, dir) {
            Ok(_) => "(loaded without error)".to_string(),
            Err(e) => e.to_string(),
        }
    });
}

#[test]
fn load_errors_are_typed_and_all_collected() {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let json = r#"{"name": "x", "start": "a", "blocks": {
        "a": {"type": "message", "text": "hi", "next": "gone"},
        "b": {"type": "teleport"},
        "c": {"type": "rest_api", "method": "GET", "url": "https://api.example.com/", "timeout_ms": 3600000}
    }}"#;
    let err = engine
        .flow_loader()
        .load_str("t.json", json, Path::new("."))
        .unwrap_err();
    assert_eq!(err.origin, "t.json");
    let kinds: Vec<_> = err
        .problems
        .iter()
        .map(|p| (p.block.as_deref(), p.field.as_deref(), &p.kind))
        .collect();
    assert_eq!(kinds.len(), 3, "{err}");
    assert!(
        matches!(kinds[0], (Some("a"), Some("next"), ProblemKind::UnknownTarget { target }) if target == "gone")
    );
    assert!(
        matches!(kinds[1], (Some("b"), None, ProblemKind::UnknownType { found }) if found == "teleport")
    );
    assert!(matches!(
        kinds[2],
        (Some("c"), Some("timeout_ms"), ProblemKind::RestLimit(_))
    ));
}

#[test]
fn unreachable_blocks_are_warnings() {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let flow = load(
        &engine,
        r#"{"name": "x", "start": "a", "blocks": {
            "a": {"type": "message", "text": "hi"},
            "lonely": {"type": "message", "text": "nobody comes here"}
        }}"#,
    );
    let warnings: Vec<String> = flow.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        ["block \"lonely\" is unreachable from the start block"]
    );
}

/// A property read by a template or condition that nothing sets is a
/// warning naming block and field (issue 13): a typo shows up at `check`
/// rather than as a missing value at run time. `inputs` lists what the
/// platform sets; a Code block's `sets` what it may set.
#[test]
fn properties_that_nothing_sets_are_warnings() {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let minimal = wat::parse_str(MINIMAL_MODULE).unwrap();
    let flow_with = |code: &str| {
        format!(
            r#"{{"name": "x", "start": "ask", "inputs": ["caller"], "blocks": {{
                "ask": {{"type": "input", "prompt": "Hi {{{{caller}}}}, your id?", "property": "id", "next": "call"}},
                "call": {{"type": "rest_api", "method": "POST",
                          "url": "https://api.example.com/u/{{{{customer id}}}}",
                          "headers": [{{"name": "X-Key", "value": "{{{{key}}}}"}}],
                          "body": [{{"name": "id", "value": "{{{{id}}}}"}}],
                          "status_property": "code", "next": "parse"}},
                "parse": {code},
                "branch": {{"type": "branch", "conditions": [
                    {{"when": "{{{{API Response}}}} exists", "next": "set"}},
                    {{"property": "code", "op": "equals", "value": "{{{{tier}}}}", "next": "set"}},
                    {{"when": "{{{{teir}}}} equals gold", "next": "set"}}]}},
                "set": {{"type": "set", "properties": {{"greeting": "{{{{name}}}} at {{{{tier}}}}"}}, "next": "say"}},
                "say": {{"type": "message", "text": "{{{{greeting}}}} {{{{nmae}}}}"}}
            }}}}"#
        )
    };
    let load_with = |code: &str| {
        let json = flow_with(code);
        engine
            .flow_loader()
            .module("abi-v1-minimal.wasm", minimal.clone())
            .load_str("x.json", &json, Path::new("."))
            .unwrap_or_else(|e| panic!("{e}\n{json}"))
    };

    let flow = load_with(
        r#"{"type": "code", "module": "abi-v1-minimal.wasm", "sets": ["name", "tier"], "next": "branch"}"#,
    );
    let warnings: Vec<String> = flow.warnings().iter().map(|w| w.to_string()).collect();
    let never = |block: &str, field: &str, property: &str| {
        format!(
            "block {block:?}, {field}: property {property:?} is set by no block and is not among \
             the flow's \"inputs\""
        )
    };
    assert_eq!(
        warnings,
        [
            never("branch", "conditions[2]", "teir"),
            never("call", "url", "customer id"),
            never("call", "headers[0]", "key"),
            never("say", "text", "nmae"),
        ]
    );
    let json = serde_json::to_value(&flow.warnings()[0]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"kind": "never_set", "block": "branch", "field": "conditions[2]", "property": "teir"})
    );

    // A Code block that does not say what it sets may set anything.
    let flow = load_with(r#"{"type": "code", "module": "abi-v1-minimal.wasm", "next": "branch"}"#);
    assert!(flow.warnings().is_empty(), "{:?}", flow.warnings());

    // `sets` is a Code block's field only, and a list of valid names.
    let err = engine
        .flow_loader()
        .module("abi-v1-minimal.wasm", minimal.clone())
        .load_str(
            "x.json",
            &flow_with(r#"{"type": "code", "module": "abi-v1-minimal.wasm", "sets": "name", "next": "branch"}"#),
            Path::new("."),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("block \"parse\": \"sets\" must be a list of property names"),
        "{err}"
    );
    let err = engine
        .flow_loader()
        .load_str(
            "x.json",
            r#"{"name": "x", "start": "a", "inputs": [""], "blocks": {"a": {"type": "message", "text": "hi", "sets": ["x"]}}}"#,
            Path::new("."),
        )
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("inputs[0]"), "{text}");
    assert!(text.contains("unknown field `sets`"), "{text}");
}

fn lookup_flow(ignore_error: bool, path: &str) -> String {
    format!(
        r#"{{"name": "lookup", "start": "call", "blocks": {{
            "call": {{"type": "rest_api", "method": "GET", "url": "{API}{path}",
                      "ignore_error": {ignore_error}, "next": "check"}},
            "check": {{"type": "branch",
                       "conditions": [{{"when": "{{{{API Response}}}} exists", "next": "found"}}],
                       "else": "missing"}},
            "found": {{"type": "message", "text": "got {{{{API Response}}}}"}},
            "missing": {{"type": "message", "text": "no answer"}}
        }}}}"#
    )
}

#[tokio::test]
async fn rest_success_stores_the_response_and_branches_on_exists() {
    let server = TestServer::start().await;
    let engine = engine_for(&server);
    let flow = load(&engine, &lookup_flow(false, "/json"));
    let mut conv = engine.start(&flow, Properties::new());
    let turn = engine.run(&flow, &mut conv).await;
    assert_eq!(turn.status, TurnStatus::Completed, "{:?}", turn.error);
    let texts: Vec<&str> = turn.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, [r#"got {"ok":true,"name":"Zoë"}"#]);
    assert_eq!(turn.trace[0].http_status, Some(200));
    assert_eq!(turn.trace[1].next.as_deref(), Some("found"));
    assert_eq!(conv.position, Position::Completed);
}

/// Ignore error: the conversation goes on and a stale `API Response` from
/// before is removed, so the branch takes the `else` path.
#[tokio::test]
async fn rest_ignored_error_removes_the_stale_response() {
    let server = TestServer::start().await;
    let engine = engine_for(&server);
    let flow = load(&engine, &lookup_flow(true, "/status/500"));
    let stale: Properties = [("API Response", "stale from an earlier call")]
        .into_iter()
        .collect();
    let mut conv = engine.start(&flow, stale);
    let turn = engine.run(&flow, &mut conv).await;
    assert_eq!(turn.status, TurnStatus::Completed);
    assert_eq!(turn.trace[0].outcome, StepOutcome::IgnoredError);
    assert_eq!(turn.trace[0].http_status, Some(500));
    assert!(!conv.properties.contains("API Response"));
    assert_eq!(turn.messages[0].text, "no answer");
}

/// Without Ignore error the conversation stops with the typed error and
/// nothing is committed (the stale value is untouched, no later block ran).
#[tokio::test]
async fn rest_error_stops_the_conversation() {
    let server = TestServer::start().await;
    let engine = engine_for(&server);
    let flow = load(&engine, &lookup_flow(false, "/status/404"));
    let before: Properties = [("API Response", "stale")].into_iter().collect();
    let mut conv = engine.start(&flow, before.clone());
    let turn = engine.run(&flow, &mut conv).await;
    assert_eq!(turn.status, TurnStatus::Stopped);
    match &turn.error {
        Some(StopError::Rest {
            block,
            source: RestError::Status { status, .. },
        }) => {
            assert_eq!(block, "call");
            assert_eq!(*status, StatusCode::NOT_FOUND);
        }
        other => panic!("expected a REST status error, got {other:?}"),
    }
    assert_eq!(conv.properties, before);
    assert!(turn.messages.is_empty());
    assert_eq!(turn.trace.len(), 1);
    assert!(matches!(&conv.position, Position::Stopped { block, .. } if block == "call"));
    // A stopped conversation stays stopped.
    let again = engine.run(&flow, &mut conv).await;
    assert_eq!(again.status, TurnStatus::Stopped);
    assert!(again.trace.is_empty());
}

#[tokio::test]
async fn connection_failure_with_and_without_ignore_error() {
    let server = TestServer::start().await;
    let mut policy = loopback_policy();
    policy.allow_host("api.chatflow.test").unwrap();
    policy.allow_loopback = true;
    let closed = crate::support::closed_port();
    policy.resolve.insert(
        "api.chatflow.test".into(),
        format!("127.0.0.1:{closed}").parse().unwrap(),
    );
    let engine = Engine::new(EngineConfig::default().with_net(policy)).unwrap();
    drop(server);

    let flow = load(&engine, &lookup_flow(true, "/json"));
    let mut conv = engine.start(&flow, Properties::new());
    let turn = engine.run(&flow, &mut conv).await;
    assert_eq!(turn.status, TurnStatus::Completed);
    assert_eq!(turn.messages[0].text, "no answer");

    let flow = load(&engine, &lookup_flow(false, "/json"));
    let mut conv = engine.start(&flow, Properties::new());
    let turn = engine.run(&flow, &mut conv).await;
    assert!(matches!(
        turn.error,
        Some(StopError::Rest {
            source: RestError::Net(NetError::Connect { .. }),
            ..
        })
    ));
}

#[tokio::test]
async fn step_limit_ends_a_loop() {
    let engine = Engine::new(EngineConfig::default().with_max_steps(25)).unwrap();
    let flow = load(
        &engine,
        r#"{"name": "loop", "start": "a", "blocks": {
            "a": {"type": "set", "properties": {"n": "{{n}}x"}, "next": "b"},
            "b": {"type": "branch", "conditions": [{"when": "{{n}} exists", "next": "a"}]}
        }}"#,
    );
    let mut conv = engine.start(&flow, Properties::new());
    let turn = engine.run(&flow, &mut conv).await;
    assert_eq!(turn.status, TurnStatus::Stopped);
    assert!(matches!(
        turn.error,
        Some(StopError::StepLimit { limit: 25, .. })
    ));
    assert_eq!(turn.trace.len(), 25);
    // The blocks that did run committed their changes.
    assert_eq!(conv.properties.get("n").map(str::len), Some(13));
    assert!(
        turn.error.unwrap().to_string().contains("step limit 25"),
        "the message names the limit"
    );
}

#[tokio::test]
async fn set_renders_against_the_properties_before_the_block() {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let flow = load(
        &engine,
        r#"{"name": "swap", "start": "s", "blocks": {
            "s": {"type": "set", "properties": {"a": "{{b}}", "b": "{{a}}", "c": "{{missing}}!"}}
        }}"#,
    );
    let props: Properties = [("a", "1"), ("b", "2")].into_iter().collect();
    let mut conv = engine.start(&flow, props);
    engine.run(&flow, &mut conv).await;
    let got: Vec<_> = conv.properties.iter().collect();
    assert_eq!(got, [("a", "2"), ("b", "1"), ("c", "!")]);
}

const BRANCHES: &str = r#"{"name": "ops", "start": "b", "blocks": {
    "b": {"type": "branch", "conditions": [
        {"when": "{{x}} not_exists", "next": "not_exists"},
        {"when": "{{x}} equals gold", "next": "equals"},
        {"property": "x", "op": "equals", "value": "", "next": "empty"},
        {"when": "{{x}} contains @", "next": "contains"},
        {"when": "{{x}} < 0", "next": "lt"},
        {"when": "{{x}} <= 10", "next": "le"},
        {"when": "{{x}} >= 1000", "next": "ge"},
        {"when": "{{x}} > 100", "next": "gt"},
        {"when": "{{x}} not_equals silver", "next": "not_equals"},
        {"when": "{{x}} exists", "next": "exists"}
    ]},
    "not_exists": {"type": "message", "text": "not_exists"},
    "equals": {"type": "message", "text": "equals"},
    "empty": {"type": "message", "text": "empty"},
    "contains": {"type": "message", "text": "contains"},
    "lt": {"type": "message", "text": "lt"},
    "le": {"type": "message", "text": "le"},
    "ge": {"type": "message", "text": "ge"},
    "gt": {"type": "message", "text": "gt"},
    "not_equals": {"type": "message", "text": "not_equals"},
    "exists": {"type": "message", "text": "exists"}
}}"#;

#[tokio::test]
async fn every_branch_operator() {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let flow = load(&engine, BRANCHES);
    let cases = [
        (None, "not_exists"),
        (Some("gold"), "equals"),
        (Some(""), "empty"),
        (Some("a@b.c"), "contains"),
        (Some("-3"), "lt"),
        (Some("10"), "le"),
        (Some("1e4"), "ge"),
        (Some("101.5"), "gt"),
        (Some("bronze"), "not_equals"),
        (Some("silver"), "exists"),
        // Not a number: every number comparison is false, not an error.
        (Some("twelve"), "not_equals"),
    ];
    for (x, want) in cases {
        let props: Properties = x.map(|x| ("x", x)).into_iter().collect();
        let mut conv = engine.start(&flow, props);
        let turn = engine.run(&flow, &mut conv).await;
        assert_eq!(turn.messages[0].text, want, "x = {x:?}");
    }
}

const SURVEY: &str = r#"{"name": "survey", "start": "greet", "blocks": {
    "greet": {"type": "message", "text": "Hello!", "next": "ask_name"},
    "ask_name": {"type": "input", "prompt": "Your name?", "property": "name", "next": "ask_age"},
    "ask_age": {"type": "input", "prompt": "How old are you, {{name}}?", "property": "age", "next": "call"},
    "call": {"type": "rest_api", "method": "POST", "url": "http://api.chatflow.test/people",
             "body": [{"name": "name", "value": "{{name}}"}, {"name": "age", "value": "{{age}}"}],
             "next": "adult"},
    "adult": {"type": "branch", "conditions": [{"when": "{{age}} >= 18", "next": "bye"}], "else": "minor"},
    "minor": {"type": "set", "properties": {"group": "minor"}, "next": "bye"},
    "bye": {"type": "message", "text": "Thanks {{name}} ({{group}})"}
}}"#;

/// A conversation paused at `input`, serialized, restored and resumed ends
/// exactly like one run straight through.
#[tokio::test]
async fn paused_serialized_and_resumed_matches_straight_through() {
    let server = TestServer::start().await;
    let engine = engine_for(&server);
    let flow = load(&engine, SURVEY);
    let answers = ["Zoë", "17"];

    // Straight through, one process.
    let mut conv = engine.start(&flow, Properties::new());
    let mut straight = Vec::new();
    for answer in answers {
        let turn = engine.run(&flow, &mut conv).await;
        assert_eq!(turn.status, TurnStatus::WaitingForInput);
        straight.extend(turn.messages.into_iter().map(|m| m.text));
        conv.answer(answer).unwrap();
    }
    let last = engine.run(&flow, &mut conv).await;
    assert_eq!(last.status, TurnStatus::Completed, "{:?}", last.error);
    straight.extend(last.messages.into_iter().map(|m| m.text));
    let straight_props = conv.properties.clone();

    // Persisted as JSON between every user message; a fresh engine and a
    // freshly loaded flow each time, as another process would have.
    let mut saved = serde_json::to_string(&engine.start(&flow, Properties::new())).unwrap();
    let mut resumed = Vec::new();
    for answer in answers.into_iter().map(Some).chain([None]) {
        let engine = engine_for(&server);
        let flow = load(&engine, SURVEY);
        let mut conv: Conversation = serde_json::from_str(&saved).unwrap();
        if let Some(answer) = answer {
            conv.answer(answer).unwrap_err(); // not waiting yet: it has not run
        }
        let turn = engine.run(&flow, &mut conv).await;
        resumed.extend(turn.messages.into_iter().map(|m| m.text));
        if let Some(answer) = answer {
            assert!(conv.waiting_for().is_some());
            conv.answer(answer).unwrap();
        }
        saved = serde_json::to_string(&conv).unwrap();
    }
    let conv: Conversation = serde_json::from_str(&saved).unwrap();
    assert_eq!(resumed, straight);
    assert_eq!(conv.properties, straight_props);
    assert_eq!(conv.position, Position::Completed);
    assert_eq!(
        straight,
        [
            "Hello!",
            "Your name?",
            "How old are you, Zoë?",
            "Thanks Zoë (minor)"
        ]
    );
    // The REST block really sent the answers.
    let echo: serde_json::Value =
        serde_json::from_str(straight_props.get("API Response").unwrap()).unwrap();
    assert_eq!(echo["body"], r#"{"name":"Zoë","age":"17"}"#);
}

#[tokio::test]
async fn answers_only_when_waiting_and_unknown_positions_stop() {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let flow = load(
        &engine,
        r#"{"name": "q", "start": "ask", "blocks": {
            "ask": {"type": "input", "prompt": "?", "property": "p"}
        }}"#,
    );
    let mut conv = engine.start(&flow, Properties::new());
    assert!(conv.answer("too early").is_err());
    let turn = engine.run(&flow, &mut conv).await;
    assert_eq!(turn.status, TurnStatus::WaitingForInput);
    // Running again without an answer keeps waiting, runs nothing.
    let again = engine.run(&flow, &mut conv).await;
    assert_eq!(again.status, TurnStatus::WaitingForInput);
    assert!(again.trace.is_empty());
    conv.answer("yes").unwrap();
    let done = engine.run(&flow, &mut conv).await;
    assert_eq!(done.status, TurnStatus::Completed);
    assert_eq!(conv.properties.get("p"), Some("yes"));

    // A conversation saved with another version of the flow.
    let mut stale = engine.start(&flow, Properties::new());
    stale.position = Position::At("removed_block".into());
    let turn = engine.run(&flow, &mut stale).await;
    assert!(matches!(turn.error, Some(StopError::UnknownBlock { .. })));
}

/// Operators run conversations on a multi-threaded runtime: the engine, the
/// flow and the future of a run must all move between threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_run_on_spawned_tasks() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let flow = load(&engine, BRANCHES);
    assert_send_sync(&engine);
    assert_send_sync(&flow);
    let mut tasks = Vec::new();
    for x in ["gold", "-3", "bronze"] {
        let (engine, flow) = (engine.clone(), flow.clone());
        tasks.push(tokio::spawn(async move {
            let props: Properties = [("x", x)].into_iter().collect();
            let mut conv = engine.start(&flow, props);
            engine.run(&flow, &mut conv).await.messages[0].text.clone()
        }));
    }
    let mut got = Vec::new();
    for task in tasks {
        got.push(task.await.unwrap());
    }
    assert_eq!(got, ["equals", "lt", "not_equals"]);
}
