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

/// The CLI binary: `chatflow run` on each example flow, `--json`.
#[cfg(feature = "cli")]
mod cli {
    use std::process::Output;

    use chatflow_demo_api::DemoApi;
    use serde_json::Value;

    use crate::support::demo;

    async fn chatflow(args: Vec<String>) -> Output {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_chatflow"))
                .args(&args)
                .env_remove("CHATFLOW_LOG")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    }

    /// `run FLOW --module-dir DIR --resolve demo.chatflow.test=ADDR
    /// --allow-loopback --allow-host ALLOW --json --answer …`, plus `extra`.
    async fn run_allowing(
        api: &DemoApi,
        flow: &str,
        answers: &[&str],
        allow: &str,
        extra: &[&str],
    ) -> Output {
        let mut args: Vec<String> = vec![
            "run".into(),
            demo::flow_path(flow).display().to_string(),
            "--module-dir".into(),
            demo::module_dir().display().to_string(),
            "--resolve".into(),
            format!("demo.chatflow.test={}", api.addr()),
            "--allow-loopback".into(),
            "--allow-host".into(),
            allow.into(),
            "--json".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        for answer in answers {
            args.extend(["--answer".to_string(), answer.to_string()]);
        }
        chatflow(args).await
    }

    /// [`run`] without `--json`: the transcript.
    async fn run_plain(api: &DemoApi, flow: &str, answers: &[&str], extra: &[&str]) -> Output {
        let mut args: Vec<String> = vec![
            "run".into(),
            demo::flow_path(flow).display().to_string(),
            "--module-dir".into(),
            demo::module_dir().display().to_string(),
            "--resolve".into(),
            format!("demo.chatflow.test={}", api.addr()),
            "--allow-loopback".into(),
            "--allow-host".into(),
            "demo.chatflow.test".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        for answer in answers {
            args.extend(["--answer".to_string(), answer.to_string()]);
        }
        chatflow(args).await
    }

    /// [`run_allowing`] the demo host.
    async fn run(api: &DemoApi, flow: &str, answers: &[&str], extra: &[&str]) -> Output {
        run_allowing(api, flow, answers, "demo.chatflow.test", extra).await
    }

    fn json(output: &Output) -> Value {
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: stdout {:?}, stderr {:?}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }

    fn texts(doc: &Value) -> Vec<&str> {
        doc["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap())
            .collect()
    }

    fn outcomes<'d>(doc: &'d Value, block: &str) -> Vec<&'d str> {
        doc["trace"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["block"] == block)
            .map(|s| s["outcome"].as_str().unwrap())
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_example_flow_completes_with_exit_0() {
        let api = DemoApi::start().await.unwrap();

        let out = run(&api, "crm-profile.json", &["+44 20 7946 0000"], &[]).await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let doc = json(&out);
        assert_eq!(doc["status"], "completed");
        assert_eq!(doc["error"], Value::Null);
        assert_eq!(doc["flow"], "CRM profile");
        assert_eq!(
            texts(&doc),
            [
                "Hi! What's your phone number?",
                "Welcome back, Ada Lovelace! You are a gold member.",
                "No recommendations right now; there will be some next time."
            ]
        );
        assert_eq!(doc["properties"]["tier"], "gold");
        assert_eq!(doc["properties"]["customer_id"], "cus_1042");
        assert!(doc["properties"].get("API Response").is_none());
        assert_eq!(outcomes(&doc, "parse"), ["ok"]);
        assert_eq!(outcomes(&doc, "recommend"), ["ignored_error"]);
        // The ignored error is not silent: one line on stderr, stdout stays
        // clean JSON.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr
                .lines()
                .filter(|l| l.starts_with("ignored error: "))
                .collect::<Vec<_>>(),
            [
                "ignored error: block recommend: http://demo.chatflow.test/recommendations/cus_1042 answered 503 Service Unavailable"
            ],
            "{stderr}"
        );
        // Without --json, but with --trace, the transcript on stdout shows
        // it and stderr does not repeat it.
        let plain = run_plain(
            &api,
            "crm-profile.json",
            &["+44 20 7946 0000"],
            &["--trace"],
        )
        .await;
        assert_eq!(plain.status.code(), Some(0), "{plain:?}");
        let stdout = String::from_utf8_lossy(&plain.stdout);
        assert!(stdout.contains("error ignored"), "{stdout}");
        let stderr = String::from_utf8_lossy(&plain.stderr);
        assert!(!stderr.contains("ignored error"), "{stderr}");
        let parse = doc["trace"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["block"] == "parse")
            .unwrap();
        assert_eq!(parse["type"], "code");
        assert!(parse["fuel_used"].as_u64().unwrap() > 0);
        assert_eq!(doc["conversation"]["position"], "completed");

        let answers = ["Ada Lovelace", "ada@example.com", "+44 20 7946 0000"];
        let out = run(&api, "validate-input.json", &answers, &[]).await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let doc = json(&out);
        assert_eq!(
            texts(&doc).last().copied(),
            Some("Thanks Ada Lovelace! All details look good. We'll call you on +442079460000.")
        );
        assert_eq!(doc["properties"]["valid"], "true");

        let out = run(&api, "application-status.json", &["APP-2024-0007"], &[]).await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let doc = json(&out);
        assert_eq!(
            texts(&doc)[1],
            "Application APP-2024-0007: Approved & signed (last update 2024-03-09T16:20:00Z)."
        );

        let out = run(&api, "complex-call.json", &[], &[]).await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let doc = json(&out);
        assert_eq!(
            texts(&doc),
            [
                "You have 5 orders (2 open).",
                "Total spent: 128.47 GBP over 3 pages; your latest order is ord_1005."
            ]
        );
        assert_eq!(doc["messages"][0]["block"], "summarize");
        let summarize = &doc["trace"][1];
        assert_eq!(summarize["block"], "summarize");
        assert_eq!(summarize["http_calls"], 4);

        let out = run(&api, "every-block.json", &["+1 415 555 0123"], &[]).await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(
            texts(&json(&out)).last().copied(),
            Some("Nice to meet you, Grace.")
        );
    }

    /// Without `--json`: the transcript, the user's answers and (with
    /// `--trace`) one line per block, in conversation order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_transcript_shows_the_conversation_in_order() {
        let api = DemoApi::start().await.unwrap();
        let mut args = vec![
            "run".to_string(),
            demo::flow_path("complex-call.json").display().to_string(),
            "--module-dir".into(),
            demo::module_dir().display().to_string(),
            "--resolve".into(),
            format!("demo.chatflow.test={}", api.addr()),
            "--allow-loopback".into(),
            "--allow-host".into(),
            "demo.chatflow.test".into(),
            "--trace".into(),
        ];
        let out = chatflow(args.clone()).await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        let at = |needle: &str| {
            lines
                .iter()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{needle:?} not in:\n{stdout}"))
        };
        let summarize = at("summarize");
        assert!(lines[summarize].contains("fuel"), "{}", lines[summarize]);
        assert!(
            lines[summarize].contains("4 HTTP call(s)"),
            "{}",
            lines[summarize]
        );
        let message = at("bot  You have 5 orders (2 open).");
        let details = at("bot  Total spent: 128.47 GBP over 3 pages");
        assert!(summarize < message && message < details, "{stdout}");

        // An input block's answer is echoed where it was given.
        args[1] = demo::flow_path("application-status.json")
            .display()
            .to_string();
        args.extend(["--answer".into(), "APP-2024-0042".into()]);
        let out = chatflow(args).await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let question = stdout.find("bot  What's your application number?").unwrap();
        let answer = stdout.find("you  APP-2024-0042").unwrap();
        let status = stdout
            .find("bot  Application APP-2024-0042: In review")
            .unwrap();
        assert!(question < answer && answer < status, "{stdout}");
    }

