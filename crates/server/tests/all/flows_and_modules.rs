//! Storing flows and modules: versions, what conversations in progress
//! run, listing and deleting.

use chatflow_demo_api::DemoApi;
use reqwest::Method;
use serde_json::json;

use crate::both_stores;
use crate::support::{self, Running, TestStore, texts};

async fn versions_and_modules(store: TestStore) {
    let api = DemoApi::start().await.unwrap();
    let server = Running::start(support::config(&store, &api)).await;

    let bytes = std::fs::read(chatflow_test_artifacts::examples::CRM_PROFILE).unwrap();
    let (status, module) = server.put_module(bytes.clone()).await;
    assert_eq!(status, 201, "{module}");
    let sha = module["sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    assert_eq!(module["size"], bytes.len());
    assert!(
        module["exports"]
            .as_array()
            .unwrap()
            .contains(&json!("chatflow_run"))
    );
    let (status, again) = server.put_module(bytes).await;
    assert_eq!((status, &again), (200, &module));
    let (status, read) = server.get(&format!("/v1/modules/sha256:{sha}")).await;
    assert_eq!((status, &read), (200, &module));

    // Version 1 asks two questions; version 2 none.
    let v1 = json!({
        "name": "Greeter", "start": "ask",
        "blocks": {
            "ask": {"type": "input", "prompt": "Name?", "property": "name", "next": "ask2"},
            "ask2": {"type": "input", "prompt": "City?", "property": "city", "next": "bye"},
            "bye": {"type": "message", "text": "Bye {{name}} from {{city}}"},
            "orphan": {"type": "message", "text": "never"}
        }
    });
    let (status, put) = server.put_flow("greeter", &v1).await;
    assert_eq!(status, 201, "{put}");
    assert_eq!(put["created"], true);
    assert_eq!(put["title"], "Greeter");
    assert_eq!(
        put["warnings"],
        json!(["block \"orphan\" is unreachable from the start block"])
    );
    let v1_version = put["version"].as_i64().unwrap();
    let (status, same) = server.put_flow("greeter", &v1).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&same["changed"], &same["version"]),
        (&json!(false), &put["version"])
    );

    let first = server.start_conversation("greeter", json!({})).await;
    let id = first["conversation_id"].as_str().unwrap();
    let (_, turn) = server.answer(id, "Ada").await;
    assert_eq!(texts(&turn), ["City?"]);

    let v2 = json!({
        "name": "Greeter", "start": "hi",
        "blocks": {"hi": {"type": "message", "text": "Hi!"}}
    });
    let (status, put2) = server.put_flow("greeter", &v2).await;
    assert_eq!(status, 200);
    assert_eq!(put2["changed"], true);
    assert!(put2["version"].as_i64().unwrap() > v1_version);
    let (_, read) = server.get("/v1/flows/greeter").await;
    assert_eq!(read["flow"], v2);
    assert_eq!(read["version"], put2["version"]);

    // The conversation in progress keeps its version; new ones get v2.
    let (_, turn) = server.answer(id, "London").await;
    assert_eq!(texts(&turn), ["Bye Ada from London"]);
    let (_, conv) = server.get(&format!("/v1/conversations/{id}")).await;
    assert_eq!(conv["flow_version"], v1_version);
    let fresh = server.start_conversation("greeter", json!({})).await;
    assert_eq!(texts(&fresh), ["Hi!"]);

    let (_, list) = server.get("/v1/flows").await;
    assert_eq!(list["flows"].as_array().unwrap().len(), 1);
    assert_eq!(list["flows"][0]["name"], "greeter");
    assert_eq!(list["flows"][0]["title"], "Greeter");

    // Deleted: no new conversations; the versions stay for the old ones.
    let second = server.start_conversation("greeter", json!({})).await;
    let (status, _) = server
        .send(server.request(Method::DELETE, "/v1/flows/greeter"))
        .await;
    assert_eq!(status, 204);
    let (status, body) = server
        .post("/v1/flows/greeter/conversations", &json!({}))
        .await;
    assert_eq!(
        (status, body["kind"].as_str()),
        (404, Some("flow_not_found"))
    );
    assert_eq!(second["status"], "completed");
    assert_eq!(store.count("flow_versions").await, 2);
    server.stop().await;
}
both_stores!(versions_and_modules);
