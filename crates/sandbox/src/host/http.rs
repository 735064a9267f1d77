//! `http_request` and the response readers: requests through the engine's
//! shared [`HttpClient`], under the same [`NetPolicy`](chatflow_net::NetPolicy)
//! as the REST API block.
//!
//! `http_request` is an async host function: while the request is in
//! flight the run's fiber is suspended and holds no thread. The wait is
//! bounded by the run's wall-clock deadline and by its cancel token, on top
//! of the policy's own timeouts.
//!
//! Memory: the request counts towards the run's written bytes (refused
//! before it is copied); the response bodies a run holds at once total at
//! most its *HTTP response bytes* (a body read in full is released at the
//! next `http_request`, making room); a response's headers are at most
//! [`MAX_RESPONSE_HEADER_BYTES`]. Fuel: [`REQUEST_FUEL`] per request, the
//! request's bytes as parsed ([`PARSE_FUEL_PER_BYTE`]), the response's
//! bytes as received ([`receive_fuel`]).

use std::time::Duration;

use serde::Deserialize;
use url::Url;
use wasmtime::{Caller, Linker};

use super::{
    CALL_FUEL, RunState, charge, code, copy_fuel, guest_error, memory, put, range, store_fuel,
};

/// Fuel for one request on top of the call's: what the host spends on a
/// request whatever its size (policy checks, DNS, a connection, the
/// client's bookkeeping, the task that sends it). The worst case measured
/// (`fuel_rate`, `http_request/get-new-connection`: a server that closes
/// every connection, so each request opens a new one) is about 65 µs of
/// the run's thread on loopback: a plain wasm loop's time for some 650 000
/// units of fuel.
pub(crate) const REQUEST_FUEL: u64 = chatflow_abi::fuel::HTTP_REQUEST;

/// Fuel per byte of the request object, parsed as JSON before it is sent
/// (a body made of `\uXXXX` escapes is the slowest to parse).
pub(crate) const PARSE_FUEL_PER_BYTE: u64 = 8;

/// The longest response header block kept (as `name: value\n` lines); a
/// response with more fails the request with `CONNECTION`.
pub(crate) const MAX_RESPONSE_HEADER_BYTES: usize = chatflow_abi::MAX_RESPONSE_HEADER_BYTES;

/// Fuel for `bytes` of a response received (read from the connection,
/// decrypted, collected in new memory): 2 per byte.
pub(crate) fn receive_fuel(bytes: usize) -> u64 {
    2 * bytes as u64
}
use chatflow_abi::IMPORT_MODULE;
use chatflow_abi::imports::{
    HTTP_REQUEST, HTTP_RESPONSE_BODY, HTTP_RESPONSE_HEADERS, HTTP_RESPONSE_STATUS,
};
use chatflow_net::{HttpClient, NetError, Request};

use crate::limits::LimitKind;
use crate::outcome::RunError;

/// HTTP bookkeeping of one run.
#[derive(Debug, Default)]
pub(crate) struct HttpState {
    /// `http_request` calls made.
    pub(crate) calls: u32,
    /// Why the first request denied by policy was denied.
    pub(crate) denied: Option<String>,
    /// Responses, by handle.
    responses: Vec<GuestResponse>,
    /// Bytes of the bodies in `responses` not released yet.
    held: u64,
}

impl HttpState {
    /// Releases the bodies the guest has read in full.
    fn release_read_bodies(&mut self) {
        for response in &mut self.responses {
            if response.body_read
                && let Some(body) = response.body.take()
            {
                self.held -= body.len() as u64;
            }
        }
    }
}

#[derive(Debug)]
struct GuestResponse {
    status: u16,
    /// `name: value\n` lines.
    headers: String,
    /// `None` once released.
    body: Option<Vec<u8>>,
    /// Whether the guest has copied the whole (non-empty) body.
    body_read: bool,
}

/// The request object a guest passes to `http_request` (`docs/abi.md`;
/// the field names are [`chatflow_abi::http::field`], checked by the test
/// `the_request_fields_are_the_abis`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuestRequest {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

pub(super) fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        IMPORT_MODULE,
        HTTP_REQUEST.name,
        |caller: Caller<'_, RunState>, (req_ptr, req_len): (i32, i32)| {
            Box::new(http_request(caller, req_ptr, req_len))
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        HTTP_RESPONSE_STATUS.name,
        http_response_status,
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        HTTP_RESPONSE_HEADERS.name,
        http_response_headers,
    )?;
    linker.func_wrap(IMPORT_MODULE, HTTP_RESPONSE_BODY.name, http_response_body)?;
    Ok(())
}

