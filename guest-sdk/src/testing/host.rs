//! The in-process host: ABI v1 answered from a thread-local run state.
//!
//! These functions have the same Rust signatures as the wasm32 wrappers in
//! `sys.rs` and follow `docs/abi.md`: the length protocol, the error codes,
//! `last_error`, buffered writes. Limits end the run the way the engine does,
//! by unwinding out of the block with a private payload that
//! [`TestHost::run`](super::TestHost::run) recognises.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::mem::MaybeUninit;

// The sizes the ABI promises, as the engine applies them: `fail` keeps at
// most MAX_FAIL_MESSAGE_BYTES of the message; a kept log line takes
// LOG_LINE_OVERHEAD from the log budget beyond its text; a property write or
// removal, a message or an HTTP request takes WRITE_OVERHEAD from the written
// bytes beyond its own; a property name is at most MAX_PROPERTY_NAME_BYTES.
use chatflow_abi::http::{Method, is_forbidden_header};
use chatflow_abi::{
    LOG_LINE_OVERHEAD, MAX_FAIL_MESSAGE_BYTES, MAX_PROPERTY_NAME_BYTES, WRITE_OVERHEAD,
};

use super::{Failure, HttpRequest, LimitKind, LogRecord, Reply, ReplyKind, TestHost};
use crate::log::Level;
use chatflow_abi::code::{
    BAD_HANDLE, CONNECTION, DENIED, INVALID, NOT_FOUND, NOT_PARSEABLE, TIMEOUT,
};

/// Everything one run has done so far.
pub(crate) struct RunState {
    pub(super) host: TestHost,
    /// This run's writes: `Some(value)` set, `None` removed.
    pub(super) changes: BTreeMap<String, Option<String>>,
    pub(super) messages: Vec<String>,
    pub(super) logs: Vec<LogRecord>,
    pub(super) requests: Vec<HttpRequest>,
    pub(super) responses: Vec<Reply>,
    /// For each response, whether its body has been read in full (and so
    /// may be released) and whether it has been released.
    bodies: Vec<BodyState>,
    /// Bytes of response bodies held, as the engine counts them against
    /// its HTTP response bytes.
    held: u64,
    pub(super) fail_message: Option<String>,
    pub(super) last_error: Option<String>,
    pub(super) written_bytes: u64,
    /// Bytes of the logs kept, and lines dropped over the log budget.
    pub(super) log_bytes: u64,
    pub(super) logs_dropped: u64,
    pub(super) denied: Option<String>,
    /// Set by the panic hook when the block panics.
    pub(super) panic_message: Option<String>,
}

/// Where a response body stands, as in the engine: held until read in
/// full, then released at the next `http_request`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyState {
    Unread,
    Read,
    Released,
}

/// The payload a limit unwinds with.
pub(super) struct LimitHit(pub(super) Failure);

thread_local! {
    pub(super) static RUN: RefCell<Option<RunState>> = const { RefCell::new(None) };
}

fn with<R>(f: impl FnOnce(&mut RunState) -> R) -> R {
    let outcome = RUN.with(|run| {
        let mut run = run.borrow_mut();
        match run.as_mut() {
            Some(state) => Ok(f(state)),
            None => Err(()),
        }
    });
    match outcome {
        Ok(r) => r,
        Err(()) => panic!(
            "chatflow_sdk: no Code block run is in progress on this thread. Off wasm32 the SDK \
             talks to the in-process test host: run your block with \
             `chatflow_sdk::testing::TestHost::new().run(your_run_fn)`"
        ),
    }
}

/// Ends the run with `failure`, from inside a host call (like a trap).
fn end_run(failure: Failure) -> ! {
    std::panic::resume_unwind(Box::new(LimitHit(failure)))
}

impl RunState {
    pub(super) fn new(host: TestHost) -> Self {
        RunState {
            host,
            changes: BTreeMap::new(),
            messages: Vec::new(),
            logs: Vec::new(),
            requests: Vec::new(),
            responses: Vec::new(),
            bodies: Vec::new(),
            held: 0,
            fail_message: None,
            last_error: None,
            written_bytes: 0,
            log_bytes: 0,
            logs_dropped: 0,
            denied: None,
            panic_message: None,
        }
    }

    fn error(&mut self, code: i32, message: String) -> i32 {
        self.last_error = Some(message);
        code
    }

    fn value(&self, name: &str) -> Option<&str> {
        match self.changes.get(name) {
            Some(change) => change.as_deref(),
            None => self.host.properties.get(name).map(String::as_str),
        }
    }

