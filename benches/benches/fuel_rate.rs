//! fuel_rate: nanoseconds per unit of fuel, for plain wasm and for the
//! worst case of every import, so that fuel measures host work honestly.
//!
//! Fuel is the run's CPU budget: wasm instructions count about one each,
//! and every import charges for the work it makes the host do
//! (`docs/abi.md`, "Fuel"). If an import's charge were too low, a guest
//! calling it in a loop would buy host CPU time cheaper than wasm time,
//! and the fuel limit would no longer bound the run's CPU. Each case here
//! is a hostile guest that calls one import in a loop, with the arguments
//! that make the host do the most work per unit of fuel charged (big and
//! small inputs, `buf_cap = 0`, invalid UTF-8 at the very end, …), until it
//! runs out of fuel or hits another limit. Its time divided by the fuel it
//! used is compared with a plain wasm loop's: the target is that no case
//! costs more than 2 × the plain loop's nanoseconds per fuel.
//!
//! The `wasm/*` rows are references, not imports: the loop, memory
//! traffic, `memory.fill`, and `wasm/page-touch`, a guest storing one byte
//! per fresh 4 KiB page of its linear memory. That one costs the host a
//! page fault (about a microsecond) for a few units of fuel, far over the
//! loop's rate; what bounds it is not fuel but `memory_bytes` (1 GiB at
//! most: 262 144 pages, a fraction of a second).
//!
//! Group `fuel_rate` (criterion; throughput in elements = units of fuel,
//! so criterion's `elem/s` is fuel per second): one benchmark per case.
//! Then each case is timed again, five runs each, for the table of
//! `docs/benchmarks.md` (ns per fuel and the ratio to `wasm/loop`, all in
//! this one process), printed as Markdown and saved to
//! `target/chatflow-bench/fuel_rate.json`. `CHATFLOW_FUEL_RATE_TABLE_ONLY=1`
//! skips criterion.
//!
//! Times are CPU times of the thread that drives the runs (which also
//! polls their HTTP requests; the loopback server has threads of its own),
//! not wall-clock times: on a machine shared with other jobs, wall-clock
//! time counts the time other processes had the CPU. Page faults are
//! included. The time and fuel of a guest's setup (what it does once
//! before its loop, timed with a twin that stops there) are taken off.
//!
//! Every run is a fresh instance with the maximum limits (10^10 fuel, cut
//! down per case, 1 GiB memory, 60 s) and the engine's default
//! configuration (fuel metering on, fuel yields every 10 million). Guest
//! buffers are filled by the guest before its loop (in the setup), so page
//! faults on fresh linear memory are not counted as host work; the
//! documents the selectors read are generated here, their shape named in
//! each case.
//!
//! Run with `cargo bench -p chatflow-benches --bench fuel_rate`; a filter
//! (`-- json_select`) runs some cases only.

use std::time::{Duration, Instant};

use chatflow_benches::report;
use chatflow_benches::sandboxed::loopback_policy;
use chatflow_benches::server::LoopbackServer;
use chatflow_engine::Properties;
use chatflow_engine::net::HttpClient;
use chatflow_engine::sandbox::{CodeModule, Limits, Outcome, RunError, Sandbox, SandboxConfig};
use criterion::{Criterion, Throughput};
use serde::Serialize;

