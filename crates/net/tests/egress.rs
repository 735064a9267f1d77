//! `HttpClient::with_egress`, with and without the `reqwest` feature
//! (`cargo test -p chatflow-net --no-default-features` runs these too):
//! the policy decides before the egress sees anything, and the timeout and
//! the body cap hold around it whatever it does. The egress records what
//! it is asked and answers itself, so no socket is opened.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatflow_net::{
    AddressClass, DenyReason, Egress, EgressFuture, EgressRequest, EgressResponse, HeaderValue,
    HttpClient, InvalidRequest, Method, NetError, NetPolicy, Request, StatusCode, TimeoutPhase,
};

/// Records each request and answers `200` with `body`.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<EgressRequest>>,
    body: Vec<u8>,
}

impl Recorder {
    fn answering(body: impl Into<Vec<u8>>) -> Arc<Recorder> {
        Arc::new(Recorder {
            seen: Mutex::default(),
            body: body.into(),
        })
    }

    fn urls(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter().map(|r| r.url.to_string()).collect()
    }
}

impl Egress for Recorder {
    fn send(&self, request: EgressRequest) -> EgressFuture<'_> {
        self.seen.lock().unwrap().push(request);
        Box::pin(async move { Ok(EgressResponse::new(StatusCode::OK, self.body.clone())) })
    }
}

fn get(url: &str) -> Request {
    Request::new(Method::GET, url.parse().unwrap())
}

async fn denied(client: &HttpClient, request: Request) -> DenyReason {
    let url = request.url().to_string();
    match client.send(request).await {
        Err(NetError::Denied { reason, .. }) => reason,
        other => panic!("{url}: expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn only_allowed_requests_reach_the_egress() {
    let recorder = Recorder::answering("pong");
    let mut policy = NetPolicy::default();
    policy.allow_host("127.0.0.1:8080").unwrap();
    let client = HttpClient::with_egress(policy.clone(), recorder.clone()).unwrap();

    let request = get("http://127.0.0.1:8080/ping?key=secret")
        .header("X-Api-Key", "k-1")
        .unwrap()
        .timeout(Duration::from_secs(2))
        .max_response_bytes(64);
    let response = client.send(request).await.unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.text(), "pong");
    {
        let seen = recorder.seen.lock().unwrap();
        let [sent] = seen.as_slice() else {
            panic!("{seen:?}")
        };
        assert_eq!(sent.method, Method::GET);
        // The egress gets the URL as sent, query included; only errors and
        // logs redact it.
        assert_eq!(sent.url.as_str(), "http://127.0.0.1:8080/ping?key=secret");
        assert_eq!(sent.headers["x-api-key"], "k-1");
        assert_eq!(sent.timeout, Duration::from_secs(2));
        assert_eq!(sent.max_response_bytes, 64);
    }

    // Another port, another spelling of loopback, a name for it, the
    // metadata address, a scheme: none is listed, none reaches the egress.
    for (url, host) in [
        ("http://127.0.0.1:8081/ping", "127.0.0.1:8081"),
        ("http://[::1]:8080/ping", "[::1]:8080"),
        ("http://localhost:8080/ping", "localhost:8080"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254",
        ),
    ] {
        assert_eq!(
            denied(&client, get(url)).await,
            DenyReason::HostNotAllowed { host: host.into() },
            "{url}"
        );
    }
    assert_eq!(
        denied(&client, get("ftp://127.0.0.1:8080/")).await,
        DenyReason::Scheme {
            scheme: "ftp".into()
        }
    );

    // A header the client manages, slipped in after `Request::header`'s
    // check: refused when sending, before the egress.
    let mut sneaky = get("http://127.0.0.1:8080/ping");
    sneaky
        .headers_mut()
        .insert("host", HeaderValue::from_static("169.254.169.254"));
    match client.send(sneaky).await {
        Err(NetError::InvalidRequest(InvalidRequest::ForbiddenHeader { name })) => {
            assert_eq!(name, "host")
        }
        other => panic!("expected a forbidden header, got {other:?}"),
    }

    // With no allowed-hosts list, the address rules alone: loopback and
    // private literals are refused unless the policy opens them.
    let open = HttpClient::with_egress(NetPolicy::default(), recorder.clone()).unwrap();
    for (url, ip, class) in [
        (
            "http://127.0.0.1:8080/ping",
            "127.0.0.1",
            AddressClass::Loopback,
        ),
        (
            "http://2130706433:8080/",
            "127.0.0.1",
            AddressClass::Loopback,
        ),
        ("http://10.0.0.1/", "10.0.0.1", AddressClass::Private),
        (
            "http://[::ffff:169.254.169.254]/",
            "::ffff:169.254.169.254",
            AddressClass::Metadata,
        ),
    ] {
        assert_eq!(
            denied(&open, get(url)).await,
            DenyReason::Address {
                ip: ip.parse().unwrap(),
                class
            },
            "{url}"
        );
    }

    assert_eq!(recorder.urls(), ["http://127.0.0.1:8080/ping?key=secret"]);
}

/// Never answers; notes when the engine drops its future.
struct Silent {
    dropped: Arc<AtomicBool>,
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Egress for Silent {
    fn send(&self, _request: EgressRequest) -> EgressFuture<'_> {
        let guard = SetOnDrop(self.dropped.clone());
        Box::pin(async move {
            let _guard = guard;
            std::future::pending().await
        })
    }
}

#[tokio::test(start_paused = true)]
async fn the_timeout_and_the_body_cap_hold_around_the_egress() {
    let mut policy = NetPolicy::default();
    policy.allow_host("127.0.0.1").unwrap();

    let dropped = Arc::new(AtomicBool::new(false));
    let silent = Arc::new(Silent {
        dropped: dropped.clone(),
    });
    let client = HttpClient::with_egress(policy.clone(), silent).unwrap();
    let err = client
        .send(get("http://127.0.0.1/slow?token=t").timeout(Duration::from_millis(300)))
        .await
        .unwrap_err();
    match &err {
        NetError::Timeout { url, phase, limit } => {
            assert_eq!(url, "http://127.0.0.1/slow");
            assert_eq!(*phase, TimeoutPhase::Total);
            assert_eq!(*limit, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        dropped.load(Ordering::SeqCst),
        "the egress's future is dropped"
    );

    // An egress that ignores `max_response_bytes`: the body is refused
    // anyway, one byte over the cap.
    let big = Recorder::answering(vec![b'x'; 65]);
    let client = HttpClient::with_egress(policy, big.clone()).unwrap();
    let err = client
        .send(get("http://127.0.0.1/big").max_response_bytes(64))
        .await
        .unwrap_err();
    assert!(
        matches!(err, NetError::BodyTooLarge { limit: 64, .. }),
        "{err:?}"
    );
    let response = client
        .send(get("http://127.0.0.1/big").max_response_bytes(65))
        .await
        .unwrap();
    assert_eq!(response.body.len(), 65);
}
