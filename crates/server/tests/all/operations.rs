//! What an operator sees: the OpenAPI document, metrics, probes, and a
//! graceful shutdown.

use std::collections::BTreeSet;

use chatflow_demo_api::DemoApi;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{self, Kind, Running, TestStore, gate::Gate, texts};

/// Every route the server answers, as (method, path).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/flows"),
    ("put", "/v1/flows/{name}"),
    ("get", "/v1/flows/{name}"),
    ("delete", "/v1/flows/{name}"),
    ("post", "/v1/flows/{name}/conversations"),
    ("put", "/v1/modules"),
    ("get", "/v1/modules/{sha256}"),
    ("get", "/v1/conversations/{id}"),
    ("delete", "/v1/conversations/{id}"),
    ("post", "/v1/conversations/{id}/answers"),
];

#[tokio::test]
async fn openapi_lists_every_route() {
    let store = TestStore::new(Kind::Sqlite).await.unwrap();
    let api = DemoApi::start().await.unwrap();
    let server = Running::start(support::config(&store, &api)).await;
    let (status, doc) = server.get("/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut listed = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                listed.insert((method.clone(), path.clone()));
            }
        }
    }
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(listed, expected);
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert!(doc["components"]["schemas"]["TurnResponse"].is_object());

    // And every listed route is served: none answers not_found or
    // method_not_allowed.
    for (method, path) in ROUTES {
        let path = path
            .replace("{name}", "x")
            .replace("{sha256}", &"0".repeat(64))
            .replace("{id}", "x");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = server
            .request(method.clone(), &path)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let kind = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["kind"].as_str().map(str::to_string));
        assert!(
            !matches!(kind.as_deref(), Some("not_found" | "method_not_allowed")),
            "{method} {path}: {status} {text}"
        );
    }
    // The library's document is the served one.
    assert_eq!(
        serde_json::to_value(chatflow_server::openapi()).unwrap(),
        doc
    );
    server.stop().await;
}

#[tokio::test]
async fn metrics_and_probes() {
    let store = TestStore::new(Kind::Sqlite).await.unwrap();
    let api = DemoApi::start().await.unwrap();
    let server = Running::start(
        support::config(&store, &api)
            .with_flows_dir(support::flows_dir())
            .with_modules_dir(support::modules_dir()),
    )
    .await;
    assert_eq!(server.get("/healthz").await, (200, json!({"status": "ok"})));
    assert_eq!(
        server.get("/readyz").await,
        (200, json!({"status": "ready", "store": "sqlite"}))
    );
    let first = server.start_conversation("crm-profile", json!({})).await;
    let id = first["conversation_id"].as_str().unwrap();
    server.answer(id, "+44 20 7946 0000").await;
    server.answer(id, "again").await; // conversation_finished
    let response = server
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    for line in [
        "chatflow_turns_total{status=\"waiting_for_input\"} 1",
        "chatflow_turns_total{status=\"completed\"} 1",
        "chatflow_block_runs_total{type=\"code\",outcome=\"ok\"} 1",
        "chatflow_block_runs_total{type=\"rest_api\",outcome=\"ignored_error\"} 1",
        "chatflow_errors_total{kind=\"conversation_finished\"} 1",
        "chatflow_turn_duration_seconds_count 2",
        "chatflow_turns_in_flight 0",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    for prefix in [
        "chatflow_fuel_used_total ",
        "chatflow_http_calls_total{type=\"rest_api\"} ",
        "chatflow_store_duration_seconds_count{op=\"commit\"} ",
        "chatflow_block_duration_seconds_count{type=\"code\"} 1",
    ] {
        assert!(text.contains(prefix), "{prefix} in:\n{text}");
    }
    server.stop().await;
}

/// Shutdown: the turn in flight finishes and is stored; new requests are
/// refused; the server returns.
#[tokio::test]
async fn graceful_shutdown() {
    let store = TestStore::new(Kind::Sqlite).await.unwrap();
    let api = DemoApi::start().await.unwrap();
    let gate = Gate::start().await;
    let server = Running::start(support::config(&store, &api)).await;
    server.put_flow("gated", &support::gated_flow(&gate)).await;
    let first = server.start_conversation("gated", json!({})).await;
    let id = first["conversation_id"].as_str().unwrap().to_string();
    // A second connection, open before the shutdown.
    let other = reqwest::Client::new();
    assert_eq!(
        other
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let in_flight = tokio::spawn(
        server
            .request(Method::POST, &format!("/v1/conversations/{id}/answers"))
            .json(&json!({"text": "yes"}))
            .send(),
    );
    gate.wait_for(1).await;
    let url = server.url("/v1/flows");
    let stopping = server.begin_stop();
    // New requests are refused, on a new connection (nothing listens, or
    // 503 if it was accepted just before) and on one that was open (503
    // shutting_down, or closed).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !refused(reqwest::Client::new().get(&url).send().await).await {
        assert!(std::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(refused(other.get(&url).send().await).await);
    assert!(refused(reqwest::Client::new().get(&url).send().await).await);
    assert!(
        !stopping.is_finished(),
        "the turn in flight holds the shutdown"
    );
    gate.open();
    let done = in_flight.await.unwrap().unwrap();
    assert_eq!(done.status(), 200);
    let done: Value = done.json().await.unwrap();
    assert_eq!(texts(&done), ["done: opened"]);
    stopping.await.unwrap().unwrap();
    assert_eq!(store.count("turns").await, 2, "the turn was stored");
}

/// Whether a request was refused by a stopping server.
async fn refused(sent: Result<reqwest::Response, reqwest::Error>) -> bool {
    match sent {
        Err(_) => true,
        Ok(response) if response.status() == 503 => {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["kind"], "shutting_down");
            true
        }
        Ok(_) => false,
    }
}

/// Past the grace period, a turn still running is cancelled: nothing of it
/// is stored, and the conversation runs it again on the next request.
#[tokio::test]
async fn shutdown_grace_cancels_stuck_turns() {
    let store = TestStore::new(Kind::Sqlite).await.unwrap();
    let api = DemoApi::start().await.unwrap();
    let gate = Gate::start().await;
    let config =
        || support::config(&store, &api).with_shutdown_grace(std::time::Duration::from_millis(200));
    let server = Running::start(config()).await;
    server.put_flow("gated", &support::gated_flow(&gate)).await;
    let first = server.start_conversation("gated", json!({})).await;
    let id = first["conversation_id"].as_str().unwrap().to_string();
    let in_flight = tokio::spawn(
        server
            .request(Method::POST, &format!("/v1/conversations/{id}/answers"))
            .json(&json!({"text": "yes"}))
            .send(),
    );
    gate.wait_for(1).await;
    server.begin_stop().await.unwrap().unwrap();
    match in_flight.await.unwrap() {
        Err(_) => {}
        Ok(response) => {
            assert_eq!(response.status(), 503);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["kind"], "shutting_down");
        }
    }
    assert_eq!(store.count("turns").await, 1);
    gate.open();
    let server = Running::start(config()).await;
    let (status, turn) = server.answer(&id, "yes").await;
    assert_eq!(status, 200, "the lease was released: {turn}");
    assert_eq!(texts(&turn), ["done: opened"]);
    server.stop().await;
}
