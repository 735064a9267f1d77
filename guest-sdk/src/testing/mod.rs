//! Unit-test a Code block natively, with `cargo test`.
//!
//! Off `wasm32`, every SDK call goes to an in-process test host instead of
//! the engine. [`TestHost`] sets the scene (properties, HTTP stubs, denied
//! hosts, limits), [`TestHost::run`] runs your block function exactly as the
//! engine's `chatflow_run` export would (an `Err` becomes a failed run with
//! its message, a panic becomes a failed run with the panic message and
//! location), and the [`Outcome`] tells you what the run did: properties set
//! and removed, messages sent, logs, HTTP requests made, and how it failed.
//!
//! ```
//! use chatflow_sdk::testing::{Stub, TestHost};
//! use chatflow_sdk::{http, Context, Result};
//!
//! // The block under test (normally in your crate, declared with `code_block!`).
//! fn run(ctx: &mut Context) -> Result<()> {
//!     let phone = ctx.require("phone")?;
//!     let response = http::Request::get(format!("https://crm.example.com/profiles/{phone}"))
//!         .send()?
//!         .error_for_status()?;
//!     let profile: serde_json::Value = response.json()?;
//!     ctx.set("name", profile["name"].as_str().unwrap_or("friend"))?;
//!     ctx.send_message(format!("Hi {}!", profile["name"].as_str().unwrap_or("there")))?;
//!     Ok(())
//! }
//!
//! let outcome = TestHost::new()
//!     .property("phone", "4420")
//!     .stub(Stub::get("https://crm.example.com/profiles/4420").json(r#"{"name": "Ada"}"#))
//!     .run(run);
//! outcome.assert_success();
//! assert_eq!(outcome.property("name"), Some("Ada"));
//! assert_eq!(outcome.messages(), ["Hi Ada!"]);
//! assert_eq!(outcome.requests()[0].method(), "GET");
//!
//! // A failure path: the CRM answers 404. Nothing is committed.
//! let outcome = TestHost::new()
//!     .property("phone", "4420")
//!     .stub(Stub::get("https://crm.example.com/profiles/4420").status(404))
//!     .run(run);
//! assert_eq!(
//!     outcome.failure_message(),
//!     Some("GET https://crm.example.com/profiles/4420 answered HTTP 404")
//! );
//! assert_eq!(outcome.property("name"), None);
//! assert!(outcome.messages().is_empty());
//! ```
//!
//! # Same rules as the engine
//!
//! The test host implements ABI v1 (`docs/abi.md`) with the engine's
//! semantics, so a block that passes here behaves the same in the sandbox:
//!
//! - reads see the starting properties plus the run's own writes;
//! - writes and messages are committed only if the run succeeds: on failure
//!   [`Outcome::property`] shows the starting value, [`Outcome::changes`]
//!   and [`Outcome::messages`] are empty; logs are kept either way;
//! - property names are checked with the engine's rule, and the host calls
//!   return the ABI's error codes (`NOT_FOUND`, `INVALID`, `NOT_PARSEABLE`,
//!   `DENIED`, `TIMEOUT`, `CONNECTION`, `BAD_HANDLE`), so the SDK's typed
//!   errors are the ones you will see in production;
//! - the host selectors ([`Context::select_json`](crate::Context::select_json),
//!   [`Context::select_xml`](crate::Context::select_xml)) follow the ABI's
//!   JSON pointer and XML path rules;
//! - a request denied by the network policy, in a run that then fails, is
//!   reported as [`Failure::HttpDenied`] (the root cause), as the engine
//!   does;
//! - limits you set ([`TestHost::max_http_calls`] …) end the run at once
//!   with [`Failure::Limit`]; a log budget ([`TestHost::max_log_bytes`])
//!   drops and counts the lines over it, and the run goes on.
//!
//! What it does not do: count fuel, memory or time (a native build is not
//! the sandbox: check those with `chatflow code` or `chatflow bench`), check
//! private addresses of real hosts, or open network connections (every
//! request is answered by a stub or a handler).

pub(crate) mod host;
mod json_pointer;

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use crate::context::{API_RESPONSE, Context};
use crate::error::Result;
use crate::log::Level;

use host::{LimitHit, RUN, RunState};

