//! The example Code blocks (`examples/code-blocks/*`, built for wasm32) in
//! the real sandbox against the real demo API (`chatflow-demo-api` on
//! 127.0.0.1), reached as `http://demo.chatflow.test` through the engine's
//! network policy (`NetPolicy::resolve` pins the name to the server), as the
//! example flows and `chatflow demo` reach it. Happy paths and each failure
//! path an example documents.

use chatflow_demo_api::{API_KEY, BASE_URL, CLIENT_ID, CLIENT_SECRET, DemoApi, HOST};
use chatflow_engine::Properties;
use chatflow_engine::net::{HttpClient, Method, NetPolicy, Request};
use chatflow_engine::sandbox::{LimitKind, Limits, Outcome, Output, RunError, Sandbox};
use chatflow_test_artifacts::examples::{
    APPLICATION_STATUS_XML, COMPLEX_CALL, CRM_PROFILE, VALIDATE_INPUT,
};

use crate::sdk::{failed, load, ok, sandbox_for, set};
use crate::support::demo;

fn demo_sandbox(api: &DemoApi) -> Sandbox {
    sandbox_for(HttpClient::new(demo::policy(api)).unwrap())
}

/// A sandbox whose policy does not allow the demo host (another host is
/// allowed; the demo name is still pinned, so only the policy refuses it).
fn strict_sandbox(api: &DemoApi) -> Sandbox {
    let mut policy = demo::policy(api);
    policy.allowed_hosts.clear();
    policy.allow_host("api.example.com").unwrap();
    sandbox_for(HttpClient::new(policy).unwrap())
}

async fn run(sb: &Sandbox, path: &str, props: &Properties) -> Outcome {
    run_with(sb, path, props, &sb.default_limits()).await
}

async fn run_with(sb: &Sandbox, path: &str, props: &Properties, limits: &Limits) -> Outcome {
    let module = load(sb, path);
    sb.run(&module, props, limits).await
}

/// GETs `path` from the demo API as a REST API block before the Code block
/// would: the body text (the `API Response` property) and the status.
async fn fetch(api: &DemoApi, path: &str, headers: &[(&str, &str)]) -> (String, u16) {
    let client = HttpClient::new(demo::policy(api)).unwrap();
    let mut request = Request::new(Method::GET, format!("{BASE_URL}{path}").parse().unwrap());
    for (name, value) in headers {
        request = request.header(name, value).unwrap();
    }
    let response = client.send(request).await.unwrap();
    (response.text(), response.status.as_u16())
}

fn guest_message(outcome: &Outcome) -> &str {
    match failed(outcome) {
        RunError::GuestFailed { message, .. } => message,
        other => panic!("expected GuestFailed, got {other:?}"),
    }
}

fn removed(out: &Output, name: &str) -> bool {
    out.changes.get(name) == Some(None)
}

// ---- crm-profile -------------------------------------------------------

async fn profile(api: &DemoApi, phone: &str) -> (String, u16) {
    let path = format!(
        "/crm/profiles/{}",
        phone.replace('+', "%2B").replace(' ', "%20")
    );
    fetch(api, &path, &[("X-Api-Key", API_KEY)]).await
}

#[tokio::test]
async fn crm_profile_parses_a_full_and_a_sparse_profile() {
    let api = DemoApi::start().await.unwrap();
    let sb = demo_sandbox(&api);

    let (body, status) = profile(&api, "+44 20 7946 0000").await;
    assert_eq!(status, 200);
    let props: Properties = [("API Response", body.as_str())].into_iter().collect();
    let outcome = run(&sb, CRM_PROFILE, &props).await;
    assert_eq!(outcome.http_calls, 0, "it only parses");
    let out = ok(outcome);
    assert_eq!(set(&out, "customer_id"), Some("cus_1042"));
    assert_eq!(set(&out, "name"), Some("Ada Lovelace"));
    assert_eq!(set(&out, "email"), Some("ada@example.com"));
    assert_eq!(set(&out, "tier"), Some("gold"));
    assert_eq!(set(&out, "profile_found"), Some("true"));

    // Last name null, email empty, tier null: handled, no stale values.
    let (body, status) = profile(&api, "+1 415 555 0123").await;
    assert_eq!(status, 200);
    let props: Properties = [
        ("API Response", body.as_str()),
        ("email", "stale@example.com"),
    ]
    .into_iter()
    .collect();
    let out = ok(run(&sb, CRM_PROFILE, &props).await);
    assert_eq!(set(&out, "customer_id"), Some("cus_2001"));
    assert_eq!(set(&out, "name"), Some("Grace"));
    assert!(removed(&out, "email"), "an empty email is removed");
    assert_eq!(set(&out, "tier"), Some("standard"));
    assert_eq!(set(&out, "profile_found"), Some("true"));
}

