//! The demo business API: what `chatflow demo` and the engine's tests run
//! the example flows against, on 127.0.0.1. It stands in for the services a
//! chatbot platform's users call: a CRM, a validation service, an
//! application-status service that answers XML, an OAuth-style token
//! endpoint with a paginated API behind it, an endpoint that moved (`301`)
//! and one that fails.
//!
//! Flows reach it as `http://demo.chatflow.test` ([`HOST`]), pinned to the
//! server's address with the engine's `NetPolicy::resolve`, so the flow
//! files do not depend on the port the server got.
//!
//! | route | answers |
//! |---|---|
//! | `GET /crm/profiles/{phone}` | the profile as JSON (header `X-Api-Key: demo-key` required), `404` for an unknown number, `401` without the key |
//! | `GET /crm/v1/profiles/{phone}` | `301 Moved Permanently` to `/crm/profiles/{phone}` |
//! | `POST /validate` | JSON `{email, phone, name?, date_of_birth?}` → `200 {"valid": true, …}` or `422 {"valid": false, "errors": [...]}` |
//! | `GET /applications/{id}/status` | an XML status document with namespaces and entities, or a `404` XML error |
//! | `POST /oauth/token` | form `grant_type=client_credentials&client_id=demo&client_secret=demo-secret` → a bearer token |
//! | `GET /orders?customer=…&page=N` | one page of the customer's orders (bearer token required), with `next` |
//! | `GET /recommendations/{customer}` | always `503`: the endpoint that fails |
//! | `GET /health` | `ok` |

#![deny(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

/// The host name flows use for the demo API.
pub const HOST: &str = "demo.chatflow.test";
/// The base URL flows and Code blocks use (`api_base_url`).
pub const BASE_URL: &str = "http://demo.chatflow.test";
/// The CRM's API key (header `X-Api-Key`).
pub const API_KEY: &str = "demo-key";
/// The OAuth client id.
pub const CLIENT_ID: &str = "demo";
/// The OAuth client secret.
pub const CLIENT_SECRET: &str = "demo-secret";

/// A running demo API; it stops when dropped.
pub struct DemoApi {
    addr: SocketAddr,
    state: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    requests: AtomicU64,
    tokens_issued: AtomicU64,
    tokens: Mutex<HashSet<String>>,
}

impl DemoApi {
    /// Starts the API on a free port of 127.0.0.1, on the current tokio
    /// runtime.
    pub async fn start() -> std::io::Result<DemoApi> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts the API on `addr`.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<DemoApi> {
        let state = Arc::new(Shared::default());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            // The server only ends when the task is aborted.
            let _ = axum::serve(listener, app).await;
        });
        Ok(DemoApi { addr, state, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests served so far (all routes).
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }
}

impl Drop for DemoApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn router(state: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/crm/profiles/{phone}", get(profile))
        .route("/crm/v1/profiles/{phone}", get(moved_profile))
        .route("/validate", post(validate))
        .route("/applications/{id}/status", get(application_status))
        .route("/oauth/token", post(token))
        .route("/orders", get(orders))
        .route("/recommendations/{customer}", get(recommendations))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

async fn count(
    State(state): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    next.run(request).await
}

/// `+44 20 7946 0000` → `+442079460000`.
fn normalize_phone(phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    format!("+{digits}")
}

async fn profile(headers: HeaderMap, Path(phone): Path<String>) -> Response {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized", "message": "send the header X-Api-Key"})),
        )
            .into_response();
    }
    let phone = normalize_phone(&phone);
    let profile = match phone.as_str() {
        "+442079460000" => json!({
            "id": "cus_1042",
            "phone": phone,
            "name": {"first": "Ada", "last": "Lovelace"},
            "email": "ada@example.com",
            "tier": "gold",
            "created_at": "2023-04-01T09:30:00Z"
        }),
        // A sparse record: the Code block must cope with missing fields.
        "+14155550123" => json!({
            "id": "cus_2001",
            "phone": phone,
            "name": {"first": "Grace", "last": null},
            "email": "",
            "tier": null
        }),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "not_found", "message": format!("no profile for {phone}")})),
            )
                .into_response();
        }
    };
    Json(profile).into_response()
}

async fn moved_profile(Path(phone): Path<String>) -> Response {
    let location = format!("/crm/profiles/{}", encode_segment(&phone));
    (
        StatusCode::MOVED_PERMANENTLY,
        [(header::LOCATION, location)],
        "moved to /crm/profiles",
    )
        .into_response()
}

/// Percent-encodes a path segment (the phone number may hold `+` and
/// spaces).
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Deserialize)]
struct ValidateRequest {
    email: Option<String>,
    phone: Option<String>,
    name: Option<String>,
    date_of_birth: Option<String>,
}

async fn validate(
    body: Result<Json<ValidateRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(input) = match body {
        Ok(input) => input,
        Err(rejection) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "bad_request", "message": rejection.body_text()})),
            )
                .into_response();
        }
    };
    let mut errors = Vec::new();
    let mut error =
        |field: &str, message: &str| errors.push(json!({"field": field, "message": message}));
    match input.email.as_deref().map(str::trim) {
        None | Some("") => error("email", "email is required"),
        Some(email) => match email.split_once('@') {
            Some((local, domain)) if !local.is_empty() && !domain.contains('@') => {
                if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
                    error("email", "email must contain a domain");
                }
            }
            _ => error("email", "email must look like name@example.com"),
        },
    }
    let phone = input.phone.as_deref().map(normalize_phone);
    match &phone {
        None => error("phone", "phone is required"),
        Some(p) if !(8..=16).contains(&p.len()) => error("phone", "phone must have 7 to 15 digits"),
        Some(_) => {}
    }
    if let Some(name) = &input.name
        && name.trim().is_empty()
    {
        error("name", "name must not be empty");
    }
    if let Some(dob) = &input.date_of_birth
        && !is_date(dob)
    {
        error("date_of_birth", "date of birth must be YYYY-MM-DD");
    }
    if errors.is_empty() {
        Json(json!({"valid": true, "errors": [], "normalized": {"phone": phone}})).into_response()
    } else {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"valid": false, "errors": errors})),
        )
            .into_response()
    }
}

fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    matches!(parts.as_slice(), [y, m, d]
        if y.len() == 4 && m.len() == 2 && d.len() == 2
        && [y, m, d].iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
        && (1..=12).contains(&m.parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&d.parse::<u32>().unwrap_or(0)))
}

const APP_0042: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<app:application xmlns:app="urn:example:applications:v1"
                 xmlns:h="urn:example:history:v1" id="APP-2024-0042">
  <app:applicant>Ada Lovelace &amp; Co.</app:applicant>
  <app:status code="IN_REVIEW">In review &#8211; documents received</app:status>
  <app:updated_at>2024-05-02T14:03:00Z</app:updated_at>
  <h:history>
    <h:event at="2024-04-28T09:00:00Z" code="SUBMITTED">Submitted</h:event>
    <h:event at="2024-05-02T14:03:00Z" code="IN_REVIEW">Documents received</h:event>
  </h:history>
</app:application>
"#;

/// A default namespace instead of prefixes, and no `updated_at`: the Code
/// block falls back to the latest history event.
const APP_0007: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<application xmlns="urn:example:applications:v1" id="APP-2024-0007">
  <applicant>Charles Babbage</applicant>
  <status code="APPROVED">Approved &amp; signed</status>
  <history xmlns="urn:example:history:v1">
    <event at="2024-03-01T08:00:00Z" code="SUBMITTED">Submitted</event>
    <event at="2024-03-09T16:20:00Z" code="APPROVED">Approved</event>
  </history>
</application>
"#;

async fn application_status(Path(id): Path<String>) -> Response {
    let xml = [(header::CONTENT_TYPE, "application/xml; charset=utf-8")];
    match id.as_str() {
        "APP-2024-0042" => (xml, APP_0042).into_response(),
        "APP-2024-0007" => (xml, APP_0007).into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            xml,
            format!(
                "<?xml version=\"1.0\"?>\n<error code=\"NOT_FOUND\">no application {}</error>\n",
                escape_xml(&id)
            ),
        )
            .into_response(),
    }
}

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

async fn token(State(state): State<Arc<Shared>>, Form(request): Form<TokenRequest>) -> Response {
    if request.grant_type.as_deref() != Some("client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    if request.client_id.as_deref() != Some(CLIENT_ID)
        || request.client_secret.as_deref() != Some(CLIENT_SECRET)
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let n = state.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("tok_demo_{n:04}");
    state
        .tokens
        .lock()
        .expect("token set")
        .insert(token.clone());
    Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600})).into_response()
}

/// The orders of `cus_1042`, newest last.
fn all_orders(customer: &str) -> Vec<Value> {
    if customer != "cus_1042" {
        return Vec::new();
    }
    let rows = [
        ("ord_1001", "delivered", 2599, "2024-01-12T10:00:00Z"),
        ("ord_1002", "delivered", 1250, "2024-02-03T15:30:00Z"),
        ("ord_1003", "cancelled", 4999, "2024-03-21T09:12:00Z"),
        ("ord_1004", "shipped", 899, "2024-04-30T18:45:00Z"),
        ("ord_1005", "processing", 3100, "2024-05-02T08:05:00Z"),
    ];
    rows.iter()
        .map(|(id, status, cents, at)| {
            json!({"id": id, "status": status, "total_cents": cents, "currency": "GBP", "placed_at": at})
        })
        .collect()
}

const PAGE_SIZE: usize = 2;

async fn orders(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let known = token.is_some_and(|t| state.tokens.lock().expect("token set").contains(t));
    if !known {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_token"})),
        )
            .into_response();
    }
    let customer = query.get("customer").map(String::as_str).unwrap_or("");
    let page: usize = match query.get("page").map(|p| p.parse()) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => {
            return (StatusCode::BAD_REQUEST, Json(json!({"error": "bad_page"}))).into_response();
        }
    };
    let orders = all_orders(customer);
    let pages = orders.len().div_ceil(PAGE_SIZE).max(1);
    let items: Vec<Value> = orders
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();
    let next = (page < pages).then(|| format!("/orders?customer={customer}&page={}", page + 1));
    Json(json!({"orders": items, "page": page, "pages": pages, "next": next})).into_response()
}

async fn recommendations(Path(_customer): Path<String>) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "unavailable", "message": "the recommendation service is down for maintenance"})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert_eq!(normalize_phone("+44 20 7946 0000"), "+442079460000");
        assert_eq!(normalize_phone("(415) 555-0123"), "+4155550123");
        assert_eq!(encode_segment("+44 20"), "%2B44%2020");
    }

    #[test]
    fn dates() {
        assert!(is_date("1815-12-10"));
        for bad in ["1815-13-10", "15-12-10", "1815/12/10", "soon"] {
            assert!(!is_date(bad), "{bad}");
        }
    }

    #[test]
    fn orders_paginate() {
        let orders = all_orders("cus_1042");
        assert_eq!(orders.len(), 5);
        assert_eq!(orders.len().div_ceil(PAGE_SIZE), 3);
        assert!(all_orders("cus_9").is_empty());
    }
}
