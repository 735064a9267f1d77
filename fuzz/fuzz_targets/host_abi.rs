//! The whole host ABI driven by generated modules: wasm-smith builds a
//! module from the input that may import any ABI v1 function (and nothing
//! else) and exports `memory`, `chatflow_run` and `chatflow_abi_v1`, as
//! wasmtime's own fuzzers configure it; a real `Sandbox` loads it and runs
//! it with small limits over properties holding JSON and XML documents.
//!
//! Input: one byte of options, then the module's bytes. Option bit 0
//! clear: the bytes are wasm-smith's input; set: they are a *script*, a
//! module written here whose `chatflow_run` calls the imports in the order
//! and with the arguments the bytes choose from a palette (names,
//! selectors, requests, buffers, edge values), in a loop run once to
//! forever. wasm-smith's modules only call an import when its arguments
//! happen to be on the stack (six `i32`s for a selector), so few of them
//! reach the host; scripts reach it on every call. Bits 4-6 all set: fuel
//! metering off, the wall time alone stops the run.
//!
//! Checks, for every module:
//! - loading never panics: a generated module loads, or is refused with a
//!   typed `LoadError` (`Invalid` when it uses something the sandbox turns
//!   off, never `Abi`: the configuration only generates ABI v1 imports and
//!   exports);
//! - a run never panics and ends `Ok` or with a typed `RunError` that a
//!   guest can cause (not `Engine`, `InvalidModule`, `InvalidLimits` or
//!   `Cancelled`);
//! - a run never takes longer than max(2 × its wall time, wall time +
//!   50 ms) (`docs/abi.md`); an overshoot is run again to tell it from a
//!   stall of this process on a loaded machine, and must happen twice;
//! - what the run produced respects its limits: fuel used, linear memory,
//!   HTTP calls, messages, each property value, total bytes written, log
//!   bytes (logs past it dropped and counted), the `fail` message's cap.
//!
//! The property names: `j` (JSON), `x` (XML), `t` (text), `req` (an HTTP
//! request to a loopback URL, which the default network policy denies),
//! and `\0` (JSON), `\0\0` (XML), which a guest reaches by pointing at its
//! zero-filled memory: host data is trusted, only names a guest writes are
//! checked. Every 100 inputs a line of counts goes to stderr: modules
//! generated, loaded, runs that executed wasm (fuel used > 0, what reaches
//! `chatflow_run`: the configuration generates no start function), runs
//! that left a trace of an import (a log, a message, a write, a `fail`
//! message, an HTTP call, or an import's typed error) and the ends by
//! kind. To look closer: `HOST_ABI_SHOW_INVALID=1` prints why a module
//! was refused, `HOST_ABI_SHOW_ERRORS=1` every run's error, and
//! `HOST_ABI_DUMP=DIR` writes every module to `DIR/N.wasm`.

#![no_main]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use chatflow_engine::Properties;
use chatflow_engine::net::{HttpClient, NetPolicy};
use chatflow_engine::sandbox::{CodeModule, LoadError, Outcome, RunError, Sandbox, SandboxConfig};
use chatflow_engine::sandbox::{LimitKind, Limits};
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use wasm_smith::{InstructionKind, InstructionKinds};

/// The ABI v1 imports (`docs/abi.md`), as wasm-smith's menu.
const IMPORTS: &str = r#"(module
  (import "chatflow" "property_get" (func (param i32 i32 i32 i32) (result i32)))
  (import "chatflow" "property_set" (func (param i32 i32 i32 i32) (result i32)))
  (import "chatflow" "property_remove" (func (param i32 i32) (result i32)))
  (import "chatflow" "message_send" (func (param i32 i32) (result i32)))
  (import "chatflow" "log" (func (param i32 i32 i32)))
  (import "chatflow" "fail" (func (param i32 i32)))
  (import "chatflow" "last_error" (func (param i32 i32) (result i32)))
  (import "chatflow" "http_request" (func (param i32 i32) (result i32)))
  (import "chatflow" "http_response_status" (func (param i32) (result i32)))
  (import "chatflow" "http_response_headers" (func (param i32 i32 i32) (result i32)))
  (import "chatflow" "http_response_body" (func (param i32 i32 i32) (result i32)))
  (import "chatflow" "json_select" (func (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "chatflow" "xml_select" (func (param i32 i32 i32 i32 i32 i32) (result i32)))
)"#;

/// The exports ABI v1 requires. The memory starts at one page and may
/// grow to four; the run's limit allows two.
const EXPORTS: &str = r#"(module
  (memory (export "memory") 1 4)
  (func (export "chatflow_run") (result i32) unreachable)
  (func (export "chatflow_abi_v1"))
)"#;