/// A function answering requests, see [`TestHost::http_handler`].
type Handler = Box<dyn FnMut(&HttpRequest) -> Option<Reply>>;

/// A fake engine for one run of a Code block: properties, HTTP stubs, a
/// network policy and limits. Build it, then call [`run`](Self::run).
///
/// By default there are no properties, every host is allowed, requests that
/// no stub matches fail with a connection error naming the request, and no
/// limit applies.
#[must_use = "a TestHost does nothing until `run` is called"]
pub struct TestHost {
    properties: BTreeMap<String, String>,
    stubs: Vec<Stub>,
    handlers: Vec<Handler>,
    allowed_hosts: Option<Vec<String>>,
    denied_hosts: Vec<String>,
    limits: Limits,
}

#[derive(Default, Clone, Copy)]
struct Limits {
    http_calls: Option<u64>,
    http_response_bytes: Option<u64>,
    property_value_bytes: Option<u64>,
    written_bytes: Option<u64>,
    messages: Option<u64>,
    log_bytes: Option<u64>,
}

impl Default for TestHost {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TestHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestHost")
            .field("properties", &self.properties)
            .field("stubs", &self.stubs)
            .field("handlers", &self.handlers.len())
            .field("allowed_hosts", &self.allowed_hosts)
            .field("denied_hosts", &self.denied_hosts)
            .finish_non_exhaustive()
    }
}

impl TestHost {
    /// An empty scene: no properties, no stubs, every host allowed, no limits.
    pub fn new() -> Self {
        TestHost {
            properties: BTreeMap::new(),
            stubs: Vec::new(),
            handlers: Vec::new(),
            allowed_hosts: None,
            denied_hosts: Vec::new(),
            limits: Limits::default(),
        }
    }

