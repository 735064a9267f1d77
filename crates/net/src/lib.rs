//! The outbound network policy and HTTP client of chatflow: where the REST
//! API block and a Code block's `http_request` may send requests, and the
//! one client that enforces it. [`NetPolicy`] holds the rules (allowed
//! hosts, address classes with the cloud metadata addresses always denied,
//! timeouts and a response size cap); [`HttpClient`] checks every request
//! against them, then hands it to an [`Egress`], the way out. The crate
//! depends on `url`, `http` (for [`Method`], [`HeaderMap`]…), `serde`,
//! `tokio` (timers) and, for text, `mime` and `encoding_rs`. Its `reqwest`
//! feature, on by default, adds the default egress, `HttpClient::new`: a
//! reqwest client with rustls and the system's root certificates, whose DNS
//! resolver checks every address it returns. Without the feature there is
//! no HTTP or TLS stack in the dependency tree, and an operator builds the
//! client with their own egress ([`HttpClient::with_egress`]).
//!
//! What the client guarantees, whoever calls it:
//!
//! - the [`NetPolicy`] rules: `http`/`https` only, the allowed-hosts list,
//!   and address classes checked on IP literals before sending and (by the
//!   default egress) on every address DNS returns, so
//!   `http://2130706433/`, `http://[::ffff:127.0.0.1]/` or a name that
//!   resolves to `169.254.169.254` are all denied by default;
//! - a total timeout (from sending to the last body byte) and a response
//!   body cap around every egress; the default egress also has a connect
//!   timeout, streams the body and aborts as soon as it crosses the cap, so
//!   memory stays bounded;
//! - with the default egress: no proxies (environment variables such as
//!   `HTTP_PROXY` are ignored), no automatic redirects (a caller that wants
//!   to follow one, like the REST block for 301, reads `location` and sends
//!   again, so every hop is checked), no automatic decompression, no
//!   cookies;
//! - errors a caller can match ([`NetError`]) whose messages show URLs
//!   without query strings or credentials ([`redact_url`]).
//!
//! An egress of one's own, here one that answers every request itself (a
//! real one would forward to a proxy or a service mesh); the policy still
//! refuses what it must before the egress sees it:
//!
//! ```
//! use std::sync::Arc;
//! use chatflow_net::{
//!     Egress, EgressFuture, EgressRequest, EgressResponse, HttpClient, Method, NetError,
//!     NetPolicy, Request, StatusCode,
//! };
//!
//! struct Canned;
//!
//! impl Egress for Canned {
//!     fn send(&self, request: EgressRequest) -> EgressFuture<'_> {
//!         Box::pin(async move {
//!             let body = format!("you asked for {}", request.url.path());
//!             Ok(EgressResponse::new(StatusCode::OK, body))
//!         })
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut policy = NetPolicy::default();
//! policy.allow_host("api.example.com")?;
//! let client = HttpClient::with_egress(policy, Arc::new(Canned))?;
//!
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
//! runtime.block_on(async {
//!     let url = "https://api.example.com/v1/users/42".parse()?;
//!     let request = Request::new(Method::GET, url).header("Accept", "application/json")?;
//!     let response = client.send(request).await?;
//!     assert_eq!(response.text(), "you asked for /v1/users/42");
//!
//!     let elsewhere = Request::new(Method::GET, "https://evil.example/".parse()?);
//!     assert!(matches!(client.send(elsewhere).await, Err(NetError::Denied { .. })));
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })
//! # }
//! ```

#![deny(missing_docs)]

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use encoding_rs::{Encoding, UTF_8};
use url::Url;

mod client;
mod egress;
mod policy;
#[doc(hidden)]
pub mod serde_millis;

pub use client::{HttpClient, Request, Response};
pub use egress::{Egress, EgressError, EgressFuture, EgressRequest, EgressResponse};
pub use http::header::{HeaderMap, HeaderName, HeaderValue};
pub use http::{Method, StatusCode};
pub use policy::{AddressClass, HostPattern, METADATA_ADDRESSES, NetPolicy, PolicyError, classify};