    /// Exit 1: a flow that stops on an error (the validation Code block's
    /// host is not allowed), and one that waits for an answer nobody gave.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flow_that_stops_exits_1() {
        let api = DemoApi::start().await.unwrap();
        let answers = ["Ada", "ada@example.com", "+44 20 7946 0000"];
        let out = run_allowing(
            &api,
            "validate-input.json",
            &answers,
            "api.example.com",
            &[],
        )
        .await;
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let doc = json(&out);
        assert_eq!(doc["status"], "stopped");
        assert_eq!(doc["error"]["block"], "validate");
        assert_eq!(doc["error"]["kind"], "http_denied");
        let message = doc["error"]["message"].as_str().unwrap();
        assert!(message.contains("demo.chatflow.test"), "{message}");
        assert_eq!(outcomes(&doc, "validate"), ["stopped"]);
        assert!(doc["properties"].get("valid").is_none());
        assert_eq!(api.requests(), 0);

        // No answer and stdin at its end: waiting, exit 1.
        let out = run(&api, "application-status.json", &[], &[]).await;
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let doc = json(&out);
        assert_eq!(doc["status"], "waiting_for_input");
        assert_eq!(texts(&doc), ["What's your application number?"]);
    }

    /// Exit 2: the module directory does not hold the flow's module, the
    /// flow file is not a flow, an argument is bad. Nothing runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_invalid_flow_exits_2() {
        let api = DemoApi::start().await.unwrap();
        let empty = tempfile::tempdir().unwrap();
        let args = vec![
            "run".to_string(),
            demo::flow_path("complex-call.json").display().to_string(),
            "--module-dir".into(),
            empty.path().display().to_string(),
            "--json".into(),
        ];
        let out = chatflow(args).await;
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("block \"summarize\", module: reading module")
                && stderr.contains("complex_call.wasm"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());

        let bad = empty.path().join("bad.json");
        std::fs::write(
            &bad,
            r#"{"name": "bad", "start": "a", "blocks": {"a": {"type": "message", "text": "{{oops", "next": "nowhere"}}}"#,
        )
        .unwrap();
        let out = chatflow(vec![
            "run".into(),
            bad.display().to_string(),
            "--json".into(),
        ])
        .await;
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("2 problems"), "{stderr}");
        assert!(
            stderr.contains("block \"a\", next: no block with id \"nowhere\""),
            "{stderr}"
        );

        let out = run(&api, "complex-call.json", &[], &["--resolve", "no-port"]).await;
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert_eq!(api.requests(), 0);
    }
}
