//! Host work is charged in fuel (`docs/abi.md`, "Fuel"): each test runs two
//! guests that differ only in a length or in the input's content (the same
//! instructions, so the same wasm fuel) and checks that the difference in
//! `fuel_used` is exactly the table's charge; and that a charge comes
//! before the work, so a run without the fuel for it never does it.

use chatflow_engine::Properties;
use chatflow_engine::sandbox::{Limits, Outcome, RunError};

use super::{failed, load, ok, sandbox};

/// `fuel_used` of a run of `body` (a whole `chatflow_run` and its data),
/// which must succeed.
async fn fuel(body: &str, props: &Properties) -> u64 {
    let sb = sandbox();
    let module = load(&sb, body);
    let outcome = sb.run(&module, props, &sb.default_limits()).await;
    let used = outcome.fuel_used;
    ok(outcome);
    used
}

/// A `chatflow_run` that calls `call` once (after filling 2 000 bytes at
/// 1 000 with `byte`) and returns 0.
fn once(byte: u8, call: &str) -> String {
    format!(
        r#"(data (i32.const 0) "name")
           (func (export "chatflow_run") (result i32)
             (memory.fill (i32.const 1000) (i32.const {byte}) (i32.const 2000))
             {call}
             (i32.const 0))"#
    )
}

#[tokio::test]
async fn a_log_line_costs_its_scan_and_its_keeping() {
    let none = Properties::new();
    let short = fuel(
        &once(
            b'a',
            "(call $log (i32.const 1) (i32.const 1000) (i32.const 0))",
        ),
        &none,
    )
    .await;
    let long = fuel(
        &once(
            b'a',
            "(call $log (i32.const 1) (i32.const 1000) (i32.const 1000))",
        ),
        &none,
    )
    .await;
    // 2 per byte validated, 2 per byte kept.
    assert_eq!(long - short, 4 * 1000);
    // The same line with bad bytes: 16 more per byte to replace them.
    let bad = fuel(
        &once(
            255,
            "(call $log (i32.const 1) (i32.const 1000) (i32.const 1000))",
        ),
        &none,
    )
    .await;
    assert_eq!(bad - long, 16 * 1000);
}

#[tokio::test]
async fn a_property_write_costs_its_scan_and_its_keeping() {
    let none = Properties::new();
    let call = |len: u32| {
        once(
            b'a',
            &format!(
                "(drop (call $property_set (i32.const 0) (i32.const 4) (i32.const 1000) (i32.const {len})))"
            ),
        )
    };
    let short = fuel(&call(0), &none).await;
    let long = fuel(&call(2000), &none).await;
    assert_eq!(long - short, 4 * 2000);
}

#[tokio::test]
async fn a_copy_to_the_guest_costs_one_per_8_bytes() {
    let props: Properties = [("name", "v".repeat(800))].into_iter().collect();
    let call = |cap: u32| {
        once(
            b'a',
            &format!(
                "(drop (call $property_get (i32.const 0) (i32.const 4) (i32.const 4000) (i32.const {cap})))"
            ),
        )
    };
    let length_only = fuel(&call(0), &props).await;
    let copied = fuel(&call(800), &props).await;
    assert_eq!(copied - length_only, 100);
}

#[tokio::test]
async fn a_lookup_costs_more_among_more_properties() {
    let call = once(
        b'a',
        "(drop (call $property_get (i32.const 0) (i32.const 4) (i32.const 0) (i32.const 0)))",
    );
    let few: Properties = [("name", "v")].into_iter().collect();
    let many: Properties = (0..1000)
        .map(|i| (format!("p{i}"), "v".to_string()))
        .chain([("name".to_string(), "v".to_string())])
        .collect();
    // (64 + 4 / 4) per level: 2 levels for 1 property, 10 for 1 001.
    assert_eq!(fuel(&call, &many).await - fuel(&call, &few).await, 65 * 8);
}

#[tokio::test]
async fn an_error_costs_its_message() {
    let call = once(
        b'a',
        "(drop (call $property_get (i32.const 0) (i32.const 4) (i32.const 0) (i32.const 0)))",
    );
    let set: Properties = [("name", "")].into_iter().collect();
    let unset: Properties = [("other", "")].into_iter().collect();
    assert_eq!(fuel(&call, &unset).await - fuel(&call, &set).await, 1_000);
}

#[tokio::test]
async fn validation_is_paid_before_it_runs() {
    // A 1 MiB value costs 2 MiB of fuel to validate, more than the run
    // has: it ends out of fuel without having written anything, and the
    // same run with the fuel succeeds.
    let sb = sandbox();
    let body = r#"(data (i32.const 0) "name")
        (func (export "chatflow_run") (result i32)
          (drop (call $property_set (i32.const 0) (i32.const 4) (i32.const 0) (i32.const 1048576)))
          (i32.const 0))"#;
    let wasm = wat::parse_str(format!(
        r#"(module {} (memory (export "memory") 17) (func (export "chatflow_abi_v1")) {body})"#,
        super::IMPORTS
    ))
    .unwrap();
    let module = sb.load(&wasm).unwrap();
    let props = Properties::new();
    let short = sb.default_limits().with_fuel(2_000_000);
    let outcome: Outcome = sb.run(&module, &props, &short).await;
    match failed(&sb, outcome).await {
        RunError::FuelExhausted { limit: 2_000_000 } => {}
        other => panic!("expected FuelExhausted, got {other:?}"),
    }
    let enough = sb.default_limits().with_fuel(6_000_000);
    let output = ok(sb.run(&module, &props, &enough).await);
    assert_eq!(
        output.changes.get("name").flatten().map(str::len),
        Some(1 << 20)
    );
}

#[tokio::test]
async fn a_request_costs_its_parse_and_its_copy() {
    // Malformed requests (spaces: nothing is sent), copied and parsed at
    // 10 fuel a byte: a second 1 000 bytes costs 10 000.
    async fn http_fuel(len: u32) -> u64 {
        let sb = sandbox();
        let wasm = wat::parse_str(format!(
            r#"(module {}
                 (import "chatflow" "http_request" (func $http_request (param i32 i32) (result i32)))
                 (memory (export "memory") 1)
                 (func (export "chatflow_abi_v1"))
                 {})"#,
            super::IMPORTS,
            once(b' ', &format!("(drop (call $http_request (i32.const 1000) (i32.const {len})))"))
        ))
        .unwrap();
        let module = sb.load(&wasm).unwrap();
        let outcome = sb
            .run(&module, &Properties::new(), &Limits::default())
            .await;
        let used = outcome.fuel_used;
        assert_eq!(outcome.http_calls, 1);
        ok(outcome);
        used
    }
    assert_eq!(http_fuel(2000).await - http_fuel(1000).await, 10 * 1000);
}
