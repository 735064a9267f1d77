//! HTTP requests through the host (the `http_*` imports).
//!
//! A Code block cannot open sockets. It describes a request, and the engine
//! sends it through its shared HTTP client under **the same network policy
//! as the REST API block**: allowed hosts, private addresses refused, the
//! operator's timeouts and response size cap. Redirects are not followed
//! (read the `location` header and ask again if you want to). Every request
//! counts towards the run's HTTP call limit, and the time spent waiting
//! counts towards its wall-clock limit.
//!
//! ```no_run
//! use chatflow_sdk::http::{self, Request};
//! use chatflow_sdk::{Context, Result};
//!
//! #[derive(serde::Deserialize)]
//! struct Verdict {
//!     valid: bool,
//! }
//!
//! fn run(ctx: &mut Context) -> Result<()> {
//!     let base = ctx.require("api_base_url")?;
//!     let request = Request::post(format!("{base}/validate"))
//!         .header("X-Request-Source", "chatflow")
//!         .json(&serde_json::json!({ "email": ctx.require("email")? }))?;
//!     match request.send() {
//!         Ok(response) => {
//!             let verdict: Verdict = response.error_for_status()?.json()?;
//!             ctx.set("valid", verdict.valid.to_string())?;
//!         }
//!         // Typed errors: the operator has not allowed this host.
//!         Err(err @ http::Error::Denied { .. }) => {
//!             return Err(chatflow_sdk::Error::msg(format!(
//!                 "{err} (ask the operator to allow the validation API's host)"
//!             )));
//!         }
//!         Err(http::Error::Timeout { .. }) => ctx.set("valid", "unknown")?,
//!         Err(other) => return Err(other.into()),
//!     }
//!     Ok(())
//! }
//! # chatflow_sdk::code_block!(run);
//! # fn main() {}
//! ```
//!
//! URLs in error messages are shown without their query string or
//! credentials, so a token passed in a query parameter does not end up in a
//! flow's error output.

use std::cell::OnceCell;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::sys;

/// An HTTP method the host supports: the ABI's own type, written in upper
/// case on the wire.
pub use chatflow_abi::http::Method;

/// Why an HTTP request failed. Each variant says which request (method and
/// URL without query string or credentials) and carries the host's message.
///
/// ```no_run
/// # use chatflow_sdk::{http, Context, Result};
/// fn run(ctx: &mut Context) -> Result<()> {
///     match http::Request::get("https://crm.example.com/v1/ping").send() {
///         Ok(response) => ctx.set("crm_up", (response.status() == 200).to_string())?,
///         Err(http::Error::Timeout { .. } | http::Error::Connection { .. }) => {
///             ctx.set("crm_up", "false")?
///         }
///         Err(other) => return Err(other.into()),
///     }
///     Ok(())
/// }
/// # chatflow_sdk::code_block!(run);
/// # fn main() {}
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The network policy refused the request (ABI code `DENIED`): a host
    /// that is not on the operator's allow-list, a private or loopback
    /// address, a scheme other than `http`/`https`. The operator must act on
    /// this; retrying does not help.
    #[error("{method} {url} was denied by the network policy: {message}")]
    Denied {
        /// The request's method.
        method: Method,
        /// The request's URL, without query string or credentials.
        url: String,
        /// The host's reason.
        message: String,
    },
    /// The request timed out (ABI code `TIMEOUT`): the connect timeout or
    /// the total timeout (yours from [`Request::timeout`], capped by the
    /// operator's).
    #[error("{method} {url} timed out: {message}")]
    Timeout {
        /// The request's method.
        method: Method,
        /// The request's URL, without query string or credentials.
        url: String,
        /// The host's message.
        message: String,
    },
    /// The request could not be completed (ABI code `CONNECTION`):
    /// connection refused or reset, DNS failure, TLS or protocol error.
    #[error("{method} {url} failed: {message}")]
    Connection {
        /// The request's method.
        method: Method,
        /// The request's URL, without query string or credentials.
        url: String,
        /// The host's message.
        message: String,
    },
    /// The host refused the request as malformed (ABI code `INVALID`): most
    /// often a URL that does not parse, or a header name or value that is
    /// not allowed.
    #[error("{method} {url} is not a valid request: {message}")]
    Invalid {
        /// The request's method.
        method: Method,
        /// The request's URL, without query string or credentials.
        url: String,
        /// The host's message.
        message: String,
    },
    /// The server answered with a status outside `200..=299`; only returned
    /// by [`Response::error_for_status`].
    #[error("{method} {url} answered HTTP {status}")]
    Status {
        /// The request's method.
        method: Method,
        /// The request's URL, without query string or credentials.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The host answered with a code the HTTP imports do not document. Seeing
    /// this means the host and the SDK disagree about ABI v1.
    #[error("{method} {url}: unexpected host error {code}: {message}")]
    Host {
        /// The request's method.
        method: Method,
        /// The request's URL, without query string or credentials.
        url: String,
        /// The negative code.
        code: i32,
        /// The host's message.
        message: String,
    },
}

