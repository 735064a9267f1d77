//! Running turns durably: the lease, the run, the commit.
//!
//! Starting a conversation runs its first turn and stores the conversation
//! and the turn in one transaction (nobody else knows the id yet, so no
//! lease is needed). An answer:
//!
//! 1. with an `Idempotency-Key` already stored for this conversation, answers
//!    the stored turn and runs nothing;
//! 2. takes the conversation's lease (`409 conversation_busy` if another
//!    turn holds it), and checks the key again under the lease;
//! 3. runs the turn from the stored state, renewing the lease every third
//!    of its duration;
//! 4. stores the new state and the turn and releases the lease in one
//!    transaction, if the lease is still ours (else `503 lease_lost`, and
//!    nothing is stored).
//!
//! A replica that dies in step 3 leaves the stored state as it was before
//! the turn; once its lease expires, the client's retry runs the turn again
//! on any replica. External calls of an interrupted turn may therefore run
//! twice (at-least-once); a committed turn is never run or stored twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chatflow_engine::flow::{Position, Turn, TurnStatus};
use chatflow_engine::{Conversation, Flow, Properties};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use utoipa::ToSchema;

use crate::catalog::sha256_hex;
use crate::error::{ApiError, ErrorKind};
use crate::metrics::timed;
use crate::server::AppState;
use crate::store::{Commit, Created, Lease, NewConversation, TurnRecord};

/// How a conversation stands after a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// An `input` block waits for the user's answer.
    WaitingForInput,
    /// The flow reached its end.
    Completed,
    /// A block stopped the conversation on an error.
    Stopped,
}

impl Status {
    fn of(status: TurnStatus) -> Status {
        match status {
            TurnStatus::WaitingForInput => Status::WaitingForInput,
            TurnStatus::Completed => Status::Completed,
            TurnStatus::Stopped => Status::Stopped,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::WaitingForInput => "waiting_for_input",
            Status::Completed => "completed",
            Status::Stopped => "stopped",
        }
    }
}

/// A message for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageOut {
    /// The block that produced it.
    pub block: String,
    /// The text.
    pub text: String,
}

/// The question a conversation waits on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WaitingFor {
    /// The `input` block.
    pub block: String,
    /// The question asked.
    pub prompt: String,
}

/// Why a conversation stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TurnError {
    /// The block that stopped it.
    pub block: String,
    /// A stable name for the error: the REST or Code block error's kind
    /// (`status`, `timeout`, `out_of_fuel`, …), `step_limit`,
    /// `unknown_block`.
    pub kind: String,
    /// What happened.
    pub message: String,
}

/// What one turn did: the bot's messages, how the conversation stands, and
/// one trace entry per block run. A retry with the same `Idempotency-Key`
/// answers this same document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TurnResponse {
    /// The conversation.
    pub conversation_id: String,
    /// The turn's number: 0 for the start, then 1, 2, … per answer.
    pub turn: i64,
    /// How the conversation stands now.
    pub status: Status,
    /// The bot's messages, in order.
    pub messages: Vec<MessageOut>,
    /// The question the conversation now waits on, if it waits.
    pub waiting_for: Option<WaitingFor>,
    /// Why the conversation stopped, if it stopped.
    pub error: Option<TurnError>,
    /// One entry per block run: `block`, `type`, `outcome`, `duration_us`,
    /// and `http_status`, `fuel_used`, `logs`, `error`, `changed`, `next`
    /// where they apply.
    #[schema(value_type = Vec<Object>)]
    pub trace: Vec<serde_json::Value>,
}

impl TurnResponse {
    fn new(conversation_id: &str, seq: i64, turn: &Turn, conversation: &Conversation) -> Self {
        TurnResponse {
            conversation_id: conversation_id.to_string(),
            turn: seq,
            status: Status::of(turn.status),
            messages: turn
                .messages
                .iter()
                .map(|m| MessageOut {
                    block: m.block.clone(),
                    text: m.text.clone(),
                })
                .collect(),
            waiting_for: match &conversation.position {
                Position::WaitingForInput { block, prompt } => Some(WaitingFor {
                    block: block.clone(),
                    prompt: prompt.clone(),
                }),
                _ => None,
            },
            error: turn.error.as_ref().map(|e| TurnError {
                block: e.block().to_string(),
                kind: e.kind().to_string(),
                message: e.to_string(),
            }),
            trace: turn
                .trace
                .iter()
                .map(|s| serde_json::to_value(s).expect("a step serializes"))
                .collect(),
        }
    }

