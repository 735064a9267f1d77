//! Every module the SDK builds (the test guests and the example Code
//! blocks) is accepted by the engine: `Sandbox::load` validates it against
//! ABI v1 and compiles it, as `chatflow check` does. (That the modules
//! import nothing outside ABI v1 is checked with wasmparser in
//! `test-guests/artifacts/tests/abi.rs`.)

use chatflow_test_artifacts::{ALL, examples};

use super::sandbox;

const ABI_V1_IMPORTS: &[&str] = &[
    "property_get",
    "property_set",
    "property_remove",
    "message_send",
    "log",
    "fail",
    "last_error",
    "http_request",
    "http_response_status",
    "http_response_headers",
    "http_response_body",
    "json_select",
    "xml_select",
];

#[test]
fn the_engine_accepts_every_module_the_sdk_builds() {
    let sb = sandbox();
    let all: Vec<&(&str, &str)> = ALL.iter().chain(examples::ALL).collect();
    assert!(all.len() >= 16, "{} modules", all.len());
    for (name, path) in all {
        let wasm = std::fs::read(path).unwrap();
        let module = sb
            .load(&wasm)
            .unwrap_or_else(|e| panic!("{name} ({path}) refused: {e}"));
        assert_eq!(module.size(), wasm.len(), "{name}");
        for import in module.imports() {
            assert!(
                ABI_V1_IMPORTS.contains(&import.as_str()),
                "{name} imports {import}"
            );
        }
        for export in ["memory", "chatflow_run", "chatflow_abi_v1"] {
            assert!(
                module.exports().iter().any(|e| e.as_str() == export),
                "{name} does not export {export}: {:?}",
                module.exports()
            );
        }
    }
}

/// `chatflow check` itself, on an example and on the smallest guest.
#[cfg(feature = "cli")]
#[test]
fn chatflow_check_accepts_them() {
    for path in [
        examples::CRM_PROFILE,
        chatflow_test_artifacts::BENCH_EMPTY_NO_PANIC_HOOK,
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatflow"))
            .args(["check", "--json", path])
            .env("CHATFLOW_CACHE_DIR", crate::support::cli_cache_dir())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{path}: {out:?}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["valid"], true);
        assert_eq!(doc["size"], std::fs::metadata(path).unwrap().len());
    }
}