    /// Sets a property the run starts with.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid property name (the engine would refuse it
    /// too): empty, over 256 bytes, leading or trailing whitespace, `{`, `}`
    /// or control characters.
    pub fn property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        if let Some(problem) = host::name_problem(&name) {
            panic!("TestHost::property: {problem}");
        }
        self.properties.insert(name, value.into());
        self
    }

    /// Sets the `API Response` property (what a REST API block before the
    /// Code block would have stored), e.g. from a fixture file:
    /// `.api_response(include_str!("../tests/profile.json"))`.
    pub fn api_response(self, body: impl Into<String>) -> Self {
        self.property(API_RESPONSE, body)
    }

    /// Answers requests that match `stub` (method and exact URL, query
    /// string included). Stubs are tried in the order they were added,
    /// before any [`http_handler`](Self::http_handler); a stub answers every
    /// matching request unless it is [`once`](Stub::once).
    pub fn stub(mut self, stub: Stub) -> Self {
        self.stubs.push(stub);
        self
    }

    /// Answers requests that no stub matches with a function of the request
    /// (return `None` to pass to the next handler). For URLs you want to
    /// match loosely, or replies computed from the request.
    ///
    /// ```
    /// use chatflow_sdk::testing::{Reply, TestHost};
    ///
    /// let host = TestHost::new().http_handler(|req| {
    ///     let page: u32 = req.query("page")?.parse().ok()?;
    ///     Some(Reply::json(format!(r#"{{"page": {page}, "items": []}}"#)))
    /// });
    /// # drop(host);
    /// ```
    pub fn http_handler(
        mut self,
        handler: impl FnMut(&HttpRequest) -> Option<Reply> + 'static,
    ) -> Self {
        self.handlers.push(Box::new(handler));
        self
    }

    /// Allows requests to `host` (a host name, e.g. `api.example.com`,
    /// without scheme or port). Once any host is allowed, every other host
    /// is denied, as with the engine's allow-list.
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        self.allowed_hosts
            .get_or_insert_with(Vec::new)
            .push(host.into().to_ascii_lowercase());
        self
    }

    /// Denies requests to `host`: they fail with
    /// [`http::Error::Denied`](crate::http::Error::Denied), as when the
    /// operator has not allowed a host.
    pub fn deny_host(mut self, host: impl Into<String>) -> Self {
        self.denied_hosts.push(host.into().to_ascii_lowercase());
        self
    }

    /// Ends the run with [`Failure::Limit`] on HTTP request number `max + 1`.
    /// By default there is no limit here (the engine's default is set by the
    /// operator).
    pub fn max_http_calls(mut self, max: u64) -> Self {
        self.limits.http_calls = Some(max);
        self
    }

    /// Ends the run with [`Failure::Limit`] when a response body is larger
    /// than `max` bytes. By default there is no limit here.
    pub fn max_http_response_bytes(mut self, max: u64) -> Self {
        self.limits.http_response_bytes = Some(max);
        self
    }

    /// Ends the run with [`Failure::Limit`] when one property value is
    /// larger than `max` bytes. By default there is no limit here.
    pub fn max_property_value_bytes(mut self, max: u64) -> Self {
        self.limits.property_value_bytes = Some(max);
        self
    }

    /// Ends the run with [`Failure::Limit`] when the names and values set
    /// plus the message text, summed over the run, exceed `max` bytes. By
    /// default there is no limit here.
    pub fn max_written_bytes(mut self, max: u64) -> Self {
        self.limits.written_bytes = Some(max);
        self
    }

    /// Ends the run with [`Failure::Limit`] on message number `max + 1`. By
    /// default there is no limit here.
    pub fn max_messages(mut self, max: u64) -> Self {
        self.limits.messages = Some(max);
        self
    }

    /// Keeps at most `max` bytes of log text: a line that does not fit in
    /// what is left is dropped whole and counted ([`Outcome::logs_dropped`]),
    /// and the run goes on, as in the engine (whose default budget is
    /// 64 KiB). By default there is no limit here.
    pub fn max_log_bytes(mut self, max: u64) -> Self {
        self.limits.log_bytes = Some(max);
        self
    }

    /// Runs `block` once, as the engine's `chatflow_run` would, and returns
    /// what it did. Never panics because the block failed or panicked: look
    /// at the [`Outcome`].
    ///
    /// # Panics
    ///
    /// If called from inside another run on the same thread.
    pub fn run<F>(self, block: F) -> Outcome
    where
        F: FnOnce(&mut Context) -> Result<()>,
    {
        install_panic_hook();
        let initial = self.properties.clone();
        RUN.with(|run| {
            let mut run = run.borrow_mut();
            assert!(run.is_none(), "TestHost::run called from inside a run");
            *run = Some(RunState::new(self));
        });
        let result = panic::catch_unwind(AssertUnwindSafe(|| crate::__private::run(block, true)));
        let state = RUN
            .with(|run| run.borrow_mut().take())
            .expect("the run state is still there");
        let failure = match result {
            Ok(0) => None,
            Ok(code) => Some(Failure::Returned {
                code,
                message: state
                    .fail_message
                    .clone()
                    .unwrap_or_else(|| format!("chatflow_run returned {code}")),
            }),
            Err(payload) => Some(match payload.downcast::<LimitHit>() {
                Ok(limit) => limit.0,
                Err(_) => Failure::Panic {
                    message: state
                        .panic_message
                        .clone()
                        .or_else(|| state.fail_message.clone())
                        .unwrap_or_else(|| "panicked".to_string()),
                },
            }),
        };
        // The engine reports a policy denial as the root cause of a failed run.
        let failure = match (failure, &state.denied) {
            (Some(failure @ (Failure::Returned { .. } | Failure::Panic { .. })), Some(denied)) => {
                Some(Failure::HttpDenied {
                    request: denied.clone(),
                    guest_message: failure.message().to_string(),
                })
            }
            (failure, _) => failure,
        };
        let succeeded = failure.is_none();
        Outcome {
            initial,
            changes: if succeeded {
                state.changes
            } else {
                BTreeMap::new()
            },
            messages: if succeeded {
                state.messages
            } else {
                Vec::new()
            },
            logs: state.logs,
            logs_dropped: state.logs_dropped,
            requests: state.requests,
            failure,
        }
    }

    fn policy_denies(&self, host: &str) -> Option<String> {
        if self.denied_hosts.iter().any(|h| h == host) {
            return Some(format!("host {host} is not allowed"));
        }
        match &self.allowed_hosts {
            Some(allowed) if !allowed.iter().any(|h| h == host) => {
                Some(format!("host {host} is not in the allowed hosts"))
            }
            _ => None,
        }
    }

    fn answer(&mut self, request: &HttpRequest) -> Option<Reply> {
        for stub in &mut self.stubs {
            if stub.used && stub.once {
                continue;
            }
            if stub.method.eq_ignore_ascii_case(&request.method) && stub.url == request.url {
                stub.used = true;
                return Some(stub.reply.clone());
            }
        }
        self.handlers
            .iter_mut()
            .find_map(|handler| handler(request))
    }
}

