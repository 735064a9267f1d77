//! A Code block author's first hour (issue 13): `chatflow new`, `cargo
//! test` and `chatflow build` in a temporary directory outside the
//! workspace, then `chatflow code` on the sample input.
//!
//! The new crate depends on the SDK by path and builds its dependencies
//! (serde, serde_json, quick-xml) twice, for the host and for wasm32. To
//! keep reruns fast every run shares one target directory under the
//! workspace's (`target/tmp/author-blocks`): the first run on a machine
//! takes a minute or two, later ones a few seconds. Cargo runs offline
//! (`CARGO_NET_OFFLINE`): the registry the workspace already downloaded has
//! every crate the block needs, and tests do not use the network.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::Digest as _;

fn chatflow(dir: &Path, args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_chatflow")).args(args), dir)
}

fn cargo(dir: &Path, args: &[&str]) -> Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo).args(args), dir)
}

/// Runs in `dir` with the shared target directory, offline.
fn run(cmd: &mut Command, dir: &Path) -> Output {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("author-blocks");
    cmd.current_dir(dir)
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_NET_OFFLINE", "true")
        .env_remove("CHATFLOW_LOG")
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}\nstdout:\n{}\nstderr:\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&output.stdout)))
}

#[test]
fn new_test_build_code() {
    let tmp = tempfile::tempdir().unwrap();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap();
    assert!(
        !tmp.path().starts_with(workspace),
        "the block must live outside the workspace"
    );

    // chatflow new
    let new = chatflow(tmp.path(), &["new", "greet-customer"]);
    assert_exit(&new, 0, "chatflow new");
    assert!(
        text(&new.stdout).contains("created Code block `greet-customer`"),
        "{}",
        text(&new.stdout)
    );
    let block = tmp.path().join("greet-customer");
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "sample/api-response.json",
        ".gitignore",
        "README.md",
    ] {
        assert!(block.join(file).is_file(), "{file}");
    }

    // cargo test: the block's own unit tests, against the SDK's test host,
    // without a warning.
    let test = cargo(&block, &["test"]);
    assert_exit(&test, 0, "cargo test");
    assert!(
        text(&test.stdout).contains("test result: ok. 4 passed"),
        "{}",
        text(&test.stdout)
    );
    assert!(
        !text(&test.stderr).contains("warning"),
        "{}",
        text(&test.stderr)
    );

    // chatflow build, with the crate's own [profile.guest].
    let build = chatflow(&block, &["build"]);
    assert_exit(&build, 0, "chatflow build");
    let out = text(&build.stdout);
    let stderr = text(&build.stderr);
    assert!(stderr.contains("profile:     guest (from "), "{stderr}");
    assert!(
        stderr.contains("-Ctarget-feature=+simd128 -Cllvm-args=-inline-threshold=1000"),
        "{stderr}"
    );
    let line = |label: &str| -> String {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label} in {out}"))
            .trim()
            .to_string()
    };
    assert!(
        out.starts_with("built greet_customer.wasm: a valid ABI v1 module"),
        "{out}"
    );
    let module = PathBuf::from(line("path:"));
    let wasm = std::fs::read(&module).unwrap();
    assert!(module.ends_with("wasm32-unknown-unknown/guest/greet_customer.wasm"));
    assert_eq!(line("size:"), format!("{} bytes", wasm.len()));
    let sha256 = format!("sha256:{:x}", sha2::Sha256::digest(&wasm));
    assert_eq!(line("sha256:"), sha256);

    // chatflow code on the sample input: what the unit test saw, in the
    // sandbox.
    let code = chatflow(
        &block,
        &[
            "code",
            module.to_str().unwrap(),
            "--set",
            "API Response=@sample/api-response.json",
            "--json",
        ],
    );
    assert_exit(&code, 0, "chatflow code");
    let outcome = json(&code);
    assert_eq!(outcome["ok"], true);
    assert_eq!(
        outcome["changes"],
        serde_json::json!({"first_name": "Ada", "tier": "gold"})
    );
    assert_eq!(
        outcome["messages"],
        serde_json::json!(["Welcome back, Ada!"])
    );

    // Without [profile.guest] the same settings come with --config: the
    // same module, and the build says so.
    let manifest = block.join("Cargo.toml");
    let toml = std::fs::read_to_string(&manifest).unwrap();
    let profile = chatflow_build_support::guest_profile_toml("guest");
    assert!(toml.contains(&profile));
    std::fs::write(&manifest, toml.replace(&profile, "")).unwrap();
    let again = chatflow(&block, &["build", "--json"]);
    assert_exit(&again, 0, "chatflow build without [profile.guest]");
    let out = json(&again);
    assert_eq!(out["profile_source"], "settings");
    assert_eq!(out["module"], sha256.as_str());
    assert_eq!(out["size"], wasm.len());
    assert!(
        text(&again.stderr).contains("passed with --config"),
        "{}",
        text(&again.stderr)
    );

    // A compiler error: exit 1, cargo's message on stderr.
    let lib = block.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, source.replace("Ok(())\n}", "Ok(()) +\n}")).unwrap();
    let broken = chatflow(&block, &["build"]);
    assert_exit(&broken, 1, "chatflow build with a compile error");
    assert!(
        text(&broken.stderr).contains("error"),
        "{}",
        text(&broken.stderr)
    );
    assert!(broken.stdout.is_empty());
}

/// What `chatflow new` and `chatflow build` refuse, each with exit 2 and a
/// message saying why.
#[test]
fn new_and_build_refuse_bad() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("taken")).unwrap();
    std::fs::write(tmp.path().join("taken/notes.txt"), "mine").unwrap();
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["new", "taken"], "already exists and is not empty"),
        (
            &["new", "2fast"],
            "`2fast` is not a valid crate name: it starts with a digit",
        ),
        (&["new", "my block"], "`my block` is not a valid crate name"),
        (&["new", "fn"], "Rust keyword"),
        (
            &["new", "x", "--sdk-path", "taken"],
            "--sdk-path taken: no chatflow-sdk there",
        ),
        (&["build"], "is not a crate cargo can read"),
        (
            &["build", "--manifest-path", "taken/notes.txt"],
            "is not a crate cargo can read",
        ),
    ];
    for (args, want) in cases {
        let output = chatflow(tmp.path(), args);
        assert_exit(&output, 2, &format!("{args:?}"));
        let stderr = text(&output.stderr);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    // Nothing was written in the refused cases...
    assert_eq!(
        std::fs::read_dir(tmp.path().join("taken")).unwrap().count(),
        1
    );
    assert!(!tmp.path().join("2fast").exists());
    // ...and an empty directory is fine.
    let output = chatflow(tmp.path(), &["new", "empty"]);
    assert_exit(&output, 0, "new in an empty directory");
    assert!(tmp.path().join("empty/src/lib.rs").is_file());

    // A crate that is not a Code block (no cdylib).
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(plain.join("src")).unwrap();
    std::fs::write(
        plain.join("Cargo.toml"),
        "[package]\nname = \"plain\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(plain.join("src/lib.rs"), "").unwrap();
    let output = chatflow(&plain, &["build"]);
    assert_exit(&output, 2, "build of a plain crate");
    assert!(
        text(&output.stderr).contains("is not a Code block crate"),
        "{}",
        text(&output.stderr)
    );
}
