//! Every `chatflow` command whose reader goes away (`chatflow demo | head
//! -3`) exits quietly with its own status: never a panic, never an exit
//! code outside 0/1/2 (issue 13).
//!
//! Each command runs three times: with its stdout captured (the reference
//! status), with a stdout pipe whose read end was closed before the command
//! started (every write fails with `EPIPE`, deterministically), and with a
//! reader that closes after the first bytes (as `head -c 3` does).

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use chatflow_test_artifacts::{BENCH_EMPTY, SDK_ERR, SDK_ROUNDTRIP, examples};

fn chatflow(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatflow"));
    cmd.args(args).env_remove("CHATFLOW_LOG");
    cmd
}

fn stderr_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `args` the three ways and checks each. `want` is the status the
/// command must have with a working stdout.
fn check_closed_pipes(args: &[&str], want: i32) {
    let reference = chatflow(args).output().unwrap();
    assert_eq!(
        reference.status.code(),
        Some(want),
        "{args:?}: {}",
        stderr_text(&reference)
    );
    assert!(
        reference.stdout.len() > 3,
        "{args:?} prints to stdout, so a closed pipe matters"
    );

    // The read end is closed before the command starts: its first write
    // fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let closed = chatflow(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = stderr_text(&closed);
    assert_eq!(
        closed.status.code(),
        Some(want),
        "{args:?}, stdout closed: the command's own status\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    assert!(!stderr.contains("error: writing"), "{args:?}: {stderr}");

    // A reader that stops after three bytes.
    let mut child = chatflow(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 3];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    let early = child.wait_with_output().unwrap();
    let stderr = stderr_text(&early);
    assert_eq!(head, reference.stdout[..3], "{args:?}");
    assert_eq!(early.status.code(), Some(want), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
}

fn dir_of(path: &str) -> &str {
    Path::new(path).parent().unwrap().to_str().unwrap()
}

#[test]
fn demo() {
    check_closed_pipes(&["demo"], 0);
}

#[test]
fn demo_json() {
    check_closed_pipes(&["demo", "--json"], 0);
}

#[test]
fn run() {
    // The CRM is unreachable (a closed loopback port): the flow ignores the
    // error and apologises, exit 0.
    let port = crate::support::closed_port().to_string();
    let resolve = format!("demo.chatflow.test=127.0.0.1:{port}");
    let flow = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/flows/crm-profile.json"
    );
    let base = [
        "run",
        flow,
        "--module-dir",
        dir_of(examples::CRM_PROFILE),
        "--answer",
        "+44 20 7946 0000",
        "--resolve",
        &resolve,
        "--allow-loopback",
    ];
    check_closed_pipes(&base, 0);
    let mut json = base.to_vec();
    json.push("--json");
    check_closed_pipes(&json, 0);
}

#[test]
fn check() {
    check_closed_pipes(&["check", SDK_ROUNDTRIP], 0);
    check_closed_pipes(&["check", SDK_ROUNDTRIP, "--json"], 0);
    // Invalid input prints its reasons as JSON on stdout and exits 2.
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    check_closed_pipes(&["check", manifest, "--json"], 2);
}

#[test]
fn code() {
    let set = ["--set", "input=ünïcødé"];
    check_closed_pipes(&[&["code", SDK_ROUNDTRIP][..], &set].concat(), 0);
    check_closed_pipes(&[&["code", SDK_ROUNDTRIP, "--json"][..], &set].concat(), 0);
    // A failed run exits 1, whether or not anyone reads the report.
    check_closed_pipes(&["code", SDK_ERR], 1);
    check_closed_pipes(&["code", SDK_ERR, "--json"], 1);
}

#[test]
fn bench() {
    check_closed_pipes(&["bench", BENCH_EMPTY, "--runs", "20"], 0);
}

#[test]
fn rest() {
    let url = format!("http://127.0.0.1:{}/", crate::support::closed_port());
    // Connection refused: the block stops the conversation, exit 1.
    check_closed_pipes(&["rest", "--url", &url, "--allow-host", "127.0.0.1"], 1);
    check_closed_pipes(
        &["rest", "--url", &url, "--allow-host", "127.0.0.1", "--json"],
        1,
    );
}

#[test]
fn help() {
    // clap prints help itself; it must not panic either.
    for command in [
        &["--help"][..],
        &["rest", "--help"],
        &["run", "--help"],
        &["new", "--help"],
        &["build", "--help"],
    ] {
        check_closed_pipes(command, 0);
    }
    check_closed_pipes(&["--version"], 0);
}

/// `chatflow new` with nobody reading: the crate is still created in full
/// and the exit code is 0, as with a reader.
#[test]
fn new() {
    let tmp = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = chatflow(&["new", "piped-block"])
        .current_dir(tmp.path())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(tmp.path().join("piped-block/README.md").is_file());
}
