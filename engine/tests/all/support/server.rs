//! A real HTTP server on `127.0.0.1:0` for the REST and net tests, over
//! plain HTTP ([`TestServer::start`]) or TLS ([`TestServer::start_tls`],
//! with a certificate for `127.0.0.1` and `localhost` from a throwaway CA
//! the test hands to the client's policy).
//!
//! Any path without a route of its own is the echo endpoint: it answers
//! `200` with a JSON description of the request it received (method, raw
//! path, raw query, headers in order, body as text), so tests assert on
//! what actually went over the wire. Every request, on any route, is also
//! recorded ([`TestServer::requests`]): a test can check what a server
//! received even when the client never saw the answer. The other routes:
//!
//! | route | answers |
//! |---|---|
//! | `/status/{code}` | that status, body `status {code}` |
//! | `/redirect/{code}?to=URL` | that status with `Location: URL` |
//! | `/redirect-to?url=URL&status_code=N` | the same, as httpbin spells it (302 by default) |
//! | `/loop` | `301` to `/loop`, forever |
//! | `/slow` | `200` after 10 s |
//! | `/slow-body` | headers at once, then a body byte every 100 ms, forever (open ones counted) |
//! | `/big/{n}` | `n` bytes (`x`) with a `Content-Length` |
//! | `/endless` | an endless chunked body of 64 KiB chunks (no length) |
//! | `/latin1` | `café crème` in ISO-8859-1, `charset=iso-8859-1` |
//! | `/json` | `{"ok":true,"name":"Zoë"}` as `application/json` |

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures::StreamExt as _;

/// A running test server; stopped when dropped.
pub struct TestServer {
    /// Where it listens (always 127.0.0.1).
    pub addr: SocketAddr,
    /// For a TLS server, the PEM of the CA that signed its certificate
    /// (for `NetPolicy::tls_root_certificates`).
    pub ca_pem: Option<String>,
    state: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Counters {
    /// Requests received, on any route.
    hits: AtomicUsize,
    /// The requests received, in order.
    requests: Mutex<Vec<Recorded>>,
    /// Bytes the `/endless` route has produced so far.
    endless_bytes: AtomicU64,
    /// `/slow-body` responses still being sent (their connection open).
    slow_bodies: AtomicUsize,
}

impl TestServer {
    /// Starts a server on a free loopback port, inside the current runtime.
    pub async fn start() -> TestServer {
        let (app, state) = Self::app();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestServer {
            addr,
            ca_pem: None,
            state,
            task,
        }
    }

    /// Starts the same server over TLS, with a certificate for `127.0.0.1`
    /// and `localhost` signed by a CA made for this server alone
    /// ([`TestServer::ca_pem`]); no client trusts it unless told to.
    pub async fn start_tls() -> TestServer {
        let (app, state) = Self::app();
        let (ca_pem, config) = tls_config();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        };
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestServer {
            addr,
            ca_pem: Some(ca_pem),
            state,
            task,
        }
    }