    pub(crate) fn from_record(turn: &TurnRecord) -> Result<TurnResponse, ApiError> {
        serde_json::from_str(&turn.result).map_err(|e| {
            ApiError::new(
                ErrorKind::Internal,
                format!("stored turn {} does not read back: {e}", turn.seq),
            )
        })
    }
}

/// The turns running on this replica, so that shutdown can wait for them
/// (and cancel them past the grace period).
pub(crate) struct Running {
    tasks: std::sync::Mutex<HashMap<u64, AbortHandle>>,
    next: AtomicU64,
    idle: Notify,
}

impl Running {
    pub(crate) fn new() -> Arc<Running> {
        Arc::new(Running {
            tasks: std::sync::Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            idle: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, AbortHandle>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `fut` as its own task: a client that disconnects does not
    /// cancel the turn, which commits, and a retry with its
    /// `Idempotency-Key` gets the stored result.
    pub(crate) async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        state: &Arc<AppState>,
        fut: impl Future<Output = Result<T, ApiError>> + Send + 'static,
    ) -> Result<T, ApiError> {
        struct Done(Arc<Running>, u64, Arc<AppState>);
        impl Drop for Done {
            fn drop(&mut self) {
                let mut tasks = self.0.lock();
                tasks.remove(&self.1);
                self.2.metrics.in_flight().dec();
                if tasks.is_empty() {
                    self.0.idle.notify_waiters();
                }
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        state.metrics.in_flight().inc();
        let done = Done(self.clone(), id, state.clone());
        let handle = {
            // Held while spawning, so the task's `Done` cannot remove the
            // entry before it is inserted.
            let mut tasks = self.lock();
            let handle = tokio::spawn(async move {
                let _done = done;
                fut.await
            });
            tasks.insert(id, handle.abort_handle());
            handle
        };
        match handle.await {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Err(ApiError::new(
                ErrorKind::ShuttingDown,
                "the server shut down before the turn finished; nothing of it was stored",
            )
            .with_retry_after(1)),
            Err(e) => Err(ApiError::new(
                ErrorKind::Internal,
                format!("the turn failed: {e}"),
            )),
        }
    }

    /// How many turns are running.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Waits until no turn runs.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.len() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Cancels every running turn.
    pub(crate) fn abort_all(&self) {
        for handle in self.lock().values() {
            handle.abort();
        }
    }
}

fn request_sha(request: &serde_json::Value) -> String {
    sha256_hex(request.to_string().as_bytes())
}

/// The stored turn, if it answers the same request; else
/// `idempotency_key_reused`.
fn replay(turn: &TurnRecord, request: &str) -> Result<TurnResponse, ApiError> {
    if turn.request_sha256 != request {
        return Err(ApiError::new(
            ErrorKind::IdempotencyKeyReused,
            format!(
                "the Idempotency-Key was used for turn {} with a different request",
                turn.seq
            ),
        ));
    }
    TurnResponse::from_record(turn)
}

/// A fresh, unguessable id (conversations, lease tokens).
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// How a turn was answered.
pub(crate) struct Answered {
    pub(crate) response: TurnResponse,
    /// `true` if this is a retry answered from the store.
    pub(crate) replayed: bool,
}

/// Starts a conversation on flow `name` and runs its first turn.
pub(crate) async fn start(
    state: Arc<AppState>,
    name: String,
    properties: Properties,
    key: Option<String>,
) -> Result<Answered, ApiError> {
    let store = state.store.as_ref();
    let m = &state.metrics;
    let request = request_sha(&serde_json::json!({"flow": name, "properties": properties}));
    if let Some(key) = &key
        && let Some(response) = replay_start(&state, key, &request).await?
    {
        return Ok(response);
    }
    let record = timed(m, "flow", store.flow(&name))
        .await?
        .ok_or_else(|| flow_not_found(&name))?;
    let flow = state
        .flows
        .get(&state.engine, store, record.version)
        .await?;

    let started = Instant::now();
    let mut conversation = state.engine.start(&flow, properties);
    let turn = state.engine.run(&flow, &mut conversation).await;
    let duration = started.elapsed();

    let id = new_id();
    let response = TurnResponse::new(&id, 0, &turn, &conversation);
    let now = state.clock.now();
    let turn_record = TurnRecord {
        seq: 0,
        idempotency_key: key.clone(),
        request_sha256: request.clone(),
        status: response.status.as_str().into(),
        result: serde_json::to_string(&response).expect("a turn serializes"),
        created_at: now,
    };
    let new = NewConversation {
        id: id.clone(),
        flow_name: name,
        flow_version: record.version,
        state: serde_json::to_string(&conversation).expect("a conversation serializes"),
        status: response.status.as_str().into(),
        create_key: key.clone(),
        now,
    };
    match timed(m, "create", store.create_conversation(&new, &turn_record)).await? {
        Created::Created => {
            m.turn(response.status.as_str(), duration, &turn.trace);
            Ok(Answered {
                response,
                replayed: false,
            })
        }
        // A concurrent request with the same key stored its conversation
        // first: answer that one (this run's effects are dropped).
        Created::KeyTaken { .. } => {
            let key = key.expect("only a keyed create can collide");
            replay_start(&state, &key, &request)
                .await?
                .ok_or_else(|| ApiError::new(ErrorKind::Internal, "the key's turn vanished"))
        }
    }
}

async fn replay_start(
    state: &AppState,
    key: &str,
    request: &str,
) -> Result<Option<Answered>, ApiError> {
    let store = state.store.as_ref();
    let Some(id) = store.conversation_by_create_key(key).await? else {
        return Ok(None);
    };
    let Some(turn) = store.turn_by_key(&id, key).await? else {
        return Ok(None);
    };
    Ok(Some(Answered {
        response: replay(&turn, request)?,
        replayed: true,
    }))
}

fn flow_not_found(name: &str) -> ApiError {
    ApiError::new(ErrorKind::FlowNotFound, format!("no flow named {name:?}"))
}

pub(crate) fn conversation_not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::ConversationNotFound,
        format!("no conversation {id:?}"),
    )
}

pub(crate) fn busy(state: &AppState, until: i64) -> ApiError {
    let wait_ms = (until - state.clock.now()).max(0);
    ApiError::new(
        ErrorKind::ConversationBusy,
        "a turn of this conversation is running; retry after it (with the same Idempotency-Key)",
    )
    .with_retry_after(u64::try_from(wait_ms).map_or(1, |ms| ms.div_ceil(1000)))
}

/// Releases the lease when dropped, unless the turn committed (which
/// released it in its transaction).
struct LeaseGuard {
    state: Arc<AppState>,
    id: String,
    token: String,
    armed: bool,
}

impl LeaseGuard {
    async fn release(mut self) {
        self.armed = false;
        if let Err(e) = self.state.store.release_lease(&self.id, &self.token).await {
            tracing::warn!(conversation = %self.id, error = %e, "releasing a lease");
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let state = self.state.clone();
        let id = std::mem::take(&mut self.id);
        let token = std::mem::take(&mut self.token);
        // The turn failed or was cancelled: the state is as before it; let
        // the next request run it without waiting for the lease to expire.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let store = state.store.clone();
            let release = rt.spawn(async move {
                let _ = store.release_lease(&id, &token).await;
            });
            let mut releases = state.releases.lock().unwrap_or_else(|e| e.into_inner());
            releases.retain(|r| !r.is_finished());
            releases.push(release);
        }
    }
}

/// Runs the next turn of conversation `id` with the user's answer.
pub(crate) async fn answer(
    state: Arc<AppState>,
    id: String,
    text: String,
    key: Option<String>,
) -> Result<Answered, ApiError> {
    let store = state.store.as_ref();
    let m = &state.metrics;
    let request = request_sha(&serde_json::json!({"answer": text}));
    let replayed = |response| Answered {
        response,
        replayed: true,
    };
    if let Some(key) = &key
        && let Some(turn) = timed(m, "turn_by_key", store.turn_by_key(&id, key)).await?
    {
        return replay(&turn, &request).map(replayed);
    }

    let token = new_id();
    let ttl = i64::try_from(state.lease_ttl.as_millis()).unwrap_or(i64::MAX);
    let now = state.clock.now();
    let lease = timed(m, "lease", store.acquire_lease(&id, &token, now, now + ttl)).await?;
    let record = match lease {
        Lease::Acquired(record) => record,
        Lease::Busy { until } => return Err(busy(&state, until)),
        Lease::NotFound => return Err(conversation_not_found(&id)),
    };
    let guard = LeaseGuard {
        state: state.clone(),
        id: id.clone(),
        token: token.clone(),
        armed: true,
    };
    // Under the lease, the key is checked again: a retry that raced the
    // first attempt's commit finds its turn here.
    if let Some(key) = &key
        && let Some(turn) = store.turn_by_key(&id, key).await?
    {
        guard.release().await;
        return replay(&turn, &request).map(replayed);
    }
    let mut conversation: Conversation = serde_json::from_str(&record.state).map_err(|e| {
        ApiError::new(
            ErrorKind::Internal,
            format!("stored conversation {id} does not read back: {e}"),
        )
    })?;
    if conversation.answer(text).is_err() {
        guard.release().await;
        return Err(ApiError::new(
            ErrorKind::ConversationFinished,
            format!(
                "conversation {id} is {}; it takes no more answers",
                record.status
            ),
        ));
    }
    let flow = state
        .flows
        .get(&state.engine, store, record.flow_version)
        .await?;

    let started = Instant::now();
    let turn = run_leased(&state, &flow, &mut conversation, &id, &token).await?;
    let duration = started.elapsed();

    let response = TurnResponse::new(&id, record.turns, &turn, &conversation);
    let turn_record = TurnRecord {
        seq: record.turns,
        idempotency_key: key,
        request_sha256: request,
        status: response.status.as_str().into(),
        result: serde_json::to_string(&response).expect("a turn serializes"),
        created_at: state.clock.now(),
    };
    let conversation_json =
        serde_json::to_string(&conversation).expect("a conversation serializes");
    let commit = timed(
        m,
        "commit",
        store.commit_turn(&id, &token, &conversation_json, &turn_record),
    )
    .await?;
    match commit {
        Commit::Committed => {
            let mut guard = guard;
            guard.armed = false;
            m.turn(response.status.as_str(), duration, &turn.trace);
            Ok(Answered {
                response,
                replayed: false,
            })
        }
        Commit::LeaseLost => {
            let mut guard = guard;
            guard.armed = false;
            Err(lease_lost(&id))
        }
    }
}

fn lease_lost(id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::LeaseLost,
        format!(
            "this replica lost its lease on conversation {id} during the turn; \
             nothing of the turn was stored: retry"
        ),
    )
    .with_retry_after(1)
}

/// Runs the turn while renewing the lease; stops the run if the lease is
/// lost.
async fn run_leased(
    state: &Arc<AppState>,
    flow: &Flow,
    conversation: &mut Conversation,
    id: &str,
    token: &str,
) -> Result<Turn, ApiError> {
    let ttl = state.lease_ttl;
    let every = (ttl / 3).max(Duration::from_millis(10));
    let heartbeat = async {
        loop {
            tokio::time::sleep(every).await;
            let until = state.clock.now() + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
            match timed(
                &state.metrics,
                "renew",
                state.store.renew_lease(id, token, until),
            )
            .await
            {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => tracing::warn!(conversation = %id, error = %e, "renewing a lease"),
            }
        }
    };
    tokio::select! {
        turn = state.engine.run(flow, conversation) => Ok(turn),
        () = heartbeat => Err(lease_lost(id)),
    }
}