/// Every ABI v1 import, named `$<import>`.
const IMPORTS: &str = r#"
  (import "chatflow" "property_get" (func $property_get (param i32 i32 i32 i32) (result i32)))
  (import "chatflow" "property_set" (func $property_set (param i32 i32 i32 i32) (result i32)))
  (import "chatflow" "property_remove" (func $property_remove (param i32 i32) (result i32)))
  (import "chatflow" "message_send" (func $message_send (param i32 i32) (result i32)))
  (import "chatflow" "log" (func $log (param i32 i32 i32)))
  (import "chatflow" "fail" (func $fail (param i32 i32)))
  (import "chatflow" "last_error" (func $last_error (param i32 i32) (result i32)))
  (import "chatflow" "http_request" (func $http_request (param i32 i32) (result i32)))
  (import "chatflow" "http_response_status" (func $http_response_status (param i32) (result i32)))
  (import "chatflow" "http_response_headers" (func $http_response_headers (param i32 i32 i32) (result i32)))
  (import "chatflow" "http_response_body" (func $http_response_body (param i32 i32 i32) (result i32)))
  (import "chatflow" "json_select" (func $json_select (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "chatflow" "xml_select" (func $xml_select (param i32 i32 i32 i32 i32 i32) (result i32)))
"#;

const MIB: usize = 1 << 20;
const PAGE: usize = 1 << 16;

/// Where guests keep their strings (names, pointers, requests).
const STRINGS: usize = 0;
/// Where guests keep their big buffers (values, lines, copy targets).
const BUF: usize = MIB;

/// Set to skip criterion and print only the table.
const TABLE_ONLY: &str = "CHATFLOW_FUEL_RATE_TABLE_ONLY";

/// The reference: the plain wasm loop every other case is compared with.
const REFERENCE: &str = "wasm/loop";

/// One hostile guest.
struct Case {
    name: String,
    /// What makes it the worst case, for the table.
    about: &'static str,
    wat: String,
    props: Properties,
    fuel: u64,
}

/// A guest: `pages` of memory, `data` segments (`(data …)` forms), a
/// `setup` run once, then `body` forever (it must leave the stack empty).
/// `{LOOP}` in the text is where a setup-only twin returns instead.
fn guest(pages: usize, data: &str, setup: &str, body: &str) -> String {
    format!(
        r#"(module {IMPORTS}
  (memory (export "memory") {pages})
  {data}
  (func (export "chatflow_abi_v1"))
  (func (export "chatflow_run") (result i32)
    (local $i i32) (local $h i32)
    {setup}
    {LOOP}
    (loop $l {body} (br $l))
    (i32.const 0)))"#
    )
}

/// Marks where the setup ends in [`guest`]'s text.
const LOOP: &str = ";; loop";

/// The same guest returning right after its setup: its cost is taken off
/// the case's, so that what the guest does once (filling its buffers, which
/// faults in fresh linear memory) is not counted as the import's work.
fn setup_only(wat: &str) -> String {
    wat.replacen(LOOP, "(return (i32.const 0))", 1)
}

/// A data segment holding `text` at `at`.
fn data(at: usize, text: &str) -> String {
    let mut escaped = String::new();
    for b in text.bytes() {
        escaped.push_str(&format!("\\{b:02x}"));
    }
    format!(r#"(data (i32.const {at}) "{escaped}")"#)
}

/// Fills `len` bytes at `at` with `byte` (touching the pages), then sets
/// the last `tail.len()` bytes to `tail`.
fn fill(at: usize, len: usize, byte: u8, tail: &[u8]) -> String {
    let mut code = format!("(memory.fill (i32.const {at}) (i32.const {byte}) (i32.const {len}))",);
    for (i, b) in tail.iter().enumerate() {
        let addr = at + len - tail.len() + i;
        code.push_str(&format!("(i32.store8 (i32.const {addr}) (i32.const {b}))"));
    }
    code
}

/// Fills `len` bytes at `at` with repetitions of `pattern` (written by the
/// guest, so the pages are touched).
fn fill_pattern(at: usize, len: usize, pattern: &[u8]) -> String {
    assert!(len.is_multiple_of(pattern.len()));
    let mut code = String::new();
    for (i, b) in pattern.iter().enumerate() {
        code.push_str(&format!(
            "(i32.store8 (i32.const {}) (i32.const {b}))",
            at + i
        ));
    }
    // Doubling copies: pattern, 2×, 4× … until `len`.
    let mut have = pattern.len();
    while have < len {
        let n = have.min(len - have);
        code.push_str(&format!(
            "(memory.copy (i32.const {}) (i32.const {at}) (i32.const {n}))",
            at + have
        ));
        have += n;
    }
    code
}

fn pages_for(bytes: usize) -> usize {
    bytes.div_ceil(PAGE) + 1
}

fn call(import: &str, args: &[i64]) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("(i32.const {a})")).collect();
    format!("(call ${import} {})", args.join(" "))
}

fn drop_call(import: &str, args: &[i64]) -> String {
    format!("(drop {})", call(import, args))
}

fn props<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> Properties {
    pairs.into_iter().collect()
}