const JSON: &str =
    r#"{"a":[1,{"b":"x\u00e9\"y"},[],{}],"k~/":null,"a":{"c":[true,false,1.5e3]},"s":"\ud800"}"#;
const XML: &str = "<?xml version=\"1.0\"?>\n<r xmlns:p=\"u\" id=\"1\"><a p:id=\"2\">t&amp;<![CDATA[<c>]]></a>\
                   <p:a>u</p:a><a/><b x='&#65;'>v<!--c-->w</b></r>";

const WALL_TIME: Duration = Duration::from_millis(100);

fn limits() -> Limits {
    Limits::default()
        .with_fuel(2_000_000)
        .with_memory_bytes(2 * 65536)
        .with_wall_time(WALL_TIME)
        .with_http_calls(2)
        .with_http_response_bytes(1024)
        .with_property_value_bytes(256)
        .with_written_bytes(512)
        .with_messages(3)
        .with_log_bytes(256)
}

/// `fail` keeps at most this many bytes of its message (`docs/abi.md`).
const MAX_FAIL_MESSAGE: usize = 64 * 1024;

struct State {
    metered: Sandbox,
    unmetered: Sandbox,
    props: Properties,
    runtime: tokio::runtime::Runtime,
    smith: wasm_smith::Config,
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let sandbox = |fuel_metering: bool| {
            let config = SandboxConfig::default()
                .with_fuel_metering(fuel_metering)
                .with_max_concurrent_runs(1)
                .with_module_cache_capacity(4)
                .with_epoch_tick(Duration::from_millis(5));
            let http = HttpClient::new(NetPolicy::default()).expect("the default policy");
            Sandbox::new(config, http).expect("the sandbox starts")
        };
        let props: Properties = [
            ("j", JSON),
            ("x", XML),
            ("t", "plain text"),
            ("req", r#"{"method":"GET","url":"http://127.0.0.1:9/"}"#),
            ("\0", JSON),
            ("\0\0", XML),
        ]
        .into_iter()
        .collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        State {
            metered: sandbox(true),
            unmetered: sandbox(false),
            props,
            runtime,
            smith: smith_config(),
        }
    })
}

/// wasm-smith generating only what the sandbox accepts: the ABI's imports
/// and exports, one 32-bit memory, the wasm features the sandbox enables.
fn smith_config() -> wasm_smith::Config {
    let mut config = wasm_smith::Config::default();
    config.available_imports = Some(wat::parse_str(IMPORTS).expect("the imports"));
    config.exports = Some(wat::parse_str(EXPORTS).expect("the exports"));
    config.max_imports = 13;
    // The exported memory is added on top: no other (multi-memory is off).
    config.max_memories = 0;
    config.max_tables = 1;
    config.max_table_elements = 100;
    config.max_funcs = 14;
    config.max_globals = 10;
    config.max_data_segments = 4;
    config.max_element_segments = 4;
    config.max_memory32_bytes = 4 * 65536;
    config.allow_start_export = false;
    // A call is generated only when the stack holds its arguments (up to
    // six i32s): integer, variable, memory and control instructions only,
    // so the stack is mostly i32s and calls to the imports are common.
    config.allowed_instructions = InstructionKinds::new(&[
        InstructionKind::NumericInt,
        InstructionKind::Variable,
        InstructionKind::MemoryInt,
        InstructionKind::Control,
    ]);
    config.allow_floats = false;
    config.simd_enabled = false;
    config.max_instructions = 1000;
    // Without it most bodies hit an `unreachable` before any call (traps
    // are the hostile suite's business); loops still run to the limits.
    config.disallow_traps = true;
    config.threads_enabled = false;
    config.shared_everything_threads_enabled = false;
    config.memory64_enabled = false;
    config.gc_enabled = false;
    config.exceptions_enabled = false;
    // wasm-smith's reference types include `externref`, a GC type the
    // sandbox refuses (GC types are off); `funcref` alone is not an option.
    config.reference_types_enabled = false;
    config.relaxed_simd_enabled = false;
    config.custom_page_sizes_enabled = false;
    config.wide_arithmetic_enabled = false;
    config.custom_descriptors_enabled = false;
    config
}