/// Builds the request from the guest's JSON; `Err` is the message for an
/// `INVALID` return.
fn build_request(bytes: &[u8], response_cap: u64) -> Result<Request, String> {
    let req: GuestRequest =
        serde_json::from_slice(bytes).map_err(|e| format!("malformed http request: {e}"))?;
    // The ABI's methods (upper case only), as the HTTP client names them.
    let method: chatflow_abi::http::Method = req.method.parse().map_err(|e| format!("{e}"))?;
    let method = chatflow_net::abi_method(method);
    let url = Url::parse(&req.url).map_err(|e| format!("bad url: {e}"))?;
    let mut request = Request::new(method, url).max_response_bytes(response_cap);
    for (name, value) in &req.headers {
        request = request.header(name, value).map_err(|e| e.to_string())?;
    }
    if let Some(body) = req.body {
        request = request.body(body);
    }
    if let Some(ms) = req.timeout_ms {
        request = request.timeout(Duration::from_millis(ms));
    }
    Ok(request)
}

async fn http_request(
    mut caller: Caller<'_, RunState>,
    req_ptr: i32,
    req_len: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "http_request";
    charge(&mut caller, CALL_FUEL + REQUEST_FUEL)?;
    let mem = memory(&mut caller)?;
    let (data, state) = mem.data_and_store_mut(&mut caller);
    let req = range(F, "req_ptr/req_len", req_ptr, req_len, data.len())?;
    state.http.calls += 1;
    let max = state.limits.http_calls;
    if state.http.calls > max {
        return Err(RunError::Limit {
            which: LimitKind::HttpCalls,
            value: max.into(),
        }
        .into());
    }
    // The request is written out of the run: it counts like a property
    // write, and an oversized one is refused before it is copied.
    state.count_written(req.len())?;
    // What the bodies held so far leave of the response budget, once the
    // bodies already read in full are released.
    state.http.release_read_bodies();
    let limit = response_limit(state);
    let cap = limit.saturating_sub(state.http.held);
    if cap == 0 {
        return Err(RunError::Limit {
            which: LimitKind::HttpResponseBytes,
            value: limit,
        }
        .into());
    }
    // Copied out of the guest, then parsed as JSON (in the task).
    charge(
        &mut caller,
        store_fuel(req.len()) + PARSE_FUEL_PER_BYTE * req.len() as u64,
    )?;
    let (data, state) = mem.data_and_store_mut(&mut caller);
    let (bytes, client, deadline, cancel) = (
        data[req].to_vec(),
        state.http_client.clone(),
        state.deadline,
        state.cancel.clone(),
    );
    let send = tokio::time::timeout_at(deadline.into(), spawn_send(client, bytes, cap));
    let result = match &cancel {
        None => send.await,
        Some(token) => tokio::select! {
            result = send => result,
            () = token.cancelled() => return Err(RunError::Cancelled.into()),
        },
    };
    let result = match result {
        Ok(Ok(Sent::Invalid(message))) => {
            return guest_error(&mut caller, code::INVALID, message);
        }
        Ok(Ok(Sent::Response(response))) => Ok(Ok(response)),
        Ok(Ok(Sent::HeadersTooLarge)) => {
            let message = format!("response headers are over {MAX_RESPONSE_HEADER_BYTES} bytes");
            return guest_error(&mut caller, code::CONNECTION, message);
        }
        Ok(Ok(Sent::Failed(err))) => Ok(Err(err)),
        Ok(Err(run_error)) => return Err(run_error.into()),
        Err(elapsed) => Err(elapsed),
    };
    let state = caller.data_mut();
    let response = match result {
        Err(_elapsed) => {
            return Err(RunError::Timeout {
                limit: state.limits.wall_time,
            }
            .into());
        }
        Ok(Ok(response)) => response,
        Ok(Err(err)) => {
            let code = match &err {
                NetError::Denied { .. } => {
                    state.http.denied.get_or_insert_with(|| err.to_string());
                    code::DENIED
                }
                NetError::Timeout { .. } => code::TIMEOUT,
                NetError::BodyTooLarge { .. } => {
                    // Over what was left of the budget: name the run's
                    // limit, not what was left.
                    return Err(RunError::Limit {
                        which: LimitKind::HttpResponseBytes,
                        value: response_limit(state),
                    }
                    .into());
                }
                NetError::InvalidRequest(_) => code::INVALID,
                _ => code::CONNECTION,
            };
            return guest_error(&mut caller, code, error_message(&err));
        }
    };
    let handle = i32::try_from(state.http.responses.len()).unwrap_or(i32::MAX);
    let received = response.headers.len() + response.body.as_ref().map_or(0, Vec::len);
    state.http.held += response.body.as_ref().map_or(0, |b| b.len() as u64);
    state.http.responses.push(response);
    charge(&mut caller, receive_fuel(received))?;
    Ok(handle)
}

