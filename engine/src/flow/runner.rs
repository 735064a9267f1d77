//! The conversation runner: one conversation is its properties and where it
//! is in the flow; running it executes blocks in order until the flow ends,
//! an `input` block waits for the user, or a block stops it on an error.
//!
//! Each block's property changes are committed only when the block succeeds
//! (or fails with Ignore error, which for a REST API block commits the
//! removal of its response property). A [`Conversation`] is plain data
//! (serde), so an operator can persist it between user messages and resume
//! it later, in another process, with the same [`Flow`].

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::net::HttpClient;
use crate::properties::{ChangeSet, Properties};
use crate::rest::RestError;
use crate::sandbox::{LogEntry, RunError, Sandbox};

use super::load::{BlockKind, Flow};
use super::model::BlockType;

/// One conversation's state: its properties and where it is in its flow.
///
/// Serializes to JSON (e.g. `{"flow":"CRM profile","properties":{…},
/// "position":{"at":"lookup"}}`); restore it with serde and keep running it
/// with [`Engine::run`](crate::Engine::run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// The name of the flow this conversation runs.
    pub flow: String,
    /// Everything the conversation knows.
    pub properties: Properties,
    /// Where it is.
    pub position: Position,
}

/// Where a conversation is in its flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// The next block to run.
    At(String),
    /// Waiting at an `input` block for the user's answer.
    WaitingForInput {
        /// The input block.
        block: String,
        /// The question asked.
        prompt: String,
    },
    /// The answer to an `input` block has been given and is stored when
    /// the conversation next runs.
    Answered {
        /// The input block.
        block: String,
        /// The user's answer.
        answer: String,
    },
    /// The flow has ended normally.
    Completed,
    /// A block stopped the conversation.
    Stopped {
        /// The block that stopped it.
        block: String,
        /// Why, as text (the typed error is in the [`Turn`] that stopped).
        error: String,
    },
}

/// Why [`Conversation::answer`] refused an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the conversation is not waiting for input")]
#[non_exhaustive]
pub struct NotWaiting;

impl Conversation {
    /// A new conversation on `flow` with the given initial properties, at
    /// the start block ([`Engine::start`](crate::Engine::start)).
    pub(crate) fn new(flow: &Flow, properties: Properties) -> Conversation {
        Conversation {
            flow: flow.name().to_string(),
            properties,
            position: Position::At(flow.start().to_string()),
        }
    }

    /// Gives the answer to the `input` block the conversation is waiting
    /// at. It is stored in the block's property when the conversation next
    /// runs.
    pub fn answer(&mut self, answer: impl Into<String>) -> Result<(), NotWaiting> {
        match &self.position {
            Position::WaitingForInput { block, .. } => {
                self.position = Position::Answered {
                    block: block.clone(),
                    answer: answer.into(),
                };
                Ok(())
            }
            _ => Err(NotWaiting),
        }
    }

    /// Whether the conversation is over (completed or stopped).
    pub fn is_finished(&self) -> bool {
        matches!(
            self.position,
            Position::Completed | Position::Stopped { .. }
        )
    }

    /// The prompt, if the conversation waits for input.
    pub fn waiting_for(&self) -> Option<&str> {
        match &self.position {
            Position::WaitingForInput { prompt, .. } => Some(prompt),
            _ => None,
        }
    }
}

/// What one [`Engine::run`](crate::Engine::run) did: messages for the user, a trace per block,
/// and how it ended.
#[derive(Debug, Serialize)]
pub struct Turn {
    /// Messages shown to the user, in order (message blocks, input prompts,
    /// and messages sent by Code blocks).
    pub messages: Vec<Message>,
    /// One entry per block executed.
    pub trace: Vec<Step>,
    /// How the turn ended.
    pub status: TurnStatus,
    /// The error that stopped the conversation, if it stopped.
    #[serde(skip)]
    pub error: Option<StopError>,
}

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    /// The flow reached its end.
    Completed,
    /// An `input` block waits for the user's answer.
    WaitingForInput,
    /// A block stopped the conversation on an error.
    Stopped,
}

