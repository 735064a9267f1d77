//! The shared HTTP client and the network policy, against a real server on
//! 127.0.0.1. No test here sends anything to a non-loopback address:
//! denials of other addresses are asserted to happen before connecting.

use std::time::{Duration, Instant};

use chatflow_engine::net::{
    AddressClass, DenyReason, HttpClient, InvalidRequest, Method, NetError, NetPolicy, PolicyError,
    Request, StatusCode, TimeoutPhase,
};
use serde_json::Value;

use crate::support::server::TestServer;
use crate::support::{closed_port, loopback_client, loopback_policy};

fn get(url: &str) -> Request {
    Request::new(Method::GET, url.parse().unwrap())
}

fn echo(response: &chatflow_engine::net::Response) -> Value {
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    serde_json::from_slice(&response.body).unwrap()
}

#[tokio::test]
async fn sends_each_method_with_headers_and_body() {
    let server = TestServer::start().await;
    let client = loopback_client();
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
        let request = Request::new(
            method.parse().unwrap(),
            server.url("/a/b?x=1").parse().unwrap(),
        )
        .header("X-One", "1")
        .unwrap()
        .header("X-Rep", "a")
        .unwrap()
        .header("X-Rep", "b")
        .unwrap()
        .body(format!("body of {method}"));
        let response = client.send(request).await.unwrap();
        let got = echo(&response);
        assert_eq!(got["method"], method);
        assert_eq!(got["path"], "/a/b");
        assert_eq!(got["query"], "x=1");
        assert_eq!(got["body"], format!("body of {method}"));
        let headers: Vec<(String, String)> =
            serde_json::from_value(got["headers"].clone()).unwrap();
        let rep: Vec<_> = headers
            .iter()
            .filter(|(k, _)| k == "x-rep")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(rep, ["a", "b"], "repeated header kept in order");
        assert!(headers.contains(&("x-one".into(), "1".into())));
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "user-agent" && v.starts_with("chatflow/")),
            "{headers:?}"
        );
        assert!(response.duration > Duration::ZERO);
    }

    let head = client
        .send(Request::new(
            Method::HEAD,
            server.url("/json").parse().unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn redirects_are_returned_not_followed() {
    let server = TestServer::start().await;
    let client = loopback_client();
    let to = server.url("/json");
    for code in [301, 302, 303, 307, 308] {
        let response = client
            .send(get(&server.url(&format!("/redirect/{code}?to={to}"))))
            .await
            .unwrap();
        assert_eq!(response.status.as_u16(), code);
        assert_eq!(response.headers["location"], to.as_str());
    }
    assert_eq!(server.hits(), 5, "no hop was followed");
}

/// Every spelling of a loopback, private, link-local or unspecified
/// address is denied by the default policy, before anything is sent.
#[tokio::test]
async fn ssrf_spellings_are_denied_by_default() {
    let server = TestServer::start().await;
    let client = HttpClient::new(NetPolicy::default()).unwrap();
    let port = server.port();
    let cases = [
        (
            format!("http://127.0.0.1:{port}/"),
            "127.0.0.1",
            AddressClass::Loopback,
        ),
        (
            format!("http://localhost:{port}/"),
            "",
            AddressClass::Loopback,
        ),
        (
            format!("http://2130706433:{port}/"),
            "127.0.0.1",
            AddressClass::Loopback,
        ),
        (
            format!("http://0x7f.1:{port}/"),
            "127.0.0.1",
            AddressClass::Loopback,
        ),
        (
            format!("http://0177.0.0.01:{port}/"),
            "127.0.0.1",
            AddressClass::Loopback,
        ),
        (
            format!("http://127.1:{port}/"),
            "127.0.0.1",
            AddressClass::Loopback,
        ),
        (
            format!("http://[::1]:{port}/"),
            "::1",
            AddressClass::Loopback,
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            "::ffff:127.0.0.1",
            AddressClass::Loopback,
        ),
        (
            format!("http://[::ffff:7f00:1]:{port}/"),
            "::ffff:127.0.0.1",
            AddressClass::Loopback,
        ),
        (
            "http://169.254.169.254/latest/meta-data/".into(),
            "169.254.169.254",
            AddressClass::Metadata,
        ),
        (
            "http://168.63.129.16/machine".into(),
            "168.63.129.16",
            AddressClass::Metadata,
        ),
        (
            format!("http://0.0.0.0:{port}/"),
            "0.0.0.0",
            AddressClass::Unspecified,
        ),
        (
            format!("http://0:{port}/"),
            "0.0.0.0",
            AddressClass::Unspecified,
        ),
        ("http://10.0.0.1/".into(), "10.0.0.1", AddressClass::Private),
        (
            "http://192.168.0.1/".into(),
            "192.168.0.1",
            AddressClass::Private,
        ),
        ("http://[fd00::1]/".into(), "fd00::1", AddressClass::Private),
        (
            "http://[fe80::1]/".into(),
            "fe80::1",
            AddressClass::LinkLocal,
        ),
    ];
    for (url, ip, want_class) in cases {
        let started = Instant::now();
        match client.send(get(&format!("{url}?secret=1"))).await {
            Err(NetError::Denied {
                url: shown,
                reason: DenyReason::Address { ip: got_ip, class },
            }) => {
                assert_eq!(class, want_class, "{url}");
                if !ip.is_empty() {
                    assert_eq!(got_ip.to_string(), ip, "{url}");
                }
                assert!(!shown.contains("secret"), "query shown in {shown}");
            }
            other => panic!("{url}: expected a denial, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{url} was not refused at once"
        );
    }
    assert_eq!(server.hits(), 0, "a denied request reached the server");
}

#[tokio::test]
async fn scheme_and_allowed_hosts() {
    let server = TestServer::start().await;
    let client = loopback_client();
    for (url, want) in [
        (
            "ftp://127.0.0.1/x".to_string(),
            DenyReason::Scheme {
                scheme: "ftp".into(),
            },
        ),
        (
            "file:///etc/passwd".to_string(),
            DenyReason::Scheme {
                scheme: "file".into(),
            },
        ),
        (
            server.url("/").replace("127.0.0.1", "127.0.0.2"),
            DenyReason::HostNotAllowed {
                host: format!("127.0.0.2:{}", server.port()),
            },
        ),
        (
            "https://example.com/".to_string(),
            DenyReason::HostNotAllowed {
                host: "example.com".into(),
            },
        ),
    ] {
        match client.send(get(&url)).await {
            Err(NetError::Denied { reason, .. }) => assert_eq!(reason, want, "{url}"),
            other => panic!("{url}: expected a denial, got {other:?}"),
        }
    }
    assert_eq!(server.hits(), 0);
}

/// A host name entry does not bypass the address rules; `allow_loopback`
/// does, and then names that resolve to loopback work.
#[tokio::test]
async fn host_names_are_checked_on_resolved_addresses() {
    let server = TestServer::start().await;
    let url = format!("http://localhost:{}/json", server.port());

    let mut policy = NetPolicy::default();
    policy.allow_host("localhost").unwrap();
    let client = HttpClient::new(policy.clone()).unwrap();
    match client.send(get(&url)).await {
        Err(NetError::Denied {
            reason:
                DenyReason::Address {
                    class: AddressClass::Loopback,
                    ..
                },
            ..
        }) => {}
        other => panic!("expected a loopback denial, got {other:?}"),
    }
    assert_eq!(server.hits(), 0);

    policy.allow_loopback = true;
    let client = HttpClient::new(policy).unwrap();
    let response = client.send(get(&url)).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(server.hits(), 1);
}

/// Cloud metadata addresses stay denied with every address class open,
/// whether the URL names them or a host name resolves to them, and in their
/// IPv4-mapped and NAT64 spellings; nothing is sent.
#[tokio::test]
async fn metadata_addresses_are_denied_with_every_class_open() {
    let mut policy = NetPolicy::default();
    policy.allow_loopback = true;
    policy.allow_private = true;
    let pins = [
        ("aws6.chatflow.test", "[fd00:ec2::254]:80"),
        ("alibaba.chatflow.test", "100.100.100.200:80"),
        ("azure.chatflow.test", "168.63.129.16:80"),
        ("gcp.chatflow.test", "169.254.169.254:80"),
        ("eks.chatflow.test", "[fd00:ec2::23]:80"),
        ("mapped.chatflow.test", "[::ffff:100.100.100.200]:80"),
    ];
    for (name, addr) in pins {
        policy.resolve.insert(name.into(), addr.parse().unwrap());
    }
    let client = HttpClient::new(policy).unwrap();
    let literals = [
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://[::ffff:6464:64c8]/",
        "http://[64:ff9b::a83f:8110]/",
        "http://168.63.129.16/machine?comp=goalstate",
    ];
    let names = pins.map(|(name, _)| format!("http://{name}/latest/meta-data/"));
    for url in literals.iter().map(|u| u.to_string()).chain(names) {
        let started = Instant::now();
        match client.send(get(&url)).await {
            Err(NetError::Denied {
                reason:
                    DenyReason::Address {
                        class: AddressClass::Metadata,
                        ..
                    },
                ..
            }) => {}
            other => panic!("{url}: expected a metadata denial, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{url} was not refused at once"
        );
    }
}

/// `tls_root_certificates` makes the client trust an operator's CA: a TLS
/// server signed by it fails to connect without it and answers with it.
/// An entry without a certificate is refused when the client is built.
#[tokio::test]
async fn extra_root_certificates_are_trusted() {
    let server = TestServer::start_tls().await;
    let url = server.url("/json");

    let untrusted = loopback_client();
    match untrusted.send(get(&url)).await {
        Err(NetError::Connect { .. }) => {}
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    assert_eq!(server.hits(), 0);

    let mut policy = loopback_policy();
    policy
        .tls_root_certificates
        .push(server.ca_pem.clone().unwrap());
    let trusted = HttpClient::new(policy).unwrap();
    let response = trusted.send(get(&url)).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.text(), r#"{"ok":true,"name":"Zoë"}"#);
    // The certificate names `localhost` too.
    let mut policy = NetPolicy::default();
    policy.allow_loopback = true;
    policy
        .tls_root_certificates
        .push(server.ca_pem.clone().unwrap());
    policy.resolve.insert("localhost".into(), server.addr);
    let by_name = HttpClient::new(policy).unwrap();
    let response = by_name
        .send(get(&format!("https://localhost:{}/json", server.port())))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
}

#[test]
fn extra_root_certificates_bad() {
    for (pem, index) in [
        ("not a certificate".to_string(), 0),
        (String::new(), 0),
        (
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
            0,
        ),
    ] {
        let mut policy = NetPolicy::default();
        policy.tls_root_certificates.push(pem.clone());
        match HttpClient::new(policy) {
            Err(PolicyError::RootCertificate { index: got, .. }) => assert_eq!(got, index),
            other => panic!("{pem:?}: expected a refused root, got {other:?}"),
        }
    }
    let mut policy = NetPolicy::default();
    policy.tls_root_certificates.push(
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n".into(),
    );
    assert!(
        matches!(HttpClient::new(policy), Err(PolicyError::Client(_))),
        "a PEM block that is not a certificate fails the client"
    );
}

/// `resolve` pins a host name to an address (like curl's `--resolve`): no
/// DNS is asked, the URL's port wins when it has one, and the address is
/// still checked against the address rules.
#[tokio::test]
async fn resolve_overrides_pin_names_and_are_still_checked() {
    let server = TestServer::start().await;
    let pinned = format!("127.0.0.1:{}", server.port()).parse().unwrap();
    let mut policy = NetPolicy::default();
    policy.resolve.insert("api.chatflow.test".into(), pinned);

    let client = HttpClient::new(policy.clone()).unwrap();
    match client.send(get("http://api.chatflow.test/json")).await {
        Err(NetError::Denied {
            reason:
                DenyReason::Address {
                    class: AddressClass::Loopback,
                    ..
                },
            ..
        }) => {}
        other => panic!("expected a loopback denial, got {other:?}"),
    }
    assert_eq!(server.hits(), 0);

    policy.allow_loopback = true;
    let client = HttpClient::new(policy).unwrap();
    // No port in the URL: the pinned address's port is used. Host names are
    // case-insensitive.
    let response = client
        .send(get("http://API.chatflow.test/json"))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(server.hits(), 1);
    // A port in the URL wins over the pinned one.
    let closed = format!("http://api.chatflow.test:{}/json", closed_port());
    assert!(matches!(
        client.send(get(&closed)).await,
        Err(NetError::Connect { .. })
    ));
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn connection_refused() {
    let client = loopback_client();
    let port = closed_port();
    match client
        .send(get(&format!("http://127.0.0.1:{port}/x?key=1")))
        .await
    {
        Err(NetError::Connect { url, .. }) => assert_eq!(url, format!("http://127.0.0.1:{port}/x")),
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[tokio::test]
async fn total_timeout_covers_headers_and_body() {
    let server = TestServer::start().await;
    let client = loopback_client();
    for path in ["/slow", "/slow-body"] {
        let started = Instant::now();
        let request = get(&server.url(path)).timeout(Duration::from_millis(300));
        match client.send(request).await {
            Err(NetError::Timeout {
                phase: TimeoutPhase::Total,
                limit,
                ..
            }) => {
                assert_eq!(limit, Duration::from_millis(300));
            }
            other => panic!("{path}: expected a timeout, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path} took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn per_request_limits_are_clamped_to_the_policy_maximums() {
    let server = TestServer::start().await;
    let mut policy = loopback_policy();
    policy.timeout = Duration::from_millis(200);
    policy.max_timeout = Duration::from_millis(300);
    policy.response_bytes = 100;
    policy.max_response_bytes = 1000;
    let client = HttpClient::new(policy).unwrap();

    let request = get(&server.url("/slow")).timeout(Duration::from_secs(3600));
    match client.send(request).await {
        Err(NetError::Timeout { limit, .. }) => assert_eq!(limit, Duration::from_millis(300)),
        other => panic!("expected a clamped timeout, got {other:?}"),
    }
    match client.send(get(&server.url("/big/101"))).await {
        Err(NetError::BodyTooLarge { limit, .. }) => assert_eq!(limit, 100, "the default cap"),
        other => panic!("expected the default cap, got {other:?}"),
    }
    let ok = client
        .send(get(&server.url("/big/1000")).max_response_bytes(1 << 30))
        .await
        .unwrap();
    assert_eq!(ok.body.len(), 1000, "a body exactly at the cap is fine");
    match client
        .send(get(&server.url("/big/1001")).max_response_bytes(1 << 30))
        .await
    {
        Err(NetError::BodyTooLarge { limit, .. }) => {
            assert_eq!(limit, 1000, "clamped to the maximum")
        }
        other => panic!("expected a clamped cap, got {other:?}"),
    }
}

/// An endless body is cut off at the cap: the client stops reading, the
/// connection is dropped, and the server stops producing.
#[tokio::test]
async fn endless_body_is_aborted_at_the_cap() {
    let server = TestServer::start().await;
    let client = loopback_client();
    let started = Instant::now();
    let cap = 256 * 1024;
    match client
        .send(get(&server.url("/endless")).max_response_bytes(cap))
        .await
    {
        Err(NetError::BodyTooLarge { limit, .. }) => assert_eq!(limit, cap),
        other => panic!("expected body too large, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    // Once the connection is gone the server's writes fail and it stops.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = server.endless_bytes();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.endless_bytes(), after, "the server is still sending");
    assert!(
        after < 64 << 20,
        "{after} bytes produced for a {cap}-byte cap"
    );
}

#[tokio::test]
async fn decodes_text_by_charset() {
    let server = TestServer::start().await;
    let client = loopback_client();
    let latin1 = client.send(get(&server.url("/latin1"))).await.unwrap();
    assert_eq!(latin1.body, b"caf\xe9 cr\xe8me", "raw bytes kept");
    assert_eq!(latin1.text(), "café crème");
    let json = client.send(get(&server.url("/json"))).await.unwrap();
    assert_eq!(json.text(), r#"{"ok":true,"name":"Zoë"}"#);
}

#[tokio::test]
async fn invalid_requests_send_nothing() {
    let server = TestServer::start().await;
    let client = loopback_client();
    let cases: Vec<(Request, InvalidRequest)> = vec![
        (
            get(&server.url("/")).timeout(Duration::ZERO),
            InvalidRequest::ZeroTimeout,
        ),
        (
            get(&server.url("/")).max_response_bytes(0),
            InvalidRequest::ZeroResponseBytes,
        ),
    ];
    for (request, want) in cases {
        match client.send(request).await {
            Err(NetError::InvalidRequest(got)) => assert_eq!(got, want),
            other => panic!("expected {want:?}, got {other:?}"),
        }
    }
    let mut smuggled = get(&server.url("/"));
    smuggled
        .headers_mut()
        .insert("transfer-encoding", "chunked".parse().unwrap());
    assert!(matches!(
        client.send(smuggled).await,
        Err(NetError::InvalidRequest(
            InvalidRequest::ForbiddenHeader { .. }
        ))
    ));
    assert!(matches!(
        get("http://h/").header("X-Key", "a\r\nX-Evil: 1"),
        Err(InvalidRequest::HeaderValue { .. })
    ));
    assert!(matches!(
        get("http://h/").header("Host", "internal"),
        Err(InvalidRequest::ForbiddenHeader { .. })
    ));
    assert_eq!(server.hits(), 0);
}

/// Clones share one client; many requests at once work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_many_requests() {
    let server = TestServer::start().await;
    let client = loopback_client();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let client = client.clone();
            let url = server.url(&format!("/n/{i}"));
            tokio::spawn(async move { client.send(get(&url)).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let response = task.await.unwrap().unwrap();
        assert_eq!(echo(&response)["path"], format!("/n/{i}"));
    }
}

/// A listener whose accept queue is full never completes a handshake: the
/// connect timeout fires.
#[tokio::test]
async fn connect_timeout() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    // Fill the accept queue; nobody ever accepts.
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_millis(100),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(stream);
        }
    }
    let mut policy = loopback_policy();
    policy.connect_timeout = Duration::from_millis(200);
    let client = HttpClient::new(policy).unwrap();
    let started = Instant::now();
    match client.send(get(&format!("http://{addr}/"))).await {
        Err(NetError::Timeout {
            phase: TimeoutPhase::Connect,
            limit,
            ..
        }) => {
            assert_eq!(limit, Duration::from_millis(200));
        }
        other => panic!("expected a connect timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(listener);
}
