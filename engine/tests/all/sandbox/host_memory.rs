//! Host memory per run (`docs/security.md`, "Host memory per run"): each
//! hostile guest runs at the maximum limits in a child process of its own
//! (this test binary, re-run on this one test with the guest's name in
//! `CHATFLOW_HOST_MEMORY_GUEST`).
//!
//! The child measures how far its resident memory rises above where it
//! stood just before the run: its peak (`VmHWM`, reset through
//! `/proc/self/clear_refs` before the run) minus its RSS then. A watchdog
//! thread ends the child the moment its RSS passes the bound, so a guest
//! that gets past the accounting fails the test at once instead of taking
//! the machine's memory. The parent checks each guest's typed outcome and
//! that the rise is at most the guest's linear memory, plus the part of
//! [`Limits::host_memory`] the guest attacks, plus [`SLACK`] (what any run
//! costs the process: the instance, the fiber stack, allocator and runtime
//! noise). The part is itself within the whole bound
//! ([`HostMemory::total`](chatflow_engine::sandbox::HostMemory::total)).

use std::io::Write as _;
use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::routing::{get, post};
use chatflow_engine::Properties;
use chatflow_engine::net::{HttpClient, NetPolicy};
use chatflow_engine::sandbox::{LimitKind, Limits, Outcome, RunError, Sandbox, SandboxConfig};
use futures::StreamExt as _;

const GUEST_ENV: &str = "CHATFLOW_HOST_MEMORY_GUEST";
const THIS_TEST: &str = "sandbox::host_memory::hostile_guests_stay_under_the_host_memory_bound";
const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// What a run costs the process whatever the guest does, beyond its
/// linear memory and the bound: the instance and its fiber stack, the
/// allocator's and the runtime's slack.
const SLACK: u64 = 24 * MIB;

