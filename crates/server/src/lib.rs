//! chatflow-server: the engine as an HTTP service (`chatflow serve`), with
//! conversations kept in SQLite (embedded, the default) or PostgreSQL
//! (several replicas sharing the load).
//!
//! A chatbot platform in any language stores its flows and Code block
//! modules once, then for each user message makes one HTTP call: start a
//! conversation, or send the user's answer; the answer is the bot's
//! messages. Each turn's result is committed in one transaction, so a
//! killed process loses nothing committed; replicas on one PostgreSQL
//! database take a lease on a conversation while they run its turn.
//! `docs/service.md` is the operator's and the client's guide.
//!
//! ```
//! use chatflow_server::{Server, ServeConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ServeConfig::default()
//!     .with_listen("127.0.0.1:0".parse()?)
//!     .with_store("sqlite::memory:");
//! let server = Server::bind(config).await?;
//! let addr = server.local_addr();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let serving = tokio::spawn(server.run(async move {
//!     let _ = stopped.await;
//! }));
//!
//! // Any HTTP client will do; a raw request keeps the example small.
//! use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
//! let mut tcp = tokio::net::TcpStream::connect(addr).await?;
//! tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
//!     .await?;
//! let mut reply = String::new();
//! tcp.read_to_string(&mut reply).await?;
//! assert!(reply.starts_with("HTTP/1.1 200"));
//! assert!(reply.ends_with(r#"{"status":"ok"}"#));
//!
//! let _ = stop.send(()); // what SIGTERM does in `chatflow serve`
//! serving.await??;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - [`ServeConfig`] and [`Server`] (bind, run, graceful shutdown), or
//!   [`serve`] for both; [`shutdown_signal`] for SIGTERM/Ctrl-C.
//! - `api`: the routes and the OpenAPI document ([`openapi`]).
//! - `turns`: running a turn under a lease and committing it.
//! - `catalog`: validating flows and modules, compiled-flow cache, imports.
//! - [`store`]: the [`store::Store`] trait, SQLite and PostgreSQL.
//! - `ServeArgs` (feature `clap`): the `chatflow serve` command line.
//!
//! # Features
//!
//! - `clap`: `ServeArgs`, the command-line arguments of `chatflow serve`.

#![deny(missing_docs)]

mod api;
#[cfg(feature = "clap")]
mod args;
mod auth;
mod catalog;
mod config;
mod error;
mod metrics;
mod server;
pub mod store;
mod turns;

pub use api::conversations::{AnswerRequest, ConversationView, StartRequest};
pub use api::flows::{FlowList, FlowPutResponse, FlowSummary, FlowView};
pub use api::health::Health;
pub use api::modules::ModuleView;
pub use api::openapi;
#[cfg(feature = "clap")]
pub use args::{ArgsError, NetArgs, ServeArgs, TOKEN_ENV};
pub use config::{Clock, ServeConfig};
pub use error::{ErrorBody, ErrorKind, Problem, ServeError};
pub use server::{MIN_TOKEN_BYTES, Server, serve, shutdown_signal};
pub use turns::{MessageOut, Status, TurnError, TurnResponse, WaitingFor};
