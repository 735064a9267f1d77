//! The `curl` commands of `docs/service.md` ("Talk to it"), run as written
//! against a real server with the example flows (the address and the
//! conversation id substituted).

use chatflow_demo_api::DemoApi;
use serde_json::Value;

use crate::support::{self, Kind, Running, TestStore};

/// The `$ curl …` commands of the document's `console` blocks, with their
/// continuation lines.
fn commands(doc: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(first) = line.strip_prefix("$ ") else {
            continue;
        };
        let mut command = first.to_string();
        while command.ends_with('\\') {
            command.pop();
            command.push_str(lines.next().unwrap_or_default().trim_start());
        }
        commands.push(command);
    }
    commands
}

fn curl(command: &str) -> Value {
    let out = std::process::Command::new("sh")
        .args(["-c", command])
        .output()
        .unwrap();
    assert!(out.status.success(), "{command}: {out:?}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{command}: not JSON ({e}): {out:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_curl_calls() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/service.md"
    ))
    .unwrap();
    let commands = commands(&doc);
    assert_eq!(commands.len(), 2, "{commands:?}");

    let store = TestStore::new(Kind::Sqlite).await.unwrap();
    let api = DemoApi::start().await.unwrap();
    let server = Running::start(
        support::config(&store, &api)
            .with_flows_dir(support::flows_dir())
            .with_modules_dir(support::modules_dir()),
    )
    .await;
    let addr = format!("127.0.0.1:{}", server.addr.port());
    let start = commands[0].replace("localhost:8080", &addr);
    let first = tokio::task::spawn_blocking(move || curl(&start))
        .await
        .unwrap();
    assert_eq!(first["status"], "waiting_for_input", "{first}");
    assert_eq!(
        first["messages"][0]["text"],
        "Hi! What's your phone number?"
    );
    let id = first["conversation_id"].as_str().unwrap().to_string();
    let answer = commands[1]
        .replace("localhost:8080", &addr)
        .replace("0b9c…", &id);
    let turn = tokio::task::spawn_blocking(move || curl(&answer))
        .await
        .unwrap();
    assert_eq!(turn["status"], "completed", "{turn}");
    assert_eq!(
        turn["messages"][0]["text"],
        "Welcome back, Ada Lovelace! You are a gold member."
    );
    server.stop().await;
}
