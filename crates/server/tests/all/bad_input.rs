//! Every bad input of issue 12, each answered with its status and JSON
//! `kind`, and each leaving the store as it was.

use chatflow_demo_api::DemoApi;
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_stores;
use crate::support::{self, Running, TestStore, gate::Gate, texts};

/// Rows of every table, to show a refused request wrote nothing.
async fn rows(store: &TestStore) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "modules",
        "flow_versions",
        "flows",
        "conversations",
        "turns",
    ] {
        counts.push(store.count(table).await);
    }
    counts
}

fn kind(body: &Value) -> &str {
    body["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("no kind: {body}"))
}

fn hello_flow() -> Value {
    json!({
        "name": "hello",
        "start": "ask",
        "blocks": {
            "ask": {"type": "input", "prompt": "Name?", "property": "name", "next": "hi"},
            "hi": {"type": "message", "text": "Hi {{name}}"}
        }
    })
}

async fn malformed_json(store: TestStore) {
    let api = DemoApi::start().await.unwrap();
    let server = Running::start(support::config(&store, &api)).await;
    server.put_flow("hello", &hello_flow()).await;
    let first = server.start_conversation("hello", json!({})).await;
    let id = first["conversation_id"].as_str().unwrap().to_string();
    let before = rows(&store).await;

    for (path, method) in [
        (format!("/v1/conversations/{id}/answers"), Method::POST),
        ("/v1/flows/hello/conversations".to_string(), Method::POST),
        ("/v1/flows/other".to_string(), Method::PUT),
    ] {
        let (status, body) = server
            .send(
                server
                    .request(method.clone(), &path)
                    .header("content-type", "application/json")
                    .body(r#"{"text": "Ada""#),
            )
            .await;
        assert_eq!(
            (status, kind(&body)),
            (400, "malformed_json"),
            "{path}: {body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains("line 1"),
            "{body}"
        );
    }
    // JSON of the wrong shape is another kind.
    let (status, body) = server
        .post(
            &format!("/v1/conversations/{id}/answers"),
            &json!({"txt": "Ada"}),
        )
        .await;
    assert_eq!((status, kind(&body)), (400, "invalid_request"), "{body}");
    let (status, body) = server
        .post(
            "/v1/flows/hello/conversations",
            &json!({"properties": {"{bad}": "x"}}),
        )
        .await;
    assert_eq!((status, kind(&body)), (400, "invalid_request"), "{body}");
    // Not declared as JSON.
    let (status, body) = server
        .send(
            server
                .request(Method::POST, &format!("/v1/conversations/{id}/answers"))
                .header("content-type", "text/plain")
                .body(r#"{"text": "Ada"}"#),
        )
        .await;
    assert_eq!((status, kind(&body)), (415, "unsupported_media_type"));

    assert_eq!(rows(&store).await, before, "nothing was written");
    let (_, conv) = server.get(&format!("/v1/conversations/{id}")).await;
    assert_eq!(
        conv["status"], "waiting_for_input",
        "the conversation still waits"
    );
    server.stop().await;
}
both_stores!(malformed_json);

async fn unknown_flow(store: TestStore) {
    let api = DemoApi::start().await.unwrap();
    let server = Running::start(support::config(&store, &api)).await;
    let before = rows(&store).await;
    let (status, body) = server
        .post("/v1/flows/nope/conversations", &json!({}))
        .await;
    assert_eq!((status, kind(&body)), (404, "flow_not_found"));
    assert_eq!(server.get("/v1/flows/nope").await.0, 404);
    let (status, body) = server
        .send(server.request(Method::DELETE, "/v1/flows/nope"))
        .await;
    assert_eq!((status, kind(&body)), (404, "flow_not_found"));
    let (status, body) = server.answer("no-such-conversation", "x").await;
    assert_eq!((status, kind(&body)), (404, "conversation_not_found"));
    let (status, body) = server.get("/v1/no/such/route").await;
    assert_eq!((status, kind(&body)), (404, "not_found"));
    let (status, body) = server
        .send(server.request(Method::PATCH, "/v1/flows/x"))
        .await;
    assert_eq!((status, kind(&body)), (405, "method_not_allowed"));
    let (status, body) = server.put_flow("bad name", &hello_flow()).await;
    assert_eq!((status, kind(&body)), (400, "invalid_request"));
    assert_eq!(rows(&store).await, before);
    server.stop().await;
}
both_stores!(unknown_flow);

/// A flow with several problems: every one is listed with its block and
/// field, and nothing is stored (not even a path module is read).
async fn invalid_flow(store: TestStore) {
    let api = DemoApi::start().await.unwrap();
    let server = Running::start(support::config(&store, &api)).await;
    let missing = "ab".repeat(32);
    let flow = json!({
        "name": "broken",
        "start": "ask",
        "blocks": {
            "ask": {"type": "input", "prompt": "Hi {{name", "property": "name", "next": "nowhere"},
            "call": {"type": "rest_api", "method": "FETCH", "url": "http://x.test/"},
            "code": {"type": "code", "module": "/etc/passwd"},
            "code2": {"type": "code", "module": format!("sha256:{missing}")},
            "pick": {"type": "branch", "conditions": [{"when": "{{a}} sounds_like b", "next": "ask"}]},
            "odd": {"type": "wat"}
        }
    });
    let before = rows(&store).await;
    let (status, body) = server.put_flow("broken", &flow).await;
    assert_eq!((status, kind(&body)), (422, "invalid_flow"), "{body}");
    let problems: Vec<(String, String, String)> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["block"].as_str().unwrap_or("").to_string(),
                p["field"].as_str().unwrap_or("").to_string(),
                p["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("ask", "next", "unknown_target"),
        ("ask", "prompt", "template"),
        ("call", "", "fields"),
        ("code", "module", "module_path"),
        ("code2", "module", "module_not_found"),
        ("odd", "", "unknown_type"),
        ("pick", "conditions[0]", "condition"),
    ];
    for (block, field, kind) in expected {
        assert!(
            problems
                .iter()
                .any(|p| p == &(block.into(), field.into(), kind.into())),
            "missing {block}/{field}/{kind} in {problems:?}"
        );
    }
    assert_eq!(problems.len(), expected.len(), "{problems:?}");
    let text = body.to_string();
    assert!(!text.contains("root:"), "the path was not read: {text}");
    assert_eq!(server.get("/v1/flows/broken").await.0, 404);
    assert_eq!(rows(&store).await, before);
    server.stop().await;
}
both_stores!(invalid_flow);

async fn invalid_modules(store: TestStore) {
    let api = DemoApi::start().await.unwrap();
    let server = Running::start(support::config(&store, &api)).await;
    let before = rows(&store).await;

    let (status, body) = server.put_module(b"not wasm at all".to_vec()).await;
    assert_eq!((status, kind(&body)), (422, "invalid_module"), "{body}");
    assert_eq!(body["problems"][0]["kind"], "not_wasm");

    // Valid wasm that breaks ABI v1 three ways: an unknown import, no
    // `chatflow_run`, no memory export. Each is listed.
    let abi = wat::parse_str(
        r#"(module
             (import "env" "system" (func))
             (func (export "chatflow_abi_v1")))"#,
    )
    .unwrap();
    let (status, body) = server.put_module(abi).await;
    assert_eq!((status, kind(&body)), (422, "invalid_module"), "{body}");
    let problems = body["problems"].as_array().unwrap();
    assert!(problems.len() >= 3, "{body}");
    assert!(problems.iter().all(|p| p["kind"] == "abi"), "{body}");
    let text = body.to_string();
    for needle in ["env", "chatflow_run", "memory"] {
        assert!(text.contains(needle), "{needle} in {text}");
    }

    // Not declared as wasm.
    let (status, body) = server
        .send(
            server
                .request(Method::PUT, "/v1/modules")
                .header("content-type", "text/plain")
                .body("x"),
        )
        .await;
    assert_eq!((status, kind(&body)), (415, "unsupported_media_type"));
    let (status, body) = server.get("/v1/modules/xyz").await;
    assert_eq!((status, kind(&body)), (400, "invalid_request"));
    let (status, body) = server.get(&format!("/v1/modules/{}", "0".repeat(64))).await;
    assert_eq!((status, kind(&body)), (404, "module_not_found"));
    assert_eq!(rows(&store).await, before);
    server.stop().await;
}
both_stores!(invalid_modules);

async fn answer_to_a_finished_conversation(store: TestStore) {
    let api = DemoApi::start().await.unwrap();
    let server = Running::start(support::config(&store, &api)).await;
    server.put_flow("hello", &hello_flow()).await;
    let first = server.start_conversation("hello", json!({})).await;
    let id = first["conversation_id"].as_str().unwrap();
    let (_, done) = server.answer(id, "Ada").await;
    assert_eq!(done["status"], "completed");
    let before = rows(&store).await;
    let (status, body) = server.answer(id, "again").await;
    assert_eq!(
        (status, kind(&body)),
        (409, "conversation_finished"),
        "{body}"
    );
    assert_eq!(rows(&store).await, before);
    let (_, conv) = server.get(&format!("/v1/conversations/{id}")).await;
    assert_eq!(conv["turns"], 2);
    assert_eq!(conv["running"], false, "the lease was released");
    server.stop().await;
}
both_stores!(answer_to_a_finished_conversation);

/// A second answer while a turn runs gets 409 with Retry-After; the first
/// completes, and only it is stored.
async fn concurrent_answer(store: TestStore) {
    let api = DemoApi::start().await.unwrap();
    let gate = Gate::start().await;
    let server = Running::start(support::config(&store, &api)).await;
    server.put_flow("gated", &support::gated_flow(&gate)).await;
    let first = server.start_conversation("gated", json!({})).await;
    let id = first["conversation_id"].as_str().unwrap().to_string();

    let url = server.url(&format!("/v1/conversations/{id}/answers"));
    let in_flight = tokio::spawn(
        server
            .http
            .post(url.clone())
            .json(&json!({"text": "yes"}))
            .send(),
    );
    gate.wait_for(1).await;
    let before = rows(&store).await;
    let response = server
        .http
        .post(url)
        .json(&json!({"text": "no"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(kind(&body), "conversation_busy");
    assert_eq!(
        rows(&store).await,
        before,
        "the refused answer wrote nothing"
    );
    let (_, conv) = server.get(&format!("/v1/conversations/{id}")).await;
    assert_eq!(conv["running"], true);

    gate.open();
    let done = in_flight.await.unwrap().unwrap();
    assert_eq!(done.status(), 200);
    let done: Value = done.json().await.unwrap();
    assert_eq!(texts(&done), ["done: opened"]);
    let (_, conv) = server.get(&format!("/v1/conversations/{id}")).await;
    assert_eq!(conv["turns"], 2);
    assert_eq!(conv["properties"]["go"], "yes");
    assert_eq!(gate.arrived(), 1);
    server.stop().await;
}
both_stores!(concurrent_answer);

async fn huge_bodies(store: TestStore) {
    let api = DemoApi::start().await.unwrap();
    let server = Running::start(support::config(&store, &api).with_max_body_bytes(64 * 1024)).await;
    server.put_flow("hello", &hello_flow()).await;
    let first = server.start_conversation("hello", json!({})).await;
    let id = first["conversation_id"].as_str().unwrap();
    let before = rows(&store).await;
    let (status, body) = server.answer(id, &"x".repeat(100 * 1024)).await;
    assert_eq!((status, kind(&body)), (413, "body_too_large"), "{body}");
    let mut big_flow = hello_flow();
    big_flow["description"] = json!("y".repeat(100 * 1024));
    let (status, body) = server.put_flow("big", &big_flow).await;
    assert_eq!((status, kind(&body)), (413, "body_too_large"));
    // Modules have their own cap: the sandbox's (16 MiB by default).
    let (status, body) = server.put_module(vec![0; 17 << 20]).await;
    assert_eq!((status, kind(&body)), (413, "body_too_large"));
    assert_eq!(rows(&store).await, before);
    // A module between the two caps is read (and refused as not wasm).
    let (status, body) = server.put_module(vec![0; 100 * 1024]).await;
    assert_eq!((status, kind(&body)), (422, "invalid_module"));
    server.stop().await;
}
both_stores!(huge_bodies);

/// A flow sent to the API naming a module by path is refused, even when the
/// file exists: the server reads no file a client names.
#[tokio::test]
async fn module_paths_are_refused() {
    let store = TestStore::new(support::Kind::Sqlite).await.unwrap();
    let api = DemoApi::start().await.unwrap();
    let server = Running::start(support::config(&store, &api)).await;
    let real = chatflow_test_artifacts::examples::CRM_PROFILE;
    let flow = json!({
        "name": "by path",
        "start": "parse",
        "blocks": {"parse": {"type": "code", "module": real}}
    });
    let (status, body) = server.put_flow("by-path", &flow).await;
    assert_eq!((status, kind(&body)), (422, "invalid_flow"));
    assert_eq!(body["problems"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["problems"][0]["kind"], "module_path");
    assert_eq!(body["problems"][0]["block"], "parse");
    assert_eq!(store.count("modules").await, 0);
    server.stop().await;
}
