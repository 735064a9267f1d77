//! [`HttpClient`]: the [`NetPolicy`] checks, timeout and body cap around
//! an egress; with the `reqwest` feature, the default egress (one shared
//! `reqwest::Client` whose resolver checks every address).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use url::Url;

#[cfg(feature = "reqwest")]
mod default_egress;

use super::{
    Egress, EgressRequest, HeaderMap, HeaderValue, InvalidRequest, Method, NetError, NetPolicy,
    PolicyError, StatusCode, TimeoutPhase, decode_text, decode_text_owned, redact_url,
    validate_header_name,
};

/// The engine's HTTP client: the [`NetPolicy`] it enforces and the way
/// out, either the default egress (one `reqwest::Client`, one connection
/// pool; the `reqwest` feature) or the operator's [`Egress`].
///
/// Build one per engine with `HttpClient::new` (the `reqwest` feature) or
/// [`HttpClient::with_egress`] and clone it wherever it is needed: clones
/// share the pool and the policy. Never build one per request.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    way: Way,
    policy: NetPolicy,
}

/// Where [`HttpClient::send`] sends what the policy allowed.
enum Way {
    /// The operator's egress ([`HttpClient::with_egress`]).
    Egress(Arc<dyn Egress>),
    /// The default egress, its client built on the first request
    /// (`default_egress::exchange`): loading and parsing the system's root
    /// certificates is most of what building a client costs, and a process
    /// whose flows and guests make no request (`chatflow check`, most
    /// `chatflow code` runs) never needs them.
    #[cfg(feature = "reqwest")]
    Reqwest(tokio::sync::OnceCell<reqwest::Client>),
}

impl HttpClient {
    /// Builds the client for `policy`, after [`NetPolicy::validate`].
    ///
    /// Fails with [`PolicyError::Limits`] for inconsistent limits,
    /// [`PolicyError::RootCertificate`] for an extra root entry without a
    /// certificate, and [`PolicyError::Client`] if the TLS backend cannot be
    /// initialised with the extra roots (one that does not parse as a
    /// certificate).
    ///
    /// The underlying connection pool, with the system's root certificates,
    /// is built on the first request (it takes milliseconds, most of them
    /// reading the system's certificate store), so building an
    /// `HttpClient` that never sends anything costs next to nothing. The
    /// operator's extra roots are still checked here. Should the system's
    /// store yield no certificate at all, every request fails with
    /// [`NetError::Connect`], whose source says so.
    ///
    /// Only with the `reqwest` feature (on by default).
    ///
    /// ```no_run
    /// use chatflow_net::{HttpClient, Method, NetPolicy, Request};
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut policy = NetPolicy::default();
    /// policy.allow_host("api.example.com")?;
    /// let client = HttpClient::new(policy)?;
    ///
    /// let url = "https://api.example.com/v1/users/42".parse()?;
    /// let request = Request::new(Method::GET, url).header("Accept", "application/json")?;
    /// let response = client.send(request).await?;
    /// println!("{} in {:?}: {}", response.status, response.duration, response.text());
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "reqwest")]
    pub fn new(policy: NetPolicy) -> Result<HttpClient, PolicyError> {
        policy.validate()?;
        let roots = policy.root_certificates()?;
        if !roots.is_empty() {
            // The operator's roots are parsed now, as the first request
            // would, but without the system's store: a certificate that
            // does not parse fails here, not at the first request.
            reqwest::Client::builder()
                .tls_certs_only(roots)
                .build()
                .map_err(|e| PolicyError::Client(Box::new(e)))?;
        }
        Ok(HttpClient {
            inner: Arc::new(Inner {
                way: Way::Reqwest(tokio::sync::OnceCell::new()),
                policy,
            }),
        })
    }

    /// A client for `policy` that sends through the operator's `egress`
    /// instead of its own connection pool, after [`NetPolicy::validate`].
    /// The policy's URL rules, header checks, timeouts and body cap still
    /// apply; resolving names and checking the resolved addresses become
    /// the egress's job (see [`Egress`]). The policy's extra root
    /// certificates are not used (the egress makes the connections).
    ///
    /// Available with and without the `reqwest` feature: without it, this
    /// is how an `HttpClient` is built.
    pub fn with_egress(
        policy: NetPolicy,
        egress: Arc<dyn Egress>,
    ) -> Result<HttpClient, PolicyError> {
        policy.validate()?;
        Ok(HttpClient {
            inner: Arc::new(Inner {
                way: Way::Egress(egress),
                policy,
            }),
        })
    }

    /// The policy this client enforces.
    pub fn policy(&self) -> &NetPolicy {
        &self.inner.policy
    }

    /// Sends one request and reads the whole response body (up to the cap).
    ///
    /// Checks the policy first ([`NetPolicy::check_url`]); a host name's
    /// addresses are checked as it is resolved (by the default egress; an
    /// [`Egress`] of the operator's takes that on). Redirects are not
    /// followed: a 3xx comes back as a [`Response`] like any other status.
    /// Non-2xx statuses are not errors here.
    ///
    /// Must run inside a tokio runtime with timers enabled (the total
    /// timeout; the default egress's DNS resolution too).
    ///
    /// Fails with [`NetError::Denied`], [`NetError::Timeout`],
    /// [`NetError::Connect`], [`NetError::Transport`] (the default egress),
    /// [`NetError::Egress`] (the operator's), [`NetError::BodyTooLarge`] or
    /// [`NetError::InvalidRequest`].
    pub async fn send(&self, request: Request) -> Result<Response, NetError> {
        let started = Instant::now();
        let policy = &self.inner.policy;
        policy.check_url(&request.url)?;
        let timeout = policy.effective_timeout(request.timeout)?;
        let limit = policy.effective_response_bytes(request.max_response_bytes)?;
        for name in request.headers.keys() {
            validate_header_name(name.as_str())?;
        }
        let shown = redact_url(&request.url);
        tracing::debug!(method = %request.method, url = %shown, "http request");
        let exchange = async {
            match &self.inner.way {
                Way::Egress(egress) => {
                    exchange_with(egress.as_ref(), request, limit, timeout, &shown).await
                }
                #[cfg(feature = "reqwest")]
                Way::Reqwest(client) => {
                    default_egress::exchange(
                        client,
                        &self.inner.policy,
                        request,
                        limit,
                        timeout,
                        &shown,
                    )
                    .await
                }
            }
        };
        let result = match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_elapsed) => Err(NetError::Timeout {
                url: shown.clone(),
                phase: TimeoutPhase::Total,
                limit: timeout,
            }),
        };
        let duration = started.elapsed();
        match &result {
            Ok(r) => {
                tracing::debug!(url = %shown, status = r.status.as_u16(), ?duration, bytes = r.body.len(), "http response")
            }
            Err(e) => tracing::debug!(url = %shown, ?duration, error = %e, "http request failed"),
        }
        result.map(|mut r| {
            r.duration = duration;
            r
        })
    }
}

