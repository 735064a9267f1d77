//! code_block: what one run of a Code block costs, as production runs it
//! (a fresh pooled instance per run, default limits on).
//!
//! Group `code_block` (criterion, mean time per run):
//!
//! - `sandbox/empty`, `sandbox-epoch/empty`: a block that does nothing
//!   (`bench_empty`): instantiation, the call, tearing down; with fuel
//!   metering on (the default) and off. `sandbox/empty-no-panic-hook` is
//!   the same block declared with `code_block!(run, panic_message = false)`.
//! - `native|sandbox|sandbox-epoch/demo.json+set3`: parse `demo.json`
//!   (387 B) into a struct and set three properties (`bench_parse_set3`);
//!   `native` runs the same parse and builds the same three values, and
//!   `native-matched` does so built like the guests (guest profile, their
//!   LLVM flags, the SDK's bump allocator design; `chatflow_benches::matched`).
//! - `…/image-1k+set3`: the same with a 1.1 KB response of that shape.
//! - `sandbox-dlmalloc/…+set3`: the same block with Rust's standard
//!   allocator (`code_block!(run, allocator = std)`) instead of the SDK's
//!   default bump allocator.
//! - `native|sandbox/http-get`: one GET to a loopback server; `native` is a
//!   bare `reqwest` request, `sandbox` a Code block calling the host's
//!   `http_request` (`bench_http`), policy checks included.
//!
//! Group `code_block_setup`: what happens once per module, not per run:
//! `compile/<guest>` (validate, compile with Cranelift, pre-link; a fresh
//! sandbox each time so the cache does not answer) and
//! `load-cached/<guest>` (the SHA-256 and cache lookup a flow load does).
//!
//! After criterion, single runs are timed one by one for the latency table
//! (median, p90, p99, p99.9), saved to `target/chatflow-bench/latency.json`.
//!
//! Run with `cargo bench -p chatflow-benches --bench code_block`.

use std::hint::black_box;
use std::time::Duration;

use chatflow_benches::matched::MatchedNative;
use chatflow_benches::report::{self, Latency};
use chatflow_benches::sandboxed::{Bench, Guard, property};
use chatflow_benches::server::{IMAGE_1K_JSON, LoopbackServer};
use chatflow_benches::{json_documents, walk};
use chatflow_engine::Properties;
use chatflow_engine::sandbox::SandboxConfig;
use chatflow_test_artifacts::{
    BENCH_EMPTY, BENCH_EMPTY_NO_PANIC_HOOK, BENCH_HTTP, BENCH_JSON_WALK, BENCH_PARSE_SET3,
    BENCH_PARSE_SET3_DLMALLOC, BENCH_XML_WALK,
};
use criterion::{BatchSize, BenchmarkId, Criterion};

