//! soak: 10 000 Code block runs, hostile and normal mixed, 64 at a time,
//! with the process's RSS reported at the start, the middle and the end.
//! If the host kept anything of a run after it ended, or the allocator did
//! not reuse what runs free, RSS would climb; the target is flat within
//! 10 %.
//!
//! ```sh
//! cargo run --release -p chatflow-benches --example soak [-- RUNS [WARM_UP]]
//! ```
//!
//! Runs use the engine's default limits (with the maximum wall time, 60 s)
//! and configuration (fuel metering,
//! a fresh pooled instance per run) on a 2-worker runtime. The mix, one
//! run of each in turn:
//!
//! - normal: `bench_parse_set3` (parse a 1 KB API response, set three
//!   properties), `bench_http` (one GET of a 1 KB response on loopback);
//! - hostile, each ending on the limit that bounds the host memory it
//!   attacks: empty log lines past the log budget, property removals under
//!   new names until the written bytes run out, messages past their limit,
//!   HTTP bodies never read (the second 4 MiB body finds no room),
//!   `json_select` indexing a 1 MB array, a 4 MiB property value written
//!   twice, and a loop that burns its fuel (10 million).
//!
//! RSS is read from `/proc/self/status` before and after a warm-up (3 000
//! runs by default; the latter is the start), after half the runs and at the end, with
//! the peak (`VmHWM`); the example fails if the middle or the end is more
//! than 10 % from the start.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use chatflow_benches::sandboxed::loopback_policy;
use chatflow_benches::server::LoopbackServer;
use chatflow_engine::Properties;
use chatflow_engine::net::HttpClient;
use chatflow_engine::sandbox::{CodeModule, Limits, Outcome, RunError, Sandbox, SandboxConfig};
use chatflow_test_artifacts::{BENCH_HTTP, BENCH_PARSE_SET3};

/// Runs in flight.
const IN_FLIGHT: usize = 64;
/// Runs before the start figure, by default (the second argument).
const WARM_UP: usize = 3_000;
/// Set to override `SandboxConfig::linear_memory_keep_resident` (bytes).
const KEEP_RESIDENT: &str = "CHATFLOW_SOAK_KEEP_RESIDENT";
/// Set to override `SandboxConfig::max_unused_warm_slots`.
const WARM_SLOTS: &str = "CHATFLOW_SOAK_WARM_SLOTS";

const IMPORTS: &str = r#"
  (import "chatflow" "property_set" (func $property_set (param i32 i32 i32 i32) (result i32)))
  (import "chatflow" "property_remove" (func $property_remove (param i32 i32) (result i32)))
  (import "chatflow" "message_send" (func $message_send (param i32 i32) (result i32)))
  (import "chatflow" "log" (func $log (param i32 i32 i32)))
  (import "chatflow" "http_request" (func $http_request (param i32 i32) (result i32)))
  (import "chatflow" "json_select" (func $json_select (param i32 i32 i32 i32 i32 i32) (result i32)))
"#;

/// A guest: `pages` of memory, `data`, `setup`, then `body` until it
/// branches to `$done` (`$i` counts iterations).
fn guest(pages: u32, data: &str, setup: &str, body: &str) -> String {
    format!(
        r#"(module {IMPORTS}
             (memory (export "memory") {pages})
             {data}
             (func (export "chatflow_abi_v1"))
             (func (export "chatflow_run") (result i32)
               (local $i i32)
               {setup}
               (block $done
                 (loop $l
                   {body}
                   (local.set $i (i32.add (local.get $i) (i32.const 1)))
                   (br $l)))
               (i32.const 0)))"#
    )
}

/// What a run is and how it must end.
struct Kind {
    name: &'static str,
    module: CodeModule,
    props: Properties,
    limits: Limits,
    /// The error kind it must end with (`ok` for success).
    ends: &'static str,
}