/// An HTTP request, built step by step and sent with [`send`](Self::send).
///
/// ```no_run
/// # use chatflow_sdk::{http::Request, Context, Result};
/// # use std::time::Duration;
/// fn run(ctx: &mut Context) -> Result<()> {
///     let token = ctx.require("access_token")?;
///     let response = Request::get("https://api.example.com/v1/orders")
///         .query("customer", "cus 42") // percent-encoded: customer=cus%2042
///         .query("page", "2")
///         .bearer_auth(&token)
///         .timeout(Duration::from_secs(3))
///         .send()?
///         .error_for_status()?;
///     let orders: serde_json::Value = response.json()?;
///     ctx.set("orders", orders.to_string())?;
///     Ok(())
/// }
/// # chatflow_sdk::code_block!(run);
/// # fn main() {}
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    timeout_ms: Option<u64>,
}

impl Request {
    /// A request with any method. The URL must be absolute (`https://…`).
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    /// A `PUT` request.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new(Method::Put, url)
    }

    /// A `DELETE` request.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::Delete, url)
    }

    /// A `PATCH` request.
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new(Method::Patch, url)
    }

    /// A `HEAD` request.
    pub fn head(url: impl Into<String>) -> Self {
        Self::new(Method::Head, url)
    }

    /// Adds a header. Names may repeat; each call adds one more line.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds `Authorization: Bearer <token>`.
    pub fn bearer_auth(self, token: impl fmt::Display) -> Self {
        self.header("Authorization", format!("Bearer {token}"))
    }

    /// Appends a query parameter, percent-encoding the key and the value
    /// (`&`, `=`, spaces and non-ASCII text are safe to pass). Parameters
    /// already in the URL are kept, and a `#fragment` stays at the end.
    pub fn query(mut self, key: &str, value: &str) -> Self {
        let (base, fragment) = match self.url.find('#') {
            Some(at) => self.url.split_at(at),
            None => (self.url.as_str(), ""),
        };
        let mut url = String::with_capacity(self.url.len() + key.len() + value.len() + 2);
        url.push_str(base);
        url.push(if base.contains('?') { '&' } else { '?' });
        encode_component(key, &mut url);
        url.push('=');
        encode_component(value, &mut url);
        url.push_str(fragment);
        self.url = url;
        self
    }

    /// Sets a text body. Set a `Content-Type` header to say what it is.
    pub fn body(mut self, text: impl Into<String>) -> Self {
        self.body = Some(text.into());
        self
    }

    /// Serializes `body` as the JSON body and sets
    /// `Content-Type: application/json` (unless a content type is already
    /// set). Fails with [`crate::Error::Json`] if `body` cannot be
    /// serialized (for example a map with non-string keys).
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> crate::Result<Self> {
        self.body = Some(serde_json::to_string(body)?);
        if self.header_value("content-type").is_none() {
            self.headers
                .push(("Content-Type".into(), "application/json".into()));
        }
        Ok(self)
    }

    /// Sets a form body (`application/x-www-form-urlencoded`, as OAuth token
    /// endpoints expect), percent-encoding keys and values.
    pub fn form(mut self, fields: &[(&str, &str)]) -> Self {
        let mut body = String::new();
        for (i, (key, value)) in fields.iter().enumerate() {
            if i > 0 {
                body.push('&');
            }
            encode_component(key, &mut body);
            body.push('=');
            encode_component(value, &mut body);
        }
        self.body = Some(body);
        if self.header_value("content-type").is_none() {
            self.headers.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        self
    }

    /// Sets this request's total timeout. The operator's timeout is the
    /// upper bound: a longer one is capped to it. By default the operator's
    /// timeout applies.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The URL, with the query parameters added so far.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The headers, in the order they were added.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body, if one was set.
    pub fn body_text(&self) -> Option<&str> {
        self.body.as_deref()
    }

    fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request as the ABI's JSON object (`docs/abi.md`, `http_request`;
    /// the field names are [`chatflow_abi::http::field`], checked by the
    /// test `the_wire_fields_are_the_abis`).
    pub(crate) fn to_wire(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Wire<'a> {
            method: &'a str,
            url: &'a str,
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            headers: &'a [(String, String)],
            #[serde(skip_serializing_if = "Option::is_none")]
            body: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            timeout_ms: Option<u64>,
        }
        // Strings, a list of string pairs, a number: serialization cannot fail.
        serde_json::to_vec(&Wire {
            method: self.method.as_str(),
            url: &self.url,
            headers: &self.headers,
            body: self.body.as_deref(),
            timeout_ms: self.timeout_ms,
        })
        .expect("serializing a request to JSON")
    }

    /// Sends the request and waits for the whole response.
    ///
    /// A response with any status is `Ok` (use
    /// [`Response::error_for_status`] to turn 4xx/5xx into an error); `Err`
    /// means no response: [`Error::Denied`], [`Error::Timeout`],
    /// [`Error::Connection`] or [`Error::Invalid`]. Going over the run's HTTP
    /// call limit, or a response body over the operator's size cap, ends the
    /// run.
    pub fn send(&self) -> Result<Response, Error> {
        let handle = sys::http_request(&self.to_wire());
        if handle < 0 {
            let url = redact(&self.url);
            let message = sys::last_error_message(handle);
            let method = self.method;
            return Err(match handle {
                sys::DENIED => Error::Denied {
                    method,
                    url,
                    message,
                },
                sys::TIMEOUT => Error::Timeout {
                    method,
                    url,
                    message,
                },
                sys::CONNECTION => Error::Connection {
                    method,
                    url,
                    message,
                },
                sys::INVALID => Error::Invalid {
                    method,
                    url,
                    message,
                },
                code => Error::Host {
                    method,
                    url,
                    code,
                    message,
                },
            });
        }
        let status = sys::http_response_status(handle);
        if status < 0 {
            return Err(Error::Host {
                method: self.method,
                url: redact(&self.url),
                code: status,
                message: sys::last_error_message(status),
            });
        }
        Ok(Response {
            handle,
            status: status as u16,
            method: self.method,
            url: redact(&self.url),
            headers: OnceCell::new(),
            body: OnceCell::new(),
        })
    }
}