/// A message shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The block that produced it.
    pub block: String,
    /// The index in [`Turn::trace`] of the step that produced it.
    pub step: usize,
    /// The text.
    pub text: String,
}

/// What one block did, for the transcript.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The block's id.
    pub block: String,
    /// The block's type.
    #[serde(rename = "type")]
    pub block_type: BlockType,
    /// `ok`, `ignored_error`, `stopped` or `waiting`.
    pub outcome: StepOutcome,
    /// Wall time of the block.
    #[serde(rename = "duration_us", serialize_with = "micros")]
    pub duration: Duration,
    /// REST API block: the last HTTP status received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// REST API block: how many `301` redirects were followed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirects: Option<u32>,
    /// Code block: fuel used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel_used: Option<u64>,
    /// Code block: HTTP calls made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_calls: Option<u32>,
    /// Code block: its logs (kept for failed runs too).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogEntry>,
    /// The error, for `ignored_error` and `stopped`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Property names this block changed (set or removed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// The block that runs next, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros().try_into().unwrap_or(u64::MAX))
}

/// How a block ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// It succeeded.
    Ok,
    /// It failed, and was told to ignore errors: the conversation goes on.
    IgnoredError,
    /// It failed and stopped the conversation.
    Stopped,
    /// It waits for the user's answer.
    Waiting,
}

/// Why a conversation stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StopError {
    /// A REST API block failed without Ignore error.
    #[error("block {block:?} (rest_api): {source}")]
    Rest {
        /// The block.
        block: String,
        /// The error.
        #[source]
        source: RestError,
    },
    /// A Code block failed without Ignore error.
    #[error("block {block:?} (code): {source}")]
    Code {
        /// The block.
        block: String,
        /// The error.
        #[source]
        source: RunError,
    },
    /// More blocks ran in one turn than the engine's step limit: most
    /// likely a loop in the flow.
    #[error(
        "block {block:?}: {limit} blocks ran without reaching the end or an input block; the flow probably loops (step limit {limit})"
    )]
    StepLimit {
        /// The block that would have run next.
        block: String,
        /// The limit ([`crate::EngineConfig::max_steps`]).
        limit: u32,
    },
    /// The conversation's position names a block the flow does not have
    /// (it was saved with another version of the flow).
    #[error("the conversation is at block {block:?}, which flow {flow:?} does not have")]
    UnknownBlock {
        /// The flow's name.
        flow: String,
        /// The block id.
        block: String,
    },
}

impl StopError {
    /// The block where the conversation stopped.
    pub fn block(&self) -> &str {
        match self {
            StopError::Rest { block, .. }
            | StopError::Code { block, .. }
            | StopError::StepLimit { block, .. }
            | StopError::UnknownBlock { block, .. } => block,
        }
    }

    /// A short, stable name for the error: the REST or Code error's kind,
    /// `step_limit` or `unknown_block`.
    pub fn kind(&self) -> &'static str {
        match self {
            StopError::Rest { source, .. } => source.kind(),
            StopError::Code { source, .. } => source.kind(),
            StopError::StepLimit { .. } => "step_limit",
            StopError::UnknownBlock { .. } => "unknown_block",
        }
    }
}

/// Runs conversations with what blocks need from the engine: the HTTP
/// client (REST API blocks), the sandbox (Code blocks) and the step limit.
/// [`Engine::start`](crate::Engine::start) and
/// [`Engine::run`](crate::Engine::run) delegate here; the conversation
/// rules (what is committed when, where a dropped turn leaves the
/// conversation) are documented there.
pub(crate) struct Runner<'a> {
    http: &'a HttpClient,
    sandbox: &'a Sandbox,
    max_steps: u32,
}

impl<'a> Runner<'a> {
    /// A runner sending REST API blocks' requests through `http`, running
    /// Code blocks in `sandbox`, stopping a turn after `max_steps` blocks.
    pub(crate) fn new(http: &'a HttpClient, sandbox: &'a Sandbox, max_steps: u32) -> Self {
        Runner {
            http,
            sandbox,
            max_steps,
        }
    }

