//! The REST API block against a real server on 127.0.0.1: what goes over
//! the wire, redirects, and the outcome rules (ignore error, stale
//! response removed, nothing committed on stop).

use std::time::Duration;

use chatflow_engine::Properties;
use chatflow_engine::net::{
    AddressClass, DenyReason, HttpClient, NetError, NetPolicy, StatusCode, TimeoutPhase,
};
use chatflow_engine::rest::{MAX_REDIRECTS, RestConfig, RestError, RestOutcome};
use chatflow_engine::template::RenderError;
use serde_json::{Value, json};

use crate::support::server::TestServer;
use crate::support::{closed_port, loopback_client, loopback_policy};

fn config(value: Value) -> RestConfig {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{value}: {e}"))
}

async fn run(client: &HttpClient, value: Value, props: &Properties) -> RestOutcome {
    config(value)
        .compile()
        .unwrap()
        .execute(client, props)
        .await
}

/// The echo the server sent back, from the committed response property.
fn echoed(outcome: &RestOutcome) -> Value {
    assert!(
        outcome.error.is_none(),
        "unexpected error: {:?}",
        outcome.error
    );
    let body = outcome
        .changes
        .get("API Response")
        .flatten()
        .expect("API Response set");
    serde_json::from_str(body).unwrap()
}

fn header_values<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str().unwrap())
        .collect()
}

fn props(pairs: &[(&str, &str)]) -> Properties {
    pairs.iter().copied().collect()
}

#[tokio::test]
async fn each_method_succeeds_and_stores_the_body() {
    let server = TestServer::start().await;
    let client = loopback_client();
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
        let outcome = run(
            &client,
            json!({"method": method, "url": server.url("/thing"), "body": [{"name": "m", "value": method}]}),
            &Properties::new(),
        )
        .await;
        let echo = echoed(&outcome);
        assert_eq!(echo["method"], method);
        assert_eq!(echo["body"], format!(r#"{{"m":"{method}"}}"#));
        assert_eq!(outcome.status, Some(StatusCode::OK));
        assert!(!outcome.stop);
        assert!(outcome.duration > Duration::ZERO);
        assert_eq!(outcome.changes.len(), 1, "only API Response is written");
    }
    let head = run(
        &client,
        json!({"method": "HEAD", "url": server.url("/json")}),
        &Properties::new(),
    )
    .await;
    assert!(head.error.is_none());
    assert_eq!(head.changes.get("API Response"), Some(Some("")));
}

/// Hostile values cannot change the path, add query parameters, inject
/// headers or JSON keys.
#[tokio::test]
async fn templating_and_encoding_with_hostile_values() {
    let server = TestServer::start().await;
    let client = loopback_client();
    let p = props(&[
        ("id", "../admin?role=root#x"),
        ("q", "a&b=c d+é"),
        ("qn", "na me"),
        ("key", "k-123"),
        ("name", "\"}, \"admin\": true, \"x\": {\""),
        ("note", "line1\nline2 & more=yes"),
    ]);
    let outcome = run(
        &client,
        json!({
            "method": "POST",
            "url": server.url("/users/{{id}}/orders?source=bot&tag={{q}}"),
            "headers": [
                {"name": "X-Key", "value": "{{key}}"},
                {"name": "X-Multi", "value": "one"},
                {"name": "X-Multi", "value": "two {{key}}"},
                {"name": "Accept", "value": "application/json"},
            ],
            "query": [{"name": "q", "value": "{{q}}"}, {"name": "{{qn}}", "value": "{{id}}"}],
            "body": [{"name": "name", "value": "{{name}}"}, {"name": "note", "value": "{{note}}"}],
        }),
        &p,
    )
    .await;
    let echo = echoed(&outcome);
    assert_eq!(echo["path"], "/users/..%2Fadmin%3Frole%3Droot%23x/orders");
    assert_eq!(
        echo["query"],
        "source=bot&tag=a%26b%3Dc+d%2B%C3%A9&q=a%26b%3Dc+d%2B%C3%A9&na+me=..%2Fadmin%3Frole%3Droot%23x"
    );
    assert_eq!(header_values(&echo, "x-key"), ["k-123"]);
    assert_eq!(header_values(&echo, "x-multi"), ["one", "two k-123"]);
    assert_eq!(header_values(&echo, "content-type"), ["application/json"]);
    let body: Value = serde_json::from_str(echo["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"name": "\"}, \"admin\": true, \"x\": {\"", "note": "line1\nline2 & more=yes"}),
        "exactly two string fields"
    );

    let form = run(
        &client,
        json!({
            "method": "PUT",
            "url": server.url("/form"),
            "body": [{"name": "note", "value": "{{note}}"}, {"name": "note", "value": "{{q}}"}],
            "body_encoding": "form",
        }),
        &p,
    )
    .await;
    let echo = echoed(&form);
    assert_eq!(
        echo["body"],
        "note=line1%0Aline2+%26+more%3Dyes&note=a%26b%3Dc+d%2B%C3%A9"
    );
    assert_eq!(
        header_values(&echo, "content-type"),
        ["application/x-www-form-urlencoded"]
    );
}

