//! Messages and logs through the SDK in the sandbox: messages delivered in
//! order and only on success, the messages limit, every log level, and the
//! log budget (lines over it dropped whole and counted; the run goes on).

use chatflow_engine::sandbox::{LimitKind, LogLevel, RunError};
use chatflow_test_artifacts::SDK_MESSAGES;

use super::{failed, ok, props, run, run_with, sandbox};

#[tokio::test]
async fn messages_in_order_and_every_log_level() {
    let sb = sandbox();
    let outcome = run(&sb, SDK_MESSAGES, &props([("count", "3")])).await;
    let logs: Vec<(LogLevel, String)> = outcome
        .logs
        .iter()
        .map(|l| (l.level, l.message.clone()))
        .collect();
    assert_eq!(outcome.logs_dropped, 0);
    let out = ok(outcome);
    assert_eq!(out.messages, ["message 1", "message 2", "message 3"]);
    assert_eq!(
        logs,
        [
            (LogLevel::Debug, "debug line".to_string()),
            (LogLevel::Info, "info line".to_string()),
            (LogLevel::Warn, "warn line".to_string()),
            (LogLevel::Error, "error line".to_string()),
        ]
    );
    assert!(out.changes.is_empty());
}

#[tokio::test]
async fn one_message_over_the_limit_ends_the_run() {
    let sb = sandbox();
    let limits = sb.default_limits().with_messages(3);
    ok(run_with(&sb, SDK_MESSAGES, &props([("count", "3")]), &limits).await);
    let outcome = run_with(&sb, SDK_MESSAGES, &props([("count", "4")]), &limits).await;
    assert!(matches!(
        failed(&outcome),
        RunError::Limit {
            which: LimitKind::Messages,
            value: 3
        }
    ));
}

/// 4 short lines, then 100 lines of 100 bytes against a 2 000-byte budget:
/// lines that fit are kept in order, the rest dropped and counted, and the
/// run succeeds.
#[tokio::test]
async fn logs_over_the_budget_are_dropped_and_counted() {
    let sb = sandbox();
    let limits = sb.default_limits().with_log_bytes(2_000);
    let p = props([("count", "1"), ("log_lines", "100")]);
    let outcome = run_with(&sb, SDK_MESSAGES, &p, &limits).await;
    // Each line takes its bytes and 64 more of the budget.
    let kept: u64 = outcome
        .logs
        .iter()
        .map(|l| l.message.len() as u64 + 64)
        .sum();
    assert!(kept <= 2_000, "{kept}");
    assert_eq!(outcome.logs.len() as u64 + outcome.logs_dropped, 104);
    // 38 bytes of short lines (294 with their entries), then 10 of the
    // 100-byte lines (164 each) fit: exactly what the native test host
    // keeps (test-guests/tests/native.rs).
    assert_eq!(outcome.logs.len(), 4 + 10);
    assert_eq!(outcome.logs_dropped, 90);
    assert_eq!(outcome.logs[0].message, "debug line");
    assert!(
        outcome.logs[4..]
            .iter()
            .all(|l| l.message == "x".repeat(100))
    );
    let out = ok(outcome);
    assert_eq!(out.messages, ["message 1"]);
}