    /// Runs `conversation` until the flow ends, an `input` block waits, or
    /// a block stops it (see [`Engine::run`](crate::Engine::run)).
    pub(crate) async fn run(&self, flow: &Flow, conversation: &mut Conversation) -> Turn {
        let mut turn = Turn {
            messages: Vec::new(),
            trace: Vec::new(),
            status: TurnStatus::Completed,
            error: None,
        };
        let mut at = match std::mem::replace(&mut conversation.position, Position::Completed) {
            Position::At(id) => match flow.index(&id) {
                Some(i) => Some(i),
                None => return self.stop(conversation, turn, unknown(flow, id)),
            },
            Position::Answered { block, answer } => match flow.index(&block) {
                Some(i) => {
                    let started = Instant::now();
                    let b = flow.block(i);
                    let BlockKind::Input { property, .. } = &b.kind else {
                        return self.stop(conversation, turn, unknown(flow, block));
                    };
                    conversation.properties.set(property.clone(), answer);
                    turn.trace.push(step(
                        b.id.clone(),
                        BlockType::Input,
                        StepOutcome::Ok,
                        started,
                        next_id(flow, b.next),
                    ));
                    turn.trace.last_mut().expect("just pushed").changed = vec![property.clone()];
                    b.next
                }
                None => return self.stop(conversation, turn, unknown(flow, block)),
            },
            waiting @ Position::WaitingForInput { .. } => {
                conversation.position = waiting;
                turn.status = TurnStatus::WaitingForInput;
                return turn;
            }
            finished => {
                turn.status = match finished {
                    Position::Stopped { .. } => TurnStatus::Stopped,
                    _ => TurnStatus::Completed,
                };
                conversation.position = finished;
                return turn;
            }
        };

        let mut steps = 0u32;
        while let Some(i) = at {
            if steps >= self.max_steps {
                let block = flow.block(i).id.clone();
                let limit = self.max_steps;
                return self.stop(conversation, turn, StopError::StepLimit { block, limit });
            }
            steps += 1;
            let block = flow.block(i);
            // Until the block is done, the conversation is at it: if this
            // future is dropped while the block runs (the only await points
            // are REST API and Code blocks), running the conversation again
            // runs the block again, with the properties as they were before
            // it (its changes are applied only once it finished).
            conversation.position = Position::At(block.id.clone());
            let started = Instant::now();
            let props = &mut conversation.properties;
            at = match &block.kind {
                BlockKind::Message(text) => {
                    turn.messages.push(Message {
                        block: block.id.clone(),
                        step: turn.trace.len(),
                        text: text.render_text(props),
                    });
                    turn.trace.push(step(
                        block.id.clone(),
                        BlockType::Message,
                        StepOutcome::Ok,
                        started,
                        next_id(flow, block.next),
                    ));
                    block.next
                }
                BlockKind::Set(sets) => {
                    let mut changes = ChangeSet::new();
                    for (name, value) in sets {
                        changes.set(name.clone(), value.render_text(props));
                    }
                    let changed = names(&changes);
                    props.apply(changes);
                    let mut s = step(
                        block.id.clone(),
                        BlockType::Set,
                        StepOutcome::Ok,
                        started,
                        next_id(flow, block.next),
                    );
                    s.changed = changed;
                    turn.trace.push(s);
                    block.next
                }
                BlockKind::Branch {
                    conditions,
                    otherwise,
                } => {
                    let next = conditions
                        .iter()
                        .find(|(cond, _)| cond.holds(props))
                        .map(|(_, target)| *target)
                        .or(*otherwise);
                    turn.trace.push(step(
                        block.id.clone(),
                        BlockType::Branch,
                        StepOutcome::Ok,
                        started,
                        next_id(flow, next),
                    ));
                    next
                }
                BlockKind::Input { prompt, .. } => {
                    let prompt = prompt.render_text(props);
                    turn.messages.push(Message {
                        block: block.id.clone(),
                        step: turn.trace.len(),
                        text: prompt.clone(),
                    });
                    turn.trace.push(step(
                        block.id.clone(),
                        BlockType::Input,
                        StepOutcome::Waiting,
                        started,
                        None,
                    ));
                    conversation.position = Position::WaitingForInput {
                        block: block.id.clone(),
                        prompt,
                    };
                    turn.status = TurnStatus::WaitingForInput;
                    return turn;
                }
                BlockKind::Rest(rest) => {
                    let outcome = rest.execute(self.http, props).await;
                    let mut s = step(
                        block.id.clone(),
                        BlockType::RestApi,
                        StepOutcome::Ok,
                        started,
                        None,
                    );
                    s.http_status = outcome.status.map(|st| st.as_u16());
                    s.redirects = Some(outcome.redirects).filter(|r| *r > 0);
                    s.duration = outcome.duration;
                    if outcome.stop {
                        let error = outcome.error.expect("a stopping outcome carries its error");
                        s.outcome = StepOutcome::Stopped;
                        s.error = Some(error.to_string());
                        turn.trace.push(s);
                        let err = StopError::Rest {
                            block: block.id.clone(),
                            source: error,
                        };
                        return self.stop(conversation, turn, err);
                    }
                    if let Some(error) = &outcome.error {
                        s.outcome = StepOutcome::IgnoredError;
                        s.error = Some(error.to_string());
                    }
                    s.changed = names(&outcome.changes);
                    s.next = next_id(flow, block.next);
                    props.apply(outcome.changes);
                    turn.trace.push(s);
                    block.next
                }
                BlockKind::Code {
                    module,
                    limits,
                    ignore_error,
                } => {
                    let outcome = self.sandbox.run(module, props, limits).await;
                    let mut s = step(
                        block.id.clone(),
                        BlockType::Code,
                        StepOutcome::Ok,
                        started,
                        None,
                    );
                    s.duration = outcome.duration;
                    s.fuel_used = Some(outcome.fuel_used);
                    s.http_calls = Some(outcome.http_calls);
                    s.logs = outcome.logs;
                    match outcome.result {
                        Ok(output) => {
                            s.changed = names(&output.changes);
                            s.next = next_id(flow, block.next);
                            props.apply(output.changes);
                            let step = turn.trace.len();
                            turn.messages
                                .extend(output.messages.into_iter().map(|text| Message {
                                    block: block.id.clone(),
                                    step,
                                    text,
                                }));
                            turn.trace.push(s);
                            block.next
                        }
                        Err(error) if *ignore_error => {
                            s.outcome = StepOutcome::IgnoredError;
                            s.error = Some(error.to_string());
                            s.next = next_id(flow, block.next);
                            turn.trace.push(s);
                            block.next
                        }
                        Err(error) => {
                            s.outcome = StepOutcome::Stopped;
                            s.error = Some(error.to_string());
                            turn.trace.push(s);
                            let err = StopError::Code {
                                block: block.id.clone(),
                                source: error,
                            };
                            return self.stop(conversation, turn, err);
                        }
                    }
                }
            };
        }
        conversation.position = Position::Completed;
        turn.status = TurnStatus::Completed;
        turn
    }

    fn stop(&self, conversation: &mut Conversation, mut turn: Turn, error: StopError) -> Turn {
        conversation.position = Position::Stopped {
            block: error.block().to_string(),
            error: error.to_string(),
        };
        turn.status = TurnStatus::Stopped;
        turn.error = Some(error);
        turn
    }
}

fn unknown(flow: &Flow, block: String) -> StopError {
    StopError::UnknownBlock {
        flow: flow.name().to_string(),
        block,
    }
}

fn next_id(flow: &Flow, next: Option<usize>) -> Option<String> {
    next.map(|i| flow.block(i).id.clone())
}

fn names(changes: &ChangeSet) -> Vec<String> {
    changes.iter().map(|(name, _)| name.to_string()).collect()
}

fn step(
    block: String,
    block_type: BlockType,
    outcome: StepOutcome,
    started: Instant,
    next: Option<String>,
) -> Step {
    Step {
        block,
        block_type,
        outcome,
        duration: started.elapsed(),
        http_status: None,
        redirects: None,
        fuel_used: None,
        http_calls: None,
        logs: Vec::new(),
        error: None,
        changed: Vec::new(),
        next,
    }
}
