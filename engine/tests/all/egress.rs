//! A pluggable egress ([`Egress`]): both blocks' HTTP goes through the
//! operator's implementation after the policy has allowed it, and the
//! engine still enforces what it promises around it (the policy's URL
//! rules before, the body cap after). The egress here records what it is
//! asked and answers from a table, so no socket is opened at all.

use std::sync::{Arc, Mutex};

use chatflow_engine::net::{
    DenyReason, Egress, EgressError, EgressFuture, EgressRequest, EgressResponse, HttpClient,
    Method, NetError, NetPolicy, Request, StatusCode,
};
use chatflow_engine::{Engine, EngineConfig, Properties, TurnStatus};

/// Answers every request with `body` (status 200), or fails with `fail`,
/// and records the requests.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<EgressRequest>>,
    body: String,
    fail: Option<String>,
}

impl Recorder {
    fn answering(body: &str) -> Arc<Recorder> {
        Arc::new(Recorder {
            body: body.into(),
            ..Recorder::default()
        })
    }

    fn urls(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.url.to_string())
            .collect()
    }
}

impl Egress for Recorder {
    fn send(&self, request: EgressRequest) -> EgressFuture<'_> {
        self.seen.lock().unwrap().push(request);
        Box::pin(async move {
            match &self.fail {
                Some(message) => Err(EgressError::from(message.clone())),
                None => Ok(EgressResponse::new(StatusCode::OK, self.body.clone())),
            }
        })
    }
}

fn policy() -> NetPolicy {
    let mut policy = NetPolicy::default();
    policy.allow_host("api.example.com").unwrap();
    policy
}

#[tokio::test]
async fn requests_go_through_the_egress_after_the_policy() {
    let recorder = Recorder::answering(r#"{"tier": "gold"}"#);
    let client = HttpClient::with_egress(policy(), recorder.clone()).unwrap();

    let request = Request::new(
        Method::POST,
        "https://api.example.com/v1/profiles?key=secret"
            .parse()
            .unwrap(),
    )
    .header("X-Api-Key", "k-123")
    .unwrap()
    .body("{}")
    .max_response_bytes(1024);
    let response = client.send(request).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.text(), r#"{"tier": "gold"}"#);
    {
        let seen = recorder.seen.lock().unwrap();
        let [sent] = seen.as_slice() else {
            panic!("{seen:?}")
        };
        assert_eq!(sent.method, Method::POST);
        assert_eq!(sent.headers["x-api-key"], "k-123");
        assert_eq!(sent.body.as_deref(), Some(&b"{}"[..]));
        assert_eq!(sent.max_response_bytes, 1024);
        assert_eq!(sent.timeout, policy().timeout);
    }

    // Refused by the policy: the egress never sees it.
    for url in [
        "https://evil.example.net/",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
    ] {
        let err = client
            .send(Request::new(Method::GET, url.parse().unwrap()))
            .await
            .unwrap_err();
        assert!(matches!(err, NetError::Denied { .. }), "{url}: {err:?}");
    }
    assert_eq!(recorder.urls().len(), 1);
}

#[tokio::test]
async fn the_body_cap_and_errors_hold_whatever_the_egress_does() {
    // An egress that ignores the cap: the engine refuses the body anyway.
    let recorder = Recorder::answering(&"x".repeat(2048));
    let client = HttpClient::with_egress(policy(), recorder).unwrap();
    let url: url::Url = "https://api.example.com/big".parse().unwrap();
    let err = client
        .send(Request::new(Method::GET, url.clone()).max_response_bytes(1024))
        .await
        .unwrap_err();
    assert!(
        matches!(err, NetError::BodyTooLarge { limit: 1024, .. }),
        "{err:?}"
    );

    // Its failure is a typed error with its message as the source.
    let failing = Arc::new(Recorder {
        fail: Some("proxy said no".into()),
        ..Recorder::default()
    });
    let client = HttpClient::with_egress(policy(), failing).unwrap();
    let err = client
        .send(Request::new(Method::GET, url))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "egress");
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        "proxy said no"
    );
}

#[test]
fn check_address_is_the_resolvers_rule() {
    let policy = NetPolicy::default();
    assert!(
        policy
            .check_address("93.184.216.34".parse().unwrap())
            .is_ok()
    );
    for ip in ["127.0.0.1", "10.0.0.1", "169.254.169.254", "fd00:ec2::254"] {
        assert!(
            matches!(
                policy.check_address(ip.parse().unwrap()),
                Err(DenyReason::Address { .. })
            ),
            "{ip}"
        );
    }
}

/// A flow whose REST API block and Code block both call out: both go
/// through the engine's egress, and a block whose host the policy refuses
/// never reaches it.
#[tokio::test]
async fn both_blocks_of_a_flow_use_the_engine_egress() {
    let recorder = Recorder::answering(r#"{"tier": "gold"}"#);
    let engine = Engine::new(
        EngineConfig::default()
            .with_net(policy())
            .with_egress(recorder.clone()),
    )
    .unwrap();
    let request = r#"{"method":"GET","url":"https://api.example.com/orders"}"#;
    // http_request, then property_set("status", "ok") when it answered 200.
    let code = wat::parse_str(format!(
        r#"(module
          (import "chatflow" "http_request" (func $req (param i32 i32) (result i32)))
          (import "chatflow" "http_response_status" (func $status (param i32) (result i32)))
          (import "chatflow" "property_set" (func $set (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 0) "status") (data (i32.const 16) "ok")
          (data (i32.const 64) {request:?})
          (func (export "chatflow_abi_v1"))
          (func (export "chatflow_run") (result i32) (local $h i32)
            (local.set $h (call $req (i32.const 64) (i32.const {len})))
            (if (i32.lt_s (local.get $h) (i32.const 0)) (then (return (i32.const 1))))
            (if (i32.ne (call $status (local.get $h)) (i32.const 200)) (then (return (i32.const 2))))
            (drop (call $set (i32.const 0) (i32.const 6) (i32.const 16) (i32.const 2)))
            (i32.const 0)))"#,
        len = request.len()
    ))
    .unwrap();
    let flow = engine
        .flow_loader()
        .module("orders.wasm", code)
        .load_str(
            "egress.json",
            r#"{"name": "egress", "start": "elsewhere", "blocks": {
                "elsewhere": {"type": "rest_api", "method": "GET", "ignore_error": true,
                              "url": "https://evil.example.net/steal", "next": "profile"},
                "profile": {"type": "rest_api", "method": "GET",
                            "url": "https://api.example.com/profiles/{{id}}", "next": "orders"},
                "orders": {"type": "code", "module": "orders.wasm"}
            }}"#,
            std::path::Path::new("."),
        )
        .unwrap();
    let props: Properties = [("id", "42")].into_iter().collect();
    let mut conversation = engine.start(&flow, props);
    let turn = engine.run(&flow, &mut conversation).await;
    assert_eq!(turn.status, TurnStatus::Completed, "{:?}", turn.error);
    assert_eq!(
        conversation.properties.get("API Response"),
        Some(r#"{"tier": "gold"}"#)
    );
    assert_eq!(conversation.properties.get("status"), Some("ok"));
    assert_eq!(
        recorder.urls(),
        [
            "https://api.example.com/profiles/42",
            "https://api.example.com/orders"
        ]
    );
    let denied = turn
        .trace
        .iter()
        .find(|s| s.block == "elsewhere")
        .and_then(|s| s.error.clone())
        .unwrap();
    assert!(denied.contains("denied by the network policy"), "{denied}");
}
