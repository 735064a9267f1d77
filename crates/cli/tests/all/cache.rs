//! The command line's on-disk module cache: on by default in the user's
//! cache directory (`$XDG_CACHE_HOME/chatflow/modules`, else
//! `~/.cache/chatflow/modules`), so the second `chatflow code M.wasm`
//! loads the compiled module instead of compiling it; `--no-cache` writes
//! nothing; a directory that cannot be used is a warning, not a failure.
//! Each test points `HOME` and `XDG_CACHE_HOME` at its own directory, and
//! the commands' `--json` field `module_cache` says what the cache did.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn crm_profile() -> &'static str {
    chatflow_test_artifacts::examples::CRM_PROFILE
}

/// `chatflow ARGS` with `HOME` set to `home`, and `XDG_CACHE_HOME` to
/// `xdg` (unset when `None`); no `CHATFLOW_CACHE_DIR`.
fn chatflow(home: &Path, xdg: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatflow"));
    command
        .args(args)
        .env("HOME", home)
        .env_remove("CHATFLOW_CACHE_DIR")
        .env_remove("CHATFLOW_LOG");
    match xdg {
        Some(xdg) => command.env("XDG_CACHE_HOME", xdg),
        None => command.env_remove("XDG_CACHE_HOME"),
    };
    command.output().expect("running chatflow")
}

fn json(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The artifact files (`*.cwasm`) in `dir`.
fn artifacts(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn cache(out: &Value) -> (u64, u64, u64) {
    let cache = &out["module_cache"];
    (
        cache["compiled"].as_u64().expect("compiled"),
        cache["loaded"].as_u64().expect("loaded"),
        cache["written"].as_u64().expect("written"),
    )
}

#[test]
fn code_compiles_once_then_loads_from_the_user_cache() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join(".cache/chatflow/modules");
    let run = || {
        json(&chatflow(
            home.path(),
            None,
            &[
                "code",
                crm_profile(),
                "--set",
                r#"API Response={"id":"cus_1","tier":"gold"}"#,
                "--json",
            ],
        ))
    };

    let first = run();
    assert_eq!(first["ok"], true, "{first:#}");
    assert_eq!(first["module_cache"]["dir"], dir.to_str().unwrap());
    assert_eq!(cache(&first), (1, 0, 1), "compiled and written: {first:#}");
    assert_eq!(artifacts(&dir).len(), 1);
    assert!(dir.join("key").is_file());

    let second = run();
    assert_eq!(cache(&second), (0, 1, 0), "loaded: {second:#}");
    assert_eq!(second["changes"], first["changes"]);
    assert_eq!(second["fuel_used"], first["fuel_used"]);
    assert_eq!(artifacts(&dir).len(), 1);
}

/// `check` and `bench` share the cache with `code`; `XDG_CACHE_HOME` wins
/// over `HOME` when it is absolute.
#[test]
fn check_and_bench_use_the_xdg_cache_home() {
    let home = tempfile::tempdir().unwrap();
    let xdg = home.path().join("xdg");
    let dir = xdg.join("chatflow/modules");

    let out = chatflow(home.path(), Some(&xdg), &["check", crm_profile()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("cache:   compiled, saved to {}", dir.display())),
        "{stdout}"
    );
    let out = chatflow(home.path(), Some(&xdg), &["check", crm_profile()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("cache:   loaded from {}", dir.display())),
        "{stdout}"
    );

    let bench = json(&chatflow(
        home.path(),
        Some(&xdg),
        &["bench", crm_profile(), "--runs", "2", "--json"],
    ));
    assert_eq!(cache(&bench), (0, 1, 0), "{bench:#}");
    assert_eq!(artifacts(&dir).len(), 1);
    assert!(!home.path().join(".cache").exists());
}

/// `run` loads a flow's modules through the cache too.
#[test]
fn run_loads_flow_modules_from_the_cache() {
    let home = tempfile::tempdir().unwrap();
    let modules = tempfile::tempdir().unwrap();
    std::fs::copy(crm_profile(), modules.path().join("crm.wasm")).unwrap();
    let flow = modules.path().join("flow.json");
    std::fs::write(
        &flow,
        serde_json::json!({
            "name": "cached",
            "start": "a",
            "blocks": {"a": {"type": "code", "module": "crm.wasm"}}
        })
        .to_string(),
    )
    .unwrap();
    let run = || {
        json(&chatflow(
            home.path(),
            None,
            &[
                "run",
                flow.to_str().unwrap(),
                "--set",
                r#"API Response={"id":"cus_1","tier":"gold"}"#,
                "--json",
            ],
        ))
    };
    let first = run();
    assert_eq!(first["status"], "completed", "{first:#}");
    assert_eq!(cache(&first), (1, 0, 1), "{first:#}");
    let second = run();
    assert_eq!(cache(&second), (0, 1, 0), "{second:#}");
    assert_eq!(second["properties"]["tier"], "gold");
}

#[test]
fn no_cache_writes_nothing() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["code", crm_profile(), "--no-cache", "--json"][..],
        &["check", crm_profile(), "--no-cache", "--json"][..],
    ] {
        let out = json(&chatflow(home.path(), None, args));
        assert_eq!(out["module_cache"], Value::Null, "{args:?}: {out:#}");
    }
    let entries: Vec<_> = std::fs::read_dir(home.path()).unwrap().collect();
    assert!(entries.is_empty(), "{entries:?}");
}