/// `n` bytes of text that is slow to validate as UTF-8: ASCII and
/// multi-byte characters alternating, so the ASCII fast path never runs.
fn mixed_utf8(n: usize) -> Vec<u8> {
    let unit = "aé€😀".as_bytes(); // 1 + 2 + 3 + 4 bytes
    unit.iter()
        .copied()
        .cycle()
        .take(n - n % unit.len())
        .collect()
}

fn cases(http: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |name: &str, about: &'static str, wat: String, props: Properties, fuel: u64| {
        cases.push(Case {
            name: name.to_string(),
            about,
            wat,
            props,
            fuel,
        })
    };
    let none = Properties::new;
    const F: u64 = 200_000_000;

    // The references.
    add(
        "wasm/loop",
        "`(loop (br_if (local.tee $i (i32.sub …))))`: a counter loop",
        guest(
            1,
            "",
            "",
            "(local.set $i (i32.sub (local.get $i) (i32.const 1)))",
        ),
        none(),
        F,
    );
    add(
        "wasm/memory-loop",
        "load, add, store over a 64 KiB window",
        guest(
            2,
            "",
            "",
            "(i32.store (local.get $i) (i32.add (i32.load (local.get $i)) (i32.const 3)))
             (local.set $i (i32.and (i32.add (local.get $i) (i32.const 4)) (i32.const 65532)))",
        ),
        none(),
        F,
    );

    add(
        "wasm/memory-fill",
        "`memory.fill` of 16 MiB of resident memory (wasmtime charges 1 per byte)",
        guest(
            257,
            "",
            "",
            &format!(
                "(memory.fill (i32.const 0) (local.get $i) (i32.const {}))",
                16 * MIB
            ),
        ),
        none(),
        F,
    );
    add(
        "wasm/page-touch",
        "not an import: one store per 4 KiB page of fresh linear memory (the kernel's page faults)",
        guest(
            8192,
            "",
            "(local.set $i (i32.const 16777216))",
            "(i32.store8 (local.get $i) (i32.const 1))
             (local.set $i (i32.add (local.get $i) (i32.const 4096)))",
        ),
        none(),
        // About 7 fuel a page: 100 000 pages (400 MiB), before the 512 MiB
        // run out.
        700_000,
    );

    // property_get.
    let name = "p";
    let big = "x".repeat(64 * MIB);
    add(
        "property_get/64MiB-buf0",
        "a 64 MiB value, `buf_cap = 0` (length only)",
        guest(
            1,
            &data(STRINGS, name),
            "",
            &drop_call("property_get", &[0, 1, 0, 0]),
        ),
        props([(name, big.clone())]),
        F,
    );
    add(
        "property_get/64MiB-buf1",
        "a 64 MiB value, `buf_cap = 1`",
        guest(
            1,
            &data(STRINGS, name),
            "",
            &drop_call("property_get", &[0, 1, 100, 1]),
        ),
        props([(name, big.clone())]),
        F,
    );
    add(
        "property_get/1MiB-copy",
        "a 1 MiB value copied in full each time",
        guest(
            pages_for(BUF + MIB),
            &data(STRINGS, name),
            &fill(BUF, MIB, 0, &[]),
            &drop_call("property_get", &[0, 1, BUF as i64, MIB as i64]),
        ),
        props([(name, "x".repeat(MIB))]),
        F,
    );
    let long_name = "n".repeat(64 * 1024);
    add(
        "property_get/64KiB-name-missing",
        "a 64 KiB name that is not set (UTF-8 check, error message)",
        guest(
            pages_for(BUF),
            &data(STRINGS, &long_name),
            "",
            &drop_call("property_get", &[0, long_name.len() as i64, 0, 0]),
        ),
        none(),
        F,
    );
    {
        // 100 000 properties whose names share 250 bytes: every comparison
        // of the lookup runs to the end of the names.
        let prefix = "k".repeat(250);
        let many: Properties = (0..100_000)
            .map(|i| (format!("{prefix}{i:06}"), "v".to_string()))
            .collect();
        let target = format!("{prefix}050000");
        add(
            "property_get/100k-props-long-names",
            "100 000 properties with names sharing 250 bytes, `buf_cap = 0`",
            guest(
                1,
                &data(STRINGS, &target),
                "",
                &drop_call("property_get", &[0, target.len() as i64, 0, 0]),
            ),
            many,
            F,
        );
    }

    // property_set / property_remove.
    add(
        "property_set/64MiB",
        "the largest value (64 MiB) until `written_bytes` (128 MiB) is used up",
        guest(
            pages_for(BUF + 64 * MIB),
            &data(STRINGS, name),
            &fill(BUF, 64 * MIB, b'a', &[]),
            &drop_call("property_set", &[0, 1, BUF as i64, 64 * MIB as i64]),
        ),
        none(),
        10_000_000_000,
    );
    {
        let mixed = mixed_utf8(64 * MIB);
        let len = mixed.len();
        add(
            "property_set/64MiB-mixed-utf8-bad-end",
            "64 MiB of mixed 1–4 byte characters with one bad byte at the end: refused (`-2`), so nothing is written and the loop never hits a limit",
            guest(
                pages_for(BUF + len),
                &data(STRINGS, name),
                &format!(
                    "{}(i32.store8 (i32.const {}) (i32.const 255))",
                    fill_pattern(BUF, len, "aé€😀".as_bytes()),
                    BUF + len - 1
                ),
                &drop_call("property_set", &[0, 1, BUF as i64, len as i64]),
            ),
            none(),
            10_000_000_000,
        );
    }
    add(
        "property_set/1MiB-ascii-bad-end",
        "1 MiB of ASCII with one bad byte at the end (refused, nothing written)",
        guest(
            pages_for(BUF + MIB),
            &data(STRINGS, name),
            &fill(BUF, MIB, b'a', &[255]),
            &drop_call("property_set", &[0, 1, BUF as i64, MIB as i64]),
        ),
        none(),
        F,
    );
    add(
        "property_set/tiny-new-names",
        "1-byte values under a new 4-byte name each time, until `written_bytes`",
        guest(
            1,
            &data(STRINGS, "v"),
            "",
            "(i32.store (i32.const 16) (i32.or (local.get $i) (i32.const 0x41414141)))
             (local.set $i (i32.add (local.get $i) (i32.const 1)))
             (drop (call $property_set (i32.const 16) (i32.const 4) (i32.const 0) (i32.const 1)))",
        ),
        none(),
        10_000_000_000,
    );
    add(
        "property_remove/tiny-new-names",
        "a new 4-byte name removed each time, until `written_bytes`",
        guest(
            1,
            "",
            "",
            "(i32.store (i32.const 16) (i32.or (local.get $i) (i32.const 0x41414141)))
             (local.set $i (i32.add (local.get $i) (i32.const 1)))
             (drop (call $property_remove (i32.const 16) (i32.const 4)))",
        ),
        none(),
        10_000_000_000,
    );
    add(
        "property_remove/64KiB-name",
        "a 64 KiB name (refused as too long)",
        guest(
            pages_for(BUF),
            &data(STRINGS, &long_name),
            "",
            &drop_call("property_remove", &[0, long_name.len() as i64]),
        ),
        none(),
        F,
    );

    // message_send.
    add(
        "message_send/128KiB",
        "1 000 messages (the maximum) of 128 KiB (`written_bytes` / 1 000)",
        guest(
            pages_for(BUF + 128 * 1024),
            "",
            &fill(BUF, 128 * 1024, b'm', &[]),
            &drop_call("message_send", &[BUF as i64, 128 * 1024]),
        ),
        none(),
        10_000_000_000,
    );
    add(
        "message_send/empty",
        "empty messages until the messages limit",
        guest(1, "", "", &drop_call("message_send", &[0, 0])),
        none(),
        10_000_000_000,
    );
    add(
        "message_send/1MiB-bad-end",
        "1 MiB of text with a bad byte at the end (refused, nothing counted)",
        guest(
            pages_for(BUF + MIB),
            "",
            &fill(BUF, MIB, b'm', &[255]),
            &drop_call("message_send", &[BUF as i64, MIB as i64]),
        ),
        none(),
        F,
    );

    // log.
    add(
        "log/empty",
        "`log(1, 0, 0)`: empty lines (kept until the log budget, then dropped)",
        guest(
            1,
            "",
            "",
            "(call $log (i32.const 1) (i32.const 0) (i32.const 0))",
        ),
        none(),
        F,
    );
    add(
        "log/1-byte",
        "1-byte lines",
        guest(
            1,
            "",
            "",
            "(call $log (i32.const 1) (i32.const 0) (i32.const 1))",
        ),
        none(),
        F,
    );
    add(
        "log/16MiB-line",
        "a 16 MiB line (the maximum log budget): one kept, the rest dropped",
        guest(
            pages_for(BUF + 16 * MIB),
            "",
            &fill(BUF, 16 * MIB, b'l', &[]),
            &format!(
                "(call $log (i32.const 1) (i32.const {BUF}) (i32.const {}))",
                16 * MIB
            ),
        ),
        none(),
        F,
    );
    add(
        "log/invalid-utf8",
        "4 KiB lines of bytes 0xFF (each becomes 3 bytes of U+FFFD)",
        guest(
            pages_for(BUF + 4096),
            "",
            &fill(BUF, 4096, 0xff, &[]),
            &format!("(call $log (i32.const 1) (i32.const {BUF}) (i32.const 4096))"),
        ),
        none(),
        F,
    );

    // fail.
    add(
        "fail/64KiB",
        "a 64 KiB message (what is kept), replaced each call",
        guest(
            pages_for(BUF + 64 * 1024),
            "",
            &fill(BUF, 64 * 1024, b'f', &[]),
            &format!("(call $fail (i32.const {BUF}) (i32.const {}))", 64 * 1024),
        ),
        none(),
        F,
    );
    add(
        "fail/64KiB-invalid-utf8",
        "64 KiB of bytes 0xFF (each becomes 3 bytes of U+FFFD)",
        guest(
            pages_for(BUF + 64 * 1024),
            "",
            &fill(BUF, 64 * 1024, 0xff, &[]),
            &format!("(call $fail (i32.const {BUF}) (i32.const {}))", 64 * 1024),
        ),
        none(),
        F,
    );
    add(
        "fail/64MiB",
        "a 64 MiB message (only 64 KiB is kept)",
        guest(
            pages_for(BUF + 64 * MIB),
            "",
            &fill(BUF, 64 * MIB, b'f', &[]),
            &format!("(call $fail (i32.const {BUF}) (i32.const {}))", 64 * MIB),
        ),
        none(),
        // Enough calls that they, not the setup's 64 MiB of page faults,
        // are what is timed.
        2_000_000_000,
    );

    // last_error.
    add(
        "last_error/none",
        "no error recorded",
        guest(1, "", "", &drop_call("last_error", &[0, 0])),
        none(),
        F,
    );
    add(
        "last_error/copy",
        "the message of a failed `property_get` on a long name, copied in full",
        guest(
            pages_for(BUF + MIB),
            &data(STRINGS, &long_name),
            &format!(
                "{}{}",
                fill(BUF, MIB, 0, &[]),
                drop_call("property_get", &[0, long_name.len() as i64, 0, 0])
            ),
            &drop_call("last_error", &[BUF as i64, MIB as i64]),
        ),
        none(),
        F,
    );

    // HTTP.
    let get = |path: &str| format!(r#"{{"method":"GET","url":"{http}{path}"}}"#);
    let request = get("/ping");
    add(
        "http_request/get",
        "GET of a 4-byte body on loopback, until `http_calls` (100)",
        guest(
            1,
            &data(STRINGS, &request),
            "",
            &drop_call("http_request", &[0, request.len() as i64]),
        ),
        none(),
        10_000_000_000,
    );
    let request = get("/close");
    add(
        "http_request/get-new-connection",
        "GET of a 4-byte body on loopback, the server closing each connection (a new one per request), until `http_calls`",
        guest(
            1,
            &data(STRINGS, &request),
            "",
            &drop_call("http_request", &[0, request.len() as i64]),
        ),
        none(),
        10_000_000_000,
    );
    {
        // A request whose body is all escapes: the host unescapes it.
        let body = "\\u00e9".repeat(MIB / 6);
        let request = format!(r#"{{"method":"POST","url":"{http}/ping","body":"{body}"}}"#);
        add(
            "http_request/1MiB-escaped-body",
            "a POST whose 1 MiB JSON body string is all `\\u00e9` escapes",
            guest(
                pages_for(BUF + request.len()),
                &data(BUF, &request),
                "",
                &drop_call("http_request", &[BUF as i64, request.len() as i64]),
            ),
            none(),
            10_000_000_000,
        );
        let bad = format!("{}x", &request[..request.len() - 1]);
        add(
            "http_request/1MiB-malformed",
            "the same request with its last byte wrong: parsed, refused (`-2`), nothing sent",
            guest(
                pages_for(BUF + bad.len()),
                &data(BUF, &bad),
                "",
                &drop_call("http_request", &[BUF as i64, bad.len() as i64]),
            ),
            none(),
            10_000_000_000,
        );
    }
    let request = get("/bytes/4194304");
    add(
        "http_request/4MiB-response",
        "GET of a 4 MiB body, read in full (which lets the next response in), until `http_calls`",
        guest(
            pages_for(BUF + 4 * MIB),
            &data(STRINGS, &request),
            &fill(BUF, 4 * MIB, 0, &[]),
            &format!(
                "(local.set $h {})
                 (drop (call $http_response_body (local.get $h) (i32.const {BUF}) (i32.const {})))",
                call("http_request", &[0, request.len() as i64]),
                4 * MIB
            ),
        ),
        none(),
        10_000_000_000,
    );
    let setup = format!(
        "(local.set $h {})",
        call("http_request", &[0, request.len() as i64])
    );
    add(
        "http_response_body/buf0",
        "the length of a 4 MiB body (`buf_cap = 0`)",
        guest(
            1,
            &data(STRINGS, &request),
            &setup,
            "(drop (call $http_response_body (local.get $h) (i32.const 0) (i32.const 0)))",
        ),
        none(),
        F,
    );
    add(
        "http_response_body/4MiB-copy",
        "a 4 MiB body copied in full each time",
        guest(
            pages_for(BUF + 4 * MIB),
            &data(STRINGS, &request),
            &format!("{}{setup}", fill(BUF, 4 * MIB, 0, &[])),
            &format!(
                "(drop (call $http_response_body (local.get $h) (i32.const {BUF}) (i32.const {})))",
                4 * MIB
            ),
        ),
        none(),
        F,
    );
    add(
        "http_response_headers/copy",
        "the headers copied in full each time",
        guest(
            pages_for(BUF + 4096),
            &data(STRINGS, &request),
            &setup,
            &format!(
                "(drop (call $http_response_headers (local.get $h) (i32.const {BUF}) (i32.const 4096)))"
            ),
        ),
        none(),
        F,
    );
    add(
        "http_response_status/bad-handle",
        "a handle that does not exist (error message each time)",
        guest(
            1,
            "",
            "",
            "(drop (call $http_response_status (i32.const 12345)))",
        ),
        none(),
        F,
    );

    cases.extend(selector_cases());
    cases
}

/// The selector worst cases (the selectors' charges are theirs; the rows
/// are here so the table covers every import).
fn selector_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |name: &str, about: &'static str, wat: String, props: Properties, fuel: u64| {
        cases.push(Case {
            name: name.to_string(),
            about,
            wat,
            props,
            fuel,
        })
    };
    const F: u64 = 200_000_000;
    let select = |import: &str, prop: &str, path: &str, buf_cap: usize| {
        let strings = format!("{}{}", data(STRINGS, prop), data(STRINGS + 256, path));
        let body = drop_call(
            import,
            &[
                STRINGS as i64,
                prop.len() as i64,
                STRINGS as i64 + 256,
                path.len() as i64,
                BUF as i64,
                buf_cap as i64,
            ],
        );
        let setup = if buf_cap > 0 {
            fill(BUF, buf_cap, 0, &[])
        } else {
            String::new()
        };
        guest(pages_for(BUF + buf_cap), &strings, &setup, &body)
    };

    // 200 000 siblings, the last one selected.
    let mut xml = String::from("<r>");
    for _ in 0..200_000 {
        xml.push_str("<i>x</i>");
    }
    xml.push_str("</r>");
    add(
        "xml_select/200k-siblings-last",
        "`/r/i[199999]` among 200 000 `<i>` siblings (1.6 MB), `buf_cap = 0`",
        select("xml_select", "doc", "/r/i[199999]", 0),
        props([("doc", xml)]),
        F,
    );
    // One element whose text is 1 MiB of entity references.
    let xml = format!("<r>{}</r>", "&amp;".repeat(MIB / 5));
    add(
        "xml_select/1MiB-entities",
        "the text of an element made of 200 000 `&amp;` references, `buf_cap = 0`",
        select("xml_select", "doc", "/r", 0),
        props([("doc", xml)]),
        F,
    );

    // An object with 100 000 members, the last one selected.
    let mut json = String::from("{");
    for i in 0..100_000 {
        json.push_str(&format!("\"k{i}\":{i},"));
    }
    json.push_str("\"last\":1}");
    add(
        "json_select/100k-members-last",
        "`/last`, the last of 100 001 members, `buf_cap = 0`",
        select("json_select", "doc", "/last", 0),
        props([("doc", json)]),
        F,
    );
    let json = format!("{{\"s\":\"{}\"}}", "\\u00e9".repeat(MIB / 6));
    add(
        "json_select/1MiB-escaped-string",
        "a 1 MiB string of `\\u00e9` escapes, unescaped on each call, `buf_cap = 0`",
        select("json_select", "doc", "/s", 0),
        props([("doc", json)]),
        F,
    );
    let json = format!("{{\"a\":[{}0]}}", "0 ,\n ".repeat(MIB / 6));
    add(
        "json_select/1MiB-minify",
        "a 1 MiB array with whitespace between its items, minified on each call, `buf_cap = 0`",
        select("json_select", "doc", "/a", 0),
        props([("doc", json)]),
        F,
    );
    let json = format!("[{}0]", "0,".repeat(2 * MIB));
    add(
        "json_select/4MiB-array-index",
        "`/2097151` in an array of 2 097 152 zeros (4 MiB), `buf_cap = 0`",
        select("json_select", "doc", "/2097151", 0),
        props([("doc", json)]),
        // The first call's parse alone is 56 × 4 MiB.
        2_000_000_000,
    );
    cases
}

