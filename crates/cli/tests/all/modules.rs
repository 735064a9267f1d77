//! The same rules through the command line, which reads a flow's modules
//! with the library's loader and its own arguments with the capped read.

use std::path::PathBuf;

use crate::support::modules::one_code_block_flow;

/// Text that must never appear in an error message.
const SECRET: &str = "API_KEY=sk-live-7f3a9c0d2e1b4a5f";

/// A scratch directory (`root`) with a module directory in it (`modules`).
struct Dirs {
    _root: tempfile::TempDir,
    root: PathBuf,
    modules: PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let modules = root.path().join("modules");
    std::fs::create_dir_all(&modules).unwrap();
    Dirs {
        root: root.path().to_path_buf(),
        modules,
        _root: root,
    }
}

fn chatflow(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_chatflow"))
        .args(args)
        .env_remove("CHATFLOW_LOG")
        .output()
        .unwrap()
}

#[test]
fn check_refuses_hostile_module_paths() {
    let d = dirs();
    std::fs::write(d.modules.join("secret.wasm"), SECRET).unwrap();
    for (module, message) in [
        ("/dev/zero", "module path \"/dev/zero\" is absolute"),
        (
            "../../../../etc/passwd",
            "module path \"../../../../etc/passwd\" contains \"..\"",
        ),
        (
            "secret.wasm",
            "module file \"secret.wasm\" is not a WebAssembly module (starts like a text file)",
        ),
    ] {
        let flow_path = d.modules.join("flow.json");
        std::fs::write(&flow_path, one_code_block_flow(module)).unwrap();
        let out = chatflow(&["check", flow_path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(message), "{stderr}");
        assert!(!stderr.contains("sk-live"), "{stderr}");
        assert!(!stderr.contains("root:"), "{stderr}");
    }
}

#[test]
fn check_reads_its_argument_with_a_cap() {
    let out = chatflow(&["check", "/dev/zero"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("module file \"/dev/zero\" is larger than the limit of 16777216 bytes"),
        "{stderr}"
    );

    let d = dirs();
    let secret = d.root.join("secret.txt");
    std::fs::write(&secret, SECRET).unwrap();
    let huge = d.root.join("huge.wat");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    for (path, message) in [
        (
            &secret,
            "is not a WebAssembly module (starts like a text file)",
        ),
        (&huge, "is 1099511627776 bytes; the limit is 16777216 bytes"),
    ] {
        for command in ["check", "code"] {
            let out = chatflow(&[command, path.to_str().unwrap()]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{stderr}");
            assert!(stderr.contains(message), "{stderr}");
            assert!(!stderr.contains("sk-live"), "{stderr}");
        }
    }
}
