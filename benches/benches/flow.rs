//! flow: whole conversations through the engine, against a loopback API.
//!
//! The flow (below) is the platform's most common shape: a REST API block
//! fetches a 1.1 KB JSON record with a templated query and header, a Code
//! block (`bench_parse_set3`, fresh instance, default limits) parses it into
//! three properties, a branch tests `{{title}} exists`, and a message block
//! renders the answer.
//!
//! Group `flow` (throughput in conversations):
//!
//! - `sequential`: one conversation at a time on a current-thread runtime;
//! - `concurrent-64`: 64 conversations at once on a 2-worker runtime (the
//!   machine's cores); the time is for all 64, so elements/s is
//!   conversations per second.
//!
//! Run with `cargo bench -p chatflow-benches --bench flow`.

use std::path::Path;
use std::time::{Duration, Instant};

use chatflow_benches::sandboxed::loopback_policy;
use chatflow_benches::server::LoopbackServer;
use chatflow_engine::{Engine, EngineConfig, Flow, Properties, TurnStatus};
use chatflow_test_artifacts::BENCH_PARSE_SET3;
use criterion::{BenchmarkId, Criterion, Throughput};

const FLOW: &str = r#"{
  "name": "bench: lookup, parse, branch, answer",
  "start": "lookup",
  "blocks": {
    "lookup": {
      "type": "rest_api",
      "method": "GET",
      "url": "BASE/image",
      "query": [{"name": "customer", "value": "{{customer_id}}"}],
      "headers": [{"name": "X-Api-Key", "value": "{{api key}}"}],
      "next": "parse"
    },
    "parse": {"type": "code", "module": "parse_set3.wasm", "next": "found"},
    "found": {
      "type": "branch",
      "conditions": [{"when": "{{title}} exists", "next": "answer"}],
      "else": "sorry"
    },
    "answer": {"type": "message", "text": "Your picture \"{{title}}\" is at {{thumbnail_url}} (id {{first_id}})."},
    "sorry": {"type": "message", "text": "Sorry, no picture was found."}
  }
}"#;

const ANSWER: &str = "Your picture \"View from 15th Floor\" is at \
                      http://www.example.com/image/481989943 (id 116).";

fn props() -> Properties {
    [("customer_id", "42"), ("api key", "k-123")]
        .into_iter()
        .collect()
}

/// Runs one conversation to its end and checks the answer.
async fn converse(engine: &Engine, flow: &Flow) {
    let mut conversation = engine.start(flow, props());
    let turn = engine.run(flow, &mut conversation).await;
    assert_eq!(turn.status, TurnStatus::Completed, "{:?}", turn.error);
    assert_eq!(turn.messages.len(), 1);
    assert_eq!(turn.messages[0].text, ANSWER);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let server = LoopbackServer::start(1);
    let wasm = std::fs::read(BENCH_PARSE_SET3).expect("guest module");
    let json = FLOW.replace("BASE", &server.base_url());

    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // One engine per runtime: the HTTP client's connections belong to the
    // runtime that opened them.
    let load = |rt: &tokio::runtime::Runtime| {
        let engine = rt
            .block_on(async { Engine::new(EngineConfig::default().with_net(loopback_policy())) })
            .expect("engine");
        let flow = engine
            .flow_loader()
            .module("parse_set3.wasm", wasm.clone())
            .load_str("bench.json", &json, Path::new("."))
            .unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(converse(&engine, &flow));
        (engine, flow)
    };
    let (engine1, flow1) = load(&single);
    let (engine64, flow64) = load(&multi);

    let mut group = c.benchmark_group("flow");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    group.bench_function(
        BenchmarkId::new("sequential", "rest+code+branch+message"),
        |b| b.iter(|| single.block_on(converse(&engine1, &flow1))),
    );
    group.throughput(Throughput::Elements(64));
    group.bench_function(
        BenchmarkId::new("concurrent-64", "rest+code+branch+message"),
        |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    multi.block_on(async {
                        let tasks: Vec<_> = (0..64)
                            .map(|_| {
                                let (engine, flow) = (engine64.clone(), flow64.clone());
                                tokio::spawn(async move { converse(&engine, &flow).await })
                            })
                            .collect();
                        for task in tasks {
                            task.await.expect("conversation task");
                        }
                    });
                }
                start.elapsed()
            })
        },
    );
    group.finish();
    c.final_summary();
}