static GENERATED: AtomicU64 = AtomicU64::new(0);
static LOADED: AtomicU64 = AtomicU64::new(0);
static EXECUTED: AtomicU64 = AtomicU64::new(0);
static SLOW_ONCE: AtomicU64 = AtomicU64::new(0);
static SCRIPTS: AtomicU64 = AtomicU64::new(0);
static IMPORTING: AtomicU64 = AtomicU64::new(0);
static TOUCHED_HOST: AtomicU64 = AtomicU64::new(0);
static ENDS: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

fuzz_target!(|data: &[u8]| {
    let Some((&options, rest)) = data.split_first() else {
        return;
    };
    let state = state();
    let wasm = if options & 1 == 0 {
        let mut u = Unstructured::new(rest);
        let Ok(module) = wasm_smith::Module::new(state.smith.clone(), &mut u) else {
            return;
        };
        module.to_bytes()
    } else {
        SCRIPTS.fetch_add(1, Ordering::Relaxed);
        wat::parse_str(script(rest)).expect("the script module is valid WAT")
    };
    if let Some(dir) = std::env::var_os("HOST_ABI_DUMP") {
        let path =
            std::path::Path::new(&dir).join(format!("{}.wasm", GENERATED.load(Ordering::Relaxed)));
        std::fs::write(path, &wasm).expect("writing the module");
    }
    let generated = GENERATED.fetch_add(1, Ordering::Relaxed) + 1;
    let sandbox = if options & 0x70 == 0x70 {
        &state.unmetered
    } else {
        &state.metered
    };
    match sandbox.load(&wasm) {
        Ok(module) => {
            LOADED.fetch_add(1, Ordering::Relaxed);
            if !module.imports().is_empty() {
                IMPORTING.fetch_add(1, Ordering::Relaxed);
            }
            run(state, sandbox, &module);
        }
        Err(LoadError::Invalid { message }) => {
            if std::env::var_os("HOST_ABI_SHOW_INVALID").is_some() {
                eprintln!("host_abi: invalid: {message}");
            }
            count("load: invalid");
        }
        Err(other) => panic!("a generated module refused with {other:?}"),
    }
    if generated.is_multiple_of(100) {
        eprintln!(
            "host_abi: {generated} generated ({} scripts), {} loaded, {} import, {} executed wasm, \
             {} left a trace of an import, {} slow once; ends {:?}",
            SCRIPTS.load(Ordering::Relaxed),
            LOADED.load(Ordering::Relaxed),
            IMPORTING.load(Ordering::Relaxed),
            EXECUTED.load(Ordering::Relaxed),
            TOUCHED_HOST.load(Ordering::Relaxed),
            SLOW_ONCE.load(Ordering::Relaxed),
            ENDS.lock().unwrap(),
        );
    }
});

fn count(what: &'static str) {
    *ENDS.lock().unwrap().entry(what).or_default() += 1;
}

fn run(state: &State, sandbox: &Sandbox, module: &CodeModule) {
    let limits = limits();
    let run_once = || {
        let start = Instant::now();
        let outcome = state
            .runtime
            .block_on(sandbox.run(module, &state.props, &limits));
        (outcome, start.elapsed())
    };
    let slack = (2 * WALL_TIME).max(WALL_TIME + Duration::from_millis(50));
    let (mut outcome, mut elapsed) = run_once();
    if elapsed > slack || outcome.duration > slack {
        // This process may have stalled (a loaded machine): a real
        // overshoot happens again.
        SLOW_ONCE.fetch_add(1, Ordering::Relaxed);
        (outcome, elapsed) = run_once();
        assert!(
            elapsed <= slack && outcome.duration <= slack,
            "a run took {elapsed:?} (its own count {:?}) twice, over the {slack:?} bound: {:?}",
            outcome.duration,
            outcome.result.as_ref().map(|_| ()),
        );
    }
    if outcome.fuel_used > 0 || !sandbox.config().fuel_metering {
        EXECUTED.fetch_add(1, Ordering::Relaxed);
    }
    let output = outcome.output();
    let traced = !outcome.logs.is_empty()
        || outcome.logs_dropped > 0
        || outcome.fail_message.is_some()
        || outcome.http_calls > 0
        || output.is_some_and(|o| !o.messages.is_empty() || !o.changes.is_empty())
        || matches!(
            outcome.error(),
            Some(
                RunError::GuestMemory { .. } | RunError::HttpDenied { .. } | RunError::Limit { .. }
            )
        );
    if traced {
        TOUCHED_HOST.fetch_add(1, Ordering::Relaxed);
    }
    check(&outcome, &limits, sandbox.config().fuel_metering);
}

