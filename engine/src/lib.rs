//! chatflow-engine runs chatbot flows, and in particular the two blocks of a
//! flow that touch the outside world:
//!
//! - the **REST API block** ([`rest`]): GET/POST/PUT/DELETE with
//!   `{{Property}}` values in the URL path, headers, query and body, each
//!   escaped for where it goes ([`template`]); *Follow redirects* (only `301`);
//!   *Ignore error*; the response stored in the `API Response` property;
//! - the **Code block** ([`sandbox`]): a user's WebAssembly module (ABI v1,
//!   written in Rust with `chatflow-sdk`) run on wasmtime under fuel, memory,
//!   time, stack and I/O limits, reading and writing properties, sending
//!   messages, and making HTTP calls through the host.
//!
//! Both go through one network policy ([`net`]): allowed hosts, and
//! loopback, private, link-local and metadata addresses denied unless the
//! operator allows them, checked on every resolved address.
//!
//! An operator embeds an [`Engine`] (one per process: it owns the HTTP
//! connection pool and the sandbox), loads [`Flow`]s, and runs
//! [`Conversation`]s. A conversation is plain serializable data, so it can
//! be stored between user messages and resumed anywhere.
//!
//! ```
//! use chatflow_engine::{Engine, EngineConfig, Properties, TurnStatus};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::new(EngineConfig::default())?;
//! let flow = engine.flow_loader().load_str(
//!     "greeting.json",
//!     r#"{
//!         "name": "greeting",
//!         "start": "ask",
//!         "blocks": {
//!             "ask": {"type": "input", "prompt": "Your name?", "property": "name", "next": "check"},
//!             "check": {"type": "branch",
//!                       "conditions": [{"when": "{{name}} equals Ada", "next": "vip"}],
//!                       "else": "hello"},
//!             "vip": {"type": "message", "text": "Welcome back, Countess."},
//!             "hello": {"type": "message", "text": "Hello {{name}}!"}
//!         }
//!     }"#,
//!     std::path::Path::new("."),
//! )?;
//!
//! let mut conversation = engine.start(&flow, Properties::new());
//! let turn = engine.run(&flow, &mut conversation).await;
//! assert_eq!(turn.status, TurnStatus::WaitingForInput);
//! assert_eq!(turn.messages[0].text, "Your name?");
//!
//! // Between user messages the conversation can be stored anywhere...
//! let saved = serde_json::to_string(&conversation)?;
//! // ...and resumed later, by any process that has loaded the same flow.
//! let mut conversation: chatflow_engine::Conversation = serde_json::from_str(&saved)?;
//! conversation.answer("Grace")?;
//! let turn = engine.run(&flow, &mut conversation).await;
//! assert_eq!(turn.status, TurnStatus::Completed);
//! assert_eq!(turn.messages[0].text, "Hello Grace!");
//! assert_eq!(conversation.properties.get("name"), Some("Grace"));
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - [`properties`]: the property store; blocks read a snapshot and return
//!   a [`ChangeSet`], committed only when the block succeeds.
//! - [`template`]: `{{Property}}` templates, parsed once, rendered per
//!   context.
//! - [`net`]: the network policy and the shared HTTP client.
//! - [`rest`]: the REST API block.
//! - [`sandbox`]: the Code block runtime (ABI v1 in `docs/abi.md`, threat
//!   model in `docs/security.md`).
//! - [`flow`]: the flow file format (`docs/flow-format.md`), loading and
//!   validation, and the conversation runner.
//! - [`Engine`]: what ties them together for an operator.
//!
//! # Features
//!
//! - `cli` (default): the `chatflow` command-line tool and its demo. Its
//!   build script compiles the example Code blocks to wasm32; embedders who
//!   only need the library can turn default features off.

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
