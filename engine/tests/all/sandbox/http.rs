//! HTTP from the guest against a real loopback server: allowed, denied by
//! policy, redirects returned unfollowed, call limit, response size cap,
//! timeouts, cancellation.

use std::time::{Duration, Instant};

use chatflow_engine::Properties;
use chatflow_engine::net::{HttpClient, NetPolicy};
use chatflow_engine::sandbox::{
    CancelToken, CodeModule, GuestMemoryError, LimitKind, Outcome, RunError, Sandbox, SandboxConfig,
};

use super::{IMPORTS, failed, ok, sandbox};
use crate::support::server::TestServer;

const HTTP_IMPORTS: &str = r#"
  (import "chatflow" "http_request" (func $http_request (param i32 i32) (result i32)))
  (import "chatflow" "http_response_status" (func $http_response_status (param i32) (result i32)))
  (import "chatflow" "http_response_headers" (func $http_response_headers (param i32 i32 i32) (result i32)))
  (import "chatflow" "http_response_body" (func $http_response_body (param i32 i32 i32) (result i32)))
"#;

/// Sends the request JSON in property `req`; stores the status (3 digits)
/// in `status`, the body in `body` and the headers in `headers`. Returns
/// the negative code of a failed call.
const FETCH: &str = r#"
  (data (i32.const 0) "reqstatusbodyheaders")
  (func (export "chatflow_run") (result i32)
    (local $n i32) (local $h i32) (local $s i32)
    (local.set $n (call $property_get (i32.const 0) (i32.const 3) (i32.const 1024) (i32.const 8192)))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (local.get $n))))
    (local.set $h (call $http_request (i32.const 1024) (local.get $n)))
    (if (i32.lt_s (local.get $h) (i32.const 0)) (then (return (local.get $h))))
    ;; status as three ASCII digits at 512
    (local.set $s (call $http_response_status (local.get $h)))
    (i32.store8 (i32.const 512) (i32.add (i32.const 48) (i32.div_u (local.get $s) (i32.const 100))))
    (i32.store8 (i32.const 513) (i32.add (i32.const 48) (i32.rem_u (i32.div_u (local.get $s) (i32.const 10)) (i32.const 10))))
    (i32.store8 (i32.const 514) (i32.add (i32.const 48) (i32.rem_u (local.get $s) (i32.const 10))))
    (drop (call $property_set (i32.const 3) (i32.const 6) (i32.const 512) (i32.const 3)))
    ;; body: ask for the length, then copy
    (local.set $n (call $http_response_body (local.get $h) (i32.const 0) (i32.const 0)))
    (drop (call $http_response_body (local.get $h) (i32.const 65536) (local.get $n)))
    (drop (call $property_set (i32.const 9) (i32.const 4) (i32.const 65536) (local.get $n)))
    (local.set $n (call $http_response_headers (local.get $h) (i32.const 16384) (i32.const 40000)))
    (drop (call $property_set (i32.const 13) (i32.const 7) (i32.const 16384) (local.get $n)))
    (i32.const 0))
"#;

fn module(sb: &Sandbox, body: &str) -> CodeModule {
    let wasm = wat::parse_str(format!(
        r#"(module {IMPORTS} {HTTP_IMPORTS}
             (memory (export "memory") 16)
             (func (export "chatflow_abi_v1"))
             {body})"#
    ))
    .unwrap();
    sb.load(&wasm).unwrap()
}

fn request(json: serde_json::Value) -> Properties {
    [("req", json.to_string())].into_iter().collect()
}

async fn fetch(sb: &Sandbox, req: serde_json::Value) -> Outcome {
    let m = module(sb, FETCH);
    sb.run(&m, &request(req), &sb.default_limits()).await
}