    fn count_written(&mut self, bytes: usize) {
        self.written_bytes += bytes as u64 + WRITE_OVERHEAD;
        if let Some(max) = self.host.limits.written_bytes
            && self.written_bytes > max
        {
            end_run(Failure::Limit {
                which: LimitKind::WrittenBytes,
                value: max,
            });
        }
    }
}

/// Copies `min(len, cap)` bytes of `value` into `buf`; returns the full length.
fn copy_out(value: &[u8], buf: &mut [MaybeUninit<u8>]) -> i32 {
    let n = value.len().min(buf.len());
    // SAFETY: `n` is within both the source and the destination.
    unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), buf.as_mut_ptr().cast::<u8>(), n) };
    i32::try_from(value.len()).expect("results are smaller than 2 GiB")
}

/// The engine's property name rule and messages
/// (`chatflow_engine::properties::validate_name` and `NameError`), so a
/// block's error text is the same natively and in the sandbox.
pub(super) fn name_problem(name: &str) -> Option<String> {
    if name.trim().is_empty() {
        return Some("property name is empty".into());
    }
    if name.len() > MAX_PROPERTY_NAME_BYTES {
        return Some(format!(
            "property name is {} bytes long; the limit is {MAX_PROPERTY_NAME_BYTES}",
            name.len()
        ));
    }
    if name.trim() != name {
        return Some(format!(
            "property name {name:?} has leading or trailing whitespace"
        ));
    }
    if let Some(ch) = name
        .chars()
        .find(|c| *c == '{' || *c == '}' || c.is_control())
    {
        return Some(format!(
            "property name {name:?} contains {ch:?}, which is not allowed in names"
        ));
    }
    None
}

pub(crate) fn property_get(name: &str, buf: &mut [MaybeUninit<u8>]) -> i32 {
    with(|run| match run.value(name) {
        Some(value) => copy_out(value.as_bytes(), buf),
        None => run.error(NOT_FOUND, format!("property {name:?} is not set")),
    })
}

pub(crate) fn property_set(name: &str, value: &str) -> i32 {
    with(|run| {
        if let Some(problem) = name_problem(name) {
            return run.error(INVALID, problem);
        }
        if let Some(max) = run.host.limits.property_value_bytes
            && value.len() as u64 > max
        {
            end_run(Failure::Limit {
                which: LimitKind::PropertyValueBytes,
                value: max,
            });
        }
        run.count_written(name.len() + value.len());
        run.changes
            .insert(name.to_string(), Some(value.to_string()));
        0
    })
}

pub(crate) fn property_remove(name: &str) -> i32 {
    with(|run| {
        if let Some(problem) = name_problem(name) {
            return run.error(INVALID, problem);
        }
        run.count_written(name.len());
        run.changes.insert(name.to_string(), None);
        0
    })
}

pub(crate) fn message_send(text: &str) -> i32 {
    with(|run| {
        if let Some(max) = run.host.limits.messages
            && run.messages.len() as u64 >= max
        {
            end_run(Failure::Limit {
                which: LimitKind::Messages,
                value: max,
            });
        }
        run.count_written(text.len());
        run.messages.push(text.to_string());
        0
    })
}

pub(crate) fn log(level: i32, msg: &str) {
    with(|run| {
        let level = Level::from_i32(level);
        // As the engine: a line that does not fit in what is left of the
        // budget is dropped whole and counted; a later, shorter one may fit.
        let len = msg.len() as u64 + LOG_LINE_OVERHEAD;
        if let Some(max) = run.host.limits.log_bytes
            && run.log_bytes + len > max
        {
            run.logs_dropped += 1;
            return;
        }
        run.log_bytes += len;
        // Printed so that `cargo test` shows a failing test's logs (the test
        // harness captures this output and prints it only on failure).
        eprintln!("[code block {level}] {msg}");
        run.logs.push(LogRecord {
            level,
            message: msg.to_string(),
        });
    })
}

pub(crate) fn fail(msg: &str) {
    with(|run| {
        let mut end = msg.len().min(MAX_FAIL_MESSAGE_BYTES);
        while !msg.is_char_boundary(end) {
            end -= 1;
        }
        run.fail_message = Some(msg[..end].to_string());
    })
}

pub(crate) fn last_error(buf: &mut [MaybeUninit<u8>]) -> i32 {
    with(|run| match &run.last_error {
        Some(message) => copy_out(message.as_bytes(), buf),
        None => NOT_FOUND,
    })
}

/// The request object of `http_request`, as the engine parses it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRequest {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

