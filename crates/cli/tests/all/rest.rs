//! `chatflow rest`, the built binary, against the loopback server: exit
//! codes and `--json` output.

use std::process::Output;

use serde_json::Value;

use crate::support::server::TestServer;

async fn chatflow(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_chatflow"))
            .args(&args)
            .env_remove("CHATFLOW_LOG")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn json_stdout(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?}, stderr {:?}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_prints_changes_and_exits_0() {
    let server = TestServer::start().await;
    let url = server.url("/users/{{id}}");
    let output = chatflow(args(&[
        "rest",
        "--method",
        "POST",
        "--url",
        &url,
        "--header",
        "X-Key: {{key}}",
        "--query",
        "q={{q}}",
        "--body",
        "name={{name}}",
        "--set",
        "id=42",
        "--set",
        "key=abc",
        "--set",
        "q=a&b",
        "--set",
        "name=Zoë",
        "--allow-host",
        "127.0.0.1",
        "--json",
    ]))
    .await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let out = json_stdout(&output);
    assert_eq!(out["status"], 200);
    assert_eq!(out["stop"], false);
    assert_eq!(out["error"], Value::Null);
    assert!(out["duration_ms"].is_u64());
    let echo: Value =
        serde_json::from_str(out["changes"]["API Response"].as_str().unwrap()).unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/users/42");
    assert_eq!(echo["query"], "q=a%26b");
    assert_eq!(echo["body"], r#"{"name":"Zoë"}"#);
    assert!(
        echo["headers"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["x-key", "abc"]))
    );
    assert_eq!(out["properties"]["id"], "42");
    assert_eq!(
        out["properties"]["API Response"],
        out["changes"]["API Response"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_exit_1_or_0_when_ignored() {
    let server = TestServer::start().await;
    let url = server.url("/status/404");
    let base = [
        "rest",
        "--url",
        &url,
        "--allow-host",
        "127.0.0.1",
        "--set",
        "API Response=stale",
        "--json",
    ];

    let stopped = chatflow(args(&base)).await;
    assert_eq!(stopped.status.code(), Some(1));
    let out = json_stdout(&stopped);
    assert_eq!(out["stop"], true);
    assert_eq!(out["status"], 404);
    assert_eq!(out["error"]["kind"], "status");
    assert_eq!(out["changes"], serde_json::json!({}));
    assert_eq!(
        out["properties"]["API Response"], "stale",
        "nothing committed"
    );

    let mut ignored = args(&base);
    ignored.push("--ignore-error".into());
    let ignored = chatflow(ignored).await;
    assert_eq!(ignored.status.code(), Some(0));
    let out = json_stdout(&ignored);
    assert_eq!(out["stop"], false);
    assert_eq!(out["error"]["kind"], "status");
    assert_eq!(out["changes"], serde_json::json!({"API Response": null}));
    assert!(
        out["properties"].get("API Response").is_none(),
        "stale value removed"
    );

    let human = chatflow(args(&["rest", "--url", &url, "--allow-host", "127.0.0.1"])).await;
    assert_eq!(human.status.code(), Some(1));
    let text = String::from_utf8(human.stdout).unwrap();
    assert!(text.contains("404 Not Found"), "{text}");
    assert!(text.contains("the conversation stops here"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_denied_without_allow_host() {
    let server = TestServer::start().await;
    let output = chatflow(args(&[
        "rest",
        "--url",
        &server.url("/?key=secret"),
        "--json",
    ]))
    .await;
    assert_eq!(output.status.code(), Some(1));
    let out = json_stdout(&output);
    assert_eq!(out["error"]["kind"], "denied");
    let message = out["error"]["message"].as_str().unwrap();
    assert!(message.contains("is loopback"), "{message}");
    assert!(!message.contains("secret"), "{message}");
    assert_eq!(server.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_exit_2() {
    let cases = [
        args(&["rest", "--url", "http://127.0.0.1/{{id"]),
        args(&["rest", "--url", "http://{{host}}/"]),
        args(&["rest", "--url", "http://127.0.0.1/", "--header", "no colon"]),
        args(&[
            "rest",
            "--url",
            "http://127.0.0.1/",
            "--header",
            "Bad Name: 1",
        ]),
        args(&["rest", "--url", "http://127.0.0.1/", "--query", "novalue"]),
        args(&["rest", "--url", "http://127.0.0.1/", "--method", "TRACE"]),
        args(&[
            "rest",
            "--url",
            "http://127.0.0.1/",
            "--body-encoding",
            "xml",
        ]),
        args(&["rest", "--url", "http://127.0.0.1/", "--allow-host", "*"]),
        args(&["rest", "--url", "http://127.0.0.1/", "--set", "a{b=1"]),
        args(&["rest", "--url", "http://127.0.0.1/", "--timeout-ms", "0"]),
        args(&["rest"]),
    ];
    for case in cases {
        let output = chatflow(case.clone()).await;
        assert_eq!(output.status.code(), Some(2), "{case:?}: {output:?}");
        assert!(!output.stderr.is_empty(), "{case:?}: no message");
        assert!(output.stdout.is_empty(), "{case:?}");
    }
}

/// `--redirect-keep-header` names the headers a cross-origin 301 may carry;
/// without it none of the `--header`s arrive at the other origin. Naming a
/// header the block does not set is a bad argument.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_keep_header() {
    let first = TestServer::start().await;
    let second = TestServer::start().await;
    let to: String =
        url::form_urlencoded::byte_serialize(second.url("/landed").as_bytes()).collect();
    let url = first.url(&format!("/redirect/301?to={to}"));
    let base = [
        "rest",
        "--url",
        &url,
        "--header",
        "X-Key: secret",
        "--header",
        "X-Trace: t1",
        "--follow-redirects",
        "--allow-host",
        "127.0.0.1",
        "--json",
    ];
    for (keep, want_trace) in [(None, vec![]), (Some("x-trace"), vec!["t1"])] {
        let mut list = args(&base);
        if let Some(name) = keep {
            list.extend(args(&["--redirect-keep-header", name]));
        }
        let output = chatflow(list).await;
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        let got = second.requests().pop().unwrap();
        assert!(got.header("x-key").is_empty(), "{keep:?}");
        assert_eq!(got.header("x-trace"), want_trace, "{keep:?}");
    }

    let mut bad = args(&base);
    bad.extend(args(&["--redirect-keep-header", "X-Other"]));
    let output = chatflow(bad).await;
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("redirect_keep_headers[0]"), "{stderr}");
}
