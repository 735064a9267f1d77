//! chatflow-engine runs the two blocks of a chatbot flow that touch the
//! outside world: the REST API block (native HTTP) and the Code block
//! (user-supplied WebAssembly, sandboxed on wasmtime).
//!
//! Crate docs with a complete example are written once the flow runner lands.

#![deny(missing_docs)]

mod engine;
pub mod flow;
pub mod net;
pub mod properties;
pub mod rest;
pub mod sandbox;
pub mod template;

pub use engine::{Engine, EngineConfig, EngineError};
pub use flow::{Conversation, Flow, FlowError, Turn, TurnStatus};
pub use properties::{ChangeSet, Properties};
