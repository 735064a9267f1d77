//! What survives what: retries with an Idempotency-Key, a restart on the
//! same SQLite file, a conversation moved between two servers on one
//! database, a lease left by a crashed replica, a lease lost mid-turn, and
//! a server process killed with SIGKILL in the middle of a turn.

use std::io::BufRead as _;
use std::time::Duration;

use chatflow_demo_api::DemoApi;
use chatflow_server::store::{Commit, Lease, TurnRecord};
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_stores;
use crate::support::{self, ManualClock, Running, TestStore, gate::Gate, texts};

fn crm_flow(module_ref: &str) -> Value {
    let mut flow: Value = serde_json::from_str(
        &std::fs::read_to_string(support::flows_dir().join("crm-profile.json")).unwrap(),
    )
    .unwrap();
    flow["blocks"]["parse"]["module"] = json!(module_ref);
    flow
}

async fn keyed_answer(server: &Running, id: &str, key: &str, text: &str) -> reqwest::Response {
    server
        .request(Method::POST, &format!("/v1/conversations/{id}/answers"))
        .header("idempotency-key", key)
        .json(&json!({ "text": text }))
        .send()
        .await
        .unwrap()
}

async fn idempotent_retry(store: TestStore) {
    let api = DemoApi::start().await.unwrap();
    let server = Running::start(
        support::config(&store, &api)
            .with_flows_dir(support::flows_dir())
            .with_modules_dir(support::modules_dir()),
    )
    .await;

    // Starting: the same key answers the same conversation.
    let start = |key: &'static str| {
        server
            .request(Method::POST, "/v1/flows/crm-profile/conversations")
            .header("idempotency-key", key)
            .json(&json!({"properties": {"user": "u1"}}))
            .send()
    };
    let first = start("start-1").await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = start("start-1").await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(store.count("conversations").await, 1);

    // Answering: the retry gets the stored turn, and the flow's HTTP calls
    // are not made again.
    let id = first["conversation_id"].as_str().unwrap();
    let answered = keyed_answer(&server, id, "answer-1", "+44 20 7946 0000").await;
    assert_eq!(answered.status(), 200);
    let answered: Value = answered.json().await.unwrap();
    assert_eq!(answered["status"], "completed");
    let calls = api.requests();
    let retry = keyed_answer(&server, id, "answer-1", "+44 20 7946 0000").await;
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry, answered);
    assert_eq!(api.requests(), calls, "the retry ran nothing");
    assert_eq!(store.count("turns").await, 2);

    // The same key with another answer is refused.
    let reused = keyed_answer(&server, id, "answer-1", "+1 555 0100").await;
    assert_eq!(reused.status(), 422);
    let body: Value = reused.json().await.unwrap();
    assert_eq!(body["kind"], "idempotency_key_reused");
    let reused = start("answer-1").await.unwrap();
    assert_eq!(reused.status(), 201, "keys of answers and starts are apart");
    server.stop().await;
}
both_stores!(idempotent_retry);

