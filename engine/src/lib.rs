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
//! A flow with a REST API block and a Code block: the REST block fetches a
//! profile (here from a server on 127.0.0.1, which the network policy must
//! allow explicitly), and the Code block, a wasm module run in the sandbox,
//! picks the customer's tier out of the JSON. Code blocks are usually
//! written in Rust with `chatflow-sdk` and built with `chatflow build`; this
//! one is a few lines of WebAssembly text so that the example stands alone.
//!
//! ```
//! use chatflow_engine::net::NetPolicy;
//! use chatflow_engine::{Engine, EngineConfig, Properties, TurnStatus};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # // A one-route HTTP server on 127.0.0.1 standing in for a CRM.
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! # let app = axum::Router::new().route(
//! #     "/profiles/{id}",
//! #     axum::routing::get(|| async { r#"{"name": "Ada", "tier": "gold"}"# }),
//! # );
//! # tokio::spawn(async move { axum::serve(listener, app).await });
//! // The CRM runs on this machine: allow loopback addresses, for its host only.
//! let mut policy = NetPolicy::default();
//! policy.allow_loopback = true;
//! policy.allow_host("127.0.0.1")?;
//! let engine = Engine::new(EngineConfig::default().with_net(policy))?;
//!
//! # // json_select("API Response", "/tier") into a buffer, then
//! # // property_set("tier", buffer).
//! # let tier_wasm = wat::parse_str(r#"(module
//! #   (import "chatflow" "json_select" (func $select (param i32 i32 i32 i32 i32 i32) (result i32)))
//! #   (import "chatflow" "property_set" (func $set (param i32 i32 i32 i32) (result i32)))
//! #   (memory (export "memory") 1)
//! #   (data (i32.const 0) "API Response") (data (i32.const 16) "/tier") (data (i32.const 32) "tier")
//! #   (func (export "chatflow_abi_v1"))
//! #   (func (export "chatflow_run") (result i32) (local $len i32)
//! #     (local.set $len (call $select (i32.const 0) (i32.const 12) (i32.const 16) (i32.const 5)
//! #                                   (i32.const 64) (i32.const 64)))
//! #     (if (i32.lt_s (local.get $len) (i32.const 0)) (then (return (i32.const 1))))
//! #     (call $set (i32.const 32) (i32.const 4) (i32.const 64) (local.get $len))))"#)?;
//! let flow_json = format!(
//!     r#"{{
//!         "name": "tier",
//!         "start": "lookup",
//!         "inputs": ["customer"],
//!         "blocks": {{
//!             "lookup": {{"type": "rest_api", "method": "GET",
//!                         "url": "http://{addr}/profiles/{{{{customer}}}}", "next": "parse"}},
//!             "parse": {{"type": "code", "module": "tier.wasm", "sets": ["tier"], "next": "tell"}},
//!             "tell": {{"type": "message", "text": "You are a {{{{tier}}}} member."}}
//!         }}
//!     }}"#
//! );
//! // The module's bytes come from wherever the operator keeps them.
//! let flow = engine
//!     .flow_loader()
//!     .module("tier.wasm", tier_wasm)
//!     .load_str("tier.json", &flow_json, std::path::Path::new("."))?;
//!
//! let customer: Properties = [("customer", "cus_1042")].into_iter().collect();
//! let mut conversation = engine.start(&flow, customer);
//! let turn = engine.run(&flow, &mut conversation).await;
//! assert_eq!(turn.status, TurnStatus::Completed, "{:?}", turn.error);
//! assert_eq!(turn.messages[0].text, "You are a gold member.");
//! # Ok(())
//! # }
//! ```
//!
//! # The runtime an embedder needs
//!
//! Runs are futures: [`Engine::run`], [`sandbox::Sandbox::run`] and the
//! REST API block are `async` and must be polled inside a
//! [Tokio](https://tokio.rs) runtime with its time and I/O drivers
//! enabled (`enable_all()`; `#[tokio::main]` does that). A current-thread
//! runtime is enough; a multi-thread one lets runs of different
//! conversations proceed in parallel. `Engine::new` and `Sandbox::new`
//! need no runtime (the HTTP client is built on the first request, inside
//! one). A Code block's wasm runs on a fiber of the task that polls it and
//! yields at host calls, fuel checkpoints and epoch ticks, so a long block
//! does not hold a worker thread for more than a tick.
//!
//! From synchronous code, `Runtime::block_on(engine.run(..))` is the
//! blocking call; there is no separate blocking API because it would cost
//! the same `block_on` and hide which runtime the HTTP connections belong
//! to. Measured (`benches/examples/api_overhead.rs`, docs/benchmarks.md,
//! "Through the public API"): an empty Code block run through `Engine`,
//! with a fresh [`Properties`], `block_on` on a default multi-thread
//! runtime and the changes read back as `String`s, costs what the
//! `code_block` bench's bare loop costs.
//!
//! # Layout
//!
//! - [`properties`]: the property store; blocks read a snapshot and return
//!   a [`ChangeSet`], committed only when the block succeeds.
//! - [`template`]: `{{Property}}` templates, parsed once, rendered per
//!   context.
//! - [`net`]: the network policy and the shared HTTP client (the crate
//!   `chatflow-net`, re-exported).
//! - [`rest`]: the REST API block.
//! - [`sandbox`]: the Code block runtime (ABI v1 in `docs/abi.md`, threat
//!   model in `docs/security.md`).
//! - [`flow`]: the flow file format (`docs/flow-format.md`), loading and
//!   validation, and the conversation runner.
//! - [`Engine`]: what ties them together for an operator.
//!
//! The `chatflow` command-line tool is the crate `chatflow-cli`, and the
//! HTTP service `chatflow-server`; this crate has no build script and
//! builds no wasm.
//!
//! # Features
//!
//! - `reqwest` (on): the default egress, `net::HttpClient::new` (reqwest
//!   with rustls and the system's root certificates, and a resolver that
//!   checks every address). Without it there is no HTTP or TLS stack in
//!   the engine's dependencies, and [`Engine::new`] needs an
//!   [`Egress`](net::Egress) from [`EngineConfig::with_egress`]
//!   ([`EngineError::NoEgress`] otherwise).
//! - `fuzzing` (off): the host's selectors and their reference
//!   implementations as plain functions, for the fuzz targets.

#![deny(missing_docs)]

mod engine;
pub mod flow;
pub mod rest;
pub mod template;

pub use chatflow_net as net;
pub use chatflow_sandbox as sandbox;
pub use chatflow_sandbox::properties;
pub use engine::{Engine, EngineConfig, EngineError};
pub use flow::{Conversation, Flow, FlowError, Turn, TurnStatus};
pub use properties::{ChangeSet, Properties};
