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