/// A client that gives up during a turn does not cancel it: the turn
/// commits, and the retry with its key gets the stored result.
async fn disconnected_client(store: TestStore) {
    let api = DemoApi::start().await.unwrap();
    let gate = Gate::start().await;
    let server = Running::start(support::config(&store, &api)).await;
    server.put_flow("gated", &support::gated_flow(&gate)).await;
    let first = server.start_conversation("gated", json!({})).await;
    let id = first["conversation_id"].as_str().unwrap().to_string();
    let request = tokio::spawn({
        let req = server
            .request(Method::POST, &format!("/v1/conversations/{id}/answers"))
            .header("idempotency-key", "k1")
            .json(&json!({"text": "yes"}));
        async move { req.send().await }
    });
    gate.wait_for(1).await;
    request.abort();
    let _ = request.await;
    gate.open();
    // The turn commits without its client.
    let mut turns = 0;
    for _ in 0..200 {
        let (_, conv) = server.get(&format!("/v1/conversations/{id}")).await;
        turns = conv["turns"].as_i64().unwrap();
        if turns == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(turns, 2);
    let retry = keyed_answer(&server, &id, "k1", "yes").await;
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(texts(&retry), ["done: opened"]);
    assert_eq!(gate.arrived(), 1, "the turn ran once");
    server.stop().await;
}
both_stores!(disconnected_client);

/// A server stopped and started again on the same SQLite file continues its
/// conversations.
#[tokio::test]
async fn restart_keeps_conversations() {
    let store = TestStore::new(support::Kind::Sqlite).await.unwrap();
    let api = DemoApi::start().await.unwrap();
    let config = || {
        support::config(&store, &api)
            .with_flows_dir(support::flows_dir())
            .with_modules_dir(support::modules_dir())
    };
    let server = Running::start(config()).await;
    let first = server.start_conversation("crm-profile", json!({})).await;
    let id = first["conversation_id"].as_str().unwrap().to_string();
    server.stop().await;

    let server = Running::start(config()).await;
    let (status, turn) = server.answer(&id, "+44 20 7946 0000").await;
    assert_eq!(status, 200, "{turn}");
    assert_eq!(turn["status"], "completed");
    assert_eq!(turn["turn"], 1);
    let (_, flows) = server.get("/v1/flows").await;
    assert_eq!(
        flows["flows"].as_array().unwrap().len(),
        5,
        "re-importing the same files stores no new versions: {flows}"
    );
    assert_eq!(store.count("flow_versions").await, 5);
    server.stop().await;
}

/// Two servers on one database: a module uploaded to one runs on the
/// other, which compiles it from the store; a conversation started on one
/// is answered on the other.
async fn two_servers_one_store(store: TestStore) {
    let api = DemoApi::start().await.unwrap();
    let a = Running::start(support::config(&store, &api)).await;
    // B has a module cache of its own, empty: it can only get the module
    // from the store.
    let b_cache = tempfile::tempdir().unwrap();
    let mut b_config = support::config(&store, &api);
    b_config.engine.sandbox = b_config
        .engine
        .sandbox
        .clone()
        .with_cache_dir(b_cache.path());
    let b = Running::start(b_config).await;

    let bytes = std::fs::read(chatflow_test_artifacts::examples::CRM_PROFILE).unwrap();
    let (status, module) = a.put_module(bytes.clone()).await;
    assert_eq!(status, 201, "{module}");
    let reference = module["reference"].as_str().unwrap().to_string();
    let (status, again) = b.put_module(bytes).await;
    assert_eq!((status, &again["reference"]), (200, &module["reference"]));
    let (status, _) = b.get(&format!("/v1/modules/{reference}")).await;
    assert_eq!(status, 200);
    assert_eq!(a.put_flow("crm", &crm_flow(&reference)).await.0, 201);

    let first = a.start_conversation("crm", json!({})).await;
    let id = first["conversation_id"].as_str().unwrap();
    let (status, turn) = b.answer(id, "+44 20 7946 0000").await;
    assert_eq!(status, 200, "{turn}");
    assert_eq!(
        texts(&turn)[0],
        "Welcome back, Ada Lovelace! You are a gold member."
    );
    let (_, conv) = a.get(&format!("/v1/conversations/{id}")).await;
    assert_eq!(conv["status"], "completed");
    assert_eq!(conv["turns"], 2);
    a.stop().await;
    b.stop().await;
}
both_stores!(two_servers_one_store);

/// A replica that took a conversation's lease and died: the conversation is
/// busy until the lease expires, then any replica continues it; the dead
/// replica's late commit is refused.
async fn lease_left_by_a_crash(store: TestStore) {
    let api = DemoApi::start().await.unwrap();
    let clock = ManualClock::new();
    let ttl = Duration::from_secs(30);
    let server = Running::start(
        support::config(&store, &api)
            .with_clock(clock.clock())
            .with_lease_ttl(ttl),
    )
    .await;
    let flow = json!({
        "name": "hello", "start": "ask",
        "blocks": {
            "ask": {"type": "input", "prompt": "Name?", "property": "name", "next": "hi"},
            "hi": {"type": "message", "text": "Hi {{name}}"}
        }
    });
    server.put_flow("hello", &flow).await;
    let first = server.start_conversation("hello", json!({})).await;
    let id = first["conversation_id"].as_str().unwrap();

    // The crashed replica: it took the lease, then vanished.
    let raw = store.open().await;
    let now = clock.clock().now();
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap();
    let Lease::Acquired(record) = raw
        .acquire_lease(id, "dead-replica", now, now + ttl_ms)
        .await
        .unwrap()
    else {
        panic!("the lease was free");
    };

    let response = server
        .request(Method::POST, &format!("/v1/conversations/{id}/answers"))
        .json(&json!({"text": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(response.headers()["retry-after"], "30");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["kind"], "conversation_busy");
    let (status, body) = server
        .send(server.request(Method::DELETE, &format!("/v1/conversations/{id}")))
        .await;
    assert_eq!(
        (status, body["kind"].as_str()),
        (409, Some("conversation_busy"))
    );

    clock.advance(ttl + Duration::from_millis(1));
    let (status, turn) = server.answer(id, "Ada").await;
    assert_eq!(status, 200, "{turn}");
    assert_eq!(texts(&turn), ["Hi Ada"]);

    // The dead replica wakes up and tries to commit its turn: refused.
    let late = TurnRecord {
        seq: record.turns,
        idempotency_key: None,
        request_sha256: "x".into(),
        status: "completed".into(),
        result: "{}".into(),
        created_at: now,
    };
    assert_eq!(
        raw.commit_turn(id, "dead-replica", &record.state, &late)
            .await
            .unwrap(),
        Commit::LeaseLost
    );
    assert_eq!(store.count("turns").await, 2);
    server.stop().await;
}
both_stores!(lease_left_by_a_crash);

/// A replica whose lease is taken during a long turn (it expired, and
/// another replica took the conversation) stops the turn and stores
/// nothing: `503 lease_lost`.
async fn lease_lost_mid_turn(store: TestStore) {
    let api = DemoApi::start().await.unwrap();
    let gate = Gate::start().await;
    let clock = ManualClock::new();
    let ttl = Duration::from_millis(300);
    let server = Running::start(
        support::config(&store, &api)
            .with_clock(clock.clock())
            .with_lease_ttl(ttl),
    )
    .await;
    server.put_flow("gated", &support::gated_flow(&gate)).await;
    let first = server.start_conversation("gated", json!({})).await;
    let id = first["conversation_id"].as_str().unwrap().to_string();
    let in_flight = tokio::spawn({
        let req = server
            .request(Method::POST, &format!("/v1/conversations/{id}/answers"))
            .json(&json!({"text": "yes"}));
        async move { req.send().await }
    });
    gate.wait_for(1).await;
    // The lease expires on the shared clock and another replica takes it.
    clock.advance(Duration::from_secs(10));
    let raw = store.open().await;
    let now = clock.clock().now();
    assert!(matches!(
        raw.acquire_lease(&id, "other-replica", now, now + 60_000)
            .await
            .unwrap(),
        Lease::Acquired(_)
    ));
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["kind"], "lease_lost", "{body}");
    assert_eq!(
        store.count("turns").await,
        1,
        "nothing of the turn was stored"
    );
    server.stop().await;
}
both_stores!(lease_lost_mid_turn);

/// Not a test on its own: the server process the SIGKILL test starts (this
/// test binary again, running only this function).
#[tokio::test]
#[ignore = "started by killed_mid_turn as a child process"]
async fn child_server() {
    let Ok(store) = std::env::var("CHATFLOW_CHILD_STORE") else {
        return;
    };
    let demo: std::net::SocketAddr = std::env::var("CHATFLOW_CHILD_DEMO")
        .unwrap()
        .parse()
        .unwrap();
    let mut policy = chatflow_engine::net::NetPolicy::default();
    policy.allow_host(chatflow_demo_api::HOST).unwrap();
    policy.allow_host("127.0.0.1").unwrap();
    policy.allow_loopback = true;
    policy.resolve.insert(chatflow_demo_api::HOST.into(), demo);
    let config = chatflow_server::ServeConfig::default()
        .with_listen("127.0.0.1:0".parse().unwrap())
        .with_store(store)
        .with_lease_ttl(Duration::from_secs(1))
        .with_engine(chatflow_engine::EngineConfig::default().with_net(policy));
    let server = chatflow_server::Server::bind(config).await.unwrap();
    println!("listening on {}", server.local_addr());
    server.run(std::future::pending()).await.unwrap();
}

/// The server process is killed with SIGKILL while a turn waits on an HTTP
/// call. Nothing committed is lost; the interrupted turn runs again (its
/// HTTP call too: at-least-once) on another server once the dead one's
/// lease expires, and is stored once.
async fn killed_mid_turn(store: TestStore) {
    let api = DemoApi::start().await.unwrap();
    let gate = Gate::start().await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "durability::child_server",
            "--ignored",
            "--nocapture",
        ])
        .env("CHATFLOW_CHILD_STORE", &store.url)
        .env("CHATFLOW_CHILD_DEMO", api.addr().to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let addr = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("listening on ").map(str::to_string))
            .expect("the child server starts")
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");
    let put = http
        .put(url("/v1/flows/gated"))
        .json(&support::gated_flow(&gate))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let first: Value = http
        .post(url("/v1/flows/gated/conversations"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = first["conversation_id"].as_str().unwrap().to_string();
    let in_flight = tokio::spawn(
        http.post(url(&format!("/v1/conversations/{id}/answers")))
            .header("idempotency-key", "answer-1")
            .json(&json!({"text": "yes"}))
            .send(),
    );
    gate.wait_for(1).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(in_flight.await.unwrap().is_err(), "the connection died");

    gate.open();
    let server = Running::start(support::config(&store, &api)).await;
    let started = std::time::Instant::now();
    let turn = loop {
        let response = keyed_answer(&server, &id, "answer-1", "yes").await;
        match response.status().as_u16() {
            200 => break response.json::<Value>().await.unwrap(),
            409 => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the lease never expired"
        );
    };
    assert_eq!(texts(&turn), ["done: opened"]);
    assert_eq!(turn["turn"], 1);
    assert_eq!(gate.arrived(), 2, "the interrupted turn's call ran again");
    assert_eq!(store.count("turns").await, 2, "turn 0, and turn 1 once");
    assert_eq!(store.count("conversations").await, 1);
    server.stop().await;
}
both_stores!(killed_mid_turn);
