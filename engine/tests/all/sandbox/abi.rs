//! The ABI v1 imports doing their normal job.

use chatflow_engine::Properties;
use chatflow_engine::sandbox::{LogLevel, RunError};

use super::{failed, load, ok, sandbox};

fn props(pairs: &[(&str, &str)]) -> Properties {
    pairs.iter().copied().collect()
}

#[tokio::test]
async fn property_get_reads_the_snapshot_and_copies_to_a_property() {
    let sb = sandbox();
    // Reads `in` into 1024.., writes it to `out`.
    let module = load(
        &sb,
        r#"(data (i32.const 0) "inout")
           (func (export "chatflow_run") (result i32)
             (local $n i32)
             (local.set $n (call $property_get (i32.const 0) (i32.const 2) (i32.const 1024) (i32.const 4096)))
             (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (local.get $n))))
             (drop (call $property_set (i32.const 2) (i32.const 3) (i32.const 1024) (local.get $n)))
             (i32.const 0))"#,
    );
    let snapshot = props(&[("in", "Zoë ✓")]);
    let output = ok(sb.run(&module, &snapshot, &sb.default_limits()).await);
    assert_eq!(output.changes.get("out"), Some(Some("Zoë ✓")));
    assert_eq!(snapshot.get("out"), None, "the snapshot is untouched");

    let err = failed(
        &sb,
        sb.run(&module, &Properties::new(), &sb.default_limits())
            .await,
    )
    .await;
    assert!(
        matches!(err, RunError::GuestFailed { code: Some(-1), .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn length_protocol_buffer_too_small_then_retry() {
    let sb = sandbox();
    // First call with a 4-byte buffer: returns the full length 11 and copies
    // "hell". The guest stores the partial copy in `partial`, then retries
    // with the returned length and stores the whole value in `full`.
    let module = load(
        &sb,
        r#"(data (i32.const 0) "inpartialfull")
           (func (export "chatflow_run") (result i32)
             (local $n i32)
             (local.set $n (call $property_get (i32.const 0) (i32.const 2) (i32.const 1024) (i32.const 4)))
             (if (i32.ne (local.get $n) (i32.const 11)) (then (return (i32.const 100))))
             (drop (call $property_set (i32.const 2) (i32.const 7) (i32.const 1024) (i32.const 4)))
             (if (i32.ne (call $property_get (i32.const 0) (i32.const 2) (i32.const 2048) (local.get $n)) (i32.const 11))
               (then (return (i32.const 101))))
             (drop (call $property_set (i32.const 9) (i32.const 4) (i32.const 2048) (local.get $n)))
             ;; buf_cap 0 asks for the length only.
             (call $property_get (i32.const 0) (i32.const 2) (i32.const 0) (i32.const 0))
             (i32.sub (i32.const 11)))"#,
    );
    let output = ok(sb
        .run(
            &module,
            &props(&[("in", "hello world")]),
            &sb.default_limits(),
        )
        .await);
    assert_eq!(output.changes.get("partial"), Some(Some("hell")));
    assert_eq!(output.changes.get("full"), Some(Some("hello world")));
}

#[tokio::test]
async fn last_error_after_a_failed_call() {
    let sb = sandbox();
    // property_get of a missing property, then last_error into `err`.
    let module = load(
        &sb,
        r#"(data (i32.const 0) "missingerr")
           (func (export "chatflow_run") (result i32)
             (local $n i32)
             ;; no error yet
             (if (i32.ne (call $last_error (i32.const 0) (i32.const 0)) (i32.const -1))
               (then (return (i32.const 100))))
             (if (i32.ne (call $property_get (i32.const 0) (i32.const 7) (i32.const 0) (i32.const 0)) (i32.const -1))
               (then (return (i32.const 101))))
             (local.set $n (call $last_error (i32.const 1024) (i32.const 1000)))
             (drop (call $property_set (i32.const 7) (i32.const 3) (i32.const 1024) (local.get $n)))
             (i32.const 0))"#,
    );
    let output = ok(sb
        .run(&module, &Properties::new(), &sb.default_limits())
        .await);
    assert_eq!(
        output.changes.get("err"),
        Some(Some("property \"missing\" is not set"))
    );
}

#[tokio::test]
async fn writes_are_read_back_and_removed() {
    let sb = sandbox();
    let module = load(
        &sb,
        r#"(data (i32.const 0) "abnew")
           (func (export "chatflow_run") (result i32)
             ;; set a = "new", read it back (3 bytes)
             (drop (call $property_set (i32.const 0) (i32.const 1) (i32.const 2) (i32.const 3)))
             (if (i32.ne (call $property_get (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 0)) (i32.const 3))
               (then (return (i32.const 100))))
             ;; remove b (set in the snapshot): now it reads as not set
             (if (i32.ne (call $property_remove (i32.const 1) (i32.const 1)) (i32.const 0))
               (then (return (i32.const 101))))
             (if (i32.ne (call $property_get (i32.const 1) (i32.const 1) (i32.const 0) (i32.const 0)) (i32.const -1))
               (then (return (i32.const 102))))
             (i32.const 0))"#,
    );
    let mut snapshot = props(&[("a", "old"), ("b", "gone soon"), ("c", "kept")]);
    let output = ok(sb.run(&module, &snapshot, &sb.default_limits()).await);
    snapshot.apply(output.changes);
    let got: Vec<_> = snapshot.iter().collect();
    assert_eq!(got, vec![("a", "new"), ("c", "kept")]);
}

#[tokio::test]
async fn invalid_names_and_values_are_error_codes() {
    let sb = sandbox();
    let cases: &[(&str, i32)] = &[
        // name with a brace
        (
            r#"(call $property_set (i32.const 0) (i32.const 3) (i32.const 0) (i32.const 1))"#,
            -2,
        ),
        // empty name
        (
            r#"(call $property_set (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1))"#,
            -2,
        ),
        // value not UTF-8
        (
            r#"(call $property_set (i32.const 3) (i32.const 1) (i32.const 4) (i32.const 2))"#,
            -2,
        ),
        // name not UTF-8
        (
            r#"(call $property_get (i32.const 4) (i32.const 2) (i32.const 0) (i32.const 0))"#,
            -2,
        ),
        (r#"(call $property_remove (i32.const 0) (i32.const 3))"#, -2),
        (r#"(call $message_send (i32.const 4) (i32.const 2))"#, -2),
    ];
    for (call, want) in cases {
        let module = load(
            &sb,
            &format!(
                r#"(data (i32.const 0) "a{{bx\ff\fe")
                   (func (export "chatflow_run") (result i32) {call})"#
            ),
        );
        let err = failed(
            &sb,
            sb.run(&module, &Properties::new(), &sb.default_limits())
                .await,
        )
        .await;
        assert!(
            matches!(err, RunError::GuestFailed { code: Some(c), .. } if c == *want),
            "{call}: {err:?}"
        );
    }
}

#[tokio::test]
async fn messages_in_order_and_logs_kept_on_failure() {
    let sb = sandbox();
    let module = load(
        &sb,
        r#"(data (i32.const 0) "firstsecondbad \ff")
           (func (export "chatflow_run") (result i32)
             (drop (call $message_send (i32.const 0) (i32.const 5)))
             (drop (call $message_send (i32.const 5) (i32.const 6)))
             (call $log (i32.const 0) (i32.const 0) (i32.const 5))
             (call $log (i32.const -3) (i32.const 11) (i32.const 5))
             (call $log (i32.const 2) (i32.const 5) (i32.const 6))
             (global.get $fail_it))
           (global $fail_it (mut i32) (i32.const 0))"#,
    );
    let outcome = sb
        .run(&module, &Properties::new(), &sb.default_limits())
        .await;
    let levels: Vec<_> = outcome
        .logs
        .iter()
        .map(|l| (l.level, l.message.as_str()))
        .collect();
    assert_eq!(
        levels,
        vec![
            (LogLevel::Debug, "first"),
            (LogLevel::Debug, "bad \u{fffd}"),
            (LogLevel::Warn, "second")
        ]
    );
    assert_eq!(ok(outcome).messages, vec!["first", "second"]);

    let failing = load(
        &sb,
        r#"(data (i32.const 0) "hello")
           (func (export "chatflow_run") (result i32)
             (drop (call $message_send (i32.const 0) (i32.const 5)))
             (call $log (i32.const 1) (i32.const 0) (i32.const 5))
             (i32.const 3))"#,
    );
    let outcome = sb
        .run(&failing, &Properties::new(), &sb.default_limits())
        .await;
    assert_eq!(outcome.logs.len(), 1, "logs survive a failed run");
    assert!(
        outcome.output().is_none(),
        "messages of a failed run are not delivered"
    );
}