fn check(outcome: &Outcome, limits: &Limits, metered: bool) {
    if metered {
        assert!(
            outcome.fuel_used <= limits.fuel,
            "{} fuel used of {}",
            outcome.fuel_used,
            limits.fuel
        );
    }
    assert!(
        outcome.memory_bytes <= limits.memory_bytes,
        "{} bytes of memory, limit {}",
        outcome.memory_bytes,
        limits.memory_bytes
    );
    // `http_calls` counts every `http_request` call, the refused one that
    // ends the run too (`engine/tests/all/sandbox/http.rs`).
    assert!(
        outcome.http_calls <= limits.http_calls
            || (outcome.http_calls == limits.http_calls + 1
                && matches!(
                    outcome.error(),
                    Some(RunError::Limit {
                        which: LimitKind::HttpCalls,
                        ..
                    })
                )),
        "{} HTTP calls, limit {}: {:?}",
        outcome.http_calls,
        limits.http_calls,
        outcome.error()
    );
    let log_bytes: usize = outcome.logs.iter().map(|l| l.message.len()).sum();
    assert!(
        log_bytes as u64 <= limits.log_bytes,
        "{log_bytes} bytes of logs kept, limit {} ({} dropped)",
        limits.log_bytes,
        outcome.logs_dropped
    );
    if let Some(message) = &outcome.fail_message {
        assert!(
            message.len() <= MAX_FAIL_MESSAGE,
            "a {}-byte fail message",
            message.len()
        );
    }
    match &outcome.result {
        Ok(output) => {
            count("ok");
            assert!(output.messages.len() <= limits.messages as usize);
            let mut written: u64 = output.messages.iter().map(|m| m.len() as u64).sum();
            for (name, value) in output.changes.iter() {
                written += name.len() as u64;
                if let Some(value) = value {
                    assert!(
                        value.len() as u64 <= limits.property_value_bytes,
                        "a {}-byte value for {name:?}, limit {}",
                        value.len(),
                        limits.property_value_bytes
                    );
                    written += value.len() as u64;
                }
            }
            assert!(
                written <= limits.written_bytes,
                "{written} bytes written, limit {}",
                limits.written_bytes
            );
        }
        Err(error) => {
            count(error.kind());
            if std::env::var_os("HOST_ABI_SHOW_ERRORS").is_some() {
                eprintln!("host_abi: error: {error}");
            }
            match error {
                RunError::Engine { .. }
                | RunError::InvalidModule(_)
                | RunError::InvalidLimits(_)
                | RunError::Cancelled => panic!("a run ended with {error:?}"),
                _ => {}
            }
        }
    }
}

/// What a script's pointer/length arguments point at: property names,
/// selectors, values and requests, good and bad, placed one after the
/// other from address 0; results go to a buffer after them.
const PALETTE: &[&str] = &[
    "j",
    "x",
    "t",
    "req",
    "out",
    "",
    "/a",
    "/a/1/b",
    "/a/0",
    "/k~0~1",
    "/s",
    "/~2",
    "/r",
    "/r/a[2]",
    "/r/p:a",
    "/r/@id",
    "/r/a@p:id",
    "/r/b@x",
    "/r/b",
    "r",
    "hello",
    "{bad",
    "\u{e9}\u{2615}",
    " lead",
    "a{b",
    r#"{"method":"GET","url":"http://127.0.0.1:9/"}"#,
    r#"{"method":"POST","url":"http://example.com/","headers":{"a":"b"},"body":"x"}"#,
    r#"{"method":"GET","url":"file:///etc/passwd"}"#,
];

