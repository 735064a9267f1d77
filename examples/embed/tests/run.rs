//! The example runs as its README says, with the module as a file path, and
//! refuses clearly without one.

use std::process::Command;

#[test]
fn runs_two_interleaved_conversations() {
    let output = Command::new(env!("CARGO_BIN_EXE_embed"))
        .arg(chatflow_test_artifacts::examples::APPLICATION_STATUS_XML)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "alice > APP-2024-0042",
        "  bot > Application APP-2024-0042: In review",
        "stored state for bob: {",
    ] {
        assert!(stdout.contains(line), "{line:?} not in:\n{stdout}");
    }
}

#[test]
fn without_a_module_it_says_how_to_get_one() {
    let output = Command::new(env!("CARGO_BIN_EXE_embed")).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--export-modules"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_embed"))
        .arg("/nonexistent/module.wasm")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("reading the Code block /nonexistent/module.wasm"),
        "{stderr}"
    );
}