#[tokio::test]
async fn crm_profile_failure_paths() {
    let api = DemoApi::start().await.unwrap();
    let sb = demo_sandbox(&api);

    // Unknown number: the REST API block (Ignore error on) stored nothing.
    let (_, status) = profile(&api, "+1 555 0100").await;
    assert_eq!(status, 404);
    let props: Properties = [("name", "Stale"), ("tier", "gold")].into_iter().collect();
    let outcome = run(&sb, CRM_PROFILE, &props).await;
    assert_eq!(outcome.logs.len(), 1, "it says why: {:?}", outcome.logs);
    let out = ok(outcome);
    assert_eq!(set(&out, "profile_found"), Some("false"));
    for name in ["name", "email", "tier"] {
        assert!(removed(&out, name), "{name}");
    }

    // The 404's error document used as a profile: no `id`.
    let (body, _) = profile(&api, "+1 555 0100").await;
    let props: Properties = [("API Response", body.as_str())].into_iter().collect();
    let outcome = run(&sb, CRM_PROFILE, &props).await;
    let message = guest_message(&outcome);
    assert!(
        message.starts_with(
            "property `API Response` is not valid JSON for the expected shape: missing field `id`"
        ),
        "{message}"
    );

    // Without the API key the CRM answers 401: not a profile either.
    let (body, status) = fetch(&api, "/crm/profiles/%2B442079460000", &[]).await;
    assert_eq!(status, 401);
    let props: Properties = [("API Response", body.as_str())].into_iter().collect();
    assert!(guest_message(&run(&sb, CRM_PROFILE, &props).await).contains("missing field `id`"));

    let props: Properties = [("API Response", "<html>oops</html>")]
        .into_iter()
        .collect();
    let outcome = run(&sb, CRM_PROFILE, &props).await;
    assert!(guest_message(&outcome).contains("line 1 column 1"));
}

// ---- validate-input ----------------------------------------------------

fn input(fields: &[(&'static str, &'static str)]) -> Properties {
    let mut props: Properties = fields.iter().copied().collect();
    props.set("api_base_url", BASE_URL);
    props
}

#[tokio::test]
async fn validate_input_valid_and_invalid() {
    let api = DemoApi::start().await.unwrap();
    let sb = demo_sandbox(&api);

    let props = input(&[
        ("name", "Ada Lovelace"),
        ("email", "ada@example.com"),
        ("phone", "+44 20 7946 0000"),
        ("date_of_birth", "1815-12-10"),
    ]);
    let outcome = run(&sb, VALIDATE_INPUT, &props).await;
    assert_eq!(outcome.http_calls, 1);
    let out = ok(outcome);
    assert_eq!(set(&out, "valid"), Some("true"));
    assert_eq!(
        set(&out, "validation_message"),
        Some("All details look good.")
    );
    assert_eq!(
        set(&out, "phone"),
        Some("+442079460000"),
        "normalized by the API"
    );

    // The API answers 422: a verdict, not an error.
    let cases: &[(&[(&'static str, &'static str)], &str)] = &[
        (
            &[("email", "ada@example"), ("phone", "+44 20 7946 0000")],
            "email must contain a domain",
        ),
        (
            &[("email", " "), ("phone", "12")],
            "email is required; phone must have 7 to 15 digits",
        ),
        (
            &[
                ("email", "ada@example.com"),
                ("phone", "+44 20 7946 0000"),
                ("date_of_birth", "10/12/1815"),
            ],
            "date_of_birth: date of birth must be YYYY-MM-DD",
        ),
    ];
    for (fields, want) in cases {
        let out = ok(run(&sb, VALIDATE_INPUT, &input(fields)).await);
        assert_eq!(set(&out, "valid"), Some("false"), "{fields:?}");
        assert_eq!(set(&out, "validation_message"), Some(*want), "{fields:?}");
        assert_eq!(
            set(&out, "phone"),
            None,
            "the phone is only rewritten when valid"
        );
    }
    assert_eq!(api.requests(), 4);
}