fn kinds(sandbox: &Sandbox, base: &str) -> Result<Vec<Kind>> {
    // The defaults, with the maximum wall time: 64 runs share two workers
    // (and, on a loaded machine, less), and the soak is about memory.
    let limits = sandbox
        .default_limits()
        .with_wall_time(Limits::maximum().wall_time);
    let wat = |text: String| -> Result<CodeModule> {
        Ok(sandbox.load(&wat::parse_str(text).context("WAT")?)?)
    };
    let file = |path: &str| -> Result<CodeModule> { Ok(sandbox.load(&std::fs::read(path)?)?) };
    let none = Properties::new;
    let mut kinds = Vec::new();

    let response = chatflow_benches::server::IMAGE_1K_JSON;
    kinds.push(Kind {
        name: "normal/parse-set3",
        module: file(BENCH_PARSE_SET3)?,
        props: [("API Response", response)].into_iter().collect(),
        limits,
        ends: "ok",
    });
    kinds.push(Kind {
        name: "normal/http-get",
        module: file(BENCH_HTTP)?,
        props: [("url", format!("{base}/image"))].into_iter().collect(),
        limits,
        ends: "ok",
    });
    kinds.push(Kind {
        name: "hostile/log-flood",
        module: wat(guest(
            1,
            "",
            "",
            "(call $log (i32.const 1) (i32.const 0) (i32.const 0))
             (br_if $done (i32.ge_u (local.get $i) (i32.const 100000)))",
        ))?,
        props: none(),
        limits,
        ends: "ok",
    });
    kinds.push(Kind {
        name: "hostile/remove-new-names",
        module: wat(guest(
            1,
            "",
            "",
            "(i32.store (i32.const 16) (i32.or (i32.and (local.get $i) (i32.const 0x0f0f0f0f)) (i32.const 0x61616161)))
             (drop (call $property_remove (i32.const 16) (i32.const 4)))",
        ))?,
        props: none(),
        limits,
        ends: "limit",
    });
    kinds.push(Kind {
        name: "hostile/message-flood",
        module: wat(guest(
            1,
            "",
            "",
            "(drop (call $message_send (i32.const 0) (i32.const 60000)))",
        ))?,
        props: none(),
        limits,
        ends: "limit",
    });
    let request = format!(r#"{{"method":"GET","url":"{base}/bytes/4194304"}}"#);
    kinds.push(Kind {
        name: "hostile/http-unread",
        module: wat(guest(
            1,
            &format!(r#"(data (i32.const 0) "{}")"#, request.replace('"', "\\\"")),
            "",
            &format!(
                "(drop (call $http_request (i32.const 0) (i32.const {})))",
                request.len()
            ),
        ))?,
        props: none(),
        limits,
        ends: "limit",
    });
    let doc = format!("[{}0]", "0,".repeat(500_000));
    kinds.push(Kind {
        name: "hostile/json-index",
        module: wat(guest(
            1,
            r#"(data (i32.const 0) "doc") (data (i32.const 16) "/500000")"#,
            "",
            "(drop (call $json_select (i32.const 0) (i32.const 3) (i32.const 16) (i32.const 7) (i32.const 0) (i32.const 0)))
             (br_if $done (i32.ge_u (local.get $i) (i32.const 1000)))",
        ))?,
        props: [("doc", doc)].into_iter().collect(),
        limits,
        ends: "ok",
    });
    kinds.push(Kind {
        name: "hostile/largest-values",
        module: wat(guest(
            65,
            "",
            "(memory.fill (i32.const 16) (i32.const 97) (i32.const 4194304))",
            "(drop (call $property_set (i32.const 16) (i32.const 1) (i32.const 16) (i32.const 4194304)))",
        ))?,
        props: none(),
        limits,
        ends: "limit",
    });
    kinds.push(Kind {
        name: "hostile/burn-fuel",
        module: wat(guest(1, "", "", ""))?,
        props: none(),
        limits: limits.with_fuel(10_000_000),
        ends: "fuel_exhausted",
    });
    Ok(kinds)
}

fn ended(outcome: &Outcome) -> &'static str {
    match &outcome.result {
        Ok(_) => "ok",
        Err(RunError::Limit { .. }) => "limit",
        Err(err) => err.kind(),
    }
}

/// `field` of `/proc/self/status`, in MiB.
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() -> Result<()> {
    // What the `chatflow` binary does at start (crates/cli/src/main.rs):
    // glibc's mmap threshold fixed at its initial 128 KiB, unless the
    // environment sets it.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: sets an allocator parameter, before any thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
    let runs: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("RUNS")?,
        None => 10_000,
    };
    let warm_up: usize = match std::env::args().nth(2) {
        Some(n) => n.parse().context("WARM_UP")?,
        None => WARM_UP,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let server = LoopbackServer::start(1);
    let base = server.base_url();
    let sandbox = rt.block_on(async {
        let http = HttpClient::new(loopback_policy())?;
        let mut config = SandboxConfig::default();
        if let Some(bytes) = std::env::var_os(KEEP_RESIDENT) {
            let bytes = bytes
                .to_str()
                .unwrap_or_default()
                .parse()
                .context(KEEP_RESIDENT)?;
            config = config.with_linear_memory_keep_resident(bytes);
        }
        if let Some(slots) = std::env::var_os(WARM_SLOTS) {
            let slots = slots
                .to_str()
                .unwrap_or_default()
                .parse()
                .context(WARM_SLOTS)?;
            config = config.with_max_unused_warm_slots(slots);
        }
        anyhow::Ok(Sandbox::new(config, http)?)
    })?;
    let sandbox = Arc::new(sandbox);
    let kinds = Arc::new(kinds(&sandbox, &base)?);
    let kinds_len = kinds.len();
    for kind in kinds.iter() {
        let outcome = rt.block_on(sandbox.run(&kind.module, &kind.props, &kind.limits));
        if ended(&outcome) != kind.ends {
            bail!(
                "{} ended with {:?}, not {}",
                kind.name,
                outcome.error(),
                kind.ends
            );
        }
    }

    // Runs `count` runs, IN_FLIGHT at a time, starting at `first`.
    let batch = |first: usize, count: usize| -> Result<()> {
        let next = Arc::new(AtomicUsize::new(first));
        let end = first + count;
        rt.block_on(async {
            let tasks: Vec<_> = (0..IN_FLIGHT)
                .map(|_| {
                    let (sandbox, kinds, next) = (sandbox.clone(), kinds.clone(), next.clone());
                    tokio::spawn(async move {
                        loop {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            if n >= end {
                                return anyhow::Ok(());
                            }
                            let kind = &kinds[n % kinds_len];
                            let outcome =
                                sandbox.run(&kind.module, &kind.props, &kind.limits).await;
                            if ended(&outcome) != kind.ends {
                                bail!(
                                    "run {n}, {}: ended with {:?}, not {}",
                                    kind.name,
                                    outcome.error(),
                                    kind.ends
                                );
                            }
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await??;
            }
            anyhow::Ok(())
        })
    };

    let before = status_mib("VmRSS:");
    batch(0, warm_up)?;
    let start = status_mib("VmRSS:");
    let started = Instant::now();
    // Ten tenths; the middle is after the fifth.
    let mut done = 0;
    let mut middle = f64::NAN;
    let mut tenths = Vec::new();
    for tenth in 1..=10 {
        let count = runs * tenth / 10 - done;
        batch(warm_up + done, count)?;
        done += count;
        let rss = status_mib("VmRSS:");
        if tenth == 5 {
            middle = rss;
        }
        tenths.push(format!("{rss:.0}"));
    }
    let end = status_mib("VmRSS:");
    let took = started.elapsed();
    println!(
        "{runs} runs ({kinds_len} kinds in turn, {IN_FLIGHT} in flight) in {:.1} s",
        took.as_secs_f64()
    );
    println!(
        "RSS: before the warm-up {before:.1} MiB; start {start:.1} MiB, middle {middle:.1} MiB, \
         end {end:.1} MiB; middle/start {:.3}, end/start {:.3}; peak (VmHWM) {:.1} MiB",
        middle / start,
        end / start,
        status_mib("VmHWM:")
    );
    println!("RSS after each tenth (MiB): {}", tenths.join(" "));
    if (end / start - 1.0).abs() > 0.10 || (middle / start - 1.0).abs() > 0.10 {
        bail!("RSS moved more than 10 % between start and end");
    }
    Ok(())
}
