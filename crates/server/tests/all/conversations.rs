//! The example flows, driven over HTTP against the demo API: messages,
//! status, trace, and what the store keeps between turns.

use chatflow_demo_api::DemoApi;
use serde_json::json;

use crate::both_stores;
use crate::support::{self, Running, TestStore, texts};

async fn examples_server(store: &TestStore, api: &DemoApi) -> Running {
    Running::start(
        support::config(store, api)
            .with_flows_dir(support::flows_dir())
            .with_modules_dir(support::modules_dir()),
    )
    .await
}

async fn example_flows(store: TestStore) {
    let api = DemoApi::start().await.unwrap();
    let server = examples_server(&store, &api).await;

    // CRM profile: a REST API block following a 301, a Code block parsing
    // JSON, an ignored 503.
    let first = server.start_conversation("crm-profile", json!({})).await;
    assert_eq!(first["status"], "waiting_for_input");
    assert_eq!(first["turn"], 0);
    assert_eq!(texts(&first), ["Hi! What's your phone number?"]);
    assert_eq!(first["waiting_for"]["block"], "ask_phone");
    let id = first["conversation_id"].as_str().unwrap();
    let (status, turn) = server.answer(id, "+44 20 7946 0000").await;
    assert_eq!(status, 200, "{turn}");
    assert_eq!(turn["status"], "completed");
    assert_eq!(turn["turn"], 1);
    assert_eq!(
        texts(&turn),
        [
            "Welcome back, Ada Lovelace! You are a gold member.",
            "No recommendations right now; there will be some next time."
        ]
    );
    let parse = turn["trace"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["block"] == "parse")
        .unwrap();
    assert_eq!(parse["type"], "code");
    assert!(parse["fuel_used"].as_u64().unwrap() > 0);

    // What the store keeps: properties, position, both turns.
    let (status, conv) = server.get(&format!("/v1/conversations/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(conv["status"], "completed");
    assert_eq!(conv["position"], "completed");
    assert_eq!(conv["properties"]["tier"], "gold");
    assert_eq!(conv["turns"], 2);
    assert_eq!(conv["running"], false);
    assert_eq!(conv["last_turns"].as_array().unwrap().len(), 2);
    assert_eq!(
        conv["last_turns"][1], turn,
        "GET shows the turn as answered"
    );

    // Application status: an unknown number, then a known one (XML parsed
    // in the sandbox).
    let first = server
        .start_conversation("application-status", json!({}))
        .await;
    let id = first["conversation_id"].as_str().unwrap();
    let (_, turn) = server.answer(id, "APP-1").await;
    assert_eq!(turn["status"], "waiting_for_input");
    assert_eq!(
        texts(&turn),
        [
            "I couldn't find application APP-1. Please check the number.",
            "What's your application number?"
        ]
    );
    let (_, turn) = server.answer(id, "APP-2024-0007").await;
    assert_eq!(turn["status"], "completed");
    assert_eq!(
        texts(&turn),
        ["Application APP-2024-0007: Approved & signed (last update 2024-03-09T16:20:00Z)."]
    );

    // Validate input: three answers, a Code block posting them.
    let first = server.start_conversation("validate-input", json!({})).await;
    let id = first["conversation_id"].as_str().unwrap();
    for answer in ["Ada", "ada@example.com"] {
        let (_, turn) = server.answer(id, answer).await;
        assert_eq!(turn["status"], "waiting_for_input");
    }
    let (_, turn) = server.answer(id, "+44 20 7946 0000").await;
    assert_eq!(turn["status"], "completed", "{turn}");
    let (_, conv) = server.get(&format!("/v1/conversations/{id}")).await;
    assert_eq!(conv["properties"]["valid"], "true");

    // Complex call: no input at all, completed by the first turn; initial
    // properties are the conversation's.
    let first = server
        .start_conversation("complex-call", json!({"channel": "web"}))
        .await;
    assert_eq!(first["status"], "completed");
    assert_eq!(texts(&first)[0], "You have 5 orders (2 open).");
    let id = first["conversation_id"].as_str().unwrap();
    let (_, conv) = server.get(&format!("/v1/conversations/{id}")).await;
    assert_eq!(conv["properties"]["channel"], "web");
    assert_eq!(conv["flow"], "complex-call");

    // Every block type.
    let first = server.start_conversation("every-block", json!({})).await;
    let id = first["conversation_id"].as_str().unwrap();
    let (_, turn) = server.answer(id, "+1 415 555 0123").await;
    assert_eq!(turn["status"], "completed", "{turn}");

    // Deleted: gone, with its turns.
    let (status, _) = server
        .send(server.request(reqwest::Method::DELETE, &format!("/v1/conversations/{id}")))
        .await;
    assert_eq!(status, 204);
    let (status, body) = server.get(&format!("/v1/conversations/{id}")).await;
    assert_eq!(
        (status, body["kind"].as_str()),
        (404, Some("conversation_not_found"))
    );
    server.stop().await;
}
both_stores!(example_flows);

/// A stopped conversation answers its error, and stays stopped.
async fn a_stopping_block(store: TestStore) {
    let api = DemoApi::start().await.unwrap();
    let server = Running::start(support::config(&store, &api)).await;
    let flow = json!({
        "name": "fails",
        "start": "call",
        "blocks": {
            "call": {"type": "rest_api", "method": "GET", "url": "http://demo.chatflow.test/nowhere", "next": "after"},
            "after": {"type": "message", "text": "unreachable"}
        }
    });
    assert_eq!(server.put_flow("fails", &flow).await.0, 201);
    let first = server.start_conversation("fails", json!({})).await;
    assert_eq!(first["status"], "stopped");
    assert_eq!(first["error"]["block"], "call");
    assert_eq!(first["error"]["kind"], "status");
    assert!(texts(&first).is_empty());
    let id = first["conversation_id"].as_str().unwrap();
    let (_, conv) = server.get(&format!("/v1/conversations/{id}")).await;
    assert_eq!(conv["status"], "stopped");
    assert_eq!(conv["position"]["stopped"]["block"], "call");
    server.stop().await;
}
both_stores!(a_stopping_block);