#[tokio::test]
async fn validate_input_failure_paths() {
    let api = DemoApi::start().await.unwrap();
    let sb = demo_sandbox(&api);

    let outcome = run(
        &sb,
        VALIDATE_INPUT,
        &input(&[("phone", "+44 20 7946 0000")]),
    )
    .await;
    assert_eq!(guest_message(&outcome), "property `email` is not set");
    assert_eq!(outcome.http_calls, 0);

    // The demo host is not allowed: the denial is the run's error.
    let strict = strict_sandbox(&api);
    let fields = [("email", "ada@example.com"), ("phone", "+44 20 7946 0000")];
    let outcome = run(&strict, VALIDATE_INPUT, &input(&fields)).await;
    match failed(&outcome) {
        RunError::HttpDenied { reason } => assert!(reason.contains(HOST), "{reason}"),
        other => panic!("expected HttpDenied, got {other:?}"),
    }
    let guest = outcome.fail_message.as_deref().unwrap();
    assert!(guest.contains("ask the operator to allow"), "{guest}");

    // Nothing listens at the base URL.
    let mut props = input(&fields);
    let closed = format!("http://127.0.0.1:{}", crate::support::closed_port());
    props.set("api_base_url", closed);
    let mut policy = NetPolicy::default();
    policy.allow_host("127.0.0.1").unwrap();
    let sb = sandbox_for(HttpClient::new(policy).unwrap());
    let outcome = run(&sb, VALIDATE_INPUT, &props).await;
    assert!(
        guest_message(&outcome).starts_with("validation service unreachable: "),
        "{:?}",
        outcome.result
    );
    assert_eq!(api.requests(), 0);
}

// ---- application-status-xml ---------------------------------------------

async fn status(api: &DemoApi, id: &str) -> (String, u16) {
    fetch(
        api,
        &format!("/applications/{id}/status"),
        &[("Accept", "application/xml")],
    )
    .await
}

#[tokio::test]
async fn application_status_prefixed_and_default_namespaces() {
    let api = DemoApi::start().await.unwrap();
    let sb = demo_sandbox(&api);

    let (xml, code) = status(&api, "APP-2024-0042").await;
    assert_eq!(code, 200);
    let props: Properties = [("API Response", xml.as_str())].into_iter().collect();
    let out = ok(run(&sb, APPLICATION_STATUS_XML, &props).await);
    assert_eq!(set(&out, "status"), Some("In review – documents received"));
    assert_eq!(set(&out, "status_code"), Some("IN_REVIEW"));
    assert_eq!(set(&out, "application_id"), Some("APP-2024-0042"));
    assert_eq!(set(&out, "updated_at"), Some("2024-05-02T14:03:00Z"));
    assert_eq!(set(&out, "history_count"), Some("2"));

    // A default namespace and no updated_at: the latest history event.
    let (xml, _) = status(&api, "APP-2024-0007").await;
    let props: Properties = [("API Response", xml.as_str())].into_iter().collect();
    let out = ok(run(&sb, APPLICATION_STATUS_XML, &props).await);
    assert_eq!(set(&out, "status"), Some("Approved & signed"));
    assert_eq!(set(&out, "status_code"), Some("APPROVED"));
    assert_eq!(set(&out, "updated_at"), Some("2024-03-09T16:20:00Z"));
    assert_eq!(set(&out, "history_count"), Some("2"));
}

