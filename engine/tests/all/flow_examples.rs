//! Issue 5's end-to-end tests: each example flow of `examples/flows/` run
//! against the demo API on 127.0.0.1, with its Code blocks built from
//! `examples/code-blocks/` (the module names in the flows resolve against
//! the build's output directory), through the library (`Engine`, scripted
//! answers) and through the `chatflow run` binary (`--json`, exit codes).

use chatflow_demo_api::DemoApi;
use chatflow_engine::flow::{
    BlockType, Conversation, Position, Step, StepOutcome, StopError, TurnStatus,
};
use chatflow_engine::sandbox::RunError;
use chatflow_engine::{Engine, Flow, Properties};

use crate::support::demo;

/// Everything a conversation did over all its turns.
struct Transcript {
    messages: Vec<String>,
    /// The block that produced each message.
    sources: Vec<String>,
    trace: Vec<Step>,
    status: TurnStatus,
    error: Option<StopError>,
    conversation: Conversation,
}

impl Transcript {
    fn step(&self, block: &str) -> &Step {
        self.trace
            .iter()
            .rev()
            .find(|s| s.block == block && s.outcome != StepOutcome::Waiting)
            .unwrap_or_else(|| panic!("block {block} did not run: {:#?}", self.trace))
    }

    fn path(&self) -> Vec<&str> {
        self.trace
            .iter()
            .filter(|s| s.outcome != StepOutcome::Waiting)
            .map(|s| s.block.as_str())
            .collect()
    }

    fn prop(&self, name: &str) -> Option<&str> {
        self.conversation.properties.get(name)
    }
}

