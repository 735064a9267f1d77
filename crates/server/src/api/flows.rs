//! `/v1/flows`: store, read, list and delete flows.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use chatflow_engine::flow::model::FlowFile;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Param, json, json_bytes};
use crate::catalog::{self, sha256_hex};
use crate::config::rfc3339;
use crate::error::{ApiError, ErrorBody, ErrorKind};
use crate::metrics::timed;
use crate::server::AppState;
use crate::store::FlowRecord;

/// What storing a flow did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowPutResponse {
    /// The flow's name (the URL's).
    pub name: String,
    /// The current version's id. Conversations started from now on run it;
    /// those in progress keep the version they started on.
    pub version: i64,
    /// The `name` field of the flow file.
    pub title: String,
    /// `true` if the name had no flow before.
    pub created: bool,
    /// `false` if the file is the current version's, byte for byte (no new
    /// version was stored).
    pub changed: bool,
    /// Things worth knowing that do not stop the flow from loading, such as
    /// unreachable blocks.
    pub warnings: Vec<String>,
}

/// A stored flow.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowView {
    /// The flow's name.
    pub name: String,
    /// The current version's id.
    pub version: i64,
    /// The `name` field of the flow file.
    pub title: String,
    /// When this version was stored (RFC 3339).
    pub updated_at: String,
    /// The flow file as stored (Code blocks name their modules by hash).
    #[schema(value_type = Object)]
    pub flow: serde_json::Value,
}

/// A flow in a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowSummary {
    /// The flow's name.
    pub name: String,
    /// The current version's id.
    pub version: i64,
    /// The `name` field of the flow file.
    pub title: String,
    /// When this version was stored (RFC 3339).
    pub updated_at: String,
}

/// Every stored flow.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlowList {
    /// By name.
    pub flows: Vec<FlowSummary>,
}

fn name_param(name: &str) -> Result<(), ApiError> {
    if super::valid_flow_name(name) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::InvalidRequest,
            format!("{name:?} is not a flow name (1 to 128 of A-Z a-z 0-9 . _ -)"),
        ))
    }
}

fn title(source: &str) -> String {
    serde_json::from_str::<FlowFile>(source)
        .map(|f| f.name)
        .unwrap_or_default()
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(ErrorKind::FlowNotFound, format!("no flow named {name:?}"))
}

/// Store a flow.
///
/// The body is a flow file (docs/flow-format.md). It is validated as
/// `chatflow check` does, its Code block modules named by hash and taken
/// from the modules uploaded with `PUT /v1/modules`; a module path is
/// refused. An invalid flow gets `422 invalid_flow` listing every problem
/// with its block and field, and nothing is stored.
#[utoipa::path(
    put,
    path = "/v1/flows/{name}",
    tag = "flows",
    params(("name" = String, Path, description = "1 to 128 of A-Z a-z 0-9 . _ -")),
    request_body(content = Object, content_type = "application/json", description = "A flow file"),
    responses(
        (status = 201, description = "A new flow", body = FlowPutResponse),
        (status = 200, description = "A new version, or the current one unchanged", body = FlowPutResponse),
        (status = 400, description = "`malformed_json`, `invalid_request`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_flow`, with every problem", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn put_flow(
    State(state): State<Arc<AppState>>,
    Param(name): Param,
    req: Request,
) -> Result<Response, ApiError> {
    name_param(&name)?;
    let bytes = json_bytes(req, &state, false).await?;
    let source = std::str::from_utf8(&bytes).map_err(|e| {
        ApiError::new(
            ErrorKind::MalformedJson,
            format!("the body is not UTF-8: {e}"),
        )
    })?;
    super::parse_json::<serde::de::IgnoredAny>(source.as_bytes())?;
    let flow = catalog::check(&state.engine, state.store.as_ref(), source)
        .await
        .map_err(|problems| {
            ApiError::new(
                ErrorKind::InvalidFlow,
                format!(
                    "flow {name:?} does not load: {} problem(s): {}",
                    problems.len(),
                    problems
                        .iter()
                        .map(catalog::describe)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            )
            .with_problems(problems)
        })?;
    let now = state.clock.now();
    let put = timed(
        &state.metrics,
        "put_flow",
        state
            .store
            .put_flow(&name, source, &sha256_hex(source.as_bytes()), now),
    )
    .await?;
    let body = FlowPutResponse {
        name,
        version: put.version,
        title: flow.name().to_string(),
        created: put.created,
        changed: put.changed,
        warnings: flow.warnings().iter().map(ToString::to_string).collect(),
    };
    let status = if put.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(status, &body))
}

/// Read a flow's current version.
#[utoipa::path(
    get,
    path = "/v1/flows/{name}",
    tag = "flows",
    params(("name" = String, Path, description = "The flow's name")),
    responses(
        (status = 200, body = FlowView),
        (status = 404, description = "`flow_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_flow(
    State(state): State<Arc<AppState>>,
    Param(name): Param,
) -> Result<Response, ApiError> {
    let record = state
        .store
        .flow(&name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    Ok(json(StatusCode::OK, &view(record)?))
}

fn view(record: FlowRecord) -> Result<FlowView, ApiError> {
    let flow = serde_json::from_str(&record.source).map_err(|e| {
        ApiError::new(
            ErrorKind::Internal,
            format!("stored flow {:?} does not read back: {e}", record.name),
        )
    })?;
    Ok(FlowView {
        title: title(&record.source),
        name: record.name,
        version: record.version,
        updated_at: rfc3339(record.updated_at),
        flow,
    })
}

/// List the flows.
#[utoipa::path(
    get,
    path = "/v1/flows",
    tag = "flows",
    responses((status = 200, body = FlowList)),
    security(("bearer" = []))
)]
pub(crate) async fn list_flows(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let flows = state
        .store
        .flows()
        .await?
        .into_iter()
        .map(|r| FlowSummary {
            title: title(&r.source),
            name: r.name,
            version: r.version,
            updated_at: rfc3339(r.updated_at),
        })
        .collect();
    Ok(json(StatusCode::OK, &FlowList { flows }))
}

/// Delete a flow.
///
/// New conversations can no longer start on it; conversations in progress
/// keep running the version they started on.
#[utoipa::path(
    delete,
    path = "/v1/flows/{name}",
    tag = "flows",
    params(("name" = String, Path, description = "The flow's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`flow_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn delete_flow(
    State(state): State<Arc<AppState>>,
    Param(name): Param,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_flow(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&name))
    }
}
