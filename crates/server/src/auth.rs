//! Who may call the server, and whether it takes requests at all.
//!
//! - With tokens configured, every route but `/healthz`, `/readyz` and
//!   `/v1/openapi.json` needs `Authorization: Bearer TOKEN` with one of
//!   them (`401 unauthorized` otherwise). Tokens are compared by their
//!   SHA-256 in constant time.
//! - Without tokens the server listens on loopback only (checked at start)
//!   and refuses requests whose `Host` is not a loopback name or address
//!   (`403 forbidden_host`): a web page the operator visits cannot reach it
//!   by rebinding its own domain name to 127.0.0.1.
//! - While shutting down, every request is answered `503 shutting_down`.
//! - Error responses are counted by kind for `/metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};

use crate::error::{ApiError, ErrorKind, ErrorKindExt};
use crate::server::AppState;

/// Paths anyone may read: probes and the API description.
const OPEN_PATHS: &[&str] = &["/healthz", "/readyz", "/v1/openapi.json"];

pub(crate) fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `host` (a `Host` header: name or address, with an optional
/// port) names this machine's loopback.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [::1]:8080
        match rest.split_once(']') {
            Some((name, _)) => name,
            None => return false,
        }
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(host, |(name, _)| name)
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The middleware: shutdown, then host and token checks, then error counts.
pub(crate) async fn guard(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let response = match check(&state, &req) {
        Ok(()) => next.run(req).await,
        Err(err) => err.into_response(),
    };
    if let Some(ErrorKindExt(kind)) = response.extensions().get::<ErrorKindExt>() {
        state.metrics.error(kind.as_str());
    }
    response
}

fn check(state: &AppState, req: &Request) -> Result<(), ApiError> {
    if state.draining.load(Ordering::SeqCst) {
        return Err(ApiError::new(
            ErrorKind::ShuttingDown,
            "the server is shutting down; send the request to another replica",
        )
        .with_retry_after(1));
    }
    let path = req.uri().path();
    if OPEN_PATHS.contains(&path) {
        return Ok(());
    }
    if state.tokens.is_empty() {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().host())
            .unwrap_or_default();
        if !is_loopback_host(host) {
            return Err(ApiError::new(
                ErrorKind::ForbiddenHost,
                format!(
                    "without a token the server only answers requests for a loopback host, not {host:?}"
                ),
            ));
        }
        return Ok(());
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            let (scheme, token) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let Some(token) = token else {
        return Err(ApiError::new(
            ErrorKind::Unauthorized,
            "missing Authorization: Bearer token",
        ));
    };
    let presented = digest(token.as_bytes());
    // Compare with every token, without stopping at the first match.
    let matched = state
        .tokens
        .iter()
        .fold(false, |found, t| found | constant_time_eq(t, &presented));
    if !matched {
        return Err(ApiError::new(
            ErrorKind::Unauthorized,
            "the token is not valid",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.1.2.3:1",
            "localhost",
            "LOCALHOST:80",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn loopback_hosts_bad() {
        for host in [
            "",
            "example.com",
            "localhost.example.com",
            "127.0.0.1.nip.io",
            "10.0.0.1:8080",
            "[::2]:8080",
            "0.0.0.0",
            "[::1",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