/// Sends `request` through the operator's `egress`, and holds what comes
/// back to the body cap.
async fn exchange_with(
    egress: &dyn Egress,
    request: Request,
    limit: u64,
    timeout: Duration,
    shown: &str,
) -> Result<Response, NetError> {
    let Request {
        method,
        url,
        headers,
        body,
        ..
    } = request;
    let response = egress
        .send(EgressRequest {
            method,
            url: url.clone(),
            headers,
            body,
            timeout,
            max_response_bytes: limit,
        })
        .await
        .map_err(|source| NetError::Egress {
            url: shown.to_string(),
            source,
        })?;
    if response.body.len() as u64 > limit {
        return Err(NetError::BodyTooLarge {
            url: shown.to_string(),
            limit,
        });
    }
    Ok(Response {
        status: response.status,
        headers: response.headers,
        body: response.body,
        url,
        duration: Duration::ZERO,
    })
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

/// One HTTP request for [`HttpClient::send`].
///
/// ```
/// use std::time::Duration;
/// use chatflow_net::{Method, Request};
///
/// let request = Request::new(Method::POST, "https://api.example.com/v1/check".parse()?)
///     .header("Content-Type", "application/json")?
///     .header("X-Tag", "a")?
///     .header("X-Tag", "b")? // repeated names are kept, in order
///     .body(r#"{"phone":"+44 20 7946 0000"}"#)
///     .timeout(Duration::from_secs(2))
///     .max_response_bytes(64 * 1024);
/// assert_eq!(request.headers().get_all("x-tag").iter().count(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    timeout: Option<Duration>,
    max_response_bytes: Option<u64>,
}

impl Request {
    /// A request with no headers, no body and the policy's default limits.
    pub fn new(method: Method, url: Url) -> Request {
        Request {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            timeout: None,
            max_response_bytes: None,
        }
    }

    /// Appends a header (a name may repeat). Refuses an invalid or
    /// client-managed name ([`validate_header_name`])
    /// and a value with control characters other than tab.
    pub fn header(mut self, name: &str, value: &str) -> Result<Request, InvalidRequest> {
        let header = validate_header_name(name)?;
        let value =
            HeaderValue::from_bytes(value.as_bytes()).map_err(|_| InvalidRequest::HeaderValue {
                name: name.to_string(),
            })?;
        self.headers.append(header, value);
        Ok(self)
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = Some(body.into());
        self
    }

    /// Sets the total timeout for this request; clamped to
    /// [`NetPolicy::max_timeout`]. Zero is refused when sending.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the response body cap for this request; clamped to
    /// [`NetPolicy::max_response_bytes`]. Zero is refused when sending.
    pub fn max_response_bytes(mut self, limit: u64) -> Request {
        self.max_response_bytes = Some(limit);
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Replaces the URL (e.g. to follow a redirect), keeping the rest.
    pub fn set_url(&mut self, url: Url) {
        self.url = url;
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The headers, to change. Names are checked again when sending.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// The body, if any.
    pub fn body_bytes(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }
}

/// A response, body read in full (within the cap).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The headers, as received.
    pub headers: HeaderMap,
    /// The body bytes, not decoded. At most the request's cap.
    pub body: Vec<u8>,
    /// The URL that was requested.
    pub url: Url,
    /// From the start of [`HttpClient::send`] to the last body byte.
    pub duration: Duration,
}

impl Response {
    /// The body decoded to text by the `Content-Type` charset (see
    /// [`decode_text`]).
    pub fn text(&self) -> String {
        decode_text(&self.headers, &self.body)
    }

    /// [`Response::text`], reusing the body's buffer when it is already
    /// valid UTF-8 text.
    pub fn into_text(self) -> String {
        decode_text_owned(&self.headers, self.body)
    }
}