/// What one case measured.
#[derive(Debug, Serialize)]
struct Row {
    case: String,
    about: String,
    /// Fuel one run used.
    fuel: u64,
    /// How the run ended (`ok` or the error kind).
    ended: String,
    /// Median CPU time of one run (the thread that runs it, which also
    /// polls its HTTP requests), in milliseconds, without the setup's.
    ms: f64,
    /// Median wall-clock time of one run, in milliseconds.
    wall_ms: f64,
    ns_per_fuel: f64,
    /// `ns_per_fuel` / the plain loop's.
    ratio: f64,
}

/// CPU time of the calling thread (user and system, page faults
/// included): unlike wall-clock time, not inflated when other processes
/// take the CPU, and not counting the loopback server's work.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Runner {
    rt: tokio::runtime::Runtime,
    sandbox: Sandbox,
    _server: LoopbackServer,
}

impl Runner {
    fn new() -> (Runner, String) {
        chatflow_benches::warn_about_environment();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let http = rt
            .block_on(async { HttpClient::new(loopback_policy()) })
            .expect("HTTP client");
        let sandbox = Sandbox::new(SandboxConfig::default().with_max_concurrent_runs(4), http)
            .expect("sandbox");
        let server = LoopbackServer::start(1);
        let base = server.base_url();
        (
            Runner {
                rt,
                sandbox,
                _server: server,
            },
            base,
        )
    }