#[tokio::test]
async fn header_injection_is_refused_before_sending() {
    let server = TestServer::start().await;
    let client = loopback_client();
    let outcome = run(
        &client,
        json!({"method": "GET", "url": server.url("/"),
               "headers": [{"name": "X-Key", "value": "{{key}}"}]}),
        &props(&[("key", "abc\r\nX-Admin: 1")]),
    )
    .await;
    match &outcome.error {
        Some(RestError::Render {
            field,
            reason:
                RenderError::HeaderChar {
                    header,
                    ch: '\r',
                    property,
                },
        }) => {
            assert_eq!(field, "headers[0].value");
            assert_eq!(header, "X-Key");
            assert_eq!(property.as_deref(), Some("key"));
        }
        other => panic!("expected a header error, got {other:?}"),
    }
    assert!(outcome.stop);
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn missing_property_fails_naming_it_in_every_context() {
    let server = TestServer::start().await;
    let client = loopback_client();
    let url = server.url("/x");
    let cases = [
        (json!({"url": server.url("/u/{{user id}}")}), "url"),
        (
            json!({"url": url, "headers": [{"name": "X-Key", "value": "{{user id}}"}]}),
            "headers[0].value",
        ),
        (
            json!({"url": url, "query": [{"name": "id", "value": "{{user id}}"}]}),
            "query[0].value",
        ),
        (
            json!({"url": url, "query": [{"name": "{{user id}}", "value": "1"}]}),
            "query[0].name",
        ),
        (
            json!({"url": url, "body": [{"name": "id", "value": "{{user id}}"}]}),
            "body[0].value",
        ),
    ];
    let stale = props(&[("API Response", "stale"), ("other", "1")]);
    for (mut value, want_field) in cases {
        value["method"] = json!("POST");
        for ignore in [false, true] {
            value["ignore_error"] = json!(ignore);
            let outcome = run(&client, value.clone(), &stale).await;
            match &outcome.error {
                Some(RestError::Render {
                    field,
                    reason: RenderError::Missing { name },
                }) => {
                    assert_eq!(field, want_field);
                    assert_eq!(name, "user id");
                }
                other => panic!("{value}: expected a missing property, got {other:?}"),
            }
            assert_eq!(outcome.stop, !ignore);
            assert_eq!(outcome.status, None);
            let msg = outcome.error.as_ref().unwrap().to_string();
            assert_eq!(
                msg,
                format!("{want_field}: property \"user id\" is not set")
            );
        }
    }
    assert_eq!(server.hits(), 0, "nothing was sent");
}

#[tokio::test]
async fn only_301_is_followed() {
    let server = TestServer::start().await;
    let client = loopback_client();
    let to = server.url("/json");

    let followed = run(
        &client,
        json!({"method": "GET", "url": server.url(&format!("/redirect/301?to={to}")), "follow_redirects": true}),
        &Properties::new(),
    )
    .await;
    assert!(followed.error.is_none(), "{:?}", followed.error);
    assert_eq!(followed.redirects, 1);
    assert_eq!(
        followed.changes.get("API Response"),
        Some(Some(r#"{"ok":true,"name":"Zoë"}"#))
    );

    let relative = run(
        &client,
        json!({"method": "GET", "url": server.url("/redirect/301?to=/json"), "follow_redirects": true}),
        &Properties::new(),
    )
    .await;
    assert!(
        relative.error.is_none(),
        "relative Location: {:?}",
        relative.error
    );

    for (code, follow) in [
        (302, true),
        (303, true),
        (307, true),
        (308, true),
        (301, false),
    ] {
        let outcome = run(
            &client,
            json!({"method": "GET", "url": server.url(&format!("/redirect/{code}?to={to}")),
                   "follow_redirects": follow}),
            &Properties::new(),
        )
        .await;
        match &outcome.error {
            Some(RestError::Status { status, .. }) => assert_eq!(status.as_u16(), code),
            other => panic!("{code}: expected a status error, got {other:?}"),
        }
        assert_eq!(outcome.redirects, 0);
        assert!(outcome.stop);
    }
}

#[tokio::test]
async fn redirect_loop_is_bounded() {
    let server = TestServer::start().await;
    let client = loopback_client();
    let outcome = run(
        &client,
        json!({"method": "GET", "url": server.url("/loop"), "follow_redirects": true, "ignore_error": true}),
        &props(&[("API Response", "stale")]),
    )
    .await;
    match &outcome.error {
        Some(RestError::TooManyRedirects { limit, .. }) => assert_eq!(*limit, MAX_REDIRECTS),
        other => panic!("expected too many redirects, got {other:?}"),
    }
    assert_eq!(outcome.redirects, MAX_REDIRECTS);
    assert_eq!(server.hits(), MAX_REDIRECTS as usize + 1);
    assert_eq!(outcome.changes.get("API Response"), Some(None), "removed");
}

/// Each hop is checked against the policy again: a 301 to a denied
/// address fails without connecting to it.
#[tokio::test]
async fn redirect_to_a_denied_address_is_refused() {
    let server = TestServer::start().await;
    // Any host, loopback allowed (to reach the test server), nothing else
    // that is not public.
    let mut policy = NetPolicy::default();
    policy.allow_loopback = true;
    let open = HttpClient::new(policy).unwrap();
    let cases = [
        (
            "http://169.254.169.254/latest/meta-data/",
            AddressClass::Metadata,
        ),
        (
            "http://100.100.100.200/latest/meta-data/",
            AddressClass::Metadata,
        ),
        ("http://10.0.0.1/admin", AddressClass::Private),
        ("http://[::ffff:10.0.0.1]/", AddressClass::Private),
        ("http://0.0.0.0/", AddressClass::Unspecified),
        ("http://[fe80::1]/", AddressClass::LinkLocal),
    ];
    for (target, class) in cases {
        let outcome = run(
            &open,
            json!({"method": "GET", "url": server.url(&format!("/redirect/301?to={target}")),
                   "follow_redirects": true}),
            &Properties::new(),
        )
        .await;
        match &outcome.error {
            Some(RestError::Net(NetError::Denied {
                reason: DenyReason::Address { class: got, .. },
                ..
            })) => assert_eq!(*got, class, "{target}"),
            other => panic!("{target}: expected a denial, got {other:?}"),
        }
        assert!(outcome.stop);
        assert_eq!(outcome.redirects, 1);
    }
    let client = loopback_client();
    let outcome = run(
        &client,
        json!({"method": "GET", "url": server.url("/redirect/301?to=https://example.com/"),
               "follow_redirects": true}),
        &Properties::new(),
    )
    .await;
    assert!(matches!(
        outcome.error,
        Some(RestError::Net(NetError::Denied {
            reason: DenyReason::HostNotAllowed { .. },
            ..
        }))
    ));
}

/// `to` as a query value.
fn enc(to: &str) -> String {
    url::form_urlencoded::byte_serialize(to.as_bytes()).collect()
}

/// The attack from issue 10: a POST with an API key and a body, answered
/// with a 301 to another origin. Nothing reaches the other origin: not the
/// key, not the body, not the request. Both kinds of "other": another port
/// (a second server) and another host on the same port (`localhost`).
#[tokio::test]
async fn cross_origin_redirect_of_a_request_with_a_body_is_refused() {
    let first = TestServer::start().await;
    let second = TestServer::start().await;
    let mut policy = loopback_policy();
    policy.allow_host("localhost").unwrap();
    policy.allow_loopback = true;
    policy.resolve.insert("localhost".into(), first.addr);
    let client = HttpClient::new(policy).unwrap();
    let targets = [
        second.url("/anything"),
        format!("http://localhost:{}/anything", first.port()),
    ];
    for target in targets {
        let hits = (first.hits(), second.hits());
        let outcome = run(
            &client,
            json!({"method": "POST",
                   "url": first.url(&format!("/redirect-to?url={}&status_code=301", enc(&target))),
                   "headers": [{"name": "X-Api-Key", "value": "{{key}}"}],
                   "body": [{"name": "card", "value": "{{card}}"}],
                   "follow_redirects": true, "ignore_error": true,
                   "status_property": "Status"}),
            &props(&[
                ("key", "k-secret"),
                ("card", "4111"),
                ("API Response", "stale"),
            ]),
        )
        .await;
        match &outcome.error {
            Some(e @ RestError::RedirectWithBody { from, to }) => {
                assert_eq!(e.kind(), "redirect_with_body");
                assert!(from.ends_with("/redirect-to"), "{from}");
                assert!(to.ends_with("/anything"), "{to}");
            }
            other => panic!("{target}: expected a refused redirect, got {other:?}"),
        }
        assert_eq!(outcome.status, Some(StatusCode::MOVED_PERMANENTLY));
        assert_eq!(outcome.redirects, 0, "the hop was not followed");
        assert_eq!(outcome.changes.get("API Response"), Some(None));
        assert_eq!(outcome.changes.get("Status"), Some(Some("301")));
        assert_eq!(first.hits() - hits.0, 1, "{target}: only the first request");
        assert_eq!(
            second.hits() - hits.1,
            0,
            "{target}: nothing at the other origin"
        );
        let sent = first.requests().pop().unwrap();
        assert_eq!(sent.path, "/redirect-to");
        assert_eq!(
            sent.header("x-api-key"),
            ["k-secret"],
            "the named origin got it"
        );
    }
    assert!(second.requests().is_empty());
}

/// A 301 to another origin for a request without a body is followed, with
/// none of the block's headers unless the block names them; the other
/// origin's recorded request shows exactly what arrived.
#[tokio::test]
async fn cross_origin_redirect_sends_only_the_kept_headers() {
    let first = TestServer::start().await;
    let second = TestServer::start().await;
    let client = loopback_client();
    let headers = json!([
        {"name": "X-Api-Key", "value": "{{key}}"},
        {"name": "Authorization", "value": "Bearer {{key}}"},
        {"name": "Cookie", "value": "session={{key}}"},
        {"name": "X-Trace", "value": "t1"},
        {"name": "X-Trace", "value": "t2"},
    ]);
    let url = first.url(&format!("/redirect/301?to={}", enc(&second.url("/landed"))));
    for (method, keep, want_trace) in [
        ("GET", json!([]), vec![]),
        ("DELETE", json!([]), vec![]),
        ("GET", json!(["x-trace"]), vec!["t1", "t2"]),
    ] {
        let before = second.requests().len();
        let outcome = run(
            &client,
            json!({"method": method, "url": url, "headers": headers,
                   "follow_redirects": true, "redirect_keep_headers": keep}),
            &props(&[("key", "k-secret")]),
        )
        .await;
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        assert_eq!(outcome.redirects, 1);
        let got = &second.requests()[before..];
        assert_eq!(got.len(), 1);
        let got = &got[0];
        assert_eq!(
            (got.method.as_str(), got.path.as_str()),
            (method, "/landed")
        );
        for secret in ["x-api-key", "authorization", "cookie"] {
            assert!(
                got.header(secret).is_empty(),
                "{method} {keep}: {secret} leaked"
            );
        }
        assert!(
            !got.headers.iter().any(|(_, v)| v.contains("k-secret")),
            "{:?}",
            got.headers
        );
        assert_eq!(got.header("x-trace"), want_trace, "{method} {keep}");
        assert_eq!(
            got.header("user-agent").len(),
            1,
            "the client's own headers stay"
        );
    }
    // The first origin received everything, every time.
    for sent in first.requests() {
        assert_eq!(sent.header("x-api-key"), ["k-secret"]);
        assert_eq!(sent.header("authorization"), ["Bearer k-secret"]);
    }

    // A key the block names travels: the author's explicit choice.
    let kept = run(
        &client,
        json!({"method": "GET", "url": url, "headers": headers,
               "follow_redirects": true, "redirect_keep_headers": ["X-API-KEY"]}),
        &props(&[("key", "k-secret")]),
    )
    .await;
    assert!(kept.error.is_none(), "{:?}", kept.error);
    let got = second.requests().pop().unwrap();
    assert_eq!(got.header("x-api-key"), ["k-secret"]);
    assert!(got.header("authorization").is_empty());
}

/// Once a hop leaves the block's origin, the dropped headers stay dropped,
/// even when a later hop comes back.
#[tokio::test]
async fn headers_dropped_on_the_way_out_do_not_come_back() {
    let first = TestServer::start().await;
    let second = TestServer::start().await;
    let client = loopback_client();
    let back = second.url(&format!("/redirect/301?to={}", enc(&first.url("/back"))));
    let outcome = run(
        &client,
        json!({"method": "GET",
               "url": first.url(&format!("/redirect/301?to={}", enc(&back))),
               "headers": [{"name": "X-Api-Key", "value": "k-secret"}],
               "follow_redirects": true}),
        &Properties::new(),
    )
    .await;
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    assert_eq!(outcome.redirects, 2);
    assert_eq!(echoed(&outcome)["path"], "/back");
    let landed = first.requests().pop().unwrap();
    assert_eq!(landed.path, "/back");
    assert!(landed.header("x-api-key").is_empty());
    assert!(second.requests()[0].header("x-api-key").is_empty());
}

/// A 301 from https to http is refused, to another server or to the same
/// host and port; nothing reaches the http side. The first hop is a real
/// TLS server whose throwaway CA the policy trusts
/// (`NetPolicy::tls_root_certificates`), and an https-to-https 301 is
/// followed as usual.
#[tokio::test]
async fn https_to_http_redirect_is_refused() {
    let secure = TestServer::start_tls().await;
    let plain = TestServer::start().await;
    let mut policy = loopback_policy();
    policy
        .tls_root_certificates
        .push(secure.ca_pem.clone().unwrap());
    let client = HttpClient::new(policy).unwrap();
    let headers = json!([{"name": "X-Api-Key", "value": "k-secret"}]);

    let within = run(
        &client,
        json!({"method": "GET", "url": secure.url("/redirect/301?to=/json"),
               "headers": headers, "follow_redirects": true}),
        &Properties::new(),
    )
    .await;
    assert!(within.error.is_none(), "{:?}", within.error);
    assert_eq!(within.redirects, 1);
    assert_eq!(
        within.changes.get("API Response"),
        Some(Some(r#"{"ok":true,"name":"Zoë"}"#))
    );
    assert_eq!(secure.requests()[1].header("x-api-key"), ["k-secret"]);

    for target in [
        plain.url("/landed?key=k-secret"),
        format!("http://127.0.0.1:{}/landed", secure.port()),
    ] {
        let before = secure.hits();
        let outcome = run(
            &client,
            json!({"method": "GET",
                   "url": secure.url(&format!("/redirect/301?to={}", enc(&target))),
                   "headers": headers, "follow_redirects": true, "ignore_error": true}),
            &Properties::new(),
        )
        .await;
        match &outcome.error {
            Some(e @ RestError::InsecureRedirect { from, to }) => {
                assert_eq!(e.kind(), "insecure_redirect");
                assert!(from.starts_with("https://127.0.0.1:"), "{from}");
                assert!(to.starts_with("http://127.0.0.1:"), "{to}");
                assert!(!e.to_string().contains("k-secret"), "{e}");
            }
            other => panic!("{target}: expected an insecure redirect, got {other:?}"),
        }
        assert_eq!(outcome.redirects, 0);
        assert_eq!(outcome.status, Some(StatusCode::MOVED_PERMANENTLY));
        assert_eq!(secure.hits() - before, 1, "{target}");
    }
    assert_eq!(plain.hits(), 0, "nothing reached the http server");
}

/// Within the origin a 301 keeps everything: method, headers and body.
#[tokio::test]
async fn same_origin_redirect_keeps_method_headers_and_body() {
    let server = TestServer::start().await;
    let client = loopback_client();
    let outcome = run(
        &client,
        json!({"method": "POST", "url": server.url("/redirect/301?to=/kept"),
               "headers": [{"name": "Authorization", "value": "Bearer {{token}}"},
                           {"name": "X-Api-Key", "value": "{{token}}"}],
               "body": [{"name": "card", "value": "4111"}],
               "follow_redirects": true}),
        &props(&[("token", "secret")]),
    )
    .await;
    let echo = echoed(&outcome);
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/kept");
    assert_eq!(echo["body"], r#"{"card":"4111"}"#);
    assert_eq!(header_values(&echo, "authorization"), ["Bearer secret"]);
    assert_eq!(header_values(&echo, "x-api-key"), ["secret"]);
    assert_eq!(header_values(&echo, "content-type"), ["application/json"]);
}

/// The outcome rules for every kind of failure, with and without ignore
/// error: stop or continue, stale `API Response` removed, nothing
/// committed on stop.
#[tokio::test]
async fn ignore_error_on_and_off() {
    let server = TestServer::start().await;
    let client = loopback_client();
    let refused = format!("http://127.0.0.1:{}/x", closed_port());
    /// Scenario, block config, the expected error, the expected status.
    type Case = (&'static str, Value, fn(&RestError) -> bool, Option<u16>);
    let cases: Vec<Case> = vec![
        (
            "404",
            json!({"url": server.url("/status/404")}),
            |e| matches!(e, RestError::Status { status, .. } if status.as_u16() == 404),
            Some(404),
        ),
        (
            "500",
            json!({"url": server.url("/status/500")}),
            |e| matches!(e, RestError::Status { status, .. } if status.as_u16() == 500),
            Some(500),
        ),
        (
            "timeout",
            json!({"url": server.url("/slow"), "timeout_ms": 300}),
            |e| {
                matches!(e, RestError::Net(NetError::Timeout { phase: TimeoutPhase::Total, limit, .. })
                    if *limit == Duration::from_millis(300))
            },
            None,
        ),
        (
            "connection refused",
            json!({"url": refused}),
            |e| matches!(e, RestError::Net(NetError::Connect { .. })),
            None,
        ),
        (
            "oversized body",
            json!({"url": server.url("/endless"), "max_response_bytes": 100_000}),
            |e| {
                matches!(
                    e,
                    RestError::Net(NetError::BodyTooLarge { limit: 100_000, .. })
                )
            },
            None,
        ),
        (
            "denied",
            json!({"url": "http://169.254.169.254/latest/meta-data/"}),
            |e| matches!(e, RestError::Net(NetError::Denied { .. })),
            None,
        ),
    ];
    let before = props(&[
        ("API Response", "stale from an earlier block"),
        ("API Response Status", "200"),
        ("keep", "me"),
    ]);
    for (name, mut value, is_expected, status) in cases {
        value["method"] = json!("GET");
        value["status_property"] = json!("API Response Status");
        for ignore in [false, true] {
            value["ignore_error"] = json!(ignore);
            let outcome = run(&client, value.clone(), &before).await;
            let error = outcome
                .error
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: no error"));
            assert!(is_expected(error), "{name}: unexpected error {error:?}");
            assert_eq!(outcome.status.map(|s| s.as_u16()), status, "{name}");
            assert_eq!(outcome.stop, !ignore, "{name}");
            let mut after = before.clone();
            if !outcome.stop {
                after.apply(outcome.changes);
            } else {
                assert!(outcome.changes.is_empty(), "{name}: a stop commits nothing");
            }
            if ignore {
                assert!(
                    !after.contains("API Response"),
                    "{name}: stale response survived"
                );
                assert_eq!(
                    after.get("API Response Status"),
                    status.map(|s| s.to_string()).as_deref(),
                    "{name}"
                );
            } else {
                assert_eq!(after, before, "{name}");
            }
            assert_eq!(after.get("keep"), Some("me"));
            assert!(
                outcome.duration < Duration::from_secs(5),
                "{name} took {:?}",
                outcome.duration
            );
        }
    }
}

#[tokio::test]
async fn success_sets_response_and_status_properties() {
    let server = TestServer::start().await;
    let client = loopback_client();
    let outcome = run(
        &client,
        json!({"method": "GET", "url": server.url("/json"),
               "response_property": "User", "status_property": "User Status"}),
        &props(&[("API Response", "untouched")]),
    )
    .await;
    assert!(outcome.error.is_none());
    assert_eq!(
        outcome.changes.get("User"),
        Some(Some(r#"{"ok":true,"name":"Zoë"}"#))
    );
    assert_eq!(outcome.changes.get("User Status"), Some(Some("200")));
    assert_eq!(
        outcome.changes.get("API Response"),
        None,
        "other properties untouched"
    );
}

#[tokio::test]
async fn decodes_a_non_utf8_charset() {
    let server = TestServer::start().await;
    let client = loopback_client();
    let outcome = run(
        &client,
        json!({"method": "GET", "url": server.url("/latin1")}),
        &Properties::new(),
    )
    .await;
    assert_eq!(
        outcome.changes.get("API Response"),
        Some(Some("café crème"))
    );
}

/// The default policy (no allowed hosts, nothing but public addresses)
/// denies every loopback, private, link-local and unspecified spelling
/// before connecting.
#[tokio::test]
async fn ssrf_spellings_are_denied_by_default() {
    let server = TestServer::start().await;
    let client = HttpClient::new(NetPolicy::default()).unwrap();
    let port = server.port();
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f.1:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://169.254.169.254/".to_string(),
        format!("http://0.0.0.0:{port}/"),
        "http://10.0.0.1/".to_string(),
    ] {
        let outcome = run(
            &client,
            json!({"method": "GET", "url": format!("{url}{{{{path}}}}"), "ignore_error": true}),
            &props(&[("path", "x"), ("API Response", "stale")]),
        )
        .await;
        match &outcome.error {
            Some(RestError::Net(NetError::Denied {
                reason: DenyReason::Address { .. },
                ..
            })) => {}
            other => panic!("{url}: expected a denial, got {other:?}"),
        }
        assert!(!outcome.stop);
        assert_eq!(outcome.changes.get("API Response"), Some(None));
    }
    assert_eq!(server.hits(), 0);
}

/// The block's timeout covers every hop together.
#[tokio::test]
async fn timeout_spans_redirect_hops() {
    let server = TestServer::start().await;
    let client = loopback_client();
    let outcome = run(
        &client,
        json!({"method": "GET", "url": server.url("/redirect/301?to=/slow"),
               "follow_redirects": true, "timeout_ms": 300}),
        &Properties::new(),
    )
    .await;
    match &outcome.error {
        Some(RestError::Net(NetError::Timeout { limit, .. })) => {
            assert_eq!(*limit, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(outcome.redirects, 1);
    assert!(outcome.duration < Duration::from_secs(2));
}