/// Why a request failed. Every variant that concerns a URL shows it
/// without its query string or credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The [`NetPolicy`] refused the request before any byte was sent to
    /// the refused address.
    #[error("request to {url} denied by the network policy: {reason}")]
    Denied {
        /// The URL, redacted.
        url: String,
        /// Which rule refused it.
        reason: DenyReason,
    },
    /// The connect timeout or the total timeout elapsed (see
    /// [`NetPolicy::connect_timeout`] and [`NetPolicy::timeout`]).
    #[error("request to {url} timed out: no {phase} within {}", fmt_duration(*.limit))]
    Timeout {
        /// The URL, redacted.
        url: String,
        /// Which timeout elapsed.
        phase: TimeoutPhase,
        /// Its value.
        limit: Duration,
    },
    /// The connection could not be made: DNS lookup failed, connection
    /// refused or reset, TLS handshake failed.
    #[error("could not connect to {url}")]
    Connect {
        /// The URL, redacted.
        url: String,
        /// The underlying error (its own URL stripped): the HTTP stack's,
        /// kept for its message and source chain, not for its type.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The request failed after connecting: the connection dropped while
    /// reading, or the server broke the HTTP protocol.
    #[error("request to {url} failed")]
    Transport {
        /// The URL, redacted.
        url: String,
        /// The underlying error (its own URL stripped): the HTTP stack's,
        /// kept for its message and source chain, not for its type.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The operator's [`Egress`] failed to get a response.
    #[error("request to {url} failed in the egress")]
    Egress {
        /// The URL, redacted.
        url: String,
        /// What the egress returned.
        #[source]
        source: EgressError,
    },
    /// The response body is larger than the cap (by default
    /// [`NetPolicy::response_bytes`], 1 MiB). The request was aborted when
    /// the cap was crossed.
    #[error("response from {url} is larger than the limit of {limit} bytes")]
    BodyTooLarge {
        /// The URL, redacted.
        url: String,
        /// The cap that was crossed, in bytes.
        limit: u64,
    },
    /// The request itself is malformed (bad header, zero limit, URL without
    /// a host); nothing was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(#[from] InvalidRequest),
}

impl NetError {
    /// A short, stable name for the variant (`denied`, `timeout`,
    /// `connect`, `transport`, `egress`, `body_too_large`,
    /// `invalid_request`), for
    /// logs and machine-readable output.
    pub fn kind(&self) -> &'static str {
        match self {
            NetError::Denied { .. } => "denied",
            NetError::Timeout { .. } => "timeout",
            NetError::Connect { .. } => "connect",
            NetError::Transport { .. } => "transport",
            NetError::Egress { .. } => "egress",
            NetError::BodyTooLarge { .. } => "body_too_large",
            NetError::InvalidRequest(_) => "invalid_request",
        }
    }
}

/// Which timeout elapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// [`NetPolicy::connect_timeout`]: no connection was established.
    Connect,
    /// The total timeout: the response (status, headers and the whole body)
    /// did not arrive in time.
    Total,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connection",
            TimeoutPhase::Total => "complete response",
        })
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Which [`NetPolicy`] rule denied a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenyReason {
    /// The scheme is not `http` or `https`.
    Scheme {
        /// The refused scheme.
        scheme: String,
    },
    /// The allowed-hosts list is not empty and no entry matches the URL's
    /// host and port.
    HostNotAllowed {
        /// The host (with the URL's explicit port, if any).
        host: String,
    },
    /// The address the request would connect to is in a denied class: the
    /// IP literal in the URL, or (for a host name) the first resolved
    /// address refused when no resolved address was allowed.
    Address {
        /// The refused address.
        ip: IpAddr,
        /// Its class.
        class: AddressClass,
    },
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::Scheme { scheme } => {
                write!(f, "scheme {scheme:?} is not allowed (only http and https)")
            }
            DenyReason::HostNotAllowed { host } => {
                write!(f, "host {host:?} is not in the allowed hosts")
            }
            DenyReason::Address { ip, class } => write!(f, "address {ip} is {class}"),
        }
    }
}