/// The most response-body bytes the run may hold at once: its *HTTP
/// response bytes*, or the policy's cap if lower.
fn response_limit(state: &RunState) -> u64 {
    state
        .limits
        .http_response_bytes
        .min(state.http_client.policy().max_response_bytes)
}

/// What became of a guest's request.
enum Sent {
    Response(GuestResponse),
    /// The request did not parse: the message for an `INVALID` return.
    Invalid(String),
    /// The response's headers are over [`MAX_RESPONSE_HEADER_BYTES`].
    HeadersTooLarge,
    Failed(NetError),
}

/// Builds and sends the request as a task of its own, and waits for it.
///
/// The request's JSON parsing and its futures (reqwest, hyper) then run on
/// the runtime's stack rather than on the run's fiber stack: a Code block
/// waiting on HTTP keeps about 4 KiB of its fiber stack resident instead of
/// about 40 KiB, much of what a waiting run costs (`docs/benchmarks.md`,
/// memory). Dropping the wait (deadline, cancel, the run dropped) aborts
/// the task.
async fn spawn_send(client: HttpClient, bytes: Vec<u8>, cap: u64) -> Result<Sent, RunError> {
    /// Aborts the task when the wait is dropped before it finished.
    struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);
    impl<T> Drop for AbortOnDrop<T> {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    // The task's future is kept small: the request's own (reqwest's are
    // several KiB) is created and boxed when the task first runs, so it is
    // never moved around on the fiber stack.
    let mut task = AbortOnDrop(tokio::spawn(async move {
        Box::pin(async move {
            let request = build_request(&bytes, cap);
            drop(bytes);
            match request {
                Ok(request) => match send(&client, request).await {
                    Ok(Some(response)) => Sent::Response(response),
                    Ok(None) => Sent::HeadersTooLarge,
                    Err(err) => Sent::Failed(err),
                },
                Err(message) => Sent::Invalid(message),
            }
        })
        .await
    }));
    match (&mut task.0).await {
        Ok(sent) => Ok(sent),
        // The task never panics (errors are values); if it did, the run
        // fails as it would had the request been polled here.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only a runtime shutting down cancels the task.
        Err(_) => Err(RunError::Cancelled),
    }
}

/// Sends and renders the response for the guest; `None` if its headers
/// are over [`MAX_RESPONSE_HEADER_BYTES`].
async fn send(client: &HttpClient, request: Request) -> Result<Option<GuestResponse>, NetError> {
    let response = client.send(request).await?;
    let mut headers = String::new();
    for (name, value) in &response.headers {
        headers.push_str(name.as_str());
        headers.push_str(": ");
        headers.push_str(&String::from_utf8_lossy(value.as_bytes()));
        headers.push('\n');
        if headers.len() > MAX_RESPONSE_HEADER_BYTES {
            return Ok(None);
        }
    }
    Ok(Some(GuestResponse {
        status: response.status.as_u16(),
        headers,
        body: Some(response.body),
        body_read: false,
    }))
}

/// The message a guest reads with `last_error`: the error and its causes
/// (URLs are already redacted by `net`).
fn error_message(err: &NetError) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The response with `handle`, or the message for a `BAD_HANDLE` return.
fn response(state: &mut RunState, handle: i32) -> Result<&mut GuestResponse, String> {
    match usize::try_from(handle)
        .ok()
        .filter(|&h| h < state.http.responses.len())
    {
        Some(h) => Ok(&mut state.http.responses[h]),
        None => Err(format!("no http response with handle {handle}")),
    }
}

fn http_response_status(mut caller: Caller<'_, RunState>, handle: i32) -> wasmtime::Result<i32> {
    charge(&mut caller, CALL_FUEL)?;
    match response(caller.data_mut(), handle) {
        Ok(response) => Ok(i32::from(response.status)),
        Err(message) => guest_error(&mut caller, code::BAD_HANDLE, message),
    }
}

