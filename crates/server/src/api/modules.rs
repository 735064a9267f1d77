//! `/v1/modules`: upload Code block modules, read their metadata.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Param, json, read_body};
use crate::catalog;
use crate::config::rfc3339;
use crate::error::{ApiError, ErrorBody, ErrorKind};
use crate::metrics::timed;
use crate::server::AppState;
use crate::store::ModuleRecord;

/// A stored module.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModuleView {
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// What a flow's Code block writes as its `module`: `sha256:<hex>`.
    pub reference: String,
    /// Size in bytes.
    pub size: i64,
    /// The `chatflow` imports it uses.
    pub imports: Vec<String>,
    /// Its exports.
    pub exports: Vec<String>,
    /// When it was first uploaded (RFC 3339).
    pub created_at: String,
}

impl From<ModuleRecord> for ModuleView {
    fn from(m: ModuleRecord) -> Self {
        ModuleView {
            reference: format!("sha256:{}", m.sha256),
            sha256: m.sha256,
            size: m.size,
            imports: m.imports,
            exports: m.exports,
            created_at: rfc3339(m.created_at),
        }
    }
}

/// Upload a module.
///
/// The body is the `.wasm` file (`Content-Type: application/wasm` or
/// `application/octet-stream`), at most the sandbox's module size cap
/// (16 MiB by default). It is validated against ABI v1 and compiled by this
/// replica; other replicas compile it from the store when a flow first
/// needs it. Uploading the same bytes again answers the same module.
#[utoipa::path(
    put,
    path = "/v1/modules",
    tag = "modules",
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "A WebAssembly module (ABI v1)"),
    responses(
        (status = 201, description = "A new module", body = ModuleView),
        (status = 200, description = "Already stored", body = ModuleView),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_module`: not WebAssembly, or every way it breaks ABI v1", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn put_module(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> Result<Response, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    if !matches!(
        content_type.as_deref(),
        Some("application/wasm" | "application/octet-stream")
    ) {
        return Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            format!(
                "expected Content-Type: application/wasm, not {}",
                content_type.as_deref().unwrap_or("none")
            ),
        ));
    }
    let limit = state.engine.sandbox().config().max_module_bytes;
    let bytes = read_body(req, &state, limit).await?;
    let bytes = Arc::new(bytes.to_vec());
    let checked = catalog::check_module(&state.engine, bytes.clone(), state.clock.now())
        .await
        .map_err(|problems| {
            ApiError::new(
                ErrorKind::InvalidModule,
                format!(
                    "not an ABI v1 module: {}",
                    problems
                        .iter()
                        .map(|p| p.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            )
            .with_problems(problems)
        })?;
    let created = timed(
        &state.metrics,
        "put_module",
        state.store.put_module(&checked.record, &bytes),
    )
    .await?;
    let stored = state
        .store
        .module(&checked.record.sha256)
        .await?
        .unwrap_or(checked.record);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(status, &ModuleView::from(stored)))
}

/// Read a module's metadata.
#[utoipa::path(
    get,
    path = "/v1/modules/{sha256}",
    tag = "modules",
    params(("sha256" = String, Path, description = "64 hex digits, with or without `sha256:`")),
    responses(
        (status = 200, body = ModuleView),
        (status = 400, description = "`invalid_request`: not a SHA-256", body = ErrorBody),
        (status = 404, description = "`module_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_module(
    State(state): State<Arc<AppState>>,
    Param(sha256): Param,
) -> Result<Response, ApiError> {
    let hex = sha256
        .strip_prefix("sha256:")
        .unwrap_or(&sha256)
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::new(
            ErrorKind::InvalidRequest,
            format!("{sha256:?} is not a SHA-256 (64 hex digits)"),
        ));
    }
    let module = state.store.module(&hex).await?.ok_or_else(|| {
        ApiError::new(
            ErrorKind::ModuleNotFound,
            format!("no module with sha256 {hex}"),
        )
    })?;
    Ok(json(StatusCode::OK, &ModuleView::from(module)))
}