#[tokio::test]
async fn application_status_failure_paths() {
    let api = DemoApi::start().await.unwrap();
    let sb = demo_sandbox(&api);

    let (xml, code) = status(&api, "APP-1").await;
    assert_eq!(code, 404);
    let props: Properties = [("API Response", xml.as_str())].into_iter().collect();
    let outcome = run(&sb, APPLICATION_STATUS_XML, &props).await;
    assert_eq!(
        guest_message(&outcome),
        "application status API error NOT_FOUND: no application APP-1"
    );

    let cases = [
        (
            "<application><status>x</application>",
            "not well-formed XML",
        ),
        ("<a>&nbsp;</a>", "undeclared entity `&nbsp;`"),
        (
            "<application xmlns='urn:other'><status>x</status></application>",
            "expected <application> in \"urn:example:applications:v1\"",
        ),
        (
            "<application xmlns='urn:example:applications:v1'/>",
            "has no <status> element",
        ),
    ];
    for (xml, want) in cases {
        let props: Properties = [("API Response", xml)].into_iter().collect();
        let outcome = run(&sb, APPLICATION_STATUS_XML, &props).await;
        let message = guest_message(&outcome);
        assert!(message.contains(want), "{xml}: {message}");
    }
    let outcome = run(&sb, APPLICATION_STATUS_XML, &Properties::new()).await;
    assert_eq!(
        guest_message(&outcome),
        "property `API Response` is not set"
    );
}

// ---- complex-call ------------------------------------------------------

fn orders(customer: &'static str, secret: &'static str) -> Properties {
    [
        ("api_base_url", BASE_URL),
        ("client_id", CLIENT_ID),
        ("client_secret", secret),
        ("customer_id", customer),
    ]
    .into_iter()
    .collect()
}

#[tokio::test]
async fn complex_call_token_pagination_and_aggregation() {
    let api = DemoApi::start().await.unwrap();
    let sb = demo_sandbox(&api);

    let outcome = run(&sb, COMPLEX_CALL, &orders("cus_1042", CLIENT_SECRET)).await;
    assert_eq!(outcome.http_calls, 4, "a token and three pages");
    assert!(
        outcome.logs.iter().all(|l| !l.message.contains("tok_")),
        "the token is never logged: {:?}",
        outcome.logs
    );
    let out = ok(outcome);
    assert_eq!(set(&out, "order_count"), Some("5"));
    assert_eq!(set(&out, "open_orders"), Some("2"));
    assert_eq!(set(&out, "order_total"), Some("128.47"));
    assert_eq!(set(&out, "order_currency"), Some("GBP"));
    assert_eq!(set(&out, "latest_order_id"), Some("ord_1005"));
    assert_eq!(set(&out, "pages_fetched"), Some("3"));
    assert_eq!(out.messages, ["You have 5 orders (2 open)."]);

    // A customer without orders: one page, nothing to aggregate.
    let props = {
        let mut p = orders("cus_9", CLIENT_SECRET);
        p.set("order_currency", "stale");
        p
    };
    let out = ok(run(&sb, COMPLEX_CALL, &props).await);
    assert_eq!(set(&out, "order_count"), Some("0"));
    assert_eq!(set(&out, "order_total"), Some("0.00"));
    assert_eq!(set(&out, "pages_fetched"), Some("1"));
    assert!(removed(&out, "order_currency"));
    assert!(removed(&out, "latest_order_id"));
    assert_eq!(out.messages, ["You have 0 orders (0 open)."]);
    assert_eq!(api.requests(), 6);
}

#[tokio::test]
async fn complex_call_failure_paths() {
    let api = DemoApi::start().await.unwrap();
    let sb = demo_sandbox(&api);

    let outcome = run(&sb, COMPLEX_CALL, &orders("cus_1042", "wrong-secret")).await;
    assert_eq!(
        guest_message(&outcome),
        "the token endpoint refused the client credentials (HTTP 401)"
    );
    assert_eq!(outcome.http_calls, 1);

    // The flow's limit must cover a token and every page.
    let limits = sb.default_limits().with_http_calls(3);
    let outcome = run_with(
        &sb,
        COMPLEX_CALL,
        &orders("cus_1042", CLIENT_SECRET),
        &limits,
    )
    .await;
    assert!(matches!(
        failed(&outcome),
        RunError::Limit {
            which: LimitKind::HttpCalls,
            value: 3
        }
    ));

    let outcome = run(
        &strict_sandbox(&api),
        COMPLEX_CALL,
        &orders("cus_1042", CLIENT_SECRET),
    )
    .await;
    assert!(matches!(failed(&outcome), RunError::HttpDenied { .. }));

    let mut props = orders("cus_1042", CLIENT_SECRET);
    props.remove("client_secret");
    let outcome = run(&sb, COMPLEX_CALL, &props).await;
    assert_eq!(
        guest_message(&outcome),
        "property `client_secret` is not set"
    );
}
