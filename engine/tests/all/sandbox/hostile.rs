//! Hostile modules: each ends with its specific error, commits nothing, and
//! leaves the sandbox healthy.

use std::time::{Duration, Instant};

use chatflow_engine::Properties;
use chatflow_engine::sandbox::{
    CancelToken, GuestMemoryError, LimitKind, Limits, LogLevel, RunError,
};

use super::{IMPORTS, failed, failed_limit, load, ok, sandbox};

const LOOP: &str = r#"
  (func (export "chatflow_run") (result i32)
    (loop $l (br $l))
    (i32.const 0))
"#;

#[tokio::test]
async fn infinite_loop_runs_out_of_fuel() {
    let sb = sandbox();
    let module = load(&sb, LOOP);
    let limits = sb.default_limits().with_fuel(1_000_000);
    let outcome = sb.run(&module, &Properties::new(), &limits).await;
    assert_eq!(outcome.fuel_used, 1_000_000);
    let err = failed(&sb, outcome).await;
    assert!(
        matches!(err, RunError::FuelExhausted { limit: 1_000_000 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn infinite_loop_with_huge_fuel_times_out() {
    let sb = sandbox();
    let module = load(&sb, LOOP);
    let limits = sb
        .default_limits()
        .with_fuel(Limits::maximum().fuel)
        .with_wall_time(Duration::from_millis(100));
    let start = Instant::now();
    let outcome = sb.run(&module, &Properties::new(), &limits).await;
    let took = start.elapsed();
    let err = failed(&sb, outcome).await;
    assert!(
        matches!(err, RunError::Timeout { limit } if limit == Duration::from_millis(100)),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(2), "timed out after {took:?}");
}

#[tokio::test]
async fn start_function_runs_under_the_limits() {
    let sb = sandbox();
    let module = load(
        &sb,
        r#"
        (func $start (loop $l (br $l)))
        (start $start)
        (func (export "chatflow_run") (result i32) (i32.const 0))
        "#,
    );
    let limits = sb.default_limits().with_fuel(10_000);
    let err = failed(&sb, sb.run(&module, &Properties::new(), &limits).await).await;
    assert!(matches!(err, RunError::FuelExhausted { .. }), "{err:?}");
}

#[tokio::test]
async fn memory_grow_bomb_hits_the_memory_limit() {
    let sb = sandbox();
    // Grows one page at a time until refused, then aborts (as Rust's
    // allocation failure handler does).
    let module = load(
        &sb,
        r#"
        (func (export "chatflow_run") (result i32)
          (loop $l
            (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
          unreachable)
        "#,
    );
    let limits = sb.default_limits().with_memory_bytes(2 << 20);
    let err = failed(&sb, sb.run(&module, &Properties::new(), &limits).await).await;
    assert!(
        matches!(err, RunError::MemoryLimit { limit } if limit == 2 << 20),
        "{err:?}"
    );
}

#[tokio::test]
async fn refused_grow_returns_minus_one_to_the_guest() {
    let sb = sandbox();
    // Asks for 64 MiB at once; a guest that copes with -1 succeeds.
    let module = load(
        &sb,
        r#"
        (func (export "chatflow_run") (result i32)
          (if (i32.ne (memory.grow (i32.const 1024)) (i32.const -1))
            (then (return (i32.const 1))))
          (i32.const 0))
        "#,
    );
    let limits = sb.default_limits().with_memory_bytes(1 << 20);
    ok(sb.run(&module, &Properties::new(), &limits).await);
}

#[tokio::test]
async fn initial_memory_over_the_run_limit() {
    let sb = sandbox();
    let wasm = wat::parse_str(format!(
        r#"(module {IMPORTS}
          (memory (export "memory") 64)
          (func (export "chatflow_abi_v1"))
          (func (export "chatflow_run") (result i32) (i32.const 0)))"#
    ))
    .unwrap();
    let module = sb.load(&wasm).unwrap();
    let limits = sb.default_limits().with_memory_bytes(1 << 20);
    let err = failed(&sb, sb.run(&module, &Properties::new(), &limits).await).await;
    assert!(matches!(err, RunError::MemoryLimit { .. }), "{err:?}");
}

#[tokio::test]
async fn deep_recursion_overflows_the_stack() {
    let sb = sandbox();
    let module = load(
        &sb,
        r#"
        (func $down (param i32) (result i32)
          (i32.add (call $down (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
        (func (export "chatflow_run") (result i32)
          (drop (call $down (i32.const 0)))
          (i32.const 0))
        "#,
    );
    let err = failed(
        &sb,
        sb.run(&module, &Properties::new(), &sb.default_limits())
            .await,
    )
    .await;
    assert!(matches!(err, RunError::StackOverflow), "{err:?}");
}

/// Calls to every import with one pointer/length pair out of bounds.
#[tokio::test]
async fn out_of_bounds_pointers_to_every_import() {
    let sb = sandbox();
    // Memory is one page (65536 bytes); 65530+100 is past its end.
    let cases: &[(&str, &str)] = &[
        (
            "property_get",
            "(drop (call $property_get (i32.const 65530) (i32.const 100) (i32.const 0) (i32.const 0)))",
        ),
        (
            "property_get",
            "(drop (call $property_get (i32.const 0) (i32.const 1) (i32.const 65530) (i32.const 100)))",
        ),
        (
            "property_set",
            "(drop (call $property_set (i32.const 65530) (i32.const 100) (i32.const 0) (i32.const 1)))",
        ),
        (
            "property_set",
            "(drop (call $property_set (i32.const 0) (i32.const 1) (i32.const 65530) (i32.const 100)))",
        ),
        (
            "property_remove",
            "(drop (call $property_remove (i32.const 65530) (i32.const 100)))",
        ),
        (
            "message_send",
            "(drop (call $message_send (i32.const 65530) (i32.const 100)))",
        ),
        (
            "log",
            "(call $log (i32.const 1) (i32.const 65530) (i32.const 100))",
        ),
        ("fail", "(call $fail (i32.const 65530) (i32.const 100))"),
        (
            "last_error",
            "(drop (call $last_error (i32.const 65530) (i32.const 100)))",
        ),
    ];
    for (import, call) in cases {
        let module = load(
            &sb,
            &format!(r#"(func (export "chatflow_run") (result i32) {call} (i32.const 0))"#),
        );
        let err = failed(
            &sb,
            sb.run(&module, &Properties::new(), &sb.default_limits())
                .await,
        )
        .await;
        match &err {
            RunError::GuestMemory {
                import: got,
                source:
                    GuestMemoryError::OutOfBounds {
                        ptr: 65530,
                        len: 100,
                        memory_size: 65536,
                        ..
                    },
            } if got == import => {}
            other => panic!("{import}: {other:?}"),
        }
        assert!(err.to_string().starts_with(import), "{err}");
    }
}

#[tokio::test]
async fn pointer_plus_length_overflowing_32_bits() {
    let sb = sandbox();
    let module = load(
        &sb,
        r#"(func (export "chatflow_run") (result i32)
             (drop (call $message_send (i32.const -16) (i32.const 32)))
             (i32.const 0))"#,
    );
    let err = failed(
        &sb,
        sb.run(&module, &Properties::new(), &sb.default_limits())
            .await,
    )
    .await;
    assert!(
        matches!(
            err,
            RunError::GuestMemory {
                import: "message_send",
                source: GuestMemoryError::Overflow {
                    ptr: 0xffff_fff0,
                    len: 32,
                    ..
                }
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn oversized_property_value() {
    let sb = sandbox();
    // A 1000-byte value against a 999-byte limit.
    let module = load(
        &sb,
        r#"(data (i32.const 0) "big")
           (func (export "chatflow_run") (result i32)
             (drop (call $property_set (i32.const 0) (i32.const 3) (i32.const 100) (i32.const 1000)))
             (i32.const 0))"#,
    );
    let limits = sb.default_limits().with_property_value_bytes(999);
    failed_limit(
        &sb,
        sb.run(&module, &Properties::new(), &limits).await,
        LimitKind::PropertyValueBytes,
        999,
    )
    .await;
}

#[tokio::test]
async fn total_written_bytes() {
    let sb = sandbox();
    // Each write is 1 + 600 bytes; the second takes the run over 1000.
    let module = load(
        &sb,
        r#"(data (i32.const 0) "ab")
           (func (export "chatflow_run") (result i32)
             (drop (call $property_set (i32.const 0) (i32.const 1) (i32.const 100) (i32.const 600)))
             (drop (call $property_set (i32.const 1) (i32.const 1) (i32.const 100) (i32.const 600)))
             (i32.const 0))"#,
    );
    let limits = sb.default_limits().with_written_bytes(1000);
    failed_limit(
        &sb,
        sb.run(&module, &Properties::new(), &limits).await,
        LimitKind::WrittenBytes,
        1000,
    )
    .await;
}

#[tokio::test]
async fn too_many_messages() {
    let sb = sandbox();
    let module = load(
        &sb,
        r#"(data (i32.const 0) "hi")
           (func (export "chatflow_run") (result i32)
             (local $i i32)
             (loop $l
               (drop (call $message_send (i32.const 0) (i32.const 2)))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 4))))
             (i32.const 0))"#,
    );
    let limits = sb.default_limits().with_messages(3);
    failed_limit(
        &sb,
        sb.run(&module, &Properties::new(), &limits).await,
        LimitKind::Messages,
        3,
    )
    .await;

    let limits = sb.default_limits().with_messages(4);
    let output = ok(sb.run(&module, &Properties::new(), &limits).await);
    assert_eq!(output.messages, vec!["hi"; 4]);
}

/// Found by the `host_abi` fuzz target: a line of invalid UTF-8 is kept
/// with U+FFFD for each bad byte (three bytes for one), so counting the
/// guest's bytes kept up to three times the log limit.
#[tokio::test]
async fn invalid_utf8_logs_count_what_is_kept() {
    let sb = sandbox();
    let module = load(
        &sb,
        r#"(data (i32.const 0) "\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff")
           (func (export "chatflow_run") (result i32)
             (local $i i32)
             (loop $l
               (call $log (i32.const 1) (i32.const 0) (i32.const 10))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 10))))
             (i32.const 0))"#,
    );
    let limits = sb.default_limits().with_log_bytes(300);
    let outcome = sb.run(&module, &Properties::new(), &limits).await;
    // Each line keeps ten U+FFFD, 30 bytes, plus the entry's 64: three fit
    // in 300 (counting the guest's 10 bytes instead, four would).
    assert_eq!(outcome.logs.len(), 3);
    assert_eq!(outcome.logs_dropped, 7);
    assert_eq!(outcome.logs[0].message, "\u{fffd}".repeat(10));
    let kept: usize = outcome.logs.iter().map(|l| l.message.len() + 64).sum();
    assert!(kept <= 300, "{kept} bytes of logs kept");
}

#[tokio::test]
async fn log_flood_is_dropped_and_counted() {
    let sb = sandbox();
    let module = load(
        &sb,
        r#"(data (i32.const 0) "0123456789")
           (func (export "chatflow_run") (result i32)
             (local $i i32)
             (loop $l
               (call $log (i32.const 7) (i32.const 0) (i32.const 10))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 10000))))
             (i32.const 0))"#,
    );
    // Each 10-byte line takes 10 + 64 bytes of the budget.
    let limits = sb.default_limits().with_log_bytes(740);
    let outcome = sb.run(&module, &Properties::new(), &limits).await;
    assert_eq!(outcome.logs.len(), 10);
    assert_eq!(outcome.logs_dropped, 9_990);
    assert_eq!(
        outcome.logs[0].level,
        LogLevel::Error,
        "level 7 is clamped to error"
    );
    assert_eq!(outcome.logs[0].message, "0123456789");
    ok(outcome);
}

#[tokio::test]
async fn set_then_trap_commits_nothing() {
    let sb = sandbox();
    let module = load(
        &sb,
        r#"(data (i32.const 0) "keyvalue")
           (func $run_block (export "chatflow_run") (result i32)
             (drop (call $property_set (i32.const 0) (i32.const 3) (i32.const 3) (i32.const 5)))
             (drop (call $message_send (i32.const 3) (i32.const 5)))
             (drop (i32.div_u (i32.const 1) (i32.const 0)))
             (i32.const 0))"#,
    );
    let outcome = sb
        .run(&module, &Properties::new(), &sb.default_limits())
        .await;
    let err = failed(&sb, outcome).await;
    match err {
        RunError::Trap { message, backtrace } => {
            assert!(message.contains("divide by zero"), "{message}");
            let backtrace = backtrace.expect("a wasm backtrace");
            assert!(
                backtrace.contains("run_block"),
                "backtrace names the function: {backtrace}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn fail_then_unreachable_is_a_guest_failure() {
    let sb = sandbox();
    let module = load(
        &sb,
        r#"(data (i32.const 0) "panicked at src/lib.rs:3:5: boom")
           (func (export "chatflow_run") (result i32)
             (call $fail (i32.const 0) (i32.const 32))
             unreachable)"#,
    );
    let outcome = sb
        .run(&module, &Properties::new(), &sb.default_limits())
        .await;
    assert_eq!(
        outcome.fail_message.as_deref(),
        Some("panicked at src/lib.rs:3:5: boom")
    );
    let err = failed(&sb, outcome).await;
    assert!(
        matches!(&err, RunError::GuestFailed { message, code: None } if message == "panicked at src/lib.rs:3:5: boom"),
        "{err:?}"
    );
}

#[tokio::test]
async fn fail_then_other_trap_stays_a_trap() {
    let sb = sandbox();
    let module = load(
        &sb,
        r#"(data (i32.const 0) "about to divide")
           (func (export "chatflow_run") (result i32)
             (call $fail (i32.const 0) (i32.const 15))
             (i32.div_s (i32.const 1) (i32.const 0)))"#,
    );
    let outcome = sb
        .run(&module, &Properties::new(), &sb.default_limits())
        .await;
    assert_eq!(outcome.fail_message.as_deref(), Some("about to divide"));
    let err = failed(&sb, outcome).await;
    assert!(matches!(err, RunError::Trap { .. }), "{err:?}");
}

#[tokio::test]
async fn non_zero_return() {
    let sb = sandbox();
    let module = load(
        &sb,
        r#"(func (export "chatflow_run") (result i32) (i32.const 7))"#,
    );
    let err = failed(
        &sb,
        sb.run(&module, &Properties::new(), &sb.default_limits())
            .await,
    )
    .await;
    assert!(
        matches!(&err, RunError::GuestFailed { message, code: Some(7) } if message == "chatflow_run returned 7"),
        "{err:?}"
    );

    let module = load(
        &sb,
        r#"(data (i32.const 0) "order not found")
           (func (export "chatflow_run") (result i32)
             (call $fail (i32.const 0) (i32.const 15))
             (i32.const 1))"#,
    );
    let err = failed(
        &sb,
        sb.run(&module, &Properties::new(), &sb.default_limits())
            .await,
    )
    .await;
    assert!(
        matches!(&err, RunError::GuestFailed { message, code: Some(1) } if message == "order not found"),
        "{err:?}"
    );
}

#[tokio::test]
async fn host_work_is_charged_and_can_exhaust_fuel() {
    let sb = sandbox();
    // 1000 calls cost at least 100 000 fuel in host charges alone.
    let module = load(
        &sb,
        r#"(func (export "chatflow_run") (result i32)
             (local $i i32)
             (loop $l
               (drop (call $last_error (i32.const 0) (i32.const 0)))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
             (i32.const 0))"#,
    );
    let outcome = sb
        .run(&module, &Properties::new(), &sb.default_limits())
        .await;
    assert!(
        outcome.fuel_used >= 100_000,
        "fuel used {}",
        outcome.fuel_used
    );
    ok(outcome);

    let limits = sb.default_limits().with_fuel(50_000);
    let err = failed(&sb, sb.run(&module, &Properties::new(), &limits).await).await;
    assert!(
        matches!(err, RunError::FuelExhausted { limit: 50_000 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn cancel_a_tight_loop() {
    let sb = sandbox();
    let module = load(&sb, LOOP);
    let limits = sb
        .default_limits()
        .with_fuel(Limits::maximum().fuel)
        .with_wall_time(Duration::from_secs(30));
    let cancel = CancelToken::new();
    let canceller = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            cancel.cancel();
        })
    };
    let start = Instant::now();
    let outcome = sb
        .run_with_cancel(&module, &Properties::new(), &limits, &cancel)
        .await;
    let took = start.elapsed();
    canceller.await.unwrap();
    let err = failed(&sb, outcome).await;
    assert!(matches!(err, RunError::Cancelled), "{err:?}");
    assert!(took < Duration::from_secs(2), "cancelled after {took:?}");
}

#[tokio::test]
async fn dropping_the_future_stops_the_run() {
    let sb = sandbox();
    let module = load(&sb, LOOP);
    let limits = sb
        .default_limits()
        .with_fuel(Limits::maximum().fuel)
        .with_wall_time(Duration::from_secs(30));
    let start = Instant::now();
    let props = Properties::new();
    let run = sb.run(&module, &props, &limits);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), run)
            .await
            .is_err()
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    // The pool slot came back: every slot can still be used.
    let healthy = load(&sb, super::HEALTHY);
    for _ in 0..20 {
        ok(sb
            .run(&healthy, &Properties::new(), &sb.default_limits())
            .await);
    }
}

#[tokio::test]
async fn a_thousand_runs_reuse_pool_slots() {
    // A pool of 8 slots: 1000 runs in a row must give them back every time.
    let sb = super::sandbox_with(chatflow_engine::sandbox::SandboxConfig::default());
    let wasm = wat::parse_str(super::wat(super::HEALTHY)).unwrap();
    let module = sb.load(&wasm).unwrap();
    for _ in 0..1000 {
        ok(sb
            .run(&module, &Properties::new(), &sb.default_limits())
            .await);
    }
    let again = sb.load(&wasm).unwrap();
    assert!(chatflow_engine::sandbox::CodeModule::ptr_eq(
        &module, &again
    ));
    let stats = sb.cache_stats();
    assert_eq!(stats.compiles, 1, "{stats:?}");
}

#[tokio::test]
async fn without_fuel_metering_a_loop_ends_on_wall_time() {
    let sb = super::sandbox_with(
        chatflow_engine::sandbox::SandboxConfig::default()
            .with_fuel_metering(false)
            .with_zero_fiber_stacks(true),
    );
    let module = load(&sb, LOOP);
    let limits = sb
        .default_limits()
        .with_wall_time(Duration::from_millis(50));
    let outcome = sb.run(&module, &Properties::new(), &limits).await;
    assert_eq!(outcome.fuel_used, 0);
    let err = failed(&sb, outcome).await;
    assert!(matches!(err, RunError::Timeout { .. }), "{err:?}");
}
