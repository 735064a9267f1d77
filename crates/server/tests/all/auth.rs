//! Bearer tokens, the loopback rule without them, and the probes anyone may
//! read.

use std::net::SocketAddr;

use chatflow_demo_api::DemoApi;
use chatflow_server::{ServeError, Server};
use reqwest::Method;
use serde_json::Value;

use crate::support::{self, Kind, Running, TestStore};

const TOKEN: &str = "test-token-0123456789abcdef";

#[tokio::test]
async fn missing_or_wrong_token() {
    let store = TestStore::new(Kind::Sqlite).await.unwrap();
    let api = DemoApi::start().await.unwrap();
    let server = Running::start(
        support::config(&store, &api)
            .with_tokens(vec!["other-token-0123456789".into(), TOKEN.into()]),
    )
    .await;
    let http = reqwest::Client::new();
    for (what, req) in [
        ("no token", http.get(server.url("/v1/flows"))),
        (
            "wrong token",
            http.get(server.url("/v1/flows"))
                .bearer_auth("nope-nope-nope-nope"),
        ),
        (
            "a prefix of the token",
            http.get(server.url("/v1/flows")).bearer_auth(&TOKEN[..20]),
        ),
        (
            "another scheme",
            http.get(server.url("/v1/flows"))
                .header("authorization", format!("Basic {TOKEN}")),
        ),
        ("metrics without a token", http.get(server.url("/metrics"))),
        (
            "a write without a token",
            http.put(server.url("/v1/flows/x"))
                .header("content-type", "application/json")
                .body("{}"),
        ),
    ] {
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 401, "{what}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"chatflow\"",
            "{what}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["kind"], "unauthorized", "{what}");
    }
    assert_eq!(
        store.count("flow_versions").await,
        0,
        "the write was refused"
    );
    // Either configured token works, in any case of the scheme.
    let ok = http
        .get(server.url("/v1/flows"))
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let metrics = server
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    // Probes and the API description need no token.
    for open in ["/healthz", "/readyz", "/v1/openapi.json"] {
        let response = http.get(server.url(open)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{open}");
    }
    // 401s are counted by kind.
    let text = server
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("chatflow_errors_total{kind=\"unauthorized\"} 6"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn without_a_token_only_loopback() {
    let store = TestStore::new(Kind::Sqlite).await.unwrap();
    let api = DemoApi::start().await.unwrap();
    let everywhere = support::config(&store, &api).with_listen(SocketAddr::from(([0, 0, 0, 0], 0)));
    match Server::bind(everywhere).await {
        Err(ServeError::NoToken { addr }) => assert!(addr.ip().is_unspecified()),
        Err(other) => panic!("expected NoToken, got {other}"),
        Ok(_) => panic!("bound 0.0.0.0 without a token"),
    }
    let weak = support::config(&store, &api).with_tokens(vec!["short".into()]);
    assert!(matches!(
        Server::bind(weak).await,
        Err(ServeError::WeakToken { len: 5, min: 16 })
    ));

    // On loopback without a token: requests must name a loopback host, so
    // a web page cannot reach the server by rebinding its own name.
    let server = Running::start(support::config(&store, &api)).await;
    let http = reqwest::Client::new();
    let rebound = http
        .get(server.url("/v1/flows"))
        .header("host", "evil.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    let body: Value = rebound.json().await.unwrap();
    assert_eq!(body["kind"], "forbidden_host");
    let local = http
        .get(server.url("/v1/flows"))
        .header("host", format!("localhost:{}", server.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), 200);
    assert_eq!(server.get("/v1/flows").await.0, 200);
    server.stop().await;
}
