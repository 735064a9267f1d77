//! rest_block: what the REST API block adds to an HTTP request.
//!
//! Group `rest_block`, one loopback `GET /image?customer=42` with header
//! `X-Api-Key` (1.1 KB JSON answer), read to the end as text:
//!
//! - `native`: a bare `reqwest::Client` (no proxy, default settings);
//! - `rest-block`: a compiled REST API block (`rest::RestConfig`) whose URL,
//!   query and header are templates filled from properties, executed with
//!   the engine's `HttpClient` (network policy checks, body cap, timeout)
//!   into an outcome with the `API Response` change.
//!
//! Both use one connection kept alive, a current-thread runtime on the
//! bench thread, and the server on its own thread. Then 12 000 requests of
//! each are timed one by one, taking turns, and their distributions saved to
//! `target/chatflow-bench/rest_latency.json`: the overhead in
//! `docs/benchmarks.md` comes from these.
//!
//! Run with `cargo bench -p chatflow-benches --bench rest_block`.

use std::time::{Duration, Instant};

use chatflow_benches::report;
use chatflow_benches::sandboxed::loopback_policy;
use chatflow_benches::server::{IMAGE_1K_JSON, LoopbackServer};
use chatflow_engine::Properties;
use chatflow_engine::net::HttpClient;
use chatflow_engine::rest::RestConfig;
use criterion::{BenchmarkId, Criterion};

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let server = LoopbackServer::start(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let base = server.base_url();
    let url = format!("{base}/image?customer=42");
    let bare = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client");
    let native = || async {
        let response = bare
            .get(&url)
            .header("X-Api-Key", "k-123")
            .send()
            .await
            .expect("GET");
        assert!(response.status().is_success());
        response.text().await.expect("body")
    };

    let config: RestConfig = serde_json::from_value(serde_json::json!({
        "method": "GET",
        "url": format!("{base}/image"),
        "query": [{"name": "customer", "value": "{{customer_id}}"}],
        "headers": [{"name": "X-Api-Key", "value": "{{api key}}"}],
    }))
    .expect("a valid REST block");
    let block = config.compile().expect("compiles");
    let client = rt
        .block_on(async { HttpClient::new(loopback_policy()) })
        .expect("HTTP client");
    let props: Properties = [("customer_id", "42"), ("api key", "k-123")]
        .into_iter()
        .collect();
    let engine = || async {
        let outcome = block.execute(&client, &props).await;
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        outcome
    };

    // Same answer both ways.
    assert_eq!(rt.block_on(native()), IMAGE_1K_JSON);
    let outcome = rt.block_on(engine());
    assert_eq!(
        outcome.changes.get("API Response"),
        Some(Some(IMAGE_1K_JSON))
    );

    let mut group = c.benchmark_group("rest_block");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function(BenchmarkId::new("native", "get-1k"), |b| {
        b.iter(|| rt.block_on(native()))
    });
    group.bench_function(BenchmarkId::new("rest-block", "get-1k"), |b| {
        b.iter(|| rt.block_on(engine()))
    });
    group.finish();

    if !report::quick_mode() && report::selected("rest_block") {
        // Request by request in turn, so drift on a shared machine hits
        // both alike (criterion's two series run seconds apart).
        let mut native_times = Vec::new();
        let mut engine_times = Vec::new();
        for _ in 0..12_000 {
            let start = Instant::now();
            rt.block_on(native());
            native_times.push(start.elapsed());
            let start = Instant::now();
            rt.block_on(engine());
            engine_times.push(start.elapsed());
        }
        let mut latencies = Vec::new();
        for (name, times) in [
            ("rest_block/native/get-1k", native_times),
            ("rest_block/rest-block/get-1k", engine_times),
        ] {
            latencies.push(report::summarize(name, times));
        }
        report::save("rest_latency", &latencies);
    }
    c.final_summary();
}