/// Installs (once per process) a panic hook that records the panic message
/// of a block running on this thread, formatted as the wasm32 hook formats
/// it, and defers to the previous hook for every other panic.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let recorded = RUN.with(|run| match run.try_borrow_mut() {
                Ok(mut run) => match run.as_mut() {
                    Some(state) => {
                        state.panic_message = Some(crate::__private::panic_message(info));
                        true
                    }
                    None => false,
                },
                // Panicked inside a host call: the state is borrowed, and the
                // message goes to the default hook.
                Err(_) => false,
            });
            if !recorded {
                previous(info);
            }
        }));
    });
}

/// A stubbed HTTP endpoint: a method, an exact URL and the reply.
///
/// The URL is compared with the request's as a string, query included, so
/// write it the way the block sends it: [`Request::query`](crate::http::Request::query)
/// percent-encodes values (a space becomes `%20`, `/` becomes `%2F`). For
/// looser matching use [`TestHost::http_handler`].
///
/// ```
/// use chatflow_sdk::testing::Stub;
///
/// Stub::get("https://api.example.com/orders?page=1")
///     .status(200)
///     .header("x-request-id", "r-1")
///     .json(r#"{"orders": [], "next": null}"#);
/// Stub::post("https://api.example.com/oauth/token").status(401).body("bad credentials");
/// Stub::get("https://slow.example.com/").timeout();
/// Stub::get("https://down.example.com/").connection_error("connection refused");
/// ```
#[derive(Debug, Clone)]
pub struct Stub {
    method: String,
    url: String,
    reply: Reply,
    once: bool,
    used: bool,
}

impl Stub {
    /// A stub for `method` (e.g. `"GET"`) and the exact `url`, answering
    /// `200` with an empty body until told otherwise.
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Stub {
            method: method.to_ascii_uppercase(),
            url: url.into(),
            reply: Reply::status(200),
            once: false,
            used: false,
        }
    }

    /// A `GET` stub.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` stub.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// A `PUT` stub.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new("PUT", url)
    }

    /// A `DELETE` stub.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new("DELETE", url)
    }

    /// A `PATCH` stub.
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new("PATCH", url)
    }

    /// The reply's status code (default `200`).
    pub fn status(mut self, status: u16) -> Self {
        self.reply.status = status;
        self
    }

    /// Adds a reply header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.reply = self.reply.header(name, value);
        self
    }

    /// The reply body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.reply = self.reply.body(body);
        self
    }

    /// A JSON reply body, with `content-type: application/json`.
    pub fn json(mut self, body: impl Into<String>) -> Self {
        self.reply = self.reply.json_body(body);
        self
    }

    /// Answers with a timeout instead of a response.
    pub fn timeout(mut self) -> Self {
        self.reply = Reply::timeout();
        self
    }

    /// Answers with a connection failure instead of a response.
    pub fn connection_error(mut self, message: impl Into<String>) -> Self {
        self.reply = Reply::connection_error(message);
        self
    }

    /// Any prepared reply.
    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    /// Answers only the first matching request; later ones go to the next
    /// matching stub or handler. Stack `once` stubs to script a sequence
    /// (a 503, then a 200).
    pub fn once(mut self) -> Self {
        self.once = true;
        self
    }
}

/// What the test host answers a request with: a response, a timeout or a
/// connection failure. Used by [`Stub::reply`] and [`TestHost::http_handler`].
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    kind: ReplyKind,
}

#[derive(Debug, Clone)]
enum ReplyKind {
    Response,
    Timeout,
    Connection(String),
}

