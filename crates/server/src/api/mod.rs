//! The HTTP API: routes, request bodies, and the OpenAPI document generated
//! from the handlers' annotations (`/v1/openapi.json`).
//!
//! - [`flows`]: `PUT`/`GET`/`DELETE /v1/flows/{name}`, `GET /v1/flows`;
//! - [`modules`]: `PUT /v1/modules`, `GET /v1/modules/{sha256}`;
//! - [`conversations`]: `POST /v1/flows/{name}/conversations`,
//!   `POST /v1/conversations/{id}/answers`, `GET`/`DELETE
//!   /v1/conversations/{id}`;
//! - [`health`]: `/healthz`, `/readyz`, `/metrics`, `/v1/openapi.json`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody, ErrorKind, Problem};
use crate::server::AppState;

pub(crate) mod conversations;
pub(crate) mod flows;
pub(crate) mod health;
pub(crate) mod modules;

/// How long a client may take to send a request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chatflow",
        description = "The chatflow engine as an HTTP service: store flows and Code block \
                       modules, start conversations, send the user's answers. Every error is \
                       JSON with a stable `kind` (docs/service.md lists them)."
    ),
    modifiers(&Bearer),
    components(schemas(ErrorBody, Problem)),
    tags(
        (name = "flows", description = "Flow files, validated as `chatflow check` does"),
        (name = "modules", description = "Code block modules (WebAssembly, ABI v1)"),
        (name = "conversations", description = "Conversations and their turns"),
        (name = "operations", description = "Probes, metrics and this document"),
    )
)]
struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The routes with their OpenAPI descriptions; JSON routes capped at
/// `max_body` bytes, module uploads at `max_module`.
fn routes(max_body: usize, max_module: usize) -> OpenApiRouter<Arc<AppState>> {
    let json = OpenApiRouter::new()
        .routes(routes!(flows::list_flows))
        .routes(routes!(
            flows::put_flow,
            flows::get_flow,
            flows::delete_flow
        ))
        .routes(routes!(conversations::start_conversation))
        .routes(routes!(
            conversations::get_conversation,
            conversations::delete_conversation
        ))
        .routes(routes!(conversations::answer))
        .routes(routes!(modules::get_module))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(health::openapi_json))
        .layer(DefaultBodyLimit::max(max_body));
    let modules = OpenApiRouter::new()
        .routes(routes!(modules::put_module))
        .layer(DefaultBodyLimit::max(max_module));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(json)
        .merge(modules)
}

/// The OpenAPI document of the API, as served at `/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes(0, 0).into_openapi()
}

/// [`openapi`] as JSON, built once.
pub(crate) fn openapi_json_text() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serializes")
    })
}

/// The application: routes, the guard (shutdown, host, token, error
/// counts), tracing, body timeouts, JSON fallbacks.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let max_module = state.engine.sandbox().config().max_module_bytes;
    let (router, _) = routes(state.max_body_bytes, max_module).split_for_parts();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::guard,
        ))
        .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!("no route {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// Whether `name` may name a flow: 1 to 128 of `A-Z a-z 0-9 . _ -`, not
/// starting with a dot.
pub(crate) fn valid_flow_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The body's bytes, if its `Content-Type` is JSON (`application/json` or
/// `application/*+json`). An empty body with no `Content-Type` reads as
/// empty when `allow_empty`.
pub(crate) async fn json_bytes(
    req: Request,
    state: &Arc<AppState>,
    allow_empty: bool,
) -> Result<Bytes, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    let is_json = content_type.as_deref().is_some_and(|ct| {
        let essence = ct.split(';').next().unwrap_or_default().trim();
        essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
    });
    let limit = state.max_body_bytes;
    let bytes = read_body(req, state, limit).await?;
    if content_type.is_none() && allow_empty && bytes.is_empty() {
        return Ok(bytes);
    }
    if !is_json {
        return Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            format!(
                "expected Content-Type: application/json, not {}",
                content_type.as_deref().unwrap_or("none")
            ),
        ));
    }
    Ok(bytes)
}

/// The body's bytes, at most `limit` of them (`413 body_too_large`).
pub(crate) async fn read_body(
    req: Request,
    state: &Arc<AppState>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorKind::BodyTooLarge,
                format!("the request body is larger than {limit} bytes"),
            )
        } else {
            ApiError::new(
                ErrorKind::InvalidRequest,
                format!("reading the request body: {}", rejection.body_text()),
            )
        }
    })
}

/// A JSON body read into `T`: `415` without a JSON `Content-Type`, `413`
/// over the size cap, `400 malformed_json` if it does not parse,
/// `400 invalid_request` if it is JSON of the wrong shape.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let bytes = json_bytes(req, state, false).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON, telling a syntax error (`malformed_json`) from a shape
/// error (`invalid_request`).
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first: serde reports a wrong field before a later syntax
    // error, and a body that is not JSON should say so.
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        return Err(ApiError::new(
            ErrorKind::MalformedJson,
            format!("the body is not valid JSON: {e}"),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof => ApiError::new(
                ErrorKind::MalformedJson,
                format!("the body is not valid JSON: {e}"),
            ),
            Category::Data | Category::Io => ApiError::new(
                ErrorKind::InvalidRequest,
                format!("the body does not have the expected fields: {e}"),
            ),
        }
    })
}

/// A path parameter; a bad one is `400 invalid_request` (as JSON).
pub(crate) struct Param(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for Param {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| Param(p.0))
            .map_err(|e| ApiError::new(ErrorKind::InvalidRequest, e.body_text()))
    }
}

/// The `Idempotency-Key` header, if sent: 1 to 255 visible ASCII
/// characters.
pub(crate) struct IdempotencyKey(pub(crate) Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        idempotency_key(&parts.headers).map(IdempotencyKey)
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            ErrorKind::InvalidRequest,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )
    };
    let key = value.to_str().map_err(|_| bad())?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(key.to_string()))
}

/// `Idempotent-Replayed: true` on a response answered from the store.
pub(crate) fn replayed(mut response: Response, replayed: bool) -> Response {
    if replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    response
}

/// JSON with a status.
pub(crate) fn json<T: serde::Serialize>(status: axum::http::StatusCode, body: &T) -> Response {
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_names() {
        for name in ["crm-profile", "a", "v1.2_final", &"x".repeat(128)] {
            assert!(valid_flow_name(name), "{name}");
        }
    }

    #[test]
    fn flow_names_bad() {
        for name in ["", ".hidden", "a/b", "a b", "ü", &"x".repeat(129), ".."] {
            assert!(!valid_flow_name(name), "{name}");
        }
    }

    #[test]
    fn idempotency_keys_bad() {
        for bad in ["", "has space", &"k".repeat(256)] {
            let mut headers = HeaderMap::new();
            headers.insert("idempotency-key", bad.parse().unwrap());
            assert_eq!(
                idempotency_key(&headers).unwrap_err().kind(),
                ErrorKind::InvalidRequest,
                "{bad:?}"
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert("idempotency-key", "order-42/answer-1".parse().unwrap());
        assert_eq!(
            idempotency_key(&headers).unwrap().as_deref(),
            Some("order-42/answer-1")
        );
    }
}
