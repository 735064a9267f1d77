//! Flows: the file format, loading and validation, and the conversation
//! runner. `docs/flow-format.md` documents the format for flow authors.
//!
//! - [`model`]: the flow file as serde types.
//! - [`FlowLoader`] (from [`crate::Engine::flow_loader`]): reads a flow
//!   file, checks everything that can be checked up front, and compiles it
//!   into a [`Flow`].
//! - [`crate::Engine::start`] / [`crate::Engine::run`]: run a
//!   [`Conversation`] to its end or to the next `input` block; a
//!   conversation is plain serializable data.

mod condition;
mod load;
pub mod model;
mod runner;

pub use condition::{Condition, ConditionError, Op};
pub use load::{Flow, FlowError, FlowLoader, FlowWarning, Problem, ProblemKind};
pub use model::BlockType;
pub use runner::{
    Conversation, Message, NotWaiting, Position, Step, StepOutcome, StopError, Turn, TurnStatus,
};
