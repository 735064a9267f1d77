//! concurrency: Code block runs per second with many runs in flight, and
//! the memory conversations take while they wait on a slow API.
//!
//! Group `concurrency` (criterion, throughput in runs): empty Code blocks
//! (`bench_empty`, fresh instance, default limits) on a 2-worker runtime
//! (the machine's two cores), with 2 and with 64 runs in flight
//! (`sandbox/2`, `sandbox/64`); each measured iteration is 1 024 runs.
//!
//! Then the memory measure, each scenario in a fresh child process (this
//! binary, re-run) so nothing else is counted, with the slow API served by
//! this process: 1 000 conversations at once, each waiting 3 s on
//! `GET /slow/3000` on loopback,
//!
//! - `rest-wait`: in a REST API block (flow: REST → message);
//! - `code-wait`: inside a Code block's host HTTP call (flow: Code block
//!   `bench_http` → message): 1 000 live wasm instances;
//!
//! reporting the child's RSS before, while all 1 000 wait, and the
//! difference per conversation; saved to `target/chatflow-bench/memory.json`.
//! The child sets glibc's mmap threshold as the `chatflow` binary does.
//! With `CHATFLOW_BENCH_SMAPS=<dir>` each child also writes its
//! `/proc/self/smaps` there before the 1 000 start and while they wait
//! (`<scenario>-before.smaps`, `<scenario>-waiting.smaps`);
//! `benches/smaps.py` sums them by kind of mapping. With
//! `CHATFLOW_BENCH_CACHE_DIR=<dir>` the child uses that on-disk module
//! cache (from the second run on, nothing is compiled in the child).
//!
//! Run with `cargo bench -p chatflow-benches --bench concurrency`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatflow_benches::report;
use chatflow_benches::sandboxed::{Guard, loopback_policy};
use chatflow_benches::server::LoopbackServer;
use chatflow_engine::net::HttpClient;
use chatflow_engine::sandbox::{Sandbox, SandboxConfig};
use chatflow_engine::{Engine, EngineConfig, Properties, TurnStatus};
use chatflow_test_artifacts::{BENCH_EMPTY, BENCH_HTTP};
use criterion::{BenchmarkId, Criterion, Throughput};
use serde::{Deserialize, Serialize};

/// Runs per measured iteration.
const RUNS: usize = 1024;
/// Conversations in the memory measure.
const CONVERSATIONS: usize = 1000;
/// How long the slow endpoint waits.
const WAIT_MS: u64 = 3000;
/// Tells a child process which memory scenario to run, and where the slow
/// API is.
const CHILD_ENV: &str = "CHATFLOW_BENCH_MEMORY_CHILD";
const SERVER_ENV: &str = "CHATFLOW_BENCH_SERVER";
/// An on-disk module cache for the child (`SandboxConfig::cache_dir`).
const CACHE_ENV: &str = "CHATFLOW_BENCH_CACHE_DIR";
/// A directory for the child's `/proc/self/smaps` snapshots.
const SMAPS_ENV: &str = "CHATFLOW_BENCH_SMAPS";

fn runs_per_second(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sandbox = rt
        .block_on(async { HttpClient::new(loopback_policy()) })
        .map(|http| Sandbox::new(Guard::Fuel.config(), http).expect("sandbox"))
        .expect("HTTP client");
    let sandbox = Arc::new(sandbox);
    let module = sandbox
        .load(&std::fs::read(BENCH_EMPTY).expect("guest module"))
        .expect("valid module");
    let props = Properties::new();
    assert!(
        rt.block_on(sandbox.run(&module, &props, &sandbox.default_limits()))
            .is_ok()
    );

    let mut group = c.benchmark_group("concurrency");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(RUNS as u64));
    for in_flight in [2usize, 64] {
        group.bench_function(BenchmarkId::new("sandbox", in_flight), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    rt.block_on(async {
                        let tasks: Vec<_> = (0..in_flight)
                            .map(|_| {
                                let (sandbox, module) = (sandbox.clone(), module.clone());
                                let props = props.clone();
                                tokio::spawn(async move {
                                    let limits = sandbox.default_limits();
                                    for _ in 0..RUNS / in_flight {
                                        let outcome = sandbox.run(&module, &props, &limits).await;
                                        assert!(outcome.is_ok());
                                    }
                                })
                            })
                            .collect();
                        for task in tasks {
                            task.await.expect("run task");
                        }
                    });
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// What one memory scenario measured (the child prints it as JSON).
#[derive(Debug, Serialize, Deserialize)]
struct Memory {
    scenario: String,
    conversations: usize,
    /// RSS with the engine built, the flow loaded and a few conversations
    /// run, before the 1 000 start.
    rss_before_mib: f64,
    /// The highest RSS seen while all of them were waiting.
    rss_waiting_mib: f64,
    /// (waiting - before) / conversations.
    per_conversation_kib: f64,
}

fn flow_json(scenario: &str, base: &str) -> String {
    let wait = match scenario {
        "rest-wait" => format!(
            r#"{{"type": "rest_api", "method": "GET", "url": "{base}/slow/{{{{ms}}}}", "next": "done"}}"#
        ),
        _ => r#"{"type": "code", "module": "http.wasm", "next": "done"}"#.to_string(),
    };
    format!(
        r#"{{"name": "wait", "start": "wait", "blocks": {{
            "wait": {wait},
            "done": {{"type": "message", "text": "done"}}
        }}}}"#
    )
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Copies `/proc/self/smaps` to `$CHATFLOW_BENCH_SMAPS/<scenario>-<when>.smaps`
/// if the variable is set. Streamed through a small buffer: reading the
/// whole file (megabytes) into one allocation would move glibc's mmap
/// threshold and change what is measured next.
fn dump_smaps(scenario: &str, when: &str) {
    let Some(dir) = std::env::var_os(SMAPS_ENV) else {
        return;
    };
    let path = Path::new(&dir).join(format!("{scenario}-{when}.smaps"));
    let copied = std::fs::create_dir_all(&dir).and_then(|()| {
        let mut smaps = std::fs::File::open("/proc/self/smaps")?;
        let mut out = std::fs::File::create(&path)?;
        std::io::copy(&mut smaps, &mut out).map(|_| ())
    });
    if let Err(err) = copied {
        eprintln!("warning: could not write {}: {err}", path.display());
    }
}