/// Why a request was malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// The URL has no host (`http:/path`, `data:`…).
    #[error("the url has no host")]
    NoHost,
    /// The header name is not a valid HTTP token.
    #[error("invalid header name {name:?}")]
    HeaderName {
        /// The refused name.
        name: String,
    },
    /// The header is set by the client itself and may not be set by a
    /// block: `host`, `content-length`, `transfer-encoding`, `connection`,
    /// `keep-alive`, `upgrade`, `te`, `trailer`, `proxy-connection`,
    /// `proxy-authorization`.
    #[error("header {name:?} is set by the client and cannot be set by a block")]
    ForbiddenHeader {
        /// The refused name.
        name: String,
    },
    /// The header value contains CR, LF, NUL or another control character.
    #[error("header {name:?}: the value contains a control character")]
    HeaderValue {
        /// The header's name.
        name: String,
    },
    /// A request asked for a zero timeout.
    #[error("the timeout must be more than 0")]
    ZeroTimeout,
    /// A request asked for a zero response size cap.
    #[error("the response size limit must be more than 0")]
    ZeroResponseBytes,
}

/// The HTTP method for one of the ABI's methods (the six a REST API block
/// or a Code block may send).
pub fn abi_method(method: chatflow_abi::http::Method) -> Method {
    Method::from_bytes(method.as_str().as_bytes()).expect("the ABI's method names are HTTP tokens")
}

/// Checks a header name a block wants to send: a valid HTTP token and not
/// one of the headers the client manages itself
/// ([`chatflow_abi::http::FORBIDDEN_HEADERS`]: framing and connection
/// management belong to the client, and `host` must stay the URL's host,
/// the one the policy checked; the same list for REST API blocks and Code
/// blocks, and the SDK's test host reads it too).
pub fn validate_header_name(name: &str) -> Result<HeaderName, InvalidRequest> {
    let header =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| InvalidRequest::HeaderName {
            name: name.to_string(),
        })?;
    if chatflow_abi::http::is_forbidden_header(header.as_str()) {
        return Err(InvalidRequest::ForbiddenHeader {
            name: name.to_string(),
        });
    }
    Ok(header)
}

/// A URL as it may appear in errors and logs: no username, password, query
/// string or fragment (`https://api.example.com/v1/users/42`).
pub fn redact_url(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        // The common case, without a copy of the whole URL to edit.
        return url[..url::Position::AfterPath].to_string();
    }
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.into()
}

/// Decodes a response body to text by the `charset` parameter of its
/// `Content-Type` header (any label the WHATWG Encoding Standard knows,
/// e.g. `iso-8859-1`, `shift_jis`). Without a charset, or with an unknown
/// one, the body is read as UTF-8. A byte-order mark overrides the header.
/// Malformed sequences become U+FFFD; decoding never fails.
pub fn decode_text(headers: &HeaderMap, body: &[u8]) -> String {
    charset(headers).decode(body).0.into_owned()
}

/// [`decode_text`] for an owned body: valid UTF-8 without a byte-order mark
/// (the common case) becomes the text without a copy.
pub(crate) fn decode_text_owned(headers: &HeaderMap, body: Vec<u8>) -> String {
    let bom = [b"\xEF\xBB\xBF".as_slice(), b"\xFE\xFF", b"\xFF\xFE"]
        .iter()
        .any(|bom| body.starts_with(bom));
    if bom || charset(headers) != UTF_8 {
        return decode_text(headers, &body);
    }
    String::from_utf8(body).unwrap_or_else(|e| decode_text(headers, e.as_bytes()))
}

