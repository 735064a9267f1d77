//! [`HttpClient`]: the one shared `reqwest::Client`, wrapped so that every
//! request obeys the [`NetPolicy`].

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use super::policy::AddressRules;
use super::{
    AddressClass, DenyReason, Egress, EgressRequest, HeaderMap, HeaderValue, InvalidRequest,
    Method, NetError, NetPolicy, PolicyError, StatusCode, TimeoutPhase, decode_text,
    decode_text_owned, redact_url, validate_header_name,
};

const USER_AGENT: &str = concat!("chatflow/", env!("CARGO_PKG_VERSION"));

/// The engine's HTTP client: one `reqwest::Client` (one connection pool)
/// and the [`NetPolicy`] it enforces.
///
/// Build one per engine with [`HttpClient::new`] and clone it wherever it
/// is needed: clones share the pool and the policy. Never build one per
/// request.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// The operator's egress ([`HttpClient::with_egress`]); `None` sends
    /// with `client`.
    egress: Option<Arc<dyn Egress>>,
    /// Built on the first request ([`HttpClient::client`]): loading and
    /// parsing the system's root certificates is most of what building a
    /// client costs, and a process whose flows and guests make no request
    /// (`chatflow check`, most `chatflow code` runs) never needs them.
    client: tokio::sync::OnceCell<reqwest::Client>,
    policy: NetPolicy,
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
                .map_err(PolicyError::Client)?;
        }
        Ok(HttpClient {
            inner: Arc::new(Inner {
                egress: None,
                client: tokio::sync::OnceCell::new(),
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
    pub fn with_egress(
        policy: NetPolicy,
        egress: Arc<dyn Egress>,
    ) -> Result<HttpClient, PolicyError> {
        policy.validate()?;
        Ok(HttpClient {
            inner: Arc::new(Inner {
                egress: Some(egress),
                client: tokio::sync::OnceCell::new(),
                policy,
            }),
        })
    }

    /// The connection pool, built on the first call (one at a time; a
    /// failed build is not kept, so the next request tries again).
    async fn client(&self) -> Result<&reqwest::Client, reqwest::Error> {
        self.inner
            .client
            .get_or_try_init(|| async { build_client(&self.inner.policy) })
            .await
    }

    /// The policy this client enforces.
    pub fn policy(&self) -> &NetPolicy {
        &self.inner.policy
    }

    /// Sends one request and reads the whole response body (up to the cap).
    ///
    /// Checks the policy first ([`NetPolicy::check_url`]); a host name's
    /// addresses are checked as it is resolved. Redirects are not followed:
    /// a 3xx comes back as a [`Response`] like any other status. Non-2xx
    /// statuses are not errors here.
    ///
    /// Must run inside a tokio runtime (DNS resolution and timers use it).
    ///
    /// Fails with [`NetError::Denied`], [`NetError::Timeout`],
    /// [`NetError::Connect`], [`NetError::Transport`],
    /// [`NetError::BodyTooLarge`] or [`NetError::InvalidRequest`].
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
            match &self.inner.egress {
                Some(egress) => {
                    exchange_with(egress.as_ref(), request, limit, timeout, &shown).await
                }
                None => self.exchange(request, limit, timeout, &shown).await,
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

    async fn exchange(
        &self,
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
        let is_head = method == Method::HEAD;
        let client = self.client().await.map_err(|source| {
            let mut cause = String::new();
            let mut next: Option<&(dyn StdError + 'static)> = Some(&source);
            while let Some(e) = next {
                cause.push_str(&format!(": {e}"));
                next = e.source();
            }
            tracing::warn!("building the http client{cause}");
            NetError::Connect {
                url: shown.to_string(),
                source,
            }
        })?;
        let mut builder = client.request(method, url.clone()).headers(headers);
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let map_err = |e| self.map_error(e, shown, timeout);
        let mut response = builder.send().await.map_err(map_err)?;
        let too_large = || NetError::BodyTooLarge {
            url: shown.to_string(),
            limit,
        };
        if !is_head && response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(map_err)? {
            if (body.len() + chunk.len()) as u64 > limit {
                // Dropping `response` here closes the connection: the rest
                // of the body is never read.
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers,
            body,
            url,
            duration: Duration::ZERO,
        })
    }

    /// Maps a reqwest error by its type and source chain, never by message.
    fn map_error(&self, err: reqwest::Error, shown: &str, total: Duration) -> NetError {
        let err = err.without_url();
        let url = shown.to_string();
        let mut source: Option<&(dyn StdError + 'static)> = Some(&err);
        while let Some(e) = source {
            if let Some(denied) = e.downcast_ref::<AddressDenied>() {
                return NetError::Denied {
                    url,
                    reason: DenyReason::Address {
                        ip: denied.ip,
                        class: denied.class,
                    },
                };
            }
            source = e.source();
        }
        if err.is_timeout() {
            let (phase, limit) = if err.is_connect() {
                (TimeoutPhase::Connect, self.inner.policy.connect_timeout)
            } else {
                (TimeoutPhase::Total, total)
            };
            return NetError::Timeout { url, phase, limit };
        }
        if err.is_connect() {
            NetError::Connect { url, source: err }
        } else {
            NetError::Transport { url, source: err }
        }
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

/// The `reqwest::Client` for `policy`: the system's roots plus the
/// operator's, no proxy, no redirects, the policy's resolver.
fn build_client(policy: &NetPolicy) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder();
    // Checked by `HttpClient::new`: this cannot fail to parse now.
    let roots = policy.root_certificates().unwrap_or_default();
    if !roots.is_empty() {
        builder = builder.tls_certs_merge(roots);
    }
    builder
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .connect_timeout(policy.connect_timeout)
        .dns_resolver(PolicyResolver {
            rules: AddressRules::from(policy),
            overrides: Arc::new(policy.resolve.clone()),
        })
        .user_agent(USER_AGENT)
        .build()
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
/// use chatflow_engine::net::{Method, Request};
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

/// Resolves names with the system resolver (through tokio) and drops every
/// address the policy's class rules deny. When nothing is left it fails
/// with [`AddressDenied`], which [`HttpClient::map_error`] finds in the
/// error chain and turns into [`NetError::Denied`].
struct PolicyResolver {
    rules: AddressRules,
    /// [`NetPolicy::resolve`].
    overrides: Arc<BTreeMap<String, SocketAddr>>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rules = self.rules;
        let host = name.as_str().to_ascii_lowercase();
        let fixed = self.overrides.get(&host).copied();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = match fixed {
                Some(addr) => vec![addr],
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            let mut allowed = Vec::new();
            let mut first_denied = None;
            for addr in resolved {
                match rules.check(addr.ip()) {
                    Ok(()) => allowed.push(addr),
                    Err(DenyReason::Address { ip, class }) => {
                        tracing::debug!(%host, %ip, %class, "resolved address denied by policy");
                        first_denied.get_or_insert(AddressDenied { ip, class });
                    }
                    Err(_) => {}
                }
            }
            if allowed.is_empty() {
                return Err(match first_denied {
                    Some(denied) => Box::new(denied) as Box<dyn StdError + Send + Sync>,
                    None => format!("{host:?} resolved to no address").into(),
                });
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Every address a name resolved to is denied; carried through reqwest's
/// error chain to the caller.
#[derive(Debug)]
struct AddressDenied {
    ip: IpAddr,
    class: AddressClass,
}

impl fmt::Display for AddressDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "address {} is {}", self.ip, self.class)
    }
}

impl StdError for AddressDenied {}
