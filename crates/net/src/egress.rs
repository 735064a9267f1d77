//! [`Egress`]: the operator's own way out, for requests the policy allowed.
//!
//! By default (`HttpClient::new`, the `reqwest` feature) an
//! [`HttpClient`](super::HttpClient) sends with its own reqwest client. An
//! operator who must send through something else (a forward proxy, a
//! service mesh's sidecar, an audit log, a recorder in tests) builds the
//! client with [`HttpClient::with_egress`](super::HttpClient::with_egress)
//! instead, and without the `reqwest` feature that is the only way to build
//! one: every request of the REST API block and of a Code block's
//! `http_request` then goes to [`Egress::send`], after the engine has done
//! what it always does before sending:
//!
//! - checked the URL against the [`NetPolicy`](super::NetPolicy): scheme,
//!   allowed hosts, and the address class of an IP literal;
//! - validated the headers and resolved the request's timeout and body cap
//!   against the policy's maximums (given in the [`EgressRequest`]);
//!
//! and, around the call: the total timeout (the future is dropped when it
//! elapses), and the body cap again on what comes back (a longer body is
//! [`NetError::BodyTooLarge`](super::NetError::BodyTooLarge), whatever the
//! egress did).
//!
//! What the operator takes on by replacing the default: **resolving names
//! and checking the resolved addresses**. The default client checks every
//! address DNS returns for a host name against the policy's address
//! classes (so `metadata.example.com` pointing at `169.254.169.254` is
//! refused); an egress that resolves names itself must do the same with
//! [`NetPolicy::check_address`](super::NetPolicy::check_address) on each
//! address before connecting, and honour [`NetPolicy::resolve`](super::NetPolicy::resolve)
//! pins, or send everything to a proxy that enforces an equivalent rule.
//! It must also not follow redirects (the engine decides which hops to
//! follow, and checks each), and should stop reading a body past
//! [`EgressRequest::max_response_bytes`] rather than buffer it whole.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use url::Url;

use super::{HeaderMap, Method, StatusCode};

/// A request the policy allowed, for an [`Egress`] to perform.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EgressRequest {
    /// The method.
    pub method: Method,
    /// The URL (checked against the policy; not redacted).
    pub url: Url,
    /// The headers, validated.
    pub headers: HeaderMap,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
    /// The total timeout the engine enforces around [`Egress::send`].
    pub timeout: Duration,
    /// The most response body bytes the engine accepts.
    pub max_response_bytes: u64,
}

/// What an [`Egress`] got back.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EgressResponse {
    /// The status code.
    pub status: StatusCode,
    /// The headers, as received.
    pub headers: HeaderMap,
    /// The body, not decoded.
    pub body: Vec<u8>,
}

impl EgressResponse {
    /// A response with no headers.
    pub fn new(status: StatusCode, body: impl Into<Vec<u8>>) -> EgressResponse {
        EgressResponse {
            status,
            headers: HeaderMap::new(),
            body: body.into(),
        }
    }

    /// Sets the headers.
    pub fn with_headers(mut self, headers: HeaderMap) -> EgressResponse {
        self.headers = headers;
        self
    }
}

/// The error of an [`Egress`]: anything that kept it from getting a
/// response. The engine reports it as [`NetError::Egress`](super::NetError::Egress)
/// (a Code block sees `CONNECTION`).
pub type EgressError = Box<dyn std::error::Error + Send + Sync>;

/// The future [`Egress::send`] returns.
pub type EgressFuture<'a> =
    Pin<Box<dyn Future<Output = Result<EgressResponse, EgressError>> + Send + 'a>>;

/// Performs the requests the engine's policy allowed. See the module docs
/// for what the engine still does and what an implementation takes on.
pub trait Egress: Send + Sync + 'static {
    /// Sends `request` and reads the whole response body. Runs inside the
    /// engine's tokio runtime; may be dropped at any await point (timeout,
    /// cancellation), which must abandon the request.
    fn send(&self, request: EgressRequest) -> EgressFuture<'_>;
}

impl fmt::Debug for dyn Egress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn Egress")
    }
}