fn http_response_headers(
    mut caller: Caller<'_, RunState>,
    handle: i32,
    buf_ptr: i32,
    buf_cap: i32,
) -> wasmtime::Result<i32> {
    read_response(
        &mut caller,
        "http_response_headers",
        handle,
        buf_ptr,
        buf_cap,
        Part::Headers,
    )
}

fn http_response_body(
    mut caller: Caller<'_, RunState>,
    handle: i32,
    buf_ptr: i32,
    buf_cap: i32,
) -> wasmtime::Result<i32> {
    read_response(
        &mut caller,
        "http_response_body",
        handle,
        buf_ptr,
        buf_cap,
        Part::Body,
    )
}

/// Which part of a response a reader copies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Headers,
    Body,
}

fn read_response(
    caller: &mut Caller<'_, RunState>,
    import: &'static str,
    handle: i32,
    buf_ptr: i32,
    buf_cap: i32,
    part: Part,
) -> wasmtime::Result<i32> {
    charge(caller, CALL_FUEL)?;
    let mem = memory(caller)?;
    let (data, state) = mem.data_and_store_mut(&mut *caller);
    let buf = range(import, "buf_ptr/buf_cap", buf_ptr, buf_cap, data.len())?;
    let response = match response(state, handle) {
        Ok(response) => response,
        Err(message) => return guest_error(caller, code::BAD_HANDLE, message),
    };
    let bytes = match part {
        Part::Headers => response.headers.as_bytes(),
        Part::Body => match &response.body {
            Some(body) => body,
            None => {
                let message = format!(
                    "the body of http response {handle} was read in full and released \
                     by a later http_request"
                );
                return guest_error(caller, code::BAD_HANDLE, message);
            }
        },
    };
    let (len, copied) = put(&mut data[buf], bytes);
    if part == Part::Body && copied > 0 && copied == bytes.len() {
        response.body_read = true;
    }
    charge(caller, copy_fuel(copied))?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use chatflow_abi::http::{FORBIDDEN_HEADERS, Method as AbiMethod, field};

    use super::*;

    /// A request object with every field, written with the ABI's names.
    fn request(method: &str, header: &str) -> String {
        serde_json::json!({
            field::METHOD: method,
            field::URL: "http://127.0.0.1:1/x",
            field::HEADERS: [[header, "v"]],
            field::BODY: "b",
            field::TIMEOUT_MS: 5,
        })
        .to_string()
    }

    #[test]
    fn the_request_fields_are_the_abis() {
        let request = build_request(request("PUT", "X-Key").as_bytes(), 10).unwrap();
        assert_eq!(request.method(), &chatflow_net::Method::PUT);
        // Only the required fields.
        let json = serde_json::json!({ field::METHOD: "GET", field::URL: "http://127.0.0.1:1/" });
        assert!(build_request(json.to_string().as_bytes(), 10).is_ok());
        for required in field::REQUIRED {
            let mut json = json.clone();
            json.as_object_mut().unwrap().remove(required);
            let err = build_request(json.to_string().as_bytes(), 10).unwrap_err();
            assert!(
                err.contains(&format!("missing field `{required}`")),
                "{err}"
            );
        }
    }

    #[test]
    fn every_abi_method_is_sent_as_named() {
        for method in AbiMethod::ALL {
            let request = build_request(request(method.as_str(), "X-Key").as_bytes(), 10).unwrap();
            assert_eq!(request.method().as_str(), method.as_str());
        }
    }

    #[test]
    fn methods_bad() {
        for bad in ["get", "FETCH", "OPTIONS", ""] {
            let err = build_request(request(bad, "X-Key").as_bytes(), 10).unwrap_err();
            assert_eq!(
                err,
                format!("http method {bad:?} is not one of GET, POST, PUT, DELETE, PATCH, HEAD")
            );
        }
    }

    #[test]
    fn the_abis_forbidden_headers_are_refused_bad() {
        for name in FORBIDDEN_HEADERS {
            for name in [name.to_string(), name.to_ascii_uppercase()] {
                let err = build_request(request("GET", &name).as_bytes(), 10).unwrap_err();
                assert_eq!(
                    err,
                    format!("header {name:?} is set by the client and cannot be set by a block")
                );
            }
        }
    }

    #[test]
    fn unknown_fields_bad() {
        let json = serde_json::json!({ field::METHOD: "GET", field::URL: "http://127.0.0.1:1/", "timeout": 5 });
        let err = build_request(json.to_string().as_bytes(), 10).unwrap_err();
        assert!(err.contains("unknown field `timeout`"), "{err}");
    }
}
