//! `http_request` and the response readers: requests through the engine's
//! shared [`HttpClient`], under the same [`NetPolicy`](crate::net::NetPolicy)
//! as the REST API block.
//!
//! `http_request` is an async host function: while the request is in
//! flight the run's fiber is suspended and holds no thread. The wait is
//! bounded by the run's wall-clock deadline and by its cancel token, on top
//! of the policy's own timeouts.

use std::time::Duration;

use serde::Deserialize;
use url::Url;
use wasmtime::{Caller, Linker};

use super::{CALL_FUEL, RunState, charge, code, copy_fuel, memory, put, range};
use crate::net::{HttpClient, Method, NetError, Request};
use crate::sandbox::limits::LimitKind;
use crate::sandbox::module::IMPORT_MODULE;
use crate::sandbox::outcome::RunError;

/// HTTP bookkeeping of one run.
#[derive(Debug, Default)]
pub(crate) struct HttpState {
    /// `http_request` calls made.
    pub(crate) calls: u32,
    /// Why the first request denied by policy was denied.
    pub(crate) denied: Option<String>,
    /// Responses, by handle.
    responses: Vec<GuestResponse>,
}

#[derive(Debug)]
struct GuestResponse {
    status: u16,
    /// `name: value\n` lines.
    headers: String,
    body: Vec<u8>,
}

/// The request object a guest passes to `http_request` (`docs/abi.md`).
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
        "http_request",
        |caller: Caller<'_, RunState>, (req_ptr, req_len): (i32, i32)| {
            Box::new(http_request(caller, req_ptr, req_len))
        },
    )?;
    linker.func_wrap(IMPORT_MODULE, "http_response_status", http_response_status)?;
    linker.func_wrap(
        IMPORT_MODULE,
        "http_response_headers",
        http_response_headers,
    )?;
    linker.func_wrap(IMPORT_MODULE, "http_response_body", http_response_body)?;
    Ok(())
}

/// Builds the request from the guest's JSON; `Err` is the message for an
/// `INVALID` return.
fn build_request(bytes: &[u8], response_cap: u64) -> Result<Request, String> {
    let req: GuestRequest =
        serde_json::from_slice(bytes).map_err(|e| format!("malformed http request: {e}"))?;
    let method = match req.method.as_str() {
        "GET" => Method::GET,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "DELETE" => Method::DELETE,
        "PATCH" => Method::PATCH,
        "HEAD" => Method::HEAD,
        other => {
            return Err(format!(
                "http method {other:?} is not one of GET, POST, PUT, DELETE, PATCH, HEAD"
            ));
        }
    };
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
    charge(&mut caller, CALL_FUEL)?;
    let mem = memory(&mut caller)?;
    let (bytes, cap, client, deadline, cancel) = {
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
        (
            data[req].to_vec(),
            state.limits.http_response_bytes,
            state.http_client.clone(),
            state.deadline,
            state.cancel.clone(),
        )
    };
    // The request's bytes, copied out of the guest and sent.
    charge(&mut caller, copy_fuel(req_len as u32 as usize))?;
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
            return Ok(caller.data_mut().error(code::INVALID, message));
        }
        Ok(Ok(Sent::Response(response))) => Ok(Ok(response)),
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
                NetError::BodyTooLarge { limit, .. } => {
                    return Err(RunError::Limit {
                        which: LimitKind::HttpResponseBytes,
                        value: *limit,
                    }
                    .into());
                }
                NetError::InvalidRequest(_) => code::INVALID,
                _ => code::CONNECTION,
            };
            return Ok(state.error(code, error_message(&err)));
        }
    };
    let handle = i32::try_from(state.http.responses.len()).unwrap_or(i32::MAX);
    let received = response.headers.len() + response.body.len();
    state.http.responses.push(response);
    charge(&mut caller, copy_fuel(received))?;
    Ok(handle)
}

/// What became of a guest's request.
enum Sent {
    Response(GuestResponse),
    /// The request did not parse: the message for an `INVALID` return.
    Invalid(String),
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
            match build_request(&bytes, cap) {
                Ok(request) => match send(&client, request).await {
                    Ok(response) => Sent::Response(response),
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

/// Sends and renders the response for the guest.
async fn send(client: &HttpClient, request: Request) -> Result<GuestResponse, NetError> {
    let response = client.send(request).await?;
    let mut headers = String::new();
    for (name, value) in &response.headers {
        headers.push_str(name.as_str());
        headers.push_str(": ");
        headers.push_str(&String::from_utf8_lossy(value.as_bytes()));
        headers.push('\n');
    }
    Ok(GuestResponse {
        status: response.status.as_u16(),
        headers,
        body: response.body,
    })
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

fn response(state: &mut RunState, handle: i32) -> Result<&GuestResponse, i32> {
    match usize::try_from(handle)
        .ok()
        .and_then(|h| state.http.responses.get(h))
    {
        Some(_) => Ok(&state.http.responses[handle as usize]),
        None => Err(state.error(
            code::BAD_HANDLE,
            format!("no http response with handle {handle}"),
        )),
    }
}

fn http_response_status(mut caller: Caller<'_, RunState>, handle: i32) -> wasmtime::Result<i32> {
    charge(&mut caller, CALL_FUEL)?;
    Ok(match response(caller.data_mut(), handle) {
        Ok(response) => i32::from(response.status),
        Err(code) => code,
    })
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
        |r| r.headers.as_bytes(),
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
        |r| &r.body,
    )
}

fn read_response(
    caller: &mut Caller<'_, RunState>,
    import: &'static str,
    handle: i32,
    buf_ptr: i32,
    buf_cap: i32,
    part: fn(&GuestResponse) -> &[u8],
) -> wasmtime::Result<i32> {
    charge(caller, CALL_FUEL)?;
    let mem = memory(caller)?;
    let (data, state) = mem.data_and_store_mut(&mut *caller);
    let buf = range(import, "buf_ptr/buf_cap", buf_ptr, buf_cap, data.len())?;
    let response = match response(state, handle) {
        Ok(response) => response,
        Err(code) => return Ok(code),
    };
    let (len, copied) = put(&mut data[buf], part(response));
    charge(caller, copy_fuel(copied))?;
    Ok(len)
}
