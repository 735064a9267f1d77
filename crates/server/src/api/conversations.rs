//! Conversations: start one on a flow, send answers, read, delete.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use chatflow_engine::{Conversation, Properties};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{IdempotencyKey, JsonBody, Param, json, json_bytes, parse_json, replayed};
use crate::config::rfc3339;
use crate::error::{ApiError, ErrorBody, ErrorKind};
use crate::server::AppState;
use crate::store::Deleted;
use crate::turns::{self, Status, TurnResponse};

/// The body of `POST /v1/flows/{name}/conversations` (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// Properties the conversation starts with, name to text value (for
    /// example the user's id or channel).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// The body of `POST /v1/conversations/{id}/answers`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// The user's answer to the question the conversation waits on.
    pub text: String,
}

/// A conversation as stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConversationView {
    /// The conversation id.
    pub id: String,
    /// The flow it runs.
    pub flow: String,
    /// The flow version it runs (fixed when it started).
    pub flow_version: i64,
    /// How it stands.
    pub status: Status,
    /// Where it is in the flow: `{"waiting_for_input": {"block", "prompt"}}`,
    /// `"completed"`, or `{"stopped": {"block", "error"}}`.
    #[schema(value_type = Object)]
    pub position: serde_json::Value,
    /// Everything it knows.
    pub properties: BTreeMap<String, String>,
    /// How many turns are stored (the start is turn 0).
    pub turns: i64,
    /// Whether a replica holds its lease now (a turn is running).
    pub running: bool,
    /// When it started (RFC 3339).
    pub created_at: String,
    /// When its last turn was stored (RFC 3339).
    pub updated_at: String,
    /// The last turns (`?turns=N`, by default the server's setting, 5),
    /// oldest first, with their messages and traces.
    pub last_turns: Vec<TurnResponse>,
}

/// `GET /v1/conversations/{id}` options.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ConversationQuery {
    /// How many of the last turns to include (0 to 100).
    pub turns: Option<u32>,
}

fn properties(from: BTreeMap<String, String>) -> Result<Properties, ApiError> {
    let mut props = Properties::new();
    for (name, value) in from {
        chatflow_engine::properties::validate_name(&name).map_err(|e| {
            ApiError::new(ErrorKind::InvalidRequest, format!("property {name:?}: {e}"))
        })?;
        props.set(name, value);
    }
    Ok(props)
}

/// Start a conversation.
///
/// Runs the flow's current version until its first `input` block or its
/// end, stores the conversation and the turn in one transaction, and
/// answers the bot's messages. With an `Idempotency-Key`, a retry answers
/// the conversation the first request created.
#[utoipa::path(
    post,
    path = "/v1/flows/{name}/conversations",
    tag = "conversations",
    params(
        ("name" = String, Path, description = "The flow's name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry answer the first request's conversation"),
    ),
    request_body(content = StartRequest, content_type = "application/json", description = "Optional"),
    responses(
        (status = 201, description = "Started (the `Location` header names the conversation)", body = TurnResponse),
        (status = 400, description = "`malformed_json`, `invalid_request`", body = ErrorBody),
        (status = 404, description = "`flow_not_found`", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn start_conversation(
    State(state): State<Arc<AppState>>,
    Param(name): Param,
    IdempotencyKey(key): IdempotencyKey,
    req: Request,
) -> Result<Response, ApiError> {
    let bytes = json_bytes(req, &state, true).await?;
    let body: StartRequest = if bytes.is_empty() {
        StartRequest::default()
    } else {
        parse_json(&bytes)?
    };
    let props = properties(body.properties)?;
    let started = state
        .running
        .run(&state, turns::start(state.clone(), name, props, key))
        .await?;
    let location = format!("/v1/conversations/{}", started.response.conversation_id);
    let mut response = json(StatusCode::CREATED, &started.response);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(replayed(response, started.replayed))
}

/// Answer the question a conversation waits on.
///
/// Runs the next turn: until the next `input` block or the end. With an
/// `Idempotency-Key`, a retry gets the stored result and runs nothing
/// twice. While another turn of the conversation runs (on any replica) the
/// answer gets `409 conversation_busy` with `Retry-After`.
#[utoipa::path(
    post,
    path = "/v1/conversations/{id}/answers",
    tag = "conversations",
    params(
        ("id" = String, Path, description = "The conversation id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry answer the stored turn"),
    ),
    request_body(content = AnswerRequest, content_type = "application/json"),
    responses(
        (status = 200, body = TurnResponse),
        (status = 400, description = "`malformed_json`, `invalid_request`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
        (status = 409, description = "`conversation_finished`, `conversation_busy`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
        (status = 422, description = "`idempotency_key_reused`", body = ErrorBody),
        (status = 503, description = "`lease_lost`, `shutting_down`, `store_unavailable`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn answer(
    State(state): State<Arc<AppState>>,
    Param(id): Param,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<AnswerRequest>,
) -> Result<Response, ApiError> {
    let answered = state
        .running
        .run(&state, turns::answer(state.clone(), id, body.text, key))
        .await?;
    Ok(replayed(
        json(StatusCode::OK, &answered.response),
        answered.replayed,
    ))
}

/// Read a conversation.
#[utoipa::path(
    get,
    path = "/v1/conversations/{id}",
    tag = "conversations",
    params(("id" = String, Path, description = "The conversation id"), ConversationQuery),
    responses(
        (status = 200, body = ConversationView),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_conversation(
    State(state): State<Arc<AppState>>,
    Param(id): Param,
    query: Result<Query<ConversationQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::new(ErrorKind::InvalidRequest, e.body_text()))?;
    let record = state
        .store
        .conversation(&id)
        .await?
        .ok_or_else(|| turns::conversation_not_found(&id))?;
    let n = query.turns.unwrap_or(state.history_turns).min(100);
    let last = state.store.last_turns(&id, i64::from(n)).await?;
    let conversation: Conversation = serde_json::from_str(&record.state).map_err(|e| {
        ApiError::new(
            ErrorKind::Internal,
            format!("stored conversation {id} does not read back: {e}"),
        )
    })?;
    let status = match record.status.as_str() {
        "waiting_for_input" => Status::WaitingForInput,
        "completed" => Status::Completed,
        _ => Status::Stopped,
    };
    let view = ConversationView {
        id: record.id,
        flow: record.flow_name,
        flow_version: record.flow_version,
        status,
        position: serde_json::to_value(&conversation.position).expect("a position serializes"),
        properties: conversation
            .properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        turns: record.turns,
        running: record
            .lease_until
            .is_some_and(|until| until >= state.clock.now()),
        created_at: rfc3339(record.created_at),
        updated_at: rfc3339(record.updated_at),
        last_turns: last
            .iter()
            .map(TurnResponse::from_record)
            .collect::<Result<_, _>>()?,
    };
    Ok(json(StatusCode::OK, &view))
}

/// Delete a conversation and its turns.
#[utoipa::path(
    delete,
    path = "/v1/conversations/{id}",
    tag = "conversations",
    params(("id" = String, Path, description = "The conversation id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
        (status = 409, description = "`conversation_busy`: a turn is running", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn delete_conversation(
    State(state): State<Arc<AppState>>,
    Param(id): Param,
) -> Result<StatusCode, ApiError> {
    match state
        .store
        .delete_conversation(&id, state.clock.now())
        .await?
    {
        Deleted::Deleted => Ok(StatusCode::NO_CONTENT),
        Deleted::Busy { until } => Err(turns::busy(&state, until)),
        Deleted::NotFound => Err(turns::conversation_not_found(&id)),
    }
}