/// A response: status, headers and body. The headers and the body are copied
/// out of the host the first time they are asked for, so a block that only
/// looks at the status copies nothing else.
#[derive(Debug)]
pub struct Response {
    handle: i32,
    status: u16,
    method: Method,
    url: String,
    headers: OnceCell<Vec<(String, String)>>,
    body: OnceCell<Vec<u8>>,
}

impl Response {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the status is in `200..=299`.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `Ok(self)` for a `2xx` status, otherwise [`Error::Status`] naming the
    /// request and the status.
    pub fn error_for_status(self) -> Result<Self, Error> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(Error::Status {
                method: self.method,
                url: self.url,
                status: self.status,
            })
        }
    }

    /// The response headers in the order received, names in lower case.
    pub fn headers(&self) -> &[(String, String)] {
        self.headers.get_or_init(|| {
            let bytes = sys::read_vec(|buf| sys::http_response_headers(self.handle, buf))
                .unwrap_or_else(|code| self.host_bug("http_response_headers", code));
            parse_headers(&String::from_utf8_lossy(&bytes))
        })
    }

    /// The first header called `name` (case-insensitive), e.g.
    /// `response.header("content-type")`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body bytes as received (not decoded).
    pub fn bytes(&self) -> &[u8] {
        self.body.get_or_init(|| {
            sys::read_vec_sized(|buf| sys::http_response_body(self.handle, buf))
                .unwrap_or_else(|code| self.host_bug("http_response_body", code))
        })
    }

    /// The body as text; fails with [`crate::Error::NotUtf8`] if it is not
    /// UTF-8.
    pub fn text(&self) -> crate::Result<&str> {
        std::str::from_utf8(self.bytes()).map_err(|_| crate::Error::NotUtf8 {
            what: format!("response body of {} {}", self.method, self.url),
        })
    }

    /// Parses the body as JSON into `T`; fails with [`crate::Error::Json`].
    pub fn json<T: DeserializeOwned>(&self) -> crate::Result<T> {
        serde_json::from_slice(self.bytes()).map_err(crate::Error::Json)
    }

    /// The request's URL, without query string or credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn host_bug(&self, call: &str, code: i32) -> ! {
        // The handle came from the host in this run, so BAD_HANDLE (or any
        // other code) here means the host broke ABI v1.
        panic!(
            "{call}({}) for {} {}: unexpected host error {code}: {}",
            self.handle,
            self.method,
            self.url,
            sys::last_error_message(code)
        )
    }
}