/// Where the result buffer starts, and the capacities a script uses.
const BUFFER: i64 = 8192;
const CAPS: &[i64] = &[0, 1, 7, 64, 1024, 40000];

/// Raw argument values: lengths and pointers at and past the edges.
const RAW: &[i64] = &[
    0,
    1,
    2,
    3,
    -1,
    255,
    65535,
    65536,
    131072,
    i32::MAX as i64,
    i32::MIN as i64,
];

/// The imports as a script calls them: name, arguments (`p` a pointer and
/// length pair, `v` one value), and whether it returns a value.
const CALLS: &[(&str, &str, bool)] = &[
    ("property_get", "pp", true),
    ("property_set", "pp", true),
    ("property_remove", "p", true),
    ("message_send", "p", true),
    ("log", "vp", false),
    ("fail", "p", false),
    ("last_error", "p", true),
    ("http_request", "p", true),
    ("http_response_status", "v", true),
    ("http_response_headers", "vp", true),
    ("http_response_body", "vp", true),
    ("json_select", "ppp", true),
    ("xml_select", "ppp", true),
];

/// A module whose `chatflow_run` calls the imports in the order and with
/// the arguments the bytes choose, from the palette above (long values
/// too: 300 and 600 bytes, past the run's value and written limits), the
/// whole in a loop run once, 100 times, 100 000 times or forever.
fn script(bytes: &[u8]) -> String {
    let mut bytes = bytes.iter().copied();
    let mut palette: Vec<String> = PALETTE.iter().map(|s| s.to_string()).collect();
    palette.push("v".repeat(300));
    palette.push("w".repeat(600));
    let mut data = String::new();
    let mut entries = Vec::new();
    let mut at = 0usize;
    for entry in &palette {
        entries.push((at as i64, entry.len() as i64));
        for b in entry.bytes() {
            data.push_str(&format!("\\{b:02x}"));
        }
        at += entry.len();
    }
    // A few bytes of invalid UTF-8.
    entries.push((at as i64, 3));
    data.push_str("\\ff\\fe\\80");

    let mut next = move || bytes.next().unwrap_or(0) as usize;
    let mut body = String::new();
    let calls = 1 + next() % 24;
    for _ in 0..calls {
        let (name, args, returns) = CALLS[next() % CALLS.len()];
        let mut values = Vec::new();
        for arg in args.chars() {
            let choice = next();
            match arg {
                'v' => values.push(RAW[choice % RAW.len()].min(if choice & 0x80 == 0 {
                    3
                } else {
                    i64::MAX
                })),
                _ => match choice % 4 {
                    0 | 1 => {
                        let (ptr, len) = entries[next() % entries.len()];
                        values.extend([ptr, len]);
                    }
                    2 => values.extend([BUFFER + (next() % 8) as i64, CAPS[next() % CAPS.len()]]),
                    _ => values.extend([RAW[next() % RAW.len()], RAW[next() % RAW.len()]]),
                },
            }
        }
        let args: String = values.iter().map(|v| format!(" (i32.const {v})")).collect();
        body.push_str(&format!("      (call ${name}{args})\n"));
        if returns {
            body.push_str("      drop\n");
        }
        if next() % 16 == 0 {
            body.push_str("      (drop (memory.grow (i32.const 1)))\n");
        }
    }
    let repeat: i64 = match next() % 8 {
        0 => 100,
        1 => 100_000,
        2 => -1,
        _ => 1,
    };
    let result = RAW[next() % 4] as i32;
    let imports: String = CALLS
        .iter()
        .map(|(name, args, returns)| {
            let params = args
                .chars()
                .map(|a| if a == 'p' { 2 } else { 1 })
                .sum::<usize>();
            let params = " i32".repeat(params);
            let result = if *returns { " (result i32)" } else { "" };
            format!("  (import \"chatflow\" \"{name}\" (func ${name} (param{params}){result}))\n")
        })
        .collect();
    format!(
        r#"(module
{imports}  (memory (export "memory") 1 4)
  (data (i32.const 0) "{data}")
  (func (export "chatflow_abi_v1"))
  (func (export "chatflow_run") (result i32) (local $n i32)
    (local.set $n (i32.const {repeat}))
    (loop $again
{body}      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $again (local.get $n)))
    (i32.const {result})))
"#
    )
}
