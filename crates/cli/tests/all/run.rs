//! The CLI binary: `chatflow run` on each example flow, `--json`.

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
