//! `chatflow check` and `chatflow code`: output and exit codes.

use std::path::PathBuf;
use std::process::{Command, Output};

fn chatflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chatflow"))
        .args(args)
        .output()
        .expect("running chatflow")
}

fn wat_file(name: &str) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "../../engine/tests/wat", name]
        .iter()
        .collect();
    path.to_string_lossy().into_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_a_valid_module() {
    let out = chatflow(&["check", &wat_file("copy_property.wat")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("valid ABI v1 module"), "{stdout}");
    assert!(stdout.contains("chatflow::property_get"), "{stdout}");
    assert!(stdout.contains("sha256:"), "{stdout}");

    let out = chatflow(&["check", "--json", &wat_file("copy_property.wat")]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn check_lists_every_reason() {
    let out = chatflow(&["check", &wat_file("wasi_imports.wat")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    for reason in [
        "unknown import wasi_snapshot_preview1::fd_write",
        "import chatflow::log has type (i32) -> () but ABI v1 says (i32, i32, i32) -> ()",
        "missing export chatflow_run",
        "missing export chatflow_abi_v1",
    ] {
        assert!(stderr.contains(reason), "{reason} in {stderr}");
    }
}

#[test]
fn check_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let out = chatflow(&["check", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("is not a WebAssembly module (starts like a text file)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("0x6e"),
        "the file's bytes are not shown: {stderr}"
    );

    let bad_wat = dir.path().join("bad.wat");
    std::fs::write(&bad_wat, b"(module (func").unwrap();
    assert_eq!(
        chatflow(&["check", bad_wat.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );

    assert_eq!(
        chatflow(&["check", "/definitely/not/here.wasm"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn code_runs_and_prints_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reply.json");
    std::fs::write(&file, r#"{"id": 42}"#).unwrap();
    let set = format!("in=@{}", file.display());
    let out = chatflow(&["code", &wat_file("copy_property.wat"), "--set", &set]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(r#"set out = "{\"id\": 42}""#), "{stdout}");
    assert!(stdout.contains("[info]"), "{stdout}");

    let out = chatflow(&[
        "code",
        "--json",
        &wat_file("copy_property.wat"),
        "--set",
        "in=hi",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["changes"]["out"], "hi");
    assert_eq!(json["messages"][0], "hi");
}

#[test]
fn code_failures_exit_1() {
    // `in` not set: the guest returns -1.
    let out = chatflow(&["code", "--json", &wat_file("copy_property.wat")]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["kind"], "guest_failed");

    let out = chatflow(&[
        "code",
        "--json",
        &wat_file("infinite_loop.wat"),
        "--fuel",
        "100000",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["kind"], "fuel_exhausted");
    assert_eq!(json["fuel_used"], 100_000);

    let out = chatflow(&[
        "code",
        "--json",
        &wat_file("infinite_loop.wat"),
        "--fuel",
        "10000000000",
        "--timeout",
        "50",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["kind"], "timeout");
}

#[test]
fn code_bad_arguments_exit_2() {
    let module = wat_file("copy_property.wat");
    for args in [
        vec!["code", &module, "--fuel", "99999999999999"],
        vec!["code", &module, "--set", "novalue"],
        vec!["code", &module, "--timeout", "0"],
        vec!["code", "/definitely/not/here.wasm"],
    ] {
        let out = chatflow(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(
        chatflow(&["code", &wat_file("wasi_imports.wat")])
            .status
            .code(),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_http_follows_the_allow_host_flags() {
    let server = crate::support::server::TestServer::start().await;
    let req = serde_json::json!({"method": "GET", "url": server.url("/json")}).to_string();
    let set = format!("req={req}");
    let module = wat_file("fetch.wat");
    let run = |extra: Vec<String>| {
        let mut args: Vec<String> = vec![
            "code".into(),
            "--json".into(),
            module.clone(),
            "--set".into(),
            set.clone(),
        ];
        args.extend(extra);
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            chatflow(&args)
        })
    };
    let out = run(vec!["--allow-host".into(), "127.0.0.1".into()])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["changes"]["body"], r#"{"ok":true,"name":"Zoë"}"#);
    assert_eq!(json["http_calls"], 1);

    let out = run(vec![]).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["kind"], "http_denied");
    assert_eq!(
        server.hits(),
        1,
        "the denied request never reached the server"
    );
}