    fn app() -> (Router, Arc<Counters>) {
        let state = Arc::new(Counters::default());
        let app = Router::new()
            .route("/status/{code}", any(status))
            .route("/redirect/{code}", any(redirect))
            .route("/redirect-to", any(redirect_to))
            .route("/loop", any(redirect_loop))
            .route("/slow", any(slow))
            .route("/slow-body", any(slow_body))
            .route("/big/{n}", any(big))
            .route("/endless", any(endless))
            .route("/latin1", any(latin1))
            .route("/json", any(json))
            .fallback(echo)
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                count_hits,
            ))
            .with_state(state.clone());
        (app, state)
    }

    /// `http://127.0.0.1:PORT` + `path` (`https://` for a TLS server).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Bytes `/endless` has produced so far.
    pub fn endless_bytes(&self) -> u64 {
        self.state.endless_bytes.load(Ordering::SeqCst)
    }

    /// `/slow-body` responses still being sent: one drops to zero when its
    /// client closes the connection.
    pub fn open_slow_bodies(&self) -> usize {
        self.state.slow_bodies.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`…
    pub method: String,
    /// The raw path.
    pub path: String,
    /// The raw query, if any.
    pub query: Option<String>,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The values of header `name` (lower case), in order.
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A throwaway CA, and a server config whose certificate (for `127.0.0.1`
/// and `localhost`) it signed.
fn tls_config() -> (String, tokio_rustls::rustls::ServerConfig) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "chatflow test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();

    let mut leaf = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "chatflow test server");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf
        .signed_by(&leaf_key, &Issuer::new(ca, &ca_key))
        .unwrap();

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    // Name the provider: when the whole workspace is built together, rustls
    // has both aws-lc-rs (reqwest) and ring (sqlx) enabled and cannot pick a
    // process default by itself.
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf_cert.der().clone()], key)
        .unwrap();
    (ca_cert.pem(), config)
}

/// A TCP listener that hands axum TLS streams; a failed handshake (a client
/// that does not trust the CA) drops that connection and accepts the next.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, peer)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

async fn count_hits(
    State(state): State<Arc<Counters>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    // Test bodies are small; read the whole body to record it, then hand
    // the route the same bytes.
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    state.requests.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
        body: body.to_vec(),
    });
    next.run(Request::from_parts(parts, Body::from(body))).await
}

async fn echo(request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
        .collect();
    let echo = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    axum::Json(echo).into_response()
}

async fn status(Path(code): Path<u16>) -> Response {
    let status = StatusCode::from_u16(code).unwrap();
    (status, format!("status {code}")).into_response()
}

async fn redirect(Path(code): Path<u16>, Query(q): Query<HashMap<String, String>>) -> Response {
    let status = StatusCode::from_u16(code).unwrap();
    let mut headers = HeaderMap::new();
    if let Some(to) = q.get("to") {
        headers.insert(header::LOCATION, to.parse().unwrap());
    }
    (status, headers, format!("redirect {code}")).into_response()
}

async fn redirect_to(Query(q): Query<HashMap<String, String>>) -> Response {
    let code = q.get("status_code").map_or(302, |c| c.parse().unwrap());
    let mut headers = HeaderMap::new();
    if let Some(to) = q.get("url") {
        headers.insert(header::LOCATION, to.parse().unwrap());
    }
    (StatusCode::from_u16(code).unwrap(), headers, "redirect").into_response()
}

async fn redirect_loop() -> Response {
    (
        StatusCode::MOVED_PERMANENTLY,
        [(header::LOCATION, "/loop")],
        "again",
    )
        .into_response()
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(10)).await;
    "late"
}

async fn slow_body(State(state): State<Arc<Counters>>) -> Response {
    /// Counts the response as open until hyper drops its body.
    struct Open(Arc<Counters>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.slow_bodies.fetch_sub(1, Ordering::SeqCst);
        }
    }
    state.slow_bodies.fetch_add(1, Ordering::SeqCst);
    let stream = futures::stream::unfold(Open(state), |open| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((Ok::<_, Infallible>(Bytes::from_static(b".")), open))
    });
    Body::from_stream(stream).into_response()
}

async fn big(Path(n): Path<usize>) -> Vec<u8> {
    vec![b'x'; n]
}

async fn endless(State(state): State<Arc<Counters>>) -> Response {
    let chunk = Bytes::from(vec![b'z'; 64 * 1024]);
    let stream = futures::stream::repeat(chunk).map(move |chunk| {
        state
            .endless_bytes
            .fetch_add(chunk.len() as u64, Ordering::SeqCst);
        Ok::<_, Infallible>(chunk)
    });
    Body::from_stream(stream).into_response()
}

async fn latin1() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=iso-8859-1")],
        &b"caf\xe9 cr\xe8me"[..],
    )
        .into_response()
}

async fn json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"ok":true,"name":"Zoë"}"#,
    )
        .into_response()
}