    fn load(&self, wat: &str, name: &str) -> CodeModule {
        let wasm = wat::parse_str(wat).unwrap_or_else(|e| {
            let e = e.to_string();
            panic!("{name}: {}", &e[..e.len().min(500)])
        });
        self.sandbox
            .load(&wasm)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn run(&self, module: &CodeModule, case: &Case) -> Outcome {
        let limits = Limits::maximum().with_fuel(case.fuel);
        self.rt
            .block_on(self.sandbox.run(module, &case.props, &limits))
    }
}

fn ended(outcome: &Outcome) -> String {
    match &outcome.result {
        Ok(_) => "ok".into(),
        Err(RunError::Limit { which, .. }) => format!("limit {which}"),
        Err(err) => err.kind().into(),
    }
}

/// A loaded case: its module, its setup-only twin, and its first outcome.
struct Loaded {
    case: Case,
    module: CodeModule,
    setup: CodeModule,
    first: Outcome,
}

/// Median CPU and wall time of `runs` runs of `module`.
fn time(
    runner: &Runner,
    module: &CodeModule,
    case: &Case,
    runs: usize,
) -> (Duration, Duration, u64) {
    let mut cpu = Vec::with_capacity(runs);
    let mut wall = Vec::with_capacity(runs);
    let mut fuel = 0;
    for _ in 0..runs {
        let (c, w) = (thread_cpu(), Instant::now());
        let outcome = runner.run(module, case);
        cpu.push(thread_cpu() - c);
        wall.push(w.elapsed());
        fuel = outcome.fuel_used;
    }
    cpu.sort_unstable();
    wall.sort_unstable();
    (cpu[runs / 2], wall[runs / 2], fuel)
}

fn table(runner: &Runner, cases: &[Loaded]) -> Vec<Row> {
    const RUNS: usize = 5;
    println!(
        "\n| case | worst case | fuel per run | ended | CPU ms per run | ns per fuel | × `{REFERENCE}` |"
    );
    println!("|---|---|---:|---|---:|---:|---:|");
    let mut reference = f64::NAN;
    let mut rows: Vec<Row> = Vec::new();
    for Loaded {
        case,
        module,
        setup,
        first,
    } in cases
    {
        let (cpu, wall, fuel) = time(runner, module, case, RUNS);
        // Fuel is deterministic, except for what a response's headers add.
        assert!(
            fuel.abs_diff(first.fuel_used) <= first.fuel_used / 1000,
            "{}: fuel {fuel} in one run, {} in another",
            case.name,
            first.fuel_used
        );
        let (setup_cpu, _, setup_fuel) = time(runner, setup, case, RUNS);
        let work = cpu.saturating_sub(setup_cpu);
        let ns_per_fuel = work.as_nanos() as f64 / fuel.saturating_sub(setup_fuel).max(1) as f64;
        if case.name == REFERENCE {
            reference = ns_per_fuel;
        }
        let row = Row {
            case: case.name.clone(),
            about: case.about.to_string(),
            fuel,
            ended: ended(first),
            ms: work.as_secs_f64() * 1e3,
            wall_ms: wall.as_secs_f64() * 1e3,
            ns_per_fuel,
            ratio: ns_per_fuel / reference,
        };
        println!(
            "| `{}` | {} | {} | {} | {:.1} | {:.3} | {:.2}{} |",
            row.case,
            row.about,
            row.fuel,
            row.ended,
            row.ms,
            row.ns_per_fuel,
            row.ratio,
            if row.ratio > 2.0 && !row.case.starts_with("wasm/") {
                " **over**"
            } else {
                ""
            }
        );
        rows.push(row);
    }
    rows
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let (runner, base) = Runner::new();
    let all = cases(&base);
    let selected: Vec<Case> = all
        .into_iter()
        .filter(|case| {
            case.name == REFERENCE || report::selected(&format!("fuel_rate/{}", case.name))
        })
        .collect();
    let mut loaded = Vec::new();
    for case in selected {
        let module = runner.load(&case.wat, &case.name);
        let setup = runner.load(&setup_only(&case.wat), &case.name);
        let first = runner.run(&module, &case);
        eprintln!(
            "{}: {} fuel, {} ({:?})",
            case.name,
            first.fuel_used,
            ended(&first),
            first.error()
        );
        loaded.push(Loaded {
            case,
            module,
            setup,
            first,
        });
    }
    let quick = report::quick_mode();
    if std::env::var_os(TABLE_ONLY).is_none() {
        let mut group = c.benchmark_group("fuel_rate");
        for Loaded {
            case,
            module,
            first,
            ..
        } in &loaded
        {
            group.throughput(Throughput::Elements(first.fuel_used.max(1)));
            group.bench_function(case.name.as_str(), |b| {
                b.iter_custom(|iters| {
                    let start = thread_cpu();
                    for _ in 0..iters {
                        drop(runner.run(module, case));
                    }
                    thread_cpu() - start
                })
            });
        }
        group.finish();
    }
    if !quick {
        let rows = table(&runner, &loaded);
        report::save("fuel_rate", &rows);
    }
    c.final_summary();
}