impl Reply {
    /// A response with `status` and an empty body.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            kind: ReplyKind::Response,
        }
    }

    /// A `200` response with a JSON body.
    pub fn json(body: impl Into<String>) -> Self {
        Reply::status(200).json_body(body)
    }

    /// A `200` response with a text body.
    pub fn text(body: impl Into<String>) -> Self {
        Reply::status(200).body(body.into())
    }

    /// A timeout (the SDK returns [`http::Error::Timeout`](crate::http::Error::Timeout)).
    pub fn timeout() -> Self {
        Reply {
            kind: ReplyKind::Timeout,
            ..Reply::status(0)
        }
    }

    /// A connection failure (the SDK returns
    /// [`http::Error::Connection`](crate::http::Error::Connection)).
    pub fn connection_error(message: impl Into<String>) -> Self {
        Reply {
            kind: ReplyKind::Connection(message.into()),
            ..Reply::status(0)
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and `content-type: application/json`.
    pub fn json_body(self, body: impl Into<String>) -> Self {
        self.header("content-type", "application/json")
            .body(body.into())
    }
}

/// An HTTP request the block made, as the host received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    timeout_ms: Option<u64>,
}

impl HttpRequest {
    fn unparsed(json: &[u8]) -> Self {
        HttpRequest {
            method: String::new(),
            url: String::new(),
            headers: Vec::new(),
            body: Some(String::from_utf8_lossy(json).into_owned()),
            timeout_ms: None,
        }
    }

    /// The method, e.g. `"POST"`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The full URL, query string included.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL's decoded query parameter `name`, if present.
    pub fn query(&self, name: &str) -> Option<String> {
        let url = url::Url::parse(&self.url).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The headers in the order the block added them.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body, if any.
    pub fn body(&self) -> Option<&str> {
        self.body.as_deref()
    }

    /// The body parsed as JSON (`None` without a body or if it is not JSON).
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(self.body.as_deref()?).ok()
    }

    /// The timeout the block asked for, in milliseconds.
    pub fn timeout_ms(&self) -> Option<u64> {
        self.timeout_ms
    }
}

/// One line of the run's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Its level.
    pub level: Level,
    /// Its text.
    pub message: String,
}

/// Which limit ended a run (the engine's `Limit { which, .. }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// [`TestHost::max_http_calls`].
    HttpCalls,
    /// [`TestHost::max_http_response_bytes`].
    HttpResponseBytes,
    /// [`TestHost::max_property_value_bytes`].
    PropertyValueBytes,
    /// [`TestHost::max_written_bytes`].
    WrittenBytes,
    /// [`TestHost::max_messages`].
    Messages,
}

/// How a run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The block returned `Err` (its message, as the flow sees it), or
    /// `chatflow_run` returned non-zero.
    Returned {
        /// The value `chatflow_run` returned (`1` for `Err`).
        code: i32,
        /// The failure message: the error's text, or
        /// `chatflow_run returned N` without one.
        message: String,
    },
    /// The block panicked. In the sandbox the panic aborts the instance
    /// after the SDK's hook has reported the same message.
    Panic {
        /// `panicked at src/lib.rs:12:5: the message`.
        message: String,
    },
    /// A limit set on the [`TestHost`] was hit; the run ended at once.
    Limit {
        /// Which limit.
        which: LimitKind,
        /// Its value.
        value: u64,
    },
    /// The run failed after a request was denied by the network policy; the
    /// denial is the root cause, as the engine reports it.
    HttpDenied {
        /// The denied request (URL without query string) and the reason.
        request: String,
        /// The block's own failure message.
        guest_message: String,
    },
}

impl Failure {
    /// The failure as one line of text.
    pub fn message(&self) -> &str {
        match self {
            Failure::Returned { message, .. } | Failure::Panic { message } => message,
            Failure::HttpDenied { guest_message, .. } => guest_message,
            Failure::Limit { which, .. } => match which {
                LimitKind::HttpCalls => "limit reached: HTTP calls",
                LimitKind::HttpResponseBytes => "limit reached: HTTP response bytes",
                LimitKind::PropertyValueBytes => "limit reached: property value bytes",
                LimitKind::WrittenBytes => "limit reached: total bytes written",
                LimitKind::Messages => "limit reached: messages",
            },
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Limit { value, .. } => write!(f, "{} ({value})", self.message()),
            Failure::HttpDenied {
                request,
                guest_message,
            } => write!(
                f,
                "HTTP request denied ({request}); the block said: {guest_message}"
            ),
            _ => f.write_str(self.message()),
        }
    }
}

