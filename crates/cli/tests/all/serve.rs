//! `chatflow serve`: the service (crate `chatflow-server`, whose own tests
//! cover its API and stores) started from the command line as an operator
//! starts it: with the example flows, an SQLite file, a port of its
//! choosing; stopped by SIGTERM.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// One HTTP/1.1 request on a fresh connection: the status and the body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[cfg(unix)]
#[test]
fn serves_the_example_flows_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("chatflow.db").display());
    let flows = crate::support::demo::flow_path("crm-profile.json");
    let flows = flows.parent().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatflow"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store", &store])
        .arg("--flows")
        .arg(flows)
        .arg("--modules")
        .arg(crate::support::demo::module_dir())
        // The tests' shared compiled-module cache: the example modules are
        // compiled once per suite, not once per test.
        .arg("--module-cache")
        .arg(crate::support::modules::cache_dir())
        .env_remove("CHATFLOW_LOG")
        .env_remove("CHATFLOW_TOKEN")
        .env_remove("CHATFLOW_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let Some(addr) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        panic!("{line:?}\n{stderr}");
    };

    assert_eq!(http(addr, "GET", "/healthz", "").0, 200);
    let (status, body) = http(addr, "GET", "/v1/flows", "");
    assert_eq!(status, 200, "{body}");
    for name in ["crm-profile", "every-block", "complex-call"] {
        assert!(body.contains(&format!("\"{name}\"")), "{name}: {body}");
    }
    // A conversation of the flow that starts with a question.
    let (status, body) = http(addr, "POST", "/v1/flows/crm-profile/conversations", "{}");
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("Hi! What's your phone number?"), "{body}");

    // SIGTERM: a graceful stop, exit 0.
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn bad_arguments_exit_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_chatflow"))
        .args(["serve", "--store", "mysql://localhost/db"])
        .env_remove("CHATFLOW_STORE")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("mysql"), "{stderr}");

    // Listening beyond loopback without a token is refused.
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("x.db").display());
    let output = Command::new(env!("CARGO_BIN_EXE_chatflow"))
        .args(["serve", "--listen", "0.0.0.0:0", "--store", &store])
        .env_remove("CHATFLOW_TOKEN")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("token"), "{stderr}");
}