/// The child's side of the memory measure.
fn memory_child(scenario: &str, base: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // With CHATFLOW_BENCH_CACHE_DIR the module comes from the on-disk cache
    // once a first run has stored it: no compilation in this process (what
    // a restarted server with a warm cache holds).
    let mut config = EngineConfig::default().with_net(loopback_policy());
    if let Some(dir) = std::env::var_os(CACHE_ENV) {
        config = config.with_sandbox(SandboxConfig::default().with_cache_dir(dir));
    }
    let engine = rt.block_on(async { Engine::new(config) }).expect("engine");
    let flow = engine
        .flow_loader()
        .module(
            "http.wasm",
            std::fs::read(BENCH_HTTP).expect("guest module"),
        )
        .load_str("wait.json", &flow_json(scenario, base), Path::new("."))
        .unwrap_or_else(|e| panic!("{e}"));
    let converse = |ms: u64| {
        let (engine, flow) = (engine.clone(), flow.clone());
        let props: Properties = [("ms", ms.to_string()), ("url", format!("{base}/slow/{ms}"))]
            .into_iter()
            .collect();
        async move {
            let mut conversation = engine.start(&flow, props);
            let turn = engine.run(&flow, &mut conversation).await;
            assert_eq!(turn.status, TurnStatus::Completed, "{:?}", turn.error);
        }
    };
    rt.block_on(async {
        for _ in 0..20 {
            converse(0).await;
        }
    });
    let before = rss_mib();
    dump_smaps(scenario, "before");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client");
    let tasks: Vec<_> = (0..CONVERSATIONS)
        .map(|_| rt.spawn(converse(WAIT_MS)))
        .collect();
    // Wait until the server sees every conversation waiting, then sample.
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    let mut waiting = 0;
    while Instant::now() < deadline {
        waiting = rt.block_on(inflight(&client, base));
        if waiting >= CONVERSATIONS {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        waiting >= CONVERSATIONS,
        "only {waiting} of {CONVERSATIONS} conversations reached the slow API"
    );
    let mut peak: f64 = 0.0;
    for _ in 0..10 {
        peak = peak.max(rss_mib());
        std::thread::sleep(Duration::from_millis(20));
    }
    dump_smaps(scenario, "waiting");
    rt.block_on(async {
        for task in tasks {
            task.await.expect("conversation task");
        }
    });
    let memory = Memory {
        scenario: scenario.to_string(),
        conversations: CONVERSATIONS,
        rss_before_mib: before,
        rss_waiting_mib: peak,
        per_conversation_kib: (peak - before) * 1024.0 / CONVERSATIONS as f64,
    };
    println!("{}", serde_json::to_string(&memory).expect("JSON"));
}

async fn inflight(client: &reqwest::Client, base: &str) -> usize {
    let Ok(response) = client.get(format!("{base}/inflight")).send().await else {
        return 0;
    };
    response
        .text()
        .await
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

fn memory() {
    let server = LoopbackServer::start(1);
    let exe = std::env::current_exe().expect("this bench's path");
    let mut results = Vec::new();
    for scenario in ["rest-wait", "code-wait"] {
        // CHATFLOW_CHILD_WRAPPER runs the child under a profiler, e.g.
        // `heaptrack` (where a conversation's memory goes).
        let mut command = match std::env::var_os("CHATFLOW_CHILD_WRAPPER") {
            Some(wrapper) => {
                let mut command = std::process::Command::new(wrapper);
                command.arg(&exe);
                command
            }
            None => std::process::Command::new(&exe),
        };
        let output = command
            .env(CHILD_ENV, scenario)
            .env(SERVER_ENV, server.base_url())
            .output()
            .expect("running the memory child");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let Some(memory) = stdout
            .lines()
            .find_map(|l| serde_json::from_str::<Memory>(l).ok())
        else {
            eprintln!(
                "memory scenario {scenario} failed ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            continue;
        };
        println!(
            "memory/{scenario:<10} {} conversations waiting: RSS {:.1} MiB before, {:.1} MiB waiting, {:.1} KiB per conversation",
            memory.conversations,
            memory.rss_before_mib,
            memory.rss_waiting_mib,
            memory.per_conversation_kib
        );
        results.push(memory);
    }
    report::save("memory", &results);
}

/// What the `chatflow` binary does at start (crates/cli/src/main.rs), so
/// the child measures what a `chatflow` process would hold: glibc's mmap
/// threshold fixed at its initial 128 KiB, unless the environment sets it.
/// Without it the compiler's large temporary buffers stay in the heap after
/// the module is compiled (3–4 MiB more before the conversations start).
fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: sets an allocator parameter, before any thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}

fn main() {
    if let Ok(scenario) = std::env::var(CHILD_ENV) {
        fix_mmap_threshold();
        let base = std::env::var(SERVER_ENV).expect("server URL");
        memory_child(&scenario, &base);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    runs_per_second(&mut c);
    if !report::quick_mode() && report::selected("concurrency/memory") {
        memory();
    }
    c.final_summary();
}
