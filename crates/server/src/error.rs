//! Errors: [`ServeError`] (the server could not start or stopped on an
//! error) and the HTTP error every endpoint answers with, a JSON body with a
//! stable `kind` ([`ErrorKind`]) and a message.

use std::path::PathBuf;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// Why the server could not start, or stopped on an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// No token is configured and the listen address is not loopback:
    /// anyone on the network could run flows.
    #[error(
        "refusing to listen on {addr} without a token: set --token-file or CHATFLOW_TOKEN, or listen on 127.0.0.1"
    )]
    NoToken {
        /// The listen address.
        addr: std::net::SocketAddr,
    },
    /// A configured token is too short to resist guessing.
    #[error("a token has {len} bytes; tokens need at least {min}")]
    WeakToken {
        /// Its length.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// A setting is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The engine refused its configuration.
    #[error("starting the engine: {0}")]
    Engine(#[from] chatflow_engine::EngineError),
    /// The store could not be opened or failed at start.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file of `--flows` or `--modules` could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A flow of `--flows` does not load; every problem is listed.
    #[error("flow {}: {}", path.display(), problems.join("; "))]
    InvalidFlow {
        /// The file.
        path: PathBuf,
        /// Each problem, with its block and field.
        problems: Vec<String>,
    },
    /// A module of `--modules` (or named by a flow of `--flows`) is not a
    /// valid ABI v1 module.
    #[error("module {}: {}", path.display(), problems.join("; "))]
    InvalidModule {
        /// The file.
        path: PathBuf,
        /// Each problem.
        problems: Vec<String>,
    },
    /// Serving failed (the listener broke).
    #[error("serving: {0}")]
    Serve(#[source] std::io::Error),
}

/// The stable `kind` of an error response. Clients match on it; the
/// message is for people. `docs/service.md` lists each with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 400: the body is not JSON (with line and column in the message).
    MalformedJson,
    /// 400: the JSON does not have the expected fields or types, a path
    /// parameter or header is invalid, or a property name is not valid.
    InvalidRequest,
    /// 415: a JSON body without `Content-Type: application/json`.
    UnsupportedMediaType,
    /// 401: no `Authorization: Bearer` token, or not a configured one.
    Unauthorized,
    /// 403: without tokens, a request naming a host other than loopback
    /// (DNS rebinding).
    ForbiddenHost,
    /// 404: no such route.
    NotFound,
    /// 404: no flow with this name.
    FlowNotFound,
    /// 404: no module with this hash.
    ModuleNotFound,
    /// 404: no conversation with this id.
    ConversationNotFound,
    /// 405: the route has no such method.
    MethodNotAllowed,
    /// 409: the conversation has completed or stopped; it takes no more
    /// answers.
    ConversationFinished,
    /// 409: a turn of this conversation is running (on this or another
    /// replica). Retry after `Retry-After` seconds; an answer sent with an
    /// `Idempotency-Key` is safe to retry.
    ConversationBusy,
    /// 413: the body is larger than the server accepts.
    BodyTooLarge,
    /// 422: the flow does not load; `problems` lists every problem with its
    /// block and field.
    InvalidFlow,
    /// 422: the module is not WebAssembly or breaks ABI v1; `problems`
    /// lists why.
    InvalidModule,
    /// 422: an `Idempotency-Key` already used for a different request.
    IdempotencyKeyReused,
    /// 503: the replica lost its lease on the conversation during the turn
    /// (it ran longer than the lease and another replica took over);
    /// nothing of the turn was stored. Retry.
    LeaseLost,
    /// 503: the server is shutting down; retry on another replica.
    ShuttingDown,
    /// 503: the store failed or cannot be reached.
    StoreUnavailable,
    /// 500: a stored flow no longer loads on this replica (for example its
    /// limits are over this replica's maximums).
    FlowUnavailable,
    /// 500: a bug.
    Internal,
}

impl ErrorKind {
    /// Every kind, for the docs and the metrics.
    pub const ALL: [ErrorKind; 21] = [
        ErrorKind::MalformedJson,
        ErrorKind::InvalidRequest,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::Unauthorized,
        ErrorKind::ForbiddenHost,
        ErrorKind::NotFound,
        ErrorKind::FlowNotFound,
        ErrorKind::ModuleNotFound,
        ErrorKind::ConversationNotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::ConversationFinished,
        ErrorKind::ConversationBusy,
        ErrorKind::BodyTooLarge,
        ErrorKind::InvalidFlow,
        ErrorKind::InvalidModule,
        ErrorKind::IdempotencyKeyReused,
        ErrorKind::LeaseLost,
        ErrorKind::ShuttingDown,
        ErrorKind::StoreUnavailable,
        ErrorKind::FlowUnavailable,
        ErrorKind::Internal,
    ];

    /// The name clients see in `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::MalformedJson => "malformed_json",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::ForbiddenHost => "forbidden_host",
            ErrorKind::NotFound => "not_found",
            ErrorKind::FlowNotFound => "flow_not_found",
            ErrorKind::ModuleNotFound => "module_not_found",
            ErrorKind::ConversationNotFound => "conversation_not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::ConversationFinished => "conversation_finished",
            ErrorKind::ConversationBusy => "conversation_busy",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::InvalidFlow => "invalid_flow",
            ErrorKind::InvalidModule => "invalid_module",
            ErrorKind::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorKind::LeaseLost => "lease_lost",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::StoreUnavailable => "store_unavailable",
            ErrorKind::FlowUnavailable => "flow_unavailable",
            ErrorKind::Internal => "internal",
        }
    }

    /// The HTTP status it is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::MalformedJson | ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::ForbiddenHost => StatusCode::FORBIDDEN,
            ErrorKind::NotFound
            | ErrorKind::FlowNotFound
            | ErrorKind::ModuleNotFound
            | ErrorKind::ConversationNotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::ConversationFinished | ErrorKind::ConversationBusy => StatusCode::CONFLICT,
            ErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::InvalidFlow | ErrorKind::InvalidModule | ErrorKind::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ErrorKind::LeaseLost | ErrorKind::ShuttingDown | ErrorKind::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorKind::FlowUnavailable | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// One problem of an invalid flow or module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// The block it is in, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<String>,
    /// The field it is in (`url`, `conditions[1].next`, `module`, …), if
    /// any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What kind of problem: `syntax`, `unknown_target`, `template`,
    /// `module_path`, `module_not_found`, `module`, `abi`, …
    pub kind: String,
    /// What is wrong.
    pub message: String,
    /// For JSON syntax errors: 1-based line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// For JSON syntax errors: 1-based column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable name: `malformed_json`, `invalid_flow`,
    /// `conversation_busy`, … (see `docs/service.md`).
    pub kind: String,
    /// What happened, for people.
    pub message: String,
    /// For `invalid_flow` and `invalid_module`: every problem.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