/// The small responses `…+set3` parses: `demo.json` and the 1.1 KB one.
fn small_responses() -> [(&'static str, String); 2] {
    let demo = json_documents()
        .into_iter()
        .find(|d| d.name == "demo.json")
        .expect("demo.json is in the corpus list");
    [
        (
            "demo.json+set3",
            String::from_utf8(demo.bytes).expect("UTF-8"),
        ),
        ("image-1k+set3", IMAGE_1K_JSON.to_string()),
    ]
}

fn code_block(c: &mut Criterion, server: &LoopbackServer, latencies: &mut Vec<Latency>) {
    let fueled = Bench::guarded(Guard::Fuel);
    let epoch = Bench::guarded(Guard::Epoch);
    // Single-run latencies for the names the command line selects (none
    // under `--list`/`--test`).
    let measure = |name: &str| !report::quick_mode() && report::selected(name);

    let mut group = c.benchmark_group("code_block");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    // Empty blocks.
    let empty_props = Properties::new();
    for (bench, guard) in [(&fueled, Guard::Fuel), (&epoch, Guard::Epoch)] {
        let empty = bench.load(BENCH_EMPTY);
        bench.run_ok(&empty, &empty_props);
        let id = BenchmarkId::new(guard.variant(), "empty");
        group.bench_function(id, |b| b.iter(|| bench.run(&empty, &empty_props).unwrap()));
        let name = format!("code_block/{}/empty", guard.variant());
        if measure(&name) {
            latencies.push(report::latency(&name, 20_000, || {
                bench.run(&empty, &empty_props).unwrap();
            }));
        }
    }
    let no_hook = fueled.load(BENCH_EMPTY_NO_PANIC_HOOK);
    fueled.run_ok(&no_hook, &empty_props);
    group.bench_function(BenchmarkId::new("sandbox", "empty-no-panic-hook"), |b| {
        b.iter(|| fueled.run(&no_hook, &empty_props).unwrap())
    });

    // A typical small block: parse a small response, set three properties.
    let matched = std::cell::RefCell::new(MatchedNative::start());
    for (case, text) in small_responses() {
        let want = walk::image_fields(text.as_bytes()).expect("an image response");
        matched.borrow_mut().add_document(case, text.as_bytes());
        let got: [String; 3] =
            serde_json::from_str(&matched.borrow_mut().answer("image_fields", case))
                .expect("three values");
        assert_eq!(got, want, "{case}: native-matched differs from native");
        let mut props = Properties::new();
        props.set("API Response", text.as_str());
        group.bench_function(BenchmarkId::new("native", case), |b| {
            b.iter(|| walk::image_fields(black_box(text.as_bytes())).unwrap())
        });
        let name = format!("code_block/native/{case}");
        if measure(&name) {
            latencies.push(report::latency(&name, 20_000, || {
                walk::image_fields(black_box(text.as_bytes())).unwrap();
            }));
        }
        group.bench_function(BenchmarkId::new("native-matched", case), |b| {
            b.iter_custom(|iters| matched.borrow_mut().run("image_fields", case, iters).0)
        });
        let name = format!("code_block/native-matched/{case}");
        if measure(&name) {
            let times = matched.borrow_mut().times("image_fields", case, 20_000);
            latencies.push(report::summarize(&name, times));
        }
        for (bench, variant, guest) in [
            (&fueled, Guard::Fuel.variant(), BENCH_PARSE_SET3),
            (&epoch, Guard::Epoch.variant(), BENCH_PARSE_SET3),
            (&fueled, "sandbox-dlmalloc", BENCH_PARSE_SET3_DLMALLOC),
        ] {
            let module = bench.load(guest);
            let out = bench.run_ok(&module, &props);
            for (name, want) in ["title", "thumbnail_url", "first_id"].iter().zip(&want) {
                assert_eq!(property(&out, name), Some(want.as_str()), "{case}: {name}");
            }
            group.bench_function(BenchmarkId::new(variant, case), |b| {
                b.iter(|| bench.run(&module, &props).unwrap())
            });
            let name = format!("code_block/{variant}/{case}");
            if measure(&name) {
                latencies.push(report::latency(&name, 20_000, || {
                    bench.run(&module, &props).unwrap();
                }));
            }
        }
    }

    // One HTTP call to a loopback server.
    let url = format!("{}/image", server.base_url());
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client");
    let rt = fueled.runtime();
    let get = || async {
        let response = client.get(&url).send().await.expect("GET");
        let status = response.status();
        let body = response.bytes().await.expect("body");
        (status, body)
    };
    let (status, body) = rt.block_on(get());
    assert!(status.is_success() && body.len() == IMAGE_1K_JSON.len());
    group.bench_function(BenchmarkId::new("native", "http-get"), |b| {
        b.iter(|| rt.block_on(get()))
    });
    let http = fueled.load(BENCH_HTTP);
    let mut props = Properties::new();
    props.set("url", url.as_str());
    let out = fueled.run_ok(&http, &props);
    assert_eq!(property(&out, "status"), Some("200"));
    assert_eq!(
        property(&out, "body_bytes"),
        Some(IMAGE_1K_JSON.len().to_string().as_str())
    );
    group.bench_function(BenchmarkId::new("sandbox", "http-get"), |b| {
        b.iter(|| fueled.run(&http, &props).unwrap())
    });
    if measure("code_block/native/http-get") {
        latencies.push(report::latency("code_block/native/http-get", 5_000, || {
            rt.block_on(get());
        }));
    }
    if measure("code_block/sandbox/http-get") {
        latencies.push(report::latency(
            "code_block/sandbox/http-get",
            5_000,
            || {
                fueled.run(&http, &props).unwrap();
            },
        ));
    }
    group.finish();
}

fn setup(c: &mut Criterion) {
    let mut group = c.benchmark_group("code_block_setup");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(10);
    let config = || Guard::Fuel.config().with_max_concurrent_runs(1);
    for (name, path) in [
        ("bench_empty", BENCH_EMPTY),
        ("bench_json_walk", BENCH_JSON_WALK),
        ("bench_xml_walk", BENCH_XML_WALK),
    ] {
        let wasm = std::fs::read(path).expect("guest module");
        group.bench_function(BenchmarkId::new("compile", name), |b| {
            b.iter_batched(
                || Bench::new(config()),
                |bench| {
                    bench.sandbox.load(&wasm).expect("valid module");
                    bench
                },
                BatchSize::PerIteration,
            )
        });
        let bench = Bench::new(SandboxConfig::default().with_max_concurrent_runs(1));
        bench.sandbox.load(&wasm).expect("valid module");
        group.bench_function(BenchmarkId::new("load-cached", name), |b| {
            b.iter(|| bench.sandbox.load(black_box(&wasm)).unwrap())
        });
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let server = LoopbackServer::start(1);
    let mut latencies = Vec::new();
    code_block(&mut c, &server, &mut latencies);
    setup(&mut c);
    if !latencies.is_empty() {
        report::save("latency", &latencies);
    }
    c.final_summary();
}
