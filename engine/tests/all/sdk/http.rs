//! The SDK's HTTP builder (`chatflow_sdk::http`) in the sandbox against a
//! real loopback server (`support::server`, whose fallback route echoes
//! the request it received): what goes over the wire, what the guest reads
//! back, and each typed error a guest can handle (denied by the network
//! policy, timeout, connection refused, invalid request), plus the
//! `HttpDenied` root cause and the call limit, which end the run.

use chatflow_engine::net::{HttpClient, NetPolicy};
use chatflow_engine::sandbox::{LimitKind, RunError};
use chatflow_test_artifacts::SDK_HTTP;
use serde_json::Value;

use super::{failed, ok, props, run, run_with, sandbox, sandbox_for, set};
use crate::support::closed_port;
use crate::support::server::TestServer;

#[tokio::test]
async fn the_builder_sends_what_it_says() {
    let server = TestServer::start().await;
    let sb = sandbox();
    let url = server.url("/echo/path");
    let p = props([
        ("url", url.as_str()),
        ("method", "POST"),
        ("query", "q=a b&c/d=é"),
        ("header", "X-Test: yes"),
        ("json_body", r#"{"n": 1, "s": "Zoë"}"#),
    ]);
    let out = ok(run(&sb, SDK_HTTP, &p).await);
    assert_eq!(set(&out, "status"), Some("200"));
    assert_eq!(set(&out, "content_type"), Some("application/json"));
    let echo: Value = serde_json::from_str(set(&out, "body").unwrap()).unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/echo/path");
    // Key and value percent-encoded by the SDK (space, &, /, = and é).
    assert_eq!(echo["query"], "q=a%20b%26c%2Fd%3D%C3%A9");
    assert_eq!(echo["body"], r#"{"n":1,"s":"Zoë"}"#);
    let headers: Vec<(String, String)> = serde_json::from_value(echo["headers"].clone()).unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("x-test"), Some("yes"));
    assert_eq!(header("content-type"), Some("application/json"));
    assert_eq!(header("host"), Some(server.addr.to_string().as_str()));
    // The response headers as the guest read them: lower-case `name: value`.
    let lines = set(&out, "headers").unwrap();
    assert!(lines.contains("content-type: application/json"), "{lines}");
    let count: usize = set(&out, "header_count").unwrap().parse().unwrap();
    assert_eq!(count, lines.lines().count());
    assert!(count >= 2, "{lines}");
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn methods_text_bodies_and_non_ascii_responses() {
    let server = TestServer::start().await;
    let sb = sandbox();
    let url = server.url("/x");
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let p = props([("url", url.as_str()), ("method", method), ("body", "héllo")]);
        let out = ok(run(&sb, SDK_HTTP, &p).await);
        let echo: Value = serde_json::from_str(set(&out, "body").unwrap()).unwrap();
        assert_eq!(echo["method"], method);
        assert_eq!(echo["body"], "héllo", "{method}");
    }
    let p = props([("url", url.as_str()), ("method", "HEAD")]);
    let out = ok(run(&sb, SDK_HTTP, &p).await);
    assert_eq!(set(&out, "status"), Some("200"));
    assert_eq!(set(&out, "body"), Some(""));

    let json = server.url("/json");
    let out = ok(run(&sb, SDK_HTTP, &props([("url", json.as_str())])).await);
    assert_eq!(set(&out, "body"), Some(r#"{"ok":true,"name":"Zoë"}"#));
    // A status the guest reads, not an error.
    let missing = server.url("/status/404");
    let out = ok(run(&sb, SDK_HTTP, &props([("url", missing.as_str())])).await);
    assert_eq!(set(&out, "status"), Some("404"));
    assert_eq!(set(&out, "body"), Some("status 404"));
}

/// Each error a guest can handle, as the typed `http::Error` it sees (the
/// guest stores its kind and message and succeeds).
#[tokio::test]
async fn typed_errors_in_the_guest() {
    let server = TestServer::start().await;
    let sb = sandbox();
    let closed = format!("http://127.0.0.1:{}/", closed_port());
    let slow = server.url("/slow");
    let other_host = format!("http://localhost:{}/", server.port());
    let ok_url = server.url("/");
    // (properties, the error kind the guest sees, a word its message has)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case<'_>] = &[
        // Only 127.0.0.1 is allowed: a host name is not, even one that
        // resolves to it.
        (
            &[("url", &other_host)],
            "denied",
            "not in the allowed hosts",
        ),
        (&[("url", "ftp://127.0.0.1/")], "denied", "scheme"),
        (
            &[("url", &slow), ("timeout_ms", "200")],
            "timeout",
            "timed out",
        ),
        (&[("url", &closed)], "connection", "could not connect"),
        (&[("url", "::not a url::")], "invalid", "url"),
        (
            &[("url", &ok_url), ("header", "Host: evil.example")],
            "invalid",
            "host",
        ),
        (
            &[("url", &ok_url), ("header", "Bad Name: x")],
            "invalid",
            "header",
        ),
        (
            &[("url", &ok_url), ("timeout_ms", "0")],
            "invalid",
            "timeout",
        ),
    ];
    for (p, kind, needle) in cases {
        let outcome = run(&sb, SDK_HTTP, &props(p.iter().copied())).await;
        let out = ok(outcome);
        assert_eq!(set(&out, "error_kind"), Some(*kind), "{p:?}");
        let message = set(&out, "error_message").unwrap();
        assert!(
            message.to_lowercase().contains(needle),
            "{p:?}: {message:?} should mention {needle:?}"
        );
        assert!(set(&out, "status").is_none());
    }
    assert_eq!(server.hits(), 1, "only the slow request reached the server");
}

/// With the default policy (loopback denied) the request never leaves:
/// the guest sees `Denied`; when it then fails, the run's error is the
/// denial (what the operator must act on), with the guest's message kept,
/// and nothing is committed. The URL is shown without its query string.
#[tokio::test]
async fn denied_by_policy_is_the_root_cause() {
    let server = TestServer::start().await;
    let sb = sandbox_for(HttpClient::new(NetPolicy::default()).unwrap());
    let url = server.url("/private?token=s3cret");
    let out = ok(run(&sb, SDK_HTTP, &props([("url", url.as_str())])).await);
    assert_eq!(set(&out, "error_kind"), Some("denied"));
    let message = set(&out, "error_message").unwrap();
    assert!(message.contains("loopback"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");

    let p = props([("url", url.as_str()), ("fail_on_error", "true")]);
    let outcome = run(&sb, SDK_HTTP, &p).await;
    match failed(&outcome) {
        RunError::HttpDenied { reason } => {
            assert!(reason.contains("/private"), "{reason}");
            assert!(!reason.contains("s3cret"), "{reason}");
        }
        other => panic!("expected HttpDenied, got {other:?}"),
    }
    let guest = outcome.fail_message.as_deref().unwrap();
    assert!(guest.contains("denied"), "{guest}");
    assert_eq!(server.hits(), 0, "nothing reached the server");
}

#[tokio::test]
async fn one_call_over_the_limit_ends_the_run() {
    let server = TestServer::start().await;
    let sb = sandbox();
    let url = server.url("/");
    let p = props([("url", url.as_str()), ("repeat", "3")]);
    let limits = sb.default_limits().with_http_calls(3);
    ok(run_with(&sb, SDK_HTTP, &p, &limits).await);
    let limits = sb.default_limits().with_http_calls(2);
    let outcome = run_with(&sb, SDK_HTTP, &p, &limits).await;
    assert!(matches!(
        failed(&outcome),
        RunError::Limit {
            which: LimitKind::HttpCalls,
            value: 2
        }
    ));
    assert_eq!(outcome.http_calls, 3);
    assert_eq!(server.hits(), 5);
}

/// Response headers as the guest reads them: names in lower case, the
/// values of a repeated name together where the name first appeared, bad
/// bytes replaced; a body that is not UTF-8 is an error for `text()` naming
/// the request.
#[tokio::test]
async fn response_headers_and_bodies_as_the_guest_reads_them() {
    use axum::http::{HeaderName, HeaderValue};
    use axum::response::IntoResponse;

    let app = axum::Router::new().route(
        "/h",
        axum::routing::get(|| async {
            let mut response = "ok".into_response();
            let headers = response.headers_mut();
            let set_cookie = HeaderName::from_static("set-cookie");
            headers.append(&set_cookie, HeaderValue::from_static("a=1"));
            headers.append("X-Later", HeaderValue::from_static("later"));
            headers.append(&set_cookie, HeaderValue::from_static("b=2"));
            headers.append("x-bytes", HeaderValue::from_bytes(b"caf\xe9").unwrap());
            response
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let sb = sandbox();
    let url = format!("http://{addr}/h");
    let out = ok(run(&sb, SDK_HTTP, &props([("url", url.as_str())])).await);
    let headers: Vec<&str> = set(&out, "headers").unwrap().lines().collect();
    let cookies: Vec<usize> = headers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("set-cookie: "))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(cookies.len(), 2, "{headers:?}");
    assert_eq!(
        cookies[1],
        cookies[0] + 1,
        "repeated values together: {headers:?}"
    );
    assert_eq!(headers[cookies[0]], "set-cookie: a=1");
    assert_eq!(headers[cookies[1]], "set-cookie: b=2");
    let later = headers.iter().position(|l| *l == "x-later: later").unwrap();
    assert!(later > cookies[1], "{headers:?}");
    assert!(headers.contains(&"x-bytes: caf\u{fffd}"), "{headers:?}");
    server.abort();

    // ISO-8859-1 bytes: `text()` refuses them (the guest reads `bytes()`).
    let latin1 = TestServer::start().await;
    let url = latin1.url("/latin1");
    let outcome = run(&sb, SDK_HTTP, &props([("url", url.as_str())])).await;
    match failed(&outcome) {
        RunError::GuestFailed { message, .. } => assert_eq!(
            message,
            &format!("response body of GET {url} is not valid UTF-8")
        ),
        other => panic!("{other:?}"),
    }
}