/// The encoding named by the `Content-Type` charset, UTF-8 by default.
fn charset(headers: &HeaderMap) -> &'static Encoding {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.parse::<mime::Mime>().ok())
        .and_then(|m| {
            m.get_param(mime::CHARSET)
                .and_then(|cs| Encoding::for_label(cs.as_str().as_bytes()))
        })
        .unwrap_or(UTF_8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts() {
        let cases = [
            (
                "https://api.example.com/v1/users/42",
                "https://api.example.com/v1/users/42",
            ),
            (
                "https://u:secret@api.example.com/x?key=abc#frag",
                "https://api.example.com/x",
            ),
            ("http://127.0.0.1:8080/?token=1", "http://127.0.0.1:8080/"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_url(&Url::parse(input).unwrap()), want);
        }
    }

    #[test]
    fn header_names() {
        for good in ["X-Key", "accept", "Authorization", "x_custom.1"] {
            assert!(validate_header_name(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn header_names_bad() {
        for bad in ["", "X Key", "X-Key:", "a\nb", "Zoë"] {
            assert_eq!(
                validate_header_name(bad),
                Err(InvalidRequest::HeaderName { name: bad.into() }),
                "{bad:?}"
            );
        }
        for forbidden in ["Host", "content-length", "Transfer-Encoding", "Connection"] {
            assert_eq!(
                validate_header_name(forbidden),
                Err(InvalidRequest::ForbiddenHeader {
                    name: forbidden.into()
                }),
                "{forbidden:?}"
            );
        }
    }

    #[test]
    fn decodes_by_charset() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_str(ct).unwrap(),
            );
            h
        };
        let cases: &[(HeaderMap, &[u8], &str)] = &[
            (HeaderMap::new(), "café".as_bytes(), "café"),
            (with("text/plain; charset=iso-8859-1"), b"caf\xe9", "café"),
            (
                with("text/plain; charset=\"ISO-8859-1\""),
                b"caf\xe9",
                "café",
            ),
            (
                with("text/html; charset=shift_jis"),
                b"\x83n\x83\x8d\x81[",
                "ハロー",
            ),
            (
                with("application/json"),
                b"{\"a\":\"\xc3\xa9\"}",
                "{\"a\":\"é\"}",
            ),
            (with("text/plain; charset=utf-16le"), b"h\0i\0", "hi"),
            (
                with("text/plain; charset=iso-8859-1"),
                b"\xef\xbb\xbfcaf\xc3\xa9",
                "café",
            ),
        ];
        for (headers, body, want) in cases {
            assert_eq!(decode_text(headers, body), *want, "{headers:?}");
            assert_eq!(
                decode_text_owned(headers, body.to_vec()),
                *want,
                "owned: {headers:?}"
            );
        }
        // The owned path's own shortcuts: a UTF-8 BOM is dropped, UTF-16
        // BOMs decide the encoding, invalid UTF-8 is replaced as by
        // `decode_text`.
        let bodies: &[&[u8]] = &[
            b"\xef\xbb\xbfcaf\xc3\xa9",
            b"\xff\xfeh\0i\0",
            b"\xfe\xff\0h\0i",
            b"caf\xe9 \xf0\x9f\x98 end",
            b"",
        ];
        for body in bodies {
            let h = HeaderMap::new();
            assert_eq!(
                decode_text_owned(&h, body.to_vec()),
                decode_text(&h, body),
                "{body:?}"
            );
        }
        assert_eq!(
            decode_text_owned(&HeaderMap::new(), b"\xef\xbb\xbfhi".to_vec()),
            "hi"
        );
    }

    #[test]
    fn decodes_by_charset_bad() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=no-such-charset"),
        );
        assert_eq!(
            decode_text(&h, b"caf\xc3\xa9"),
            "café",
            "unknown charset reads as UTF-8"
        );
        assert_eq!(
            decode_text(&HeaderMap::new(), b"caf\xe9"),
            "caf\u{fffd}",
            "invalid UTF-8 is replaced"
        );
    }

    #[test]
    fn error_messages_hide_queries() {
        let err = NetError::Denied {
            url: redact_url(&Url::parse("http://127.0.0.1/?key=secret").unwrap()),
            reason: DenyReason::Address {
                ip: "127.0.0.1".parse().unwrap(),
                class: AddressClass::Loopback,
            },
        };
        assert_eq!(
            err.to_string(),
            "request to http://127.0.0.1/ denied by the network policy: address 127.0.0.1 is loopback"
        );
        let err = NetError::Timeout {
            url: "http://h/".into(),
            phase: TimeoutPhase::Total,
            limit: Duration::from_millis(250),
        };
        assert_eq!(
            err.to_string(),
            "request to http://h/ timed out: no complete response within 250ms"
        );
    }
}