pub(crate) fn http_request(request_json: &[u8]) -> i32 {
    with(|run| {
        let calls = run.requests.len() as u64;
        if let Some(max) = run.host.limits.http_calls
            && calls >= max
        {
            end_run(Failure::Limit {
                which: LimitKind::HttpCalls,
                value: max,
            });
        }
        // As the engine: the request counts towards the written bytes, the
        // bodies read in full are released, and the bodies still held must
        // leave room for this response.
        run.count_written(request_json.len());
        for (reply, state) in run.responses.iter().zip(&mut run.bodies) {
            if *state == BodyState::Read {
                *state = BodyState::Released;
                run.held -= reply.body.len() as u64;
            }
        }
        if let Some(max) = run.host.limits.http_response_bytes
            && run.held >= max
        {
            end_run(Failure::Limit {
                which: LimitKind::HttpResponseBytes,
                value: max,
            });
        }
        let wire: WireRequest = match serde_json::from_slice(request_json) {
            Ok(wire) => wire,
            Err(err) => {
                // Counted like every other call, as the engine does.
                run.requests.push(HttpRequest::unparsed(request_json));
                return run.error(INVALID, format!("malformed request JSON: {err}"));
            }
        };
        let request = HttpRequest {
            method: wire.method,
            url: wire.url,
            headers: wire.headers,
            body: wire.body,
            timeout_ms: wire.timeout_ms,
        };
        run.requests.push(request.clone());
        if let Err(err) = request.method.parse::<Method>() {
            return run.error(INVALID, err.to_string());
        }
        let url = match url::Url::parse(&request.url) {
            Ok(url) => url,
            Err(err) => {
                return run.error(INVALID, format!("invalid URL: {err}"));
            }
        };
        for (name, value) in &request.headers {
            if let Some(problem) = header_problem(name, value) {
                return run.error(INVALID, problem);
            }
        }
        let shown = crate::http::redact(&request.url);
        if !matches!(url.scheme(), "http" | "https") {
            let message = format!("scheme {:?} is not allowed", url.scheme());
            run.denied
                .get_or_insert_with(|| format!("{shown}: {message}"));
            return run.error(DENIED, message);
        }
        let Some(host) = url.host_str() else {
            return run.error(INVALID, "invalid request: the url has no host".to_string());
        };
        let host = host.to_ascii_lowercase();
        if let Some(message) = run.host.policy_denies(&host) {
            run.denied
                .get_or_insert_with(|| format!("{shown}: {message}"));
            return run.error(DENIED, message);
        }
        if request.timeout_ms == Some(0) {
            return run.error(
                INVALID,
                "invalid request: the timeout must be more than 0".to_string(),
            );
        }
        let Some(reply) = run.host.answer(&request) else {
            return run.error(
                CONNECTION,
                format!(
                    "test host: no stub matches {} {} (add one with TestHost::stub or \
                     TestHost::http_handler)",
                    request.method, request.url
                ),
            );
        };
        match reply.kind {
            ReplyKind::Timeout => run.error(TIMEOUT, format!("{shown}: request timed out")),
            ReplyKind::Connection(message) => run.error(CONNECTION, format!("{shown}: {message}")),
            ReplyKind::Response => {
                if let Some(max) = run.host.limits.http_response_bytes
                    && run.held + reply.body.len() as u64 > max
                {
                    end_run(Failure::Limit {
                        which: LimitKind::HttpResponseBytes,
                        value: max,
                    });
                }
                run.held += reply.body.len() as u64;
                run.responses.push(reply);
                run.bodies.push(BodyState::Unread);
                (run.responses.len() - 1) as i32
            }
        }
    })
}

/// Why the engine would refuse a request header: a name that is not an
/// HTTP token or that the client manages ([`is_forbidden_header`]), or a
/// value with a control character other than tab.
fn header_problem(name: &str, value: &str) -> Option<String> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Some(format!("invalid header name {name:?}"));
    }
    if is_forbidden_header(name) {
        return Some(format!(
            "header {name:?} is set by the client and cannot be set by a block"
        ));
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Some(format!(
            "header {name:?}: the value contains a control character"
        ));
    }
    None
}

fn response<R>(handle: i32, f: impl FnOnce(&Reply) -> R) -> Result<R, i32> {
    with(|run| {
        match usize::try_from(handle)
            .ok()
            .and_then(|h| run.responses.get(h))
        {
            Some(reply) => Ok(f(reply)),
            None => Err(run.error(BAD_HANDLE, format!("no HTTP response with handle {handle}"))),
        }
    })
}