/// An error answered to a request.
#[derive(Debug)]
pub struct ApiError {
    kind: ErrorKind,
    message: String,
    problems: Vec<Problem>,
    retry_after_secs: Option<u64>,
}

/// The kind of the error a response carries, for the error metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorKindExt(pub(crate) ErrorKind);

impl ApiError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
            problems: Vec::new(),
            retry_after_secs: None,
        }
    }

    /// With every problem of an invalid flow or module.
    pub fn with_problems(mut self, problems: Vec<Problem>) -> ApiError {
        self.problems = problems;
        self
    }

    /// With a `Retry-After` header.
    pub fn with_retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    /// The kind.
    #[cfg(test)]
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        tracing::error!(error = %err, "store");
        ApiError::new(ErrorKind::StoreUnavailable, err.to_string()).with_retry_after(1)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            kind: self.kind.as_str().to_string(),
            message: self.message,
            problems: self.problems,
        };
        let mut response = (self.kind.status(), axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.kind == ErrorKind::Unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"chatflow\""),
            );
        }
        response.extensions_mut().insert(ErrorKindExt(self.kind));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_unique_and_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for kind in ErrorKind::ALL {
            let name = kind.as_str();
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert!(
                kind.status().is_client_error() || kind.status().is_server_error(),
                "{name}"
            );
        }
    }
}