/// Every ABI v1 import used below.
const IMPORTS: &str = r#"
  (import "chatflow" "property_get" (func $property_get (param i32 i32 i32 i32) (result i32)))
  (import "chatflow" "property_set" (func $property_set (param i32 i32 i32 i32) (result i32)))
  (import "chatflow" "property_remove" (func $property_remove (param i32 i32) (result i32)))
  (import "chatflow" "message_send" (func $message_send (param i32 i32) (result i32)))
  (import "chatflow" "log" (func $log (param i32 i32 i32)))
  (import "chatflow" "fail" (func $fail (param i32 i32)))
  (import "chatflow" "last_error" (func $last_error (param i32 i32) (result i32)))
  (import "chatflow" "http_request" (func $http_request (param i32 i32) (result i32)))
  (import "chatflow" "json_select" (func $json_select (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "chatflow" "xml_select" (func $xml_select (param i32 i32 i32 i32 i32 i32) (result i32)))
"#;

/// One hostile guest.
struct Hostile {
    name: &'static str,
    /// Pages of linear memory (all of it may be touched).
    pages: u64,
    /// The part of the bound it attacks, given the run's limits and the
    /// size of the conversation's properties.
    part: fn(&Limits, u64) -> u64,
    /// Its module's body (`chatflow_run` and data), given the server's
    /// `http://127.0.0.1:PORT`.
    body: fn(&str) -> String,
    /// The conversation's properties.
    props: fn() -> Properties,
    /// Asserts the exact outcome.
    check: fn(&Outcome),
}

/// `chatflow_run` doing `body` `times` times (`$i` counts from 0), then
/// returning 0.
fn repeat(times: u32, setup: &str, body: &str) -> String {
    repeat_then(times, setup, body, 0)
}

/// [`repeat`], returning `result`.
fn repeat_then(times: u32, setup: &str, body: &str, result: i32) -> String {
    format!(
        r#"(func (export "chatflow_run") (result i32)
             (local $i i32) (local $j i32)
             {setup}
             (block $done
               (loop $l
                 (br_if $done (i32.ge_u (local.get $i) (i32.const {times})))
                 {body}
                 (local.set $i (i32.add (local.get $i) (i32.const 1)))
                 (br $l)))
             (i32.const {result}))"#
    )
}

/// Stores a new 6-letter name (`a`–`p`, from the bits of `$i`) at 16.
const NEW_NAME: &str = r#"
  (local.set $j (i32.const 0))
  (loop $name
    (i32.store8 (i32.add (i32.const 16) (local.get $j))
      (i32.add (i32.const 97)
        (i32.and (i32.shr_u (local.get $i) (i32.mul (local.get $j) (i32.const 4))) (i32.const 15))))
    (local.set $j (i32.add (local.get $j) (i32.const 1)))
    (br_if $name (i32.lt_u (local.get $j) (i32.const 6))))
"#;

fn no_props() -> Properties {
    Properties::new()
}

fn limit(outcome: &Outcome, which: LimitKind, value: u64) {
    match outcome.error() {
        Some(RunError::Limit { which: w, value: v }) if *w == which && *v == value => {}
        other => panic!("expected limit {which} = {value}, got {other:?}"),
    }
    assert!(outcome.output().is_none());
}

const GUESTS: &[Hostile] = &[
    Hostile {
        name: "log_empty_lines",
        pages: 1,
        part: |l, p| l.host_memory(p).logs,
        body: |_| {
            repeat(
                4_000_000,
                "",
                "(call $log (i32.const 1) (i32.const 0) (i32.const 0))",
            )
        },
        props: no_props,
        check: |o| {
            assert!(o.is_ok(), "{:?}", o.error());
            // 16 MiB of log budget, 64 bytes an empty line.
            assert_eq!(o.logs.len(), 262_144);
            assert_eq!(o.logs_dropped, 4_000_000 - 262_144);
        },
    },
    Hostile {
        name: "log_one_byte_lines",
        pages: 1,
        part: |l, p| l.host_memory(p).logs,
        body: |_| {
            repeat(
                4_000_000,
                "",
                "(call $log (i32.const 1) (i32.const 0) (i32.const 1))",
            )
        },
        props: no_props,
        check: |o| {
            assert!(o.is_ok(), "{:?}", o.error());
            assert_eq!(o.logs.len(), (16 * MIB / 65) as usize);
            assert_eq!(o.logs_dropped, 4_000_000 - 16 * MIB / 65);
        },
    },
    Hostile {
        name: "log_bad_utf8_lines",
        pages: 2,
        part: |l, p| l.host_memory(p).logs,
        body: |_| {
            repeat(
                100_000,
                "(memory.fill (i32.const 0) (i32.const 255) (i32.const 4096))",
                "(call $log (i32.const 1) (i32.const 0) (i32.const 4096))",
            )
        },
        props: no_props,
        check: |o| {
            assert!(o.is_ok(), "{:?}", o.error());
            // Each kept line is 4 096 U+FFFD (12 288 bytes) and its entry.
            let kept = (16 * MIB / (12_288 + 64)) as usize;
            assert_eq!(o.logs.len(), kept);
            assert!(o.logs.iter().all(|l| l.message == "\u{FFFD}".repeat(4096)));
        },
    },
    Hostile {
        name: "property_remove_new_names",
        pages: 1,
        part: |l, p| l.host_memory(p).writes,
        body: |_| {
            repeat(
                u32::MAX,
                "",
                &format!("{NEW_NAME} (drop (call $property_remove (i32.const 16) (i32.const 6)))"),
            )
        },
        props: no_props,
        check: |o| limit(o, LimitKind::WrittenBytes, 128 * MIB),
    },
    Hostile {
        name: "property_set_new_names",
        pages: 1,
        part: |l, p| l.host_memory(p).writes,
        body: |_| {
            repeat(
                u32::MAX,
                "",
                &format!(
                    "{NEW_NAME} (drop (call $property_set (i32.const 16) (i32.const 6) (i32.const 16) (i32.const 1)))"
                ),
            )
        },
        props: no_props,
        check: |o| limit(o, LimitKind::WrittenBytes, 128 * MIB),
    },
    Hostile {
        name: "property_set_largest_values",
        pages: 1025,
        part: |l, p| l.host_memory(p).writes,
        body: |_| {
            // 64 MiB values (the maximum) under a new name each time.
            repeat(
                u32::MAX,
                "(memory.fill (i32.const 65536) (i32.const 97) (i32.const 67108864))",
                &format!(
                    "{NEW_NAME} (drop (call $property_set (i32.const 16) (i32.const 6) (i32.const 65536) (i32.const 67108864)))"
                ),
            )
        },
        props: no_props,
        check: |o| limit(o, LimitKind::WrittenBytes, 128 * MIB),
    },
    Hostile {
        name: "messages_largest",
        pages: 3,
        part: |l, p| l.host_memory(p).writes,
        body: |_| {
            // 1 000 messages (the maximum) of 128 KiB, then one more.
            repeat(
                u32::MAX,
                "(memory.fill (i32.const 0) (i32.const 109) (i32.const 131072))",
                "(drop (call $message_send (i32.const 0) (i32.const 131072)))",
            )
        },
        props: no_props,
        check: |o| limit(o, LimitKind::Messages, 1_000),
    },
    Hostile {
        name: "http_bodies_never_read",
        pages: 1,
        part: |l, p| l.host_memory(p).http,
        body: |base| {
            let req = format!(r#"{{"method":"GET","url":"{base}/stream/67108864"}}"#);
            format!(
                r#"(data (i32.const 0) "{}")
                   {}"#,
                req.replace('"', "\\\""),
                repeat(
                    u32::MAX,
                    "",
                    &format!(
                        "(drop (call $http_request (i32.const 0) (i32.const {})))",
                        req.len()
                    )
                )
            )
        },
        props: no_props,
        // The first 64 MiB body is held unread: no room for a second.
        check: |o| {
            limit(o, LimitKind::HttpResponseBytes, 64 * MIB);
            assert_eq!(o.http_calls, 2);
        },
    },
    Hostile {
        name: "http_request_of_256_mib",
        pages: 4097,
        part: |l, p| l.host_memory(p).writes,
        body: |base| {
            let head = format!(r#"{{"method":"POST","url":"{base}/drain","body":""#);
            let len = 256 * MIB as usize;
            format!(
                r#"(data (i32.const 0) "{}")
                   {}"#,
                head.replace('"', "\\\""),
                repeat(
                    u32::MAX,
                    &format!(
                        "(memory.fill (i32.const {start}) (i32.const 97) (i32.const {fill}))
                         (i32.store8 (i32.const {q}) (i32.const 34))
                         (i32.store8 (i32.const {b}) (i32.const 125))",
                        start = head.len(),
                        fill = len - head.len() - 2,
                        q = len - 2,
                        b = len - 1,
                    ),
                    &format!("(drop (call $http_request (i32.const 0) (i32.const {len})))"),
                )
            )
        },
        props: no_props,
        // Over the written bytes before it is copied out of the guest.
        check: |o| {
            limit(o, LimitKind::WrittenBytes, 128 * MIB);
            assert_eq!(o.http_calls, 1);
        },
    },
    Hostile {
        name: "error_message_of_a_256_mib_name",
        pages: 4097,
        part: |l, p| l.host_memory(p).messages,
        body: |_| {
            // A name of 256 MiB of U+0001, which `{:?}` writes as `\u{1}`.
            repeat(
                3,
                "(memory.fill (i32.const 65536) (i32.const 1) (i32.const 268435456))",
                "(drop (call $property_get (i32.const 65536) (i32.const 268435456) (i32.const 0) (i32.const 0)))
                 (drop (call $last_error (i32.const 0) (i32.const 4096)))",
            )
        },
        props: no_props,
        check: |o| assert!(o.is_ok(), "{:?}", o.error()),
    },
    Hostile {
        name: "fail_with_64_mib_of_bad_utf8",
        pages: 1025,
        part: |l, p| l.host_memory(p).messages,
        body: |_| {
            repeat_then(
                1_000,
                "(memory.fill (i32.const 0) (i32.const 255) (i32.const 67108864))",
                "(call $fail (i32.const 0) (i32.const 67108864))",
                1,
            )
        },
        props: no_props,
        check: |o| {
            match o.error() {
                Some(RunError::GuestFailed { code: Some(1), .. }) => {}
                other => panic!("expected the guest's failure, got {other:?}"),
            }
            // 64 KiB looked at, each byte a U+FFFD, cut to 64 KiB.
            assert_eq!(
                o.fail_message.as_deref(),
                Some("\u{FFFD}".repeat(21_845).as_str())
            );
        },
    },
    Hostile {
        name: "json_index_of_4_mib_of_zeros",
        pages: 1,
        // The guest writes nothing: the index is of the conversation's
        // property alone.
        part: |l, p| l.with_written_bytes(0).host_memory(p).selectors,
        body: |_| {
            format!(
                r#"(data (i32.const 0) "doc") (data (i32.const 16) "/2097151")
                   {}"#,
                repeat(
                    100,
                    "",
                    "(drop (call $json_select (i32.const 0) (i32.const 3) (i32.const 16) (i32.const 8) (i32.const 0) (i32.const 0)))",
                )
            )
        },
        props: || {
            [("doc", format!("[{}0]", "0,".repeat(2 * 1024 * 1024 - 1)))]
                .into_iter()
                .collect()
        },
        check: |o| assert!(o.is_ok(), "{:?}", o.error()),
    },
    Hostile {
        name: "xml_index_of_200k_siblings",
        pages: 1,
        part: |l, p| l.with_written_bytes(0).host_memory(p).selectors,
        body: |_| {
            format!(
                r#"(data (i32.const 0) "doc") (data (i32.const 16) "/r/i[199999]")
                   {}"#,
                repeat(
                    100,
                    "",
                    "(drop (call $xml_select (i32.const 0) (i32.const 3) (i32.const 16) (i32.const 12) (i32.const 0) (i32.const 0)))",
                )
            )
        },
        props: || {
            [("doc", format!("<r>{}</r>", "<i>x</i>".repeat(200_000)))]
                .into_iter()
                .collect()
        },
        check: |o| assert!(o.is_ok(), "{:?}", o.error()),
    },
    Hostile {
        name: "json_index_of_a_written_16_mib_document",
        pages: 257,
        // What it writes, and the index of it.
        part: |l, p| l.host_memory(p).writes + l.host_memory(p).selectors,
        body: |_| {
            // "[0,0,…,0]" of 16 MiB (less a byte) at 65536, doubled into
            // place, written to property `doc`, then indexed.
            let len = 16 * MIB as usize - 1;
            let mut setup = String::from(
                "(i32.store8 (i32.const 65536) (i32.const 91))
                 (i32.store8 (i32.const 65537) (i32.const 48))
                 (i32.store8 (i32.const 65538) (i32.const 44))",
            );
            let mut have = 2;
            while have < len - 3 {
                let n = have.min(len - 3 - have);
                setup.push_str(&format!(
                    "(memory.copy (i32.const {}) (i32.const 65537) (i32.const {n}))",
                    65537 + have
                ));
                have += n;
            }
            setup.push_str(&format!(
                "(i32.store8 (i32.const {}) (i32.const 48)) (i32.store8 (i32.const {}) (i32.const 93))",
                65536 + len - 2,
                65536 + len - 1
            ));
            setup.push_str(&format!(
                "(if (i32.ne (call $property_set (i32.const 0) (i32.const 3) (i32.const 65536) (i32.const {len})) (i32.const 0))
                   (then unreachable))"
            ));
            format!(
                r#"(data (i32.const 0) "doc") (data (i32.const 16) "/1")
                   {}"#,
                repeat(
                    100,
                    &setup,
                    "(if (i32.ne (call $json_select (i32.const 0) (i32.const 3) (i32.const 16) (i32.const 2) (i32.const 0) (i32.const 0)) (i32.const 1))
                       (then unreachable))",
                )
            )
        },
        props: no_props,
        check: |o| assert!(o.is_ok(), "{:?}", o.error()),
    },
];

#[test]
fn hostile_guests_stay_under_the_host_memory_bound() {
    if let Ok(name) = std::env::var(GUEST_ENV) {
        child(&name);
        return;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let mut failures = Vec::new();
    for guest in GUESTS {
        let output = Command::new(&exe)
            .args([THIS_TEST, "--exact", "--nocapture", "--test-threads", "1"])
            .env(GUEST_ENV, guest.name)
            .output()
            .expect("running the child");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let report = stdout
            .lines()
            .find_map(|l| l.split_once("HOST_MEMORY ").map(|(_, r)| r.trim()));
        let Some(report) = report else {
            failures.push(format!(
                "{}: the child failed ({}):\n{stdout}\n{stderr}",
                guest.name, output.status
            ));
            continue;
        };
        let numbers: Vec<u64> = report
            .split_whitespace()
            .map(|n| n.parse().expect("a number"))
            .collect();
        let [rise, allowed, total] = numbers[..] else {
            panic!("bad report {report:?}");
        };
        eprintln!(
            "{:<42} rose {:>7.1} MiB; allowed {:>7.1} MiB (bound {:.1} MiB)",
            guest.name,
            rise as f64 / MIB as f64,
            allowed as f64 / MIB as f64,
            total as f64 / MIB as f64,
        );
        if !output.status.success() || rise > allowed {
            failures.push(format!(
                "{}: rose {rise} bytes, allowed {allowed} ({}):\n{stderr}",
                guest.name, output.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The child's side: runs one guest and prints `HOST_MEMORY rise allowed
/// total`.
fn child(name: &str) {
    let guest = GUESTS
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no guest {name}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let base = rt.block_on(serve());
    let mut policy = NetPolicy::default();
    policy.allow_host("127.0.0.1").expect("pattern");
    policy.max_response_bytes = Limits::maximum().http_response_bytes;
    let sandbox = rt.block_on(async {
        let http = HttpClient::new(policy).expect("client");
        Sandbox::new(SandboxConfig::default().with_max_concurrent_runs(2), http).expect("sandbox")
    });
    let wat = format!(
        r#"(module {IMPORTS}
             (memory (export "memory") {})
             (func (export "chatflow_abi_v1"))
             {})"#,
        guest.pages,
        (guest.body)(&base)
    );
    let module = sandbox
        .load(&wat::parse_str(&wat).expect("valid WAT"))
        .expect("valid module");
    let props = (guest.props)();
    let limits = Limits::maximum();
    // One run first, so that the pool, the runtime and the allocator are
    // warm and not counted.
    let warm = sandbox
        .load(
            &wat::parse_str(
                r#"(module (memory (export "memory") 1) (func (export "chatflow_abi_v1"))
                     (func (export "chatflow_run") (result i32) (i32.const 0)))"#,
            )
            .expect("valid WAT"),
        )
        .expect("valid module");
    assert!(rt.block_on(sandbox.run(&warm, &props, &limits)).is_ok());

    let property_bytes = props.byte_size() as u64;
    let bound = limits.host_memory(property_bytes);
    let part = (guest.part)(&limits, property_bytes);
    let allowed = guest.pages * 64 * KIB + part + SLACK;
    assert!(part <= bound.total());
    reset_peak();
    let before = status("VmRSS:");
    watchdog(before + allowed);
    let outcome = rt.block_on(sandbox.run(&module, &props, &limits));
    let rise = status("VmHWM:").saturating_sub(before);
    (guest.check)(&outcome);
    println!("HOST_MEMORY {rise} {allowed} {}", bound.total());
    std::io::stdout().flush().expect("stdout");
}

/// A value from `/proc/self/status`, in bytes.
fn status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * KIB)
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Resets the peak RSS (`VmHWM`) to the current RSS.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("writing /proc/self/clear_refs");
}

/// Ends the process as soon as its RSS passes `limit`, saying so.
fn watchdog(limit: u64) {
    std::thread::spawn(move || {
        loop {
            let rss = status("VmRSS:");
            if rss > limit {
                eprintln!("RSS {rss} bytes is over {limit}: stopped");
                std::process::exit(3);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
}

/// A loopback server: `GET /stream/{n}` streams `n` bytes in 64 KiB
/// chunks (the server holds one chunk, not the body); `POST /drain` reads
/// and drops the body.
async fn serve() -> String {
    let app = Router::new()
        .route(
            "/stream/{n}",
            get(|Path(n): Path<u64>| async move {
                let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                let chunks = n.div_ceil(64 * 1024);
                let stream = futures::stream::iter(0..chunks).map(move |i| {
                    let len = (n - i * 64 * 1024).min(64 * 1024) as usize;
                    Ok::<_, std::convert::Infallible>(chunk.slice(..len))
                });
                Body::from_stream(stream)
            }),
        )
        .route(
            "/drain",
            post(|body: Body| async move {
                let mut stream = body.into_data_stream();
                while stream.next().await.is_some() {}
                "ok"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

// What each structure counts, in process, with small limits: each hostile
// input ends with its exact typed outcome and commits nothing.

mod counted {
    use chatflow_engine::Properties;
    use chatflow_engine::sandbox::{CodeModule, LimitKind, Sandbox};

    use super::super::{failed_limit, ok, sandbox};
    use crate::support::server::TestServer;

    const HTTP_IMPORTS: &str = r#"
      (import "chatflow" "http_request" (func $http_request (param i32 i32) (result i32)))
      (import "chatflow" "http_response_body" (func $http_response_body (param i32 i32 i32) (result i32)))
    "#;

    fn load(sb: &Sandbox, body: &str) -> CodeModule {
        let wasm = wat::parse_str(format!(
            r#"(module {} {HTTP_IMPORTS}
                 (memory (export "memory") 32)
                 (func (export "chatflow_abi_v1"))
                 {body})"#,
            super::super::IMPORTS
        ))
        .expect("valid WAT");
        sb.load(&wasm).expect("valid module")
    }

    #[tokio::test]
    async fn an_empty_log_line_costs_64_bytes_of_the_budget() {
        let sb = sandbox();
        let m = load(
            &sb,
            r#"(func (export "chatflow_run") (result i32)
                 (local $i i32)
                 (loop $l
                   (call $log (i32.const 1) (i32.const 0) (i32.const 0))
                   (local.set $i (i32.add (local.get $i) (i32.const 1)))
                   (br_if $l (i32.lt_u (local.get $i) (i32.const 100))))
                 (i32.const 0))"#,
        );
        let limits = sb.default_limits().with_log_bytes(640);
        let outcome = sb.run(&m, &Properties::new(), &limits).await;
        assert_eq!(outcome.logs.len(), 10);
        assert_eq!(outcome.logs_dropped, 90);
        ok(outcome);
    }

    #[tokio::test]
    async fn a_log_line_counts_its_text_after_replacement() {
        let sb = sandbox();
        // Ten bytes 0xFF become ten U+FFFD: 30 bytes, plus 64.
        let m = load(
            &sb,
            r#"(func (export "chatflow_run") (result i32)
                 (memory.fill (i32.const 0) (i32.const 255) (i32.const 10))
                 (call $log (i32.const 1) (i32.const 0) (i32.const 10))
                 (call $log (i32.const 1) (i32.const 0) (i32.const 10))
                 (i32.const 0))"#,
        );
        let limits = sb.default_limits().with_log_bytes(94 + 93);
        let outcome = sb.run(&m, &Properties::new(), &limits).await;
        assert_eq!(outcome.logs.len(), 1);
        assert_eq!(outcome.logs[0].message, "\u{FFFD}".repeat(10));
        assert_eq!(outcome.logs_dropped, 1);
        ok(outcome);
    }

    #[tokio::test]
    async fn every_write_counts_its_entry() {
        let sb = sandbox();
        // Removals of the names "a", "b", …: 1 + 128 bytes each.
        let m = load(
            &sb,
            r#"(func (export "chatflow_run") (result i32)
                 (local $i i32)
                 (loop $l
                   (i32.store8 (i32.const 0) (i32.add (i32.const 97) (local.get $i)))
                   (drop (call $property_remove (i32.const 0) (i32.const 1)))
                   (local.set $i (i32.add (local.get $i) (i32.const 1)))
                   (br_if $l (i32.lt_u (local.get $i) (i32.const 26))))
                 (i32.const 0))"#,
        );
        let limits = sb.default_limits().with_written_bytes(7 * 129);
        let props: Properties = [("h", "kept")].into_iter().collect();
        let outcome = sb.run(&m, &props, &limits).await;
        failed_limit(&sb, outcome, LimitKind::WrittenBytes, 7 * 129).await;
    }

    #[tokio::test]
    async fn an_oversized_message_is_refused_before_it_is_read() {
        let sb = sandbox();
        // 2 000 bytes that are not UTF-8: over the written bytes, which is
        // checked first (the text is never scanned).
        let m = load(
            &sb,
            r#"(func (export "chatflow_run") (result i32)
                 (memory.fill (i32.const 0) (i32.const 255) (i32.const 2000))
                 (drop (call $message_send (i32.const 0) (i32.const 2000)))
                 (i32.const 0))"#,
        );
        let limits = sb.default_limits().with_written_bytes(1000);
        let outcome = sb.run(&m, &Properties::new(), &limits).await;
        failed_limit(&sb, outcome, LimitKind::WrittenBytes, 1000).await;
    }

    #[tokio::test]
    async fn a_name_longer_than_any_valid_one_is_refused_unread() {
        let sb = sandbox();
        // A 1 MiB name: refused without being scanned, so 60 000 fuel is
        // plenty (scanning it would cost 2 097 152). The error is kept as
        // property `e`.
        let m = load(
            &sb,
            r#"(data (i32.const 0) "e")
               (func (export "chatflow_run") (result i32)
                 (local $n i32)
                 (if (i32.ne (call $property_set (i32.const 16) (i32.const 1048576) (i32.const 0) (i32.const 1))
                             (i32.const -2))
                   (then (return (i32.const 1))))
                 (if (i32.ne (call $property_remove (i32.const 16) (i32.const 1048576)) (i32.const -2))
                   (then (return (i32.const 2))))
                 (local.set $n (call $last_error (i32.const 1048600) (i32.const 200)))
                 (drop (call $property_set (i32.const 0) (i32.const 1) (i32.const 1048600) (local.get $n)))
                 (i32.const 0))"#,
        );
        let limits = sb.default_limits().with_fuel(60_000);
        let output = ok(sb.run(&m, &Properties::new(), &limits).await);
        assert_eq!(
            output.changes.get("e"),
            Some(Some(
                "property name is 1048576 bytes long; the limit is 256"
            ))
        );
    }

    #[tokio::test]
    async fn error_messages_quote_at_most_64_characters() {
        let sb = sandbox();
        // `property_get` of a 100 000-character name that is not set.
        let m = load(
            &sb,
            r#"(data (i32.const 0) "e")
               (func (export "chatflow_run") (result i32)
                 (local $n i32)
                 (memory.fill (i32.const 16) (i32.const 120) (i32.const 100000))
                 (if (i32.ne (call $property_get (i32.const 16) (i32.const 100000) (i32.const 0) (i32.const 0))
                             (i32.const -1))
                   (then (return (i32.const 1))))
                 (local.set $n (call $last_error (i32.const 200000) (i32.const 4096)))
                 (drop (call $property_set (i32.const 0) (i32.const 1) (i32.const 200000) (local.get $n)))
                 (i32.const 0))"#,
        );
        let output = ok(sb.run(&m, &Properties::new(), &sb.default_limits()).await);
        let want = format!("property \"{}\"… is not set", "x".repeat(64));
        assert_eq!(output.changes.get("e"), Some(Some(want.as_str())));
    }

    /// A data segment holding a GET of `url` at 0.
    fn get(url: &str) -> String {
        format!(
            r#"(data (i32.const 0) "{}")"#,
            format!(r#"{{"method":"GET","url":"{url}"}}"#).replace('"', "\\\"")
        )
    }

    #[tokio::test]
    async fn unread_bodies_count_against_the_response_bytes() {
        let server = TestServer::start().await;
        let sb = sandbox();
        let url = server.url("/big/600");
        let len = format!(r#"{{"method":"GET","url":"{url}"}}"#).len();
        let m = load(
            &sb,
            &format!(
                r#"{}
                   (func (export "chatflow_run") (result i32)
                     (drop (call $http_request (i32.const 0) (i32.const {len})))
                     (drop (call $http_request (i32.const 0) (i32.const {len})))
                     (i32.const 0))"#,
                get(&url)
            ),
        );
        let limits = sb.default_limits().with_http_response_bytes(1000);
        let outcome = sb.run(&m, &Properties::new(), &limits).await;
        assert_eq!(outcome.http_calls, 2);
        failed_limit(&sb, outcome, LimitKind::HttpResponseBytes, 1000).await;
    }

    #[tokio::test]
    async fn a_body_read_in_full_is_released_at_the_next_request() {
        let server = TestServer::start().await;
        let sb = sandbox();
        let url = server.url("/big/600");
        let len = format!(r#"{{"method":"GET","url":"{url}"}}"#).len();
        // Reads the first body in full, makes a second request (which
        // needs the room), then reads the first body again: -7, and the
        // message is kept as property `e`.
        let m = load(
            &sb,
            &format!(
                r#"{}
                   (data (i32.const 1000) "e")
                   (func (export "chatflow_run") (result i32)
                     (local $h i32) (local $n i32)
                     (local.set $h (call $http_request (i32.const 0) (i32.const {len})))
                     (if (i32.ne (call $http_response_body (local.get $h) (i32.const 4096) (i32.const 600))
                                 (i32.const 600))
                       (then (return (i32.const 1))))
                     (if (i32.ne (call $http_request (i32.const 0) (i32.const {len})) (i32.const 1))
                       (then (return (i32.const 2))))
                     (if (i32.ne (call $http_response_body (local.get $h) (i32.const 4096) (i32.const 600))
                                 (i32.const -7))
                       (then (return (i32.const 3))))
                     (local.set $n (call $last_error (i32.const 8192) (i32.const 1024)))
                     (drop (call $property_set (i32.const 1000) (i32.const 1) (i32.const 8192) (local.get $n)))
                     (if (i32.ne (call $http_response_body (i32.const 1) (i32.const 4096) (i32.const 600))
                                 (i32.const 600))
                       (then (return (i32.const 4))))
                     (i32.const 0))"#,
                get(&url)
            ),
        );
        let limits = sb.default_limits().with_http_response_bytes(1000);
        let output = ok(sb.run(&m, &Properties::new(), &limits).await);
        assert_eq!(
            output.changes.get("e"),
            Some(Some(
                "the body of http response 0 was read in full and released by a later http_request"
            ))
        );
    }

    #[tokio::test]
    async fn a_request_counts_towards_the_written_bytes() {
        let server = TestServer::start().await;
        let sb = sandbox();
        let url = server.url("/echo");
        let request = format!(
            r#"{{"method":"POST","url":"{url}","body":"{}"}}"#,
            "a".repeat(2000)
        );
        let m = load(
            &sb,
            &format!(
                r#"(data (i32.const 0) "{}")
                   (func (export "chatflow_run") (result i32)
                     (drop (call $http_request (i32.const 0) (i32.const {})))
                     (i32.const 0))"#,
                request.replace('"', "\\\""),
                request.len()
            ),
        );
        let limits = sb.default_limits().with_written_bytes(2000);
        let outcome = sb.run(&m, &Properties::new(), &limits).await;
        failed_limit(&sb, outcome, LimitKind::WrittenBytes, 2000).await;
        assert_eq!(server.hits(), 0, "nothing was sent");
    }

    #[tokio::test]
    async fn response_headers_over_64_kib_fail_the_request() {
        use axum::http::{HeaderName, HeaderValue, Response};
        // 20 headers of 4 000 bytes.
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|| async {
                let mut response = Response::new(axum::body::Body::empty());
                for i in 0..20 {
                    response.headers_mut().insert(
                        HeaderName::try_from(format!("x-big-{i}")).expect("name"),
                        HeaderValue::try_from("v".repeat(4000)).expect("value"),
                    );
                }
                response
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let sb = sandbox();
        let len = format!(r#"{{"method":"GET","url":"{url}"}}"#).len();
        let m = load(
            &sb,
            &format!(
                r#"{}
                   (data (i32.const 1000) "e")
                   (func (export "chatflow_run") (result i32)
                     (local $n i32)
                     (if (i32.ne (call $http_request (i32.const 0) (i32.const {len})) (i32.const -6))
                       (then (return (i32.const 1))))
                     (local.set $n (call $last_error (i32.const 8192) (i32.const 1024)))
                     (drop (call $property_set (i32.const 1000) (i32.const 1) (i32.const 8192) (local.get $n)))
                     (i32.const 0))"#,
                get(&url)
            ),
        );
        let output = ok(sb.run(&m, &Properties::new(), &sb.default_limits()).await);
        assert_eq!(
            output.changes.get("e"),
            Some(Some("response headers are over 65536 bytes"))
        );
        server.abort();
    }
}
