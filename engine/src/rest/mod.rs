//! The REST API block: call a business API with `{{Property}}` values and
//! store the answer in a property.
//!
//! A [`RestConfig`] is the block as it appears in a flow file. It is
//! compiled once ([`RestConfig::compile`]) into a [`RestBlock`], with every
//! template parsed and every static part checked, and then executed any
//! number of times against the engine's [`HttpClient`](crate::net::HttpClient)
//! and a conversation's [`Properties`](crate::Properties). Execution never
//! writes to the properties: it returns a [`RestOutcome`] whose
//! [`ChangeSet`](crate::ChangeSet) the caller commits (or not).
//!
//! The outcome rules (the full behaviour is in `docs/rest-block.md`):
//!
//! - a `2xx` answer: the body, decoded by its charset, is stored in the
//!   response property (`API Response` by default);
//! - any error (a property missing from a template, a policy denial, a
//!   connection failure, a timeout, a body over the cap, a non-`2xx` status
//!   including a redirect that is not followed, too many redirects): with
//!   `ignore_error` the block succeeds with the error reported and the
//!   response property **removed**, so a stale value from an earlier call
//!   cannot make `{{API Response}} exists` true; without it the outcome
//!   stops the conversation and commits nothing.
//!
//! Only `301 Moved Permanently` is followed, and only with
//! `follow_redirects`: at most [`MAX_REDIRECTS`] hops, each checked against
//! the network policy again. A hop to another origin (scheme, host or port)
//! carries none of the block's headers except those named in
//! `redirect_keep_headers`, and is refused if the request has a body
//! ([`RestError::RedirectWithBody`]); a hop from `https` to `http` is
//! refused ([`RestError::InsecureRedirect`]). A hop within the origin keeps
//! everything.
//!
//! ```no_run
//! use chatflow_engine::Properties;
//! use chatflow_engine::net::{HttpClient, NetPolicy};
//! use chatflow_engine::rest::RestConfig;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config: RestConfig = serde_json::from_str(r#"{
//!     "method": "GET",
//!     "url": "https://api.example.com/users/{{user id}}",
//!     "headers": [{"name": "X-Key", "value": "{{api key}}"}],
//!     "ignore_error": true
//! }"#)?;
//! let block = config.compile()?;
//!
//! let client = HttpClient::new(NetPolicy::default())?;
//! let mut props: Properties = [("user id", "42"), ("api key", "k-123")].into_iter().collect();
//! let outcome = block.execute(&client, &props).await;
//! if let Some(err) = &outcome.error {
//!     eprintln!("REST block failed: {err}");
//! }
//! if !outcome.stop {
//!     props.apply(outcome.changes);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - `mod.rs`: the compiled block, [`RestBlock`], and the properties it
//!   reads and writes.
//! - `config.rs`: the block as written ([`RestConfig`], [`Param`],
//!   [`BodyEncoding`]) and compiling it ([`RestConfig::compile`],
//!   [`RestConfig::compile_for`]): every check made before a request is
//!   sent, all the REST limit checks among them ([`BlockConfigError`],
//!   [`CompileError`], [`PolicyLimitError`]). Loading a flow calls
//!   [`RestConfig::compile_for`] with the engine's network policy.
//! - `method.rs`: the HTTP methods a block can use ([`RestMethod`]).
//! - `run.rs`: executing a block ([`RestBlock::execute`]): rendering the
//!   request, sending it through the [`HttpClient`](crate::net::HttpClient),
//!   the redirect rules ([`MAX_REDIRECTS`]), the response and status
//!   properties ([`RestOutcome`], [`RestError`]).

mod config;
mod method;
mod run;

use std::time::Duration;

use crate::net::HeaderName;
use crate::template::{Template, UrlTemplate};

pub use config::{
    BlockConfigError, BlockConfigErrorKind, BodyEncoding, CompileError, DEFAULT_RESPONSE_PROPERTY,
    Param, PolicyLimitError, RestConfig,
};
pub use method::{MethodError, RestMethod, parse_method};
pub use run::{MAX_REDIRECTS, RestError, RestOutcome};

/// A compiled REST API block: templates parsed, names checked. Cheap to
/// share (`Clone`, `Send`, `Sync`); execute it any number of times.
#[derive(Debug, Clone)]
pub struct RestBlock {
    method: RestMethod,
    url: UrlTemplate,
    /// The checked name, the name as written (for errors), the value.
    headers: Vec<(HeaderName, String, Template)>,
    query: Vec<(Template, Template)>,
    body: Vec<(Template, Template)>,
    body_encoding: BodyEncoding,
    follow_redirects: bool,
    /// Headers sent again on a hop to another origin.
    redirect_keep_headers: Vec<HeaderName>,
    ignore_error: bool,
    response_property: String,
    status_property: Option<String>,
    timeout: Option<Duration>,
    max_response_bytes: Option<u64>,
}

impl RestBlock {
    /// Every property the block reads, each once, in field order.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for (_, name) in self.uses() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// Every property the block reads, with the field that reads it
    /// (`url`, `headers[0]`, `query[1].name`…), in field order.
    pub(crate) fn uses(&self) -> Vec<(String, &str)> {
        let mut uses: Vec<(String, &str)> = self
            .url
            .names()
            .into_iter()
            .map(|n| ("url".to_string(), n))
            .collect();
        for (i, (_, _, value)) in self.headers.iter().enumerate() {
            uses.extend(
                value
                    .names()
                    .into_iter()
                    .map(|n| (format!("headers[{i}]"), n)),
            );
        }
        for (list, params) in [("query", &self.query), ("body", &self.body)] {
            for (i, (name, value)) in params.iter().enumerate() {
                uses.extend(
                    name.names()
                        .into_iter()
                        .map(|n| (format!("{list}[{i}].name"), n)),
                );
                uses.extend(
                    value
                        .names()
                        .into_iter()
                        .map(|n| (format!("{list}[{i}].value"), n)),
                );
            }
        }
        uses
    }

    /// The property the HTTP status goes to, if any.
    pub fn status_property(&self) -> Option<&str> {
        self.status_property.as_deref()
    }

    /// Whether errors are ignored (the conversation continues).
    pub fn ignore_error(&self) -> bool {
        self.ignore_error
    }

    /// The property the response body goes to.
    pub fn response_property(&self) -> &str {
        &self.response_property
    }
}