/// A sandbox whose client has the default policy: loopback denied.
fn strict_sandbox() -> Sandbox {
    Sandbox::new(
        SandboxConfig::default().with_max_concurrent_runs(4),
        HttpClient::new(NetPolicy::default()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn get_through_the_shared_client() {
    let server = TestServer::start().await;
    let sb = sandbox();
    let outcome = fetch(
        &sb,
        serde_json::json!({"method": "GET", "url": server.url("/json")}),
    )
    .await;
    assert_eq!(outcome.http_calls, 1);
    let output = ok(outcome);
    let get = |name| output.changes.get(name).flatten().unwrap_or_default();
    assert_eq!(get("status"), "200");
    assert_eq!(get("body"), r#"{"ok":true,"name":"Zoë"}"#);
    assert!(
        get("headers").contains("content-type: application/json\n"),
        "{}",
        get("headers")
    );
}

#[tokio::test]
async fn post_with_headers_and_body_goes_over_the_wire() {
    let server = TestServer::start().await;
    let sb = sandbox();
    let outcome = fetch(
        &sb,
        serde_json::json!({
            "method": "POST", "url": server.url("/echo?x=1"),
            "headers": [["Content-Type", "application/json"], ["X-Key", "abc"], ["X-Key", "def"]],
            "body": "{\"phone\":\"+44\"}", "timeout_ms": 2000
        }),
    )
    .await;
    let output = ok(outcome);
    let echo: serde_json::Value =
        serde_json::from_str(output.changes.get("body").flatten().unwrap()).unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/echo");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(echo["body"], "{\"phone\":\"+44\"}");
    let headers = echo["headers"].as_array().unwrap();
    let keys: Vec<_> = headers
        .iter()
        .filter(|h| h[0] == "x-key")
        .map(|h| h[1].clone())
        .collect();
    assert_eq!(keys, vec!["abc", "def"]);
}

/// The host never follows a redirect for a guest: whatever the status
/// (301, 302, 303, 307, 308), the guest gets the redirect itself, with its
/// `location`, and nothing is sent to that location. Whatever the guest
/// sends there next is a new request of its own, checked by the policy.
#[tokio::test]
async fn redirects_come_back_to_the_guest_unfollowed() {
    let first = TestServer::start().await;
    let second = TestServer::start().await;
    let sb = sandbox();
    let landed = second.url("/landed");
    let to: String = url::form_urlencoded::byte_serialize(landed.as_bytes()).collect();
    for code in [301, 302, 303, 307, 308] {
        let outcome = fetch(
            &sb,
            serde_json::json!({
                "method": "POST",
                "url": first.url(&format!("/redirect-to?url={to}&status_code={code}")),
                "headers": [["X-Api-Key", "k-secret"]],
                "body": "{\"card\":\"4111\"}"
            }),
        )
        .await;
        assert_eq!(outcome.http_calls, 1);
        let output = ok(outcome);
        let get = |name| output.changes.get(name).flatten().unwrap_or_default();
        assert_eq!(get("status"), code.to_string());
        assert!(
            get("headers").contains(&format!("location: {landed}\n")),
            "{}",
            get("headers")
        );
        let sent = first.requests().pop().unwrap();
        assert_eq!(sent.header("x-api-key"), ["k-secret"]);
        assert_eq!(sent.body, br#"{"card":"4111"}"#);
    }
    assert_eq!(first.hits(), 5);
    assert_eq!(second.hits(), 0, "nothing was sent to the location");
}

#[tokio::test]
async fn denied_by_policy_before_connecting() {
    let server = TestServer::start().await;
    let sb = strict_sandbox();
    for url in [
        server.url("/json"),
        "http://10.1.2.3/internal".to_string(),
        "http://169.254.169.254/latest/meta-data".to_string(),
        "http://[::1]:9/".to_string(),
        "file:///etc/passwd".to_string(),
    ] {
        let start = Instant::now();
        let outcome = fetch(&sb, serde_json::json!({"method": "GET", "url": url})).await;
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{url}: denied without connecting"
        );
        assert_eq!(outcome.http_calls, 1);
        let err = failed(&sb, outcome).await;
        match &err {
            RunError::HttpDenied { reason } => assert!(reason.contains("denied"), "{reason}"),
            other => panic!("{url}: {other:?}"),
        }
    }
    assert_eq!(server.hits(), 0, "nothing reached the server");
}

#[tokio::test]
async fn a_guest_that_handles_a_denial_succeeds() {
    let sb = strict_sandbox();
    // Tries a request, ignores the -4, reads last_error into `err`.
    let m = module(
        &sb,
        r#"(data (i32.const 0) "reqerr")
           (func (export "chatflow_run") (result i32)
             (local $n i32)
             (local.set $n (call $property_get (i32.const 0) (i32.const 3) (i32.const 1024) (i32.const 8192)))
             (if (i32.ne (call $http_request (i32.const 1024) (local.get $n)) (i32.const -4))
               (then (return (i32.const 100))))
             (local.set $n (call $last_error (i32.const 16384) (i32.const 4096)))
             (drop (call $property_set (i32.const 3) (i32.const 3) (i32.const 16384) (local.get $n)))
             (i32.const 0))"#,
    );
    let props = request(
        serde_json::json!({"method": "GET", "url": "http://10.0.0.1/secret?token=hunter2"}),
    );
    let output = ok(sb.run(&m, &props, &sb.default_limits()).await);
    let err = output.changes.get("err").flatten().unwrap();
    assert!(err.contains("denied by the network policy"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "query strings are never shown: {err}"
    );
}

#[tokio::test]
async fn call_limit() {
    let server = TestServer::start().await;
    let sb = sandbox();
    // Sends the same request three times.
    let m = module(
        &sb,
        r#"(data (i32.const 0) "req")
           (func (export "chatflow_run") (result i32)
             (local $n i32)
             (local.set $n (call $property_get (i32.const 0) (i32.const 3) (i32.const 1024) (i32.const 8192)))
             (drop (call $http_request (i32.const 1024) (local.get $n)))
             (drop (call $http_request (i32.const 1024) (local.get $n)))
             (drop (call $http_request (i32.const 1024) (local.get $n)))
             (i32.const 0))"#,
    );
    let props = request(serde_json::json!({"method": "GET", "url": server.url("/json")}));
    let limits = sb.default_limits().with_http_calls(2);
    let outcome = sb.run(&m, &props, &limits).await;
    assert_eq!(outcome.http_calls, 3, "the refused call is counted");
    let err = failed(&sb, outcome).await;
    assert!(
        matches!(
            err,
            RunError::Limit {
                which: LimitKind::HttpCalls,
                value: 2
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.hits(), 2);

    let limits = sb.default_limits().with_http_calls(3);
    ok(sb.run(&m, &props, &limits).await);
}

#[tokio::test]
async fn response_size_cap() {
    let server = TestServer::start().await;
    let sb = sandbox();
    let m = module(&sb, FETCH);
    let limits = sb.default_limits().with_http_response_bytes(1000);
    for path in ["/big/1001", "/endless"] {
        let props = request(serde_json::json!({"method": "GET", "url": server.url(path)}));
        let err = failed(&sb, sb.run(&m, &props, &limits).await).await;
        assert!(
            matches!(
                err,
                RunError::Limit {
                    which: LimitKind::HttpResponseBytes,
                    value: 1000
                }
            ),
            "{path}: {err:?}"
        );
    }
    let props = request(serde_json::json!({"method": "GET", "url": server.url("/big/1000")}));
    let output = ok(sb.run(&m, &props, &limits).await);
    assert_eq!(
        output.changes.get("body").flatten().map(str::len),
        Some(1000)
    );
}

#[tokio::test]
async fn waiting_on_http_counts_towards_the_wall_clock() {
    let server = TestServer::start().await;
    let sb = sandbox();
    let m = module(&sb, FETCH);
    let props = request(serde_json::json!({"method": "GET", "url": server.url("/slow")}));
    let limits = sb
        .default_limits()
        .with_wall_time(Duration::from_millis(200));
    let start = Instant::now();
    let outcome = sb.run(&m, &props, &limits).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let err = failed(&sb, outcome).await;
    assert!(matches!(err, RunError::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn a_request_timeout_is_a_code_the_guest_sees() {
    let server = TestServer::start().await;
    let sb = sandbox();
    let outcome = fetch(
        &sb,
        serde_json::json!({"method": "GET", "url": server.url("/slow"), "timeout_ms": 100}),
    )
    .await;
    let err = failed(&sb, outcome).await;
    assert!(
        matches!(err, RunError::GuestFailed { code: Some(-5), .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn connection_refused_and_bad_requests_are_codes() {
    let sb = sandbox();
    let port = crate::support::closed_port();
    let cases = [
        (
            serde_json::json!({"method": "GET", "url": format!("http://127.0.0.1:{port}/")}),
            -6,
        ),
        (serde_json::json!({"method": "GET"}), -2),
        (
            serde_json::json!({"method": "BREW", "url": "http://127.0.0.1/"}),
            -2,
        ),
        (serde_json::json!({"method": "GET", "url": "not a url"}), -2),
        (
            serde_json::json!({"method": "GET", "url": "http://127.0.0.1/", "headers": [["Bad Name", "x"]]}),
            -2,
        ),
        (
            serde_json::json!({"method": "GET", "url": "http://127.0.0.1/", "headers": [["X", "a\nb"]]}),
            -2,
        ),
        (
            serde_json::json!({"method": "GET", "url": "http://127.0.0.1/", "timeout_ms": 0}),
            -2,
        ),
        (
            serde_json::json!({"method": "GET", "url": "http://127.0.0.1/", "surprise": 1}),
            -2,
        ),
    ];
    for (req, want) in cases {
        let err = failed(&sb, fetch(&sb, req.clone()).await).await;
        assert!(
            matches!(err, RunError::GuestFailed { code: Some(c), .. } if c == want),
            "{req}: {err:?}"
        );
    }
}

#[tokio::test]
async fn bad_handles() {
    let sb = sandbox();
    for call in [
        "(call $http_response_status (i32.const 0))",
        "(call $http_response_status (i32.const -1))",
        "(call $http_response_headers (i32.const 3) (i32.const 0) (i32.const 0))",
        "(call $http_response_body (i32.const 0) (i32.const 0) (i32.const 0))",
    ] {
        let m = module(
            &sb,
            &format!(r#"(func (export "chatflow_run") (result i32) {call})"#),
        );
        let err = failed(
            &sb,
            sb.run(&m, &Properties::new(), &sb.default_limits()).await,
        )
        .await;
        assert!(
            matches!(err, RunError::GuestFailed { code: Some(-7), .. }),
            "{call}: {err:?}"
        );
    }
}

#[tokio::test]
async fn out_of_bounds_pointers_to_the_http_imports() {
    let sb = sandbox();
    // 16 pages = 1 MiB of memory.
    for (import, call) in [
        (
            "http_request",
            "(drop (call $http_request (i32.const 1048570) (i32.const 100)))",
        ),
        (
            "http_response_headers",
            "(drop (call $http_response_headers (i32.const 0) (i32.const 1048570) (i32.const 100)))",
        ),
        (
            "http_response_body",
            "(drop (call $http_response_body (i32.const 0) (i32.const 1048570) (i32.const 100)))",
        ),
    ] {
        let m = module(
            &sb,
            &format!(r#"(func (export "chatflow_run") (result i32) {call} (i32.const 0))"#),
        );
        let err = failed(
            &sb,
            sb.run(&m, &Properties::new(), &sb.default_limits()).await,
        )
        .await;
        assert!(
            matches!(&err, RunError::GuestMemory { import: got, source: GuestMemoryError::OutOfBounds { .. } } if *got == import),
            "{import}: {err:?}"
        );
    }
}

/// The request runs as a task of its own (so it is not polled on the run's
/// fiber stack); cancelling the run must abort it, not leave it running:
/// the connection is closed and the server stops sending.
#[tokio::test]
async fn cancel_stops_the_download() {
    let server = TestServer::start().await;
    let sb = sandbox();
    let m = module(&sb, FETCH);
    let props = request(serde_json::json!({"method": "GET", "url": server.url("/slow-body")}));
    let cancel = CancelToken::new();
    let limits = sb.default_limits();
    let run = sb.run_with_cancel(&m, &props, &limits, &cancel);
    let watch = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let open = server.open_slow_bodies();
        cancel.cancel();
        open
    };
    let (outcome, open_before) = tokio::join!(run, watch);
    assert_eq!(open_before, 1, "the download had started");
    let err = failed(&sb, outcome).await;
    assert!(matches!(err, RunError::Cancelled), "{err:?}");
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.open_slow_bodies() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.open_slow_bodies(), 0, "the download goes on");
}

#[tokio::test]
async fn cancel_while_waiting_on_http() {
    let server = TestServer::start().await;
    let sb = sandbox();
    let m = module(&sb, FETCH);
    let props = request(serde_json::json!({"method": "GET", "url": server.url("/slow")}));
    let cancel = CancelToken::new();
    let canceller = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            cancel.cancel();
        })
    };
    let start = Instant::now();
    let outcome = sb
        .run_with_cancel(&m, &props, &sb.default_limits(), &cancel)
        .await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    canceller.await.unwrap();
    let err = failed(&sb, outcome).await;
    assert!(matches!(err, RunError::Cancelled), "{err:?}");
}
