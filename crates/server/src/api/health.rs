//! Probes, metrics and the API description.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::json;
use crate::error::{ApiError, ErrorBody, ErrorKind};
use crate::server::AppState;

/// A probe's answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
    /// For `/readyz`: `sqlite` or `postgres`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, body = Health))
)]
pub(crate) async fn healthz() -> Response {
    json(
        StatusCode::OK,
        &Health {
            status: "ok".into(),
            store: None,
        },
    )
}

/// Readiness: the store answers within 2 seconds and the server is not
/// shutting down.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, body = Health),
        (status = 503, description = "`store_unavailable`, `shutting_down`", body = ErrorBody),
    )
)]
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok(json(
            StatusCode::OK,
            &Health {
                status: "ready".into(),
                store: Some(state.store.kind().into()),
            },
        )),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ApiError::new(
            ErrorKind::StoreUnavailable,
            "the store did not answer within 2 s",
        )),
    }
}

/// Metrics in Prometheus' text format (OpenMetrics).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, content_type = "application/openmetrics-text", body = String)),
    security(("bearer" = []))
)]
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "operations",
    responses((status = 200, content_type = "application/json", body = Object))
)]
pub(crate) async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi_json_text(),
    )
        .into_response()
}