/// What one run did. Built by [`TestHost::run`].
#[derive(Debug, Clone)]
pub struct Outcome {
    initial: BTreeMap<String, String>,
    changes: BTreeMap<String, Option<String>>,
    messages: Vec<String>,
    logs: Vec<LogRecord>,
    logs_dropped: u64,
    requests: Vec<HttpRequest>,
    failure: Option<Failure>,
}

impl Outcome {
    /// Whether the run succeeded.
    pub fn is_success(&self) -> bool {
        self.failure.is_none()
    }

    /// Panics, showing the failure and the run's logs, unless the run
    /// succeeded. Returns `self` for chaining.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        if let Some(failure) = &self.failure {
            panic!("the Code block failed: {failure}\n{}", self.log_text());
        }
        self
    }

    /// Panics unless the run failed; returns the failure.
    #[track_caller]
    pub fn assert_failure(&self) -> &Failure {
        match &self.failure {
            Some(failure) => failure,
            None => panic!(
                "the Code block succeeded but was expected to fail; changes: {:?}\n{}",
                self.changes,
                self.log_text()
            ),
        }
    }

    /// How the run failed, if it did.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    /// The failure message the flow would see, if the run failed.
    pub fn failure_message(&self) -> Option<&str> {
        self.failure.as_ref().map(Failure::message)
    }

    /// Property `name` after the run: the run's committed write if any,
    /// otherwise the starting value (`None` if removed or never set).
    pub fn property(&self, name: &str) -> Option<&str> {
        match self.changes.get(name) {
            Some(change) => change.as_deref(),
            None => self.initial.get(name).map(String::as_str),
        }
    }

    /// All properties after the run.
    pub fn properties(&self) -> BTreeMap<&str, &str> {
        let mut all: BTreeMap<&str, &str> = self
            .initial
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (name, change) in &self.changes {
            match change {
                Some(value) => all.insert(name, value),
                None => all.remove(name.as_str()),
            };
        }
        all
    }

    /// The committed changes: `Some(value)` for a property set, `None` for
    /// one removed. Empty when the run failed.
    pub fn changes(&self) -> &BTreeMap<String, Option<String>> {
        &self.changes
    }

    /// Whether the run (successfully) removed property `name`.
    pub fn removed(&self, name: &str) -> bool {
        matches!(self.changes.get(name), Some(None))
    }

    /// The messages sent to the user, in order. Empty when the run failed.
    pub fn messages(&self) -> &[String] {
        &self.messages
    }

    /// The run's log, kept whether it succeeded or not.
    pub fn logs(&self) -> &[LogRecord] {
        &self.logs
    }

    /// Log lines dropped because they did not fit in
    /// [`TestHost::max_log_bytes`].
    pub fn logs_dropped(&self) -> u64 {
        self.logs_dropped
    }

    /// The HTTP requests the block made, in order, including denied and
    /// failed ones.
    pub fn requests(&self) -> &[HttpRequest] {
        &self.requests
    }

    fn log_text(&self) -> String {
        if self.logs.is_empty() {
            return "(no logs)".to_string();
        }
        let mut text = String::from("logs:\n");
        for record in &self.logs {
            text.push_str(&format!("  [{}] {}\n", record.level, record.message));
        }
        text
    }
}

/// The XML path code the test host's `xml_select` uses: the SDK's own
/// (`crate::xml`), mapped to the ABI's two error codes.
mod xml_path {
    pub(crate) enum SelectError {
        /// Bad path syntax: `INVALID`.
        Path(String),
        /// Not well-formed: `NOT_PARSEABLE`.
        Document(String),
    }

    fn map(err: crate::xml::Error) -> SelectError {
        match err {
            crate::xml::Error::Path { .. } => SelectError::Path(err.to_string()),
            other => SelectError::Document(other.to_string()),
        }
    }

    pub(crate) fn select(text: &str, path: &str) -> Result<Option<String>, SelectError> {
        crate::xml::select(text, path).map_err(map)
    }

    pub(crate) fn check_path(path: &str) -> Result<(), SelectError> {
        crate::xml::check_path(path).map_err(map)
    }
}