/// Parses the host's `name: value\n` header lines.
fn parse_headers(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

/// Percent-encodes `text` as a URL query component or form field: unreserved
/// characters (RFC 3986) stay, everything else becomes `%XX` per UTF-8 byte.
fn encode_component(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// The URL without query string, fragment or `user:password@`, for messages.
pub(crate) fn redact(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]);
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatflow_abi::http::field;

    #[test]
    fn the_wire_fields_are_the_abis() {
        let full = Request::post("https://a.example/x")
            .header("X-Key", "k")
            .body("b")
            .timeout(Duration::from_millis(5));
        let wire: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&full.to_wire()).unwrap();
        let mut keys: Vec<&str> = wire.keys().map(String::as_str).collect();
        let mut all = field::ALL.to_vec();
        keys.sort_unstable();
        all.sort_unstable();
        assert_eq!(keys, all);
        assert_eq!(wire[field::METHOD], "POST");
        // A bare request sends the required fields only.
        let bare: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&Request::get("https://a.example/").to_wire()).unwrap();
        let mut keys: Vec<&str> = bare.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut required = field::REQUIRED.to_vec();
        required.sort_unstable();
        assert_eq!(keys, required);
    }

    #[test]
    fn query_parameters_are_encoded_and_appended() {
        let cases = [
            (
                "https://a.example/x",
                "q",
                "a b&c=d",
                "https://a.example/x?q=a%20b%26c%3Dd",
            ),
            (
                "https://a.example/x?p=1",
                "page",
                "2",
                "https://a.example/x?p=1&page=2",
            ),
            (
                "https://a.example/x#top",
                "k",
                "é",
                "https://a.example/x?k=%C3%A9#top",
            ),
            (
                "https://a.example/x",
                "a/b",
                "~ok-_.",
                "https://a.example/x?a%2Fb=~ok-_.",
            ),
        ];
        for (url, key, value, want) in cases {
            assert_eq!(Request::get(url).query(key, value).url(), want);
        }
    }

    #[test]
    fn wire_format_matches_the_abi() {
        let request = Request::post("https://api.example.com/v1/check?x=1")
            .header("X-Key", "abc")
            .json(&serde_json::json!({"phone": "+44 20 7946 0000"}))
            .unwrap()
            .timeout(Duration::from_secs(2));
        let wire: serde_json::Value = serde_json::from_slice(&request.to_wire()).unwrap();
        assert_eq!(
            wire,
            serde_json::json!({
                "method": "POST",
                "url": "https://api.example.com/v1/check?x=1",
                "headers": [["X-Key", "abc"], ["Content-Type", "application/json"]],
                "body": "{\"phone\":\"+44 20 7946 0000\"}",
                "timeout_ms": 2000
            })
        );
        let bare: serde_json::Value =
            serde_json::from_slice(&Request::get("https://a.example/").to_wire()).unwrap();
        assert_eq!(
            bare,
            serde_json::json!({"method": "GET", "url": "https://a.example/"})
        );
    }

    #[test]
    fn json_and_form_keep_an_explicit_content_type() {
        let r = Request::post("https://a.example/")
            .header("content-type", "application/vnd.api+json")
            .json(&1)
            .unwrap();
        assert_eq!(r.headers().len(), 1);
        let r = Request::post("https://a.example/")
            .form(&[("grant_type", "client_credentials"), ("scope", "a b")]);
        assert_eq!(
            r.body_text(),
            Some("grant_type=client_credentials&scope=a%20b")
        );
        assert_eq!(
            r.header_value("Content-Type"),
            Some("application/x-www-form-urlencoded")
        );
    }

    #[test]
    fn json_body_that_cannot_be_serialized_bad() {
        let mut map = std::collections::HashMap::new();
        map.insert(vec![1u8], 1);
        let err = Request::post("https://a.example/").json(&map).unwrap_err();
        assert!(matches!(err, crate::Error::Json(_)), "{err:?}");
    }

    #[test]
    fn redaction_drops_query_fragment_and_credentials() {
        let cases = [
            (
                "https://api.example.com/v1?token=s3cret",
                "https://api.example.com/v1",
            ),
            (
                "https://user:pw@api.example.com/a/b#frag",
                "https://api.example.com/a/b",
            ),
            ("http://a.example", "http://a.example"),
            ("not a url?x", "not a url"),
        ];
        for (url, want) in cases {
            assert_eq!(redact(url), want);
        }
    }

    #[test]
    fn header_lines_parse() {
        let headers = parse_headers("content-type: application/json\nx-a: 1\nx-a: 2\n");
        assert_eq!(
            headers,
            [
                ("content-type".to_string(), "application/json".to_string()),
                ("x-a".into(), "1".into()),
                ("x-a".into(), "2".into())
            ]
        );
    }
}
