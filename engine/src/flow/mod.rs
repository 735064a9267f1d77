//! Flows: the file format, loading and validation, and the conversation
//! runner. `docs/flow-format.md` documents the format for flow authors.
//!
//! - [`model`]: the flow file as serde types.
//! - [`FlowLoader`] (from [`crate::Engine::flow_loader`]): reads a flow
//!   file, checks everything that can be checked up front, and compiles it
//!   into a [`Flow`]. It borrows what checking needs (the sandbox, to
//!   compile Code blocks' modules and resolve their limits; the network
//!   policy, for REST API blocks' limits), not the engine.
//! - `runner.rs`: a [`Conversation`] and running it to its end or to the
//!   next `input` block; [`crate::Engine::start`] / [`crate::Engine::run`]
//!   delegate to it, handing it the HTTP client, the sandbox and the step
//!   limit. A conversation is plain serializable data.
//!
//! Nothing here depends on [`crate::Engine`]: the engine depends on flows.

mod condition;
mod load;
pub mod model;
mod runner;

pub use condition::{Condition, ConditionError, Op};
pub use load::{Flow, FlowError, FlowLoader, FlowWarning, Problem, ProblemKind};
pub use model::BlockType;
pub(crate) use runner::Runner;
pub use runner::{
    Conversation, Message, NotWaiting, Position, Step, StepOutcome, StopError, Turn, TurnStatus,
};