fn load(engine: &Engine, name: &str) -> Flow {
    engine
        .flow_loader()
        .module_dir(demo::module_dir())
        .load_file(demo::flow_path(name))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `flow` turn after turn, answering each input block with the next
/// of `answers`; stops when the flow ends, stops, or asks a question no
/// answer is left for.
async fn converse(engine: &Engine, flow: &Flow, answers: &[&str]) -> Transcript {
    let mut conversation = engine.start(flow, Properties::new());
    let mut answers = answers.iter();
    let mut t = Transcript {
        messages: Vec::new(),
        sources: Vec::new(),
        trace: Vec::new(),
        status: TurnStatus::Completed,
        error: None,
        conversation: conversation.clone(),
    };
    loop {
        let turn = engine.run(flow, &mut conversation).await;
        for message in turn.messages {
            assert_eq!(turn.trace[message.step].block, message.block);
            t.messages.push(message.text);
            t.sources.push(message.block);
        }
        t.trace.extend(turn.trace);
        t.status = turn.status;
        t.error = turn.error;
        if turn.status != TurnStatus::WaitingForInput {
            break;
        }
        match answers.next() {
            Some(answer) => conversation.answer(*answer).unwrap(),
            None => break,
        }
    }
    assert!(answers.next().is_none(), "answers left over");
    t.conversation = conversation;
    t
}

/// The example flows declare what their Code blocks set, so `check` can
/// warn about a property nothing sets; none of them has a warning.
#[tokio::test]
async fn example_flows_have_no_warnings() {
    let api = DemoApi::start().await.unwrap();
    let engine = demo::engine(&api);
    for name in [
        "crm-profile.json",
        "validate-input.json",
        "application-status.json",
        "complex-call.json",
        "every-block.json",
    ] {
        let flow = load(&engine, name);
        assert!(flow.warnings().is_empty(), "{name}: {:?}", flow.warnings());
    }
}

#[tokio::test]
async fn crm_profile_flow() {
    let api = DemoApi::start().await.unwrap();
    let engine = demo::engine(&api);
    let flow = load(&engine, "crm-profile.json");
    assert!(flow.warnings().is_empty(), "{:?}", flow.warnings());

    let t = converse(&engine, &flow, &["+44 20 7946 0000"]).await;
    assert_eq!(t.status, TurnStatus::Completed, "{:?}", t.error);
    assert_eq!(
        t.messages,
        [
            "Hi! What's your phone number?",
            "Welcome back, Ada Lovelace! You are a gold member.",
            "No recommendations right now; there will be some next time.",
        ]
    );
    assert_eq!(
        t.path(),
        [
            "setup",
            "ask_phone",
            "lookup",
            "found",
            "parse",
            "greet",
            "recommend",
            "have_recommendations",
            "no_recommendations"
        ]
    );
    // The 301 was followed to the profile.
    assert_eq!(t.step("lookup").http_status, Some(200));
    assert_eq!(t.step("found").next.as_deref(), Some("parse"));
    let parse = t.step("parse");
    assert_eq!(parse.block_type, BlockType::Code);
    assert_eq!(parse.outcome, StepOutcome::Ok);
    assert!(parse.fuel_used.unwrap() > 0);
    assert_eq!(parse.http_calls, Some(0));
    let mut changed = parse.changed.clone();
    changed.sort();
    assert_eq!(
        changed,
        ["customer_id", "email", "name", "profile_found", "tier"]
    );
    // The failing recommendations call is ignored, and removes the stale
    // API Response so the branch takes `else`.
    let recommend = t.step("recommend");
    assert_eq!(recommend.outcome, StepOutcome::IgnoredError);
    assert_eq!(recommend.http_status, Some(503));
    assert_eq!(t.prop("API Response"), None);
    assert_eq!(t.prop("name"), Some("Ada Lovelace"));
    assert_eq!(t.prop("email"), Some("ada@example.com"));
    assert_eq!(t.prop("tier"), Some("gold"));
    assert_eq!(t.prop("customer_id"), Some("cus_1042"));
    assert_eq!(t.prop("phone"), Some("+44 20 7946 0000"));
    assert_eq!(t.conversation.position, Position::Completed);

    // A sparse profile.
    let t = converse(&engine, &flow, &["+1 415 555 0123"]).await;
    assert_eq!(
        t.messages[1],
        "Welcome back, Grace! You are a standard member."
    );
    assert_eq!(t.prop("email"), None);

    // An unknown number: the lookup's 404 is ignored, the branch goes to
    // `unknown`, the Code block never runs.
    let t = converse(&engine, &flow, &["+1 555 0100"]).await;
    assert_eq!(t.status, TurnStatus::Completed);
    assert_eq!(
        t.messages,
        [
            "Hi! What's your phone number?",
            "Sorry, no profile matches +1 555 0100 (the CRM answered 404)."
        ]
    );
    assert_eq!(t.step("lookup").outcome, StepOutcome::IgnoredError);
    assert!(!t.path().contains(&"parse"));
    assert_eq!(t.prop("name"), None);
}

#[tokio::test]
async fn validate_input_flow_asks_again_until_valid() {
    let api = DemoApi::start().await.unwrap();
    let engine = demo::engine(&api);
    let flow = load(&engine, "validate-input.json");
    let answers = [
        "Ada Lovelace",
        "ada@example",
        "+44 20 7946 0000",
        "ada@example.com",
        "+44 20 7946 0000",
    ];
    let t = converse(&engine, &flow, &answers).await;
    assert_eq!(t.status, TurnStatus::Completed, "{:?}", t.error);
    assert_eq!(
        t.messages,
        [
            "What's your full name?",
            "Your email address?",
            "And your phone number?",
            "That didn't work: email must contain a domain. Let's try again.",
            "Your email address?",
            "And your phone number?",
            "Thanks Ada Lovelace! All details look good. We'll call you on +442079460000.",
        ]
    );
    let validations: Vec<&Step> = t.trace.iter().filter(|s| s.block == "validate").collect();
    assert_eq!(validations.len(), 2);
    assert!(validations.iter().all(|s| s.http_calls == Some(1)));
    assert_eq!(t.prop("valid"), Some("true"));
    assert_eq!(t.prop("email"), Some("ada@example.com"));
    assert_eq!(api.requests(), 2);
}

#[tokio::test]
async fn application_status_flow() {
    let api = DemoApi::start().await.unwrap();
    let engine = demo::engine(&api);
    let flow = load(&engine, "application-status.json");

    let t = converse(&engine, &flow, &["APP-2024-0042"]).await;
    assert_eq!(t.status, TurnStatus::Completed, "{:?}", t.error);
    assert_eq!(
        t.messages,
        [
            "What's your application number?",
            "Application APP-2024-0042: In review – documents received (last update 2024-05-02T14:03:00Z)."
        ]
    );
    assert_eq!(t.prop("status_code"), Some("IN_REVIEW"));
    assert_eq!(t.prop("history_count"), Some("2"));

    // An unknown number, then a known one: the flow asks again.
    let t = converse(&engine, &flow, &["APP-1", "APP-2024-0007"]).await;
    assert_eq!(t.status, TurnStatus::Completed);
    assert_eq!(
        t.messages,
        [
            "What's your application number?",
            "I couldn't find application APP-1. Please check the number.",
            "What's your application number?",
            "Application APP-2024-0007: Approved & signed (last update 2024-03-09T16:20:00Z)."
        ]
    );
    // Without another answer the conversation waits (and can be saved).
    let t = converse(&engine, &flow, &["APP-1"]).await;
    assert_eq!(t.status, TurnStatus::WaitingForInput);
    assert_eq!(
        t.conversation.waiting_for(),
        Some("What's your application number?")
    );
}

#[tokio::test]
async fn complex_call_flow_messages_in_order() {
    let api = DemoApi::start().await.unwrap();
    let engine = demo::engine(&api);
    let flow = load(&engine, "complex-call.json");
    let t = converse(&engine, &flow, &[]).await;
    assert_eq!(t.status, TurnStatus::Completed, "{:?}", t.error);
    // The Code block's own message comes before the next block's.
    assert_eq!(
        t.messages,
        [
            "You have 5 orders (2 open).",
            "Total spent: 128.47 GBP over 3 pages; your latest order is ord_1005."
        ]
    );
    assert_eq!(t.sources, ["summarize", "details"]);
    let summarize = t.step("summarize");
    assert_eq!(summarize.http_calls, Some(4));
    assert!(summarize.fuel_used.unwrap() > 0);
    assert!(!summarize.logs.is_empty());
    assert_eq!(t.prop("order_count"), Some("5"));
}

#[tokio::test]
async fn every_block_flow() {
    let api = DemoApi::start().await.unwrap();
    let engine = demo::engine(&api);
    let flow = load(&engine, "every-block.json");
    let cases: &[(&str, &str)] = &[
        (
            "+44 20 7946 0000",
            "Nice to meet you, Ada Lovelace. As a gold member you get priority support.",
        ),
        ("+1 415 555 0123", "Nice to meet you, Grace."),
        (
            "+1 555 0100",
            "Nice to meet you! I don't know +1 555 0100 yet.",
        ),
    ];
    for (phone, last) in cases {
        let t = converse(&engine, &flow, &[phone]).await;
        assert_eq!(t.status, TurnStatus::Completed, "{phone}: {:?}", t.error);
        assert_eq!(
            t.messages,
            [
                "Hello! This flow uses every block type.",
                "Your phone number, please?",
                last
            ],
            "{phone}"
        );
    }
    // Every block type ran.
    let t = converse(&engine, &flow, &["+44 20 7946 0000"]).await;
    for ty in BlockType::ALL {
        assert!(t.trace.iter().any(|s| s.block_type == ty), "{ty}");
    }
}

/// The example flows stop with the Code block's typed error when the
/// operator has not allowed the demo host: the REST blocks' errors are
/// ignored, the validation Code block's is not.
#[tokio::test]
async fn a_denied_host_stops_the_validation_flow() {
    let api = DemoApi::start().await.unwrap();
    let mut policy = demo::policy(&api);
    policy.allowed_hosts.clear();
    policy.allow_host("api.example.com").unwrap();
    let engine = demo::engine_with(policy, Default::default());
    let flow = load(&engine, "validate-input.json");
    let t = converse(
        &engine,
        &flow,
        &["Ada", "ada@example.com", "+44 20 7946 0000"],
    )
    .await;
    assert_eq!(t.status, TurnStatus::Stopped);
    match &t.error {
        Some(StopError::Code {
            block,
            source: RunError::HttpDenied { reason },
        }) => {
            assert_eq!(block, "validate");
            assert!(reason.contains("demo.chatflow.test"), "{reason}");
        }
        other => panic!("expected a Code block HttpDenied stop, got {other:?}"),
    }
    assert_eq!(t.step("validate").outcome, StepOutcome::Stopped);
    assert_eq!(t.prop("valid"), None, "nothing committed");
    assert!(
        matches!(&t.conversation.position, Position::Stopped { block, .. } if block == "validate")
    );
    assert_eq!(api.requests(), 0);
}
