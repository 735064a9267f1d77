//! `chatflow check` on modules built by the SDK.

use chatflow_test_artifacts::examples;

/// `chatflow check` itself, on an example and on the smallest guest.
#[test]
fn chatflow_check_accepts_them() {
    for path in [
        examples::CRM_PROFILE,
        chatflow_test_artifacts::BENCH_EMPTY_NO_PANIC_HOOK,
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatflow"))
            .args(["check", "--json", path])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{path}: {out:?}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["valid"], true);
        assert_eq!(doc["size"], std::fs::metadata(path).unwrap().len());
    }
}