/// `--cache-dir` and `CHATFLOW_CACHE_DIR` name the directory (the flag
/// wins).
#[test]
fn cache_dir_flag_and_environment() {
    let home = tempfile::tempdir().unwrap();
    let flag = home.path().join("flag");
    let env = home.path().join("env");
    let out = Command::new(env!("CARGO_BIN_EXE_chatflow"))
        .args(["check", crm_profile(), "--json", "--cache-dir"])
        .arg(&flag)
        .env("HOME", home.path())
        .env("CHATFLOW_CACHE_DIR", &env)
        .output()
        .unwrap();
    assert_eq!(json(&out)["module_cache"]["dir"], flag.to_str().unwrap());
    let out = Command::new(env!("CARGO_BIN_EXE_chatflow"))
        .args(["check", crm_profile(), "--json"])
        .env("HOME", home.path())
        .env("CHATFLOW_CACHE_DIR", &env)
        .output()
        .unwrap();
    assert_eq!(json(&out)["module_cache"]["dir"], env.to_str().unwrap());
    assert_eq!(artifacts(&flag).len(), 1);
    assert_eq!(artifacts(&env).len(), 1);
    assert!(!home.path().join(".cache").exists());
}

/// A cache directory that cannot be used (its path is a file; it is
/// writable by others, which the sandbox refuses) is a warning: the
/// command compiles and runs without it, and writes nothing there.
#[cfg(unix)]
#[test]
fn unusable_cache_dir_warns_and_runs_without() {
    use std::os::unix::fs::PermissionsExt as _;

    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let open = home.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();

    for dir in [&file, &open] {
        let out = Command::new(env!("CARGO_BIN_EXE_chatflow"))
            .args(["code", crm_profile(), "--json", "--cache-dir"])
            .arg(dir)
            .env("HOME", home.path())
            .env_remove("CHATFLOW_LOG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let out = json(&out);
        assert_eq!(out["module_cache"], Value::Null, "{out:#}");
        assert!(
            stderr.contains(&format!(
                "warning: module cache {} not used: ",
                dir.display()
            )),
            "{stderr}"
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);
}

/// The HTTP client loads the system's root certificates on the first
/// request, not when the sandbox starts: with no certificate store at all
/// (`SSL_CERT_FILE` naming a missing file), `check` and a `code` run that
/// makes no request work, and a request fails with a message that says
/// why.
#[test]
fn the_system_roots_are_loaded_on_the_first_request() {
    let home = tempfile::tempdir().unwrap();
    let no_roots = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_chatflow"))
            .args(args)
            .args(["--no-cache"])
            .env("HOME", home.path())
            .env("SSL_CERT_FILE", home.path().join("missing.pem"))
            .env("SSL_CERT_DIR", home.path().join("missing"))
            .env_remove("CHATFLOW_LOG")
            .output()
            .unwrap()
    };
    let out = no_roots(&["check", crm_profile()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = no_roots(&[
        "code",
        crm_profile(),
        "--set",
        r#"API Response={"id":"cus_1"}"#,
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Nothing listens there: the request must fail before connecting.
    let port = crate::support::closed_port();
    let url = format!("http://127.0.0.1:{port}/");
    let out = Command::new(env!("CARGO_BIN_EXE_chatflow"))
        .args(["rest", "--url", &url, "--allow-host", "127.0.0.1", "--json"])
        .env("SSL_CERT_FILE", home.path().join("missing.pem"))
        .env("SSL_CERT_DIR", home.path().join("missing"))
        .env_remove("CHATFLOW_LOG")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("No CA certificates were loaded from the system"),
        "{text}"
    );
    assert!(!text.contains("onnection refused"), "{text}");
}
