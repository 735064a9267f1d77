//! How an SDK block fails in the sandbox: a panic (message and location,
//! reported through the SDK's panic hook before the abort) and an `Err`
//! (its text unchanged, `chatflow_run` returning 1). Either way nothing the
//! run wrote is committed, no message is delivered, and its logs are kept.

use chatflow_engine::sandbox::{LogLevel, RunError};
use chatflow_test_artifacts::{SDK_ERR, SDK_PANIC};

use super::{failed, props, run, sandbox};

#[tokio::test]
async fn a_panic_is_a_guest_failure_with_message_and_location() {
    let sb = sandbox();
    let outcome = run(&sb, SDK_PANIC, &props([("reason", "testing ünïcødé")])).await;
    let message = match failed(&outcome) {
        // Aborted (an `unreachable` after `fail`), so no return code.
        RunError::GuestFailed {
            message,
            code: None,
        } => message.clone(),
        other => panic!("expected GuestFailed, got {other:?}"),
    };
    assert!(
        message.starts_with("panicked at test-guests/src/bin/sdk_panic.rs:"),
        "{message}"
    );
    assert!(
        message.ends_with(": sdk_panic: deliberate panic: testing ünïcødé"),
        "{message}"
    );
    assert_eq!(outcome.fail_message.as_deref(), Some(message.as_str()));

    // Without a reason.
    let outcome = run(&sb, SDK_PANIC, &props([])).await;
    assert!(matches!(
        failed(&outcome),
        RunError::GuestFailed { message, .. } if message.ends_with("deliberate panic: no reason")
    ));
}

#[tokio::test]
async fn an_err_is_a_guest_failure_with_its_text_and_logs_kept() {
    let sb = sandbox();
    let cases = [
        (None, "sdk_err: deliberate failure with ünïcødé"),
        (Some("missing"), "property `does not exist` is not set"),
        (
            Some("json"),
            "property `API Response` is not valid JSON for the expected shape: expected value at line 1 column 1",
        ),
        (
            Some("invalid_name"),
            "set: property name \"{bad}\" contains '{', which is not allowed in names",
        ),
    ];
    for (mode, want) in cases {
        let mut p = props([("API Response", "<xml/>")]);
        if let Some(mode) = mode {
            p.set("mode", mode);
        }
        let outcome = run(&sb, SDK_ERR, &p).await;
        match failed(&outcome) {
            RunError::GuestFailed { message, code } => {
                assert_eq!(message, want, "{mode:?}");
                assert_eq!(*code, Some(1), "{mode:?}");
            }
            other => panic!("{mode:?}: {other:?}"),
        }
        assert_eq!(outcome.logs.len(), 1, "{mode:?}: logs survive a failed run");
        assert_eq!(outcome.logs[0].level, LogLevel::Error);
        assert_eq!(outcome.logs[0].message, "sdk_err is about to fail");
    }
}
