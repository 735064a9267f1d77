//! The default egress (the `reqwest` feature): one `reqwest::Client` per
//! [`HttpClient`](super::HttpClient), built on the first request, with no
//! proxy, no redirects, no cookies, the policy's connect timeout and root
//! certificates, and a DNS resolver that checks every address it returns
//! against the policy's address classes.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::sync::OnceCell;

use super::{Request, Response};
use crate::policy::AddressRules;
use crate::{AddressClass, DenyReason, Method, NetError, NetPolicy, TimeoutPhase};

const USER_AGENT: &str = concat!("chatflow/", env!("CARGO_PKG_VERSION"));

/// Sends `request` with the default egress, streaming the body and
/// aborting it as soon as it crosses `limit`.
pub(super) async fn exchange(
    client: &OnceCell<reqwest::Client>,
    policy: &NetPolicy,
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
    // Built on the first request (one at a time; a failed build is not
    // kept, so the next request tries again).
    let client = client.get_or_try_init(|| async { build_client(policy) });
    let client = client.await.map_err(|source| {
        let mut cause = String::new();
        let mut next: Option<&(dyn StdError + 'static)> = Some(&source);
        while let Some(e) = next {
            cause.push_str(&format!(": {e}"));
            next = e.source();
        }
        tracing::warn!("building the http client{cause}");
        NetError::Connect {
            url: shown.to_string(),
            source: Box::new(source),
        }
    })?;
    let mut builder = client.request(method, url.clone()).headers(headers);
    if let Some(body) = body {
        builder = builder.body(body);
    }
    let map_err = |e| map_error(e, policy, shown, timeout);
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
fn map_error(err: reqwest::Error, policy: &NetPolicy, shown: &str, total: Duration) -> NetError {
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
            (TimeoutPhase::Connect, policy.connect_timeout)
        } else {
            (TimeoutPhase::Total, total)
        };
        return NetError::Timeout { url, phase, limit };
    }
    if err.is_connect() {
        NetError::Connect {
            url,
            source: Box::new(err),
        }
    } else {
        NetError::Transport {
            url,
            source: Box::new(err),
        }
    }
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

/// Resolves names with the system resolver (through tokio) and drops every
/// address the policy's class rules deny. When nothing is left it fails
/// with [`AddressDenied`], which [`map_error`] finds in the
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