pub(crate) fn http_response_status(handle: i32) -> i32 {
    response(handle, |reply| i32::from(reply.status)).unwrap_or_else(|code| code)
}

pub(crate) fn http_response_headers(handle: i32, buf: &mut [MaybeUninit<u8>]) -> i32 {
    response(handle, |reply| {
        // As the engine lists them: names in lower case, the values of a
        // repeated name together where the name first appeared.
        let mut names: Vec<String> = Vec::new();
        for (name, _) in &reply.headers {
            let name = name.to_ascii_lowercase();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let mut text = String::new();
        for name in &names {
            for (_, value) in reply
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                text.push_str(name);
                text.push_str(": ");
                text.push_str(value);
                text.push('\n');
            }
        }
        copy_out(text.as_bytes(), buf)
    })
    .unwrap_or_else(|code| code)
}

pub(crate) fn http_response_body(handle: i32, buf: &mut [MaybeUninit<u8>]) -> i32 {
    let Ok(h) = response(handle, |_| handle as usize) else {
        return BAD_HANDLE;
    };
    with(|run| {
        if run.bodies[h] == BodyState::Released {
            return run.error(
                BAD_HANDLE,
                format!(
                    "the body of http response {handle} was read in full and released by a \
                     later http_request"
                ),
            );
        }
        let body = &run.responses[h].body;
        if !body.is_empty() && buf.len() >= body.len() {
            run.bodies[h] = BodyState::Read;
        }
        copy_out(&run.responses[h].body, buf)
    })
}

pub(crate) fn json_select(prop: &str, pointer: &str, buf: &mut [MaybeUninit<u8>]) -> i32 {
    use super::json_pointer::{SelectError, select, tokens};
    with(|run| {
        // The engine's order: pointer syntax, then the property, then the
        // document, then the pointer's target.
        let tokens = match tokens(pointer) {
            Ok(tokens) => tokens,
            Err(SelectError::Pointer(message) | SelectError::Document(message)) => {
                return run.error(INVALID, message);
            }
        };
        let Some(text) = run.value(prop) else {
            return run.error(NOT_FOUND, format!("property {prop:?} is not set"));
        };
        match select(text, &tokens) {
            Ok(Some(value)) => copy_out(value.as_bytes(), buf),
            Ok(None) => run.error(
                NOT_FOUND,
                format!("nothing at JSON pointer {pointer:?} in property {prop:?}"),
            ),
            Err(SelectError::Document(message) | SelectError::Pointer(message)) => run.error(
                NOT_PARSEABLE,
                format!("property {prop:?} is not JSON: {message}"),
            ),
        }
    })
}

pub(crate) fn xml_select(prop: &str, path: &str, buf: &mut [MaybeUninit<u8>]) -> i32 {
    with(|run| {
        let result = match run.value(prop) {
            Some(text) => super::xml_path::select(text, path),
            None => super::xml_path::check_path(path).map(|()| None),
        };
        match result {
            Ok(Some(text)) => copy_out(text.as_bytes(), buf),
            Ok(None) if run.value(prop).is_none() => {
                run.error(NOT_FOUND, format!("property {prop:?} is not set"))
            }
            Ok(None) => run.error(
                NOT_FOUND,
                format!("nothing matches {path:?} in property {prop:?}"),
            ),
            Err(super::xml_path::SelectError::Path(message)) => run.error(INVALID, message),
            Err(super::xml_path::SelectError::Document(message)) => run.error(
                NOT_PARSEABLE,
                format!("property {prop:?} is not well-formed XML: {message}"),
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_abis_forbidden_headers_are_refused_bad() {
        for name in chatflow_abi::http::FORBIDDEN_HEADERS {
            for name in [name.to_string(), name.to_ascii_uppercase()] {
                assert_eq!(
                    header_problem(&name, "v"),
                    Some(format!(
                        "header {name:?} is set by the client and cannot be set by a block"
                    ))
                );
            }
        }
        assert_eq!(header_problem("X-Host", "v"), None);
    }

    #[test]
    fn property_names_follow_the_engine_rule() {
        for good in [
            "phone",
            "API Response",
            "a.b-c_d",
            "ünïcödé",
            &"x".repeat(MAX_PROPERTY_NAME_BYTES),
        ] {
            assert_eq!(name_problem(good), None, "{good:?}");
        }
        for bad in [
            "",
            "  ",
            " lead",
            "trail ",
            "{x}",
            "a}b",
            "tab\tin",
            &"x".repeat(MAX_PROPERTY_NAME_BYTES + 1),
        ] {
            assert!(name_problem(bad).is_some(), "{bad:?}");
        }
    }
}
