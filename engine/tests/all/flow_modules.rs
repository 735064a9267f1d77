//! A flow file names its Code block modules by path, and a flow file may be
//! hostile: every file it can make the engine read must be a regular file
//! inside the module directory, no larger than `max_module_bytes`, and an
//! error about it never shows what the file holds. Each hostile path below
//! is refused with its own typed error naming the path as written; the good
//! cases (subdirectories, symbolic links that stay inside) still load.
//!
//! The operator's own paths (`chatflow check M.wasm`, `Sandbox::load_file`)
//! may be anywhere, but are still size-checked and read with a cap.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chatflow_engine::flow::ProblemKind;
use chatflow_engine::sandbox::{LoadError, SandboxConfig};
use chatflow_engine::{Engine, EngineConfig};

use crate::support::modules::{cached, one_code_block_flow};

/// A valid ABI v1 module (a few dozen bytes).
const MINIMAL_MODULE: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "chatflow_abi_v1"))
  (func (export "chatflow_run") (result i32) (i32.const 0)))"#;

/// Text that must never appear in an error message.
const SECRET: &str = "API_KEY=sk-live-7f3a9c0d2e1b4a5f";

fn minimal() -> Vec<u8> {
    wat::parse_str(MINIMAL_MODULE).unwrap()
}

fn engine() -> Engine {
    engine_with(SandboxConfig::default())
}

fn engine_with(sandbox: SandboxConfig) -> Engine {
    let sandbox = cached(sandbox).with_max_concurrent_runs(2);
    Engine::new(EngineConfig::default().with_sandbox(sandbox)).unwrap()
}

/// A module directory with `blocks/good.wasm` (valid), and beside it,
/// outside the module directory, `outside.wasm` (valid too, so a refusal
/// is about where it is, not what it is).
struct Dirs {
    _root: tempfile::TempDir,
    /// The parent of the module directory.
    root: PathBuf,
    /// The module directory.
    modules: PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let modules = root.path().join("modules");
    std::fs::create_dir_all(modules.join("blocks")).unwrap();
    std::fs::write(modules.join("blocks/good.wasm"), minimal()).unwrap();
    std::fs::write(root.path().join("outside.wasm"), minimal()).unwrap();
    Dirs {
        root: root.path().to_path_buf(),
        modules,
        _root: root,
    }
}

/// Loads a one-Code-block flow naming `module`, its module directory
/// `dir`; returns the module error and the whole error's text.
fn refused(engine: &Engine, dir: &Path, module: &str) -> (LoadError, String) {
    let err = engine
        .flow_loader()
        .module_dir(dir)
        .load_str(
            "flow.json",
            &one_code_block_flow(module),
            Path::new("/nonexistent"),
        )
        .map(|_| ())
        .expect_err(module);
    let text = err.to_string();
    let [problem] = <[_; 1]>::try_from(err.problems).unwrap_or_else(|p| panic!("{p:?}"));
    assert_eq!(problem.field.as_deref(), Some("module"));
    match problem.kind {
        ProblemKind::Module(e) => (e, text),
        other => panic!("{module}: {other:?}"),
    }
}

fn loads(engine: &Engine, dir: &Path, module: &str) {
    engine
        .flow_loader()
        .module_dir(dir)
        .load_str(
            "flow.json",
            &one_code_block_flow(module),
            Path::new("/nonexistent"),
        )
        .unwrap_or_else(|e| panic!("{module}: {e}"));
}

#[test]
fn absolute_paths_are_refused() {
    let d = dirs();
    let engine = engine();
    let inside = d.modules.join("blocks/good.wasm");
    // Even an absolute path to a module inside the directory: the rule is
    // about what a flow file may write, not where it happens to point.
    for path in ["/dev/zero", "/etc/passwd", inside.to_str().unwrap()] {
        let (err, text) = refused(&engine, &d.modules, path);
        assert!(
            matches!(&err, LoadError::AbsolutePath { path: p } if p == Path::new(path)),
            "{err:?}"
        );
        assert_eq!(
            text,
            format!(
                "flow.json: block \"a\", module: module path {path:?} is absolute; \
                 a flow's module must be a relative path inside the module directory"
            )
        );
    }
}

#[test]
fn parent_dir_components_are_refused() {
    let d = dirs();
    let engine = engine();
    for path in [
        "../outside.wasm",
        "../../../../etc/passwd",
        // Even one that would come back inside.
        "blocks/../blocks/good.wasm",
        "./blocks/..",
    ] {
        let (err, text) = refused(&engine, &d.modules, path);
        assert!(
            matches!(&err, LoadError::ParentDir { path: p } if p == Path::new(path)),
            "{err:?}"
        );
        assert!(text.contains("contains \"..\""), "{text}");
        assert!(!text.contains("root:"), "{text}");
    }
}

#[cfg(unix)]
#[test]
fn symlinks_out_of_the_module_dir_are_refused() {
    use std::os::unix::fs::symlink;
    let d = dirs();
    let engine = engine();
    symlink(d.root.join("outside.wasm"), d.modules.join("out.wasm")).unwrap();
    symlink("../outside.wasm", d.modules.join("relative-out.wasm")).unwrap();
    symlink("/etc", d.modules.join("etc")).unwrap();
    symlink("/dev/zero", d.modules.join("zero.wasm")).unwrap();
    // A chain: inside → inside → outside.
    symlink("out.wasm", d.modules.join("hop.wasm")).unwrap();
    for path in [
        "out.wasm",
        "relative-out.wasm",
        "etc/passwd",
        "zero.wasm",
        "hop.wasm",
    ] {
        let (err, text) = refused(&engine, &d.modules, path);
        assert!(
            matches!(&err, LoadError::OutsideModuleDir { path: p } if p == Path::new(path)),
            "{path}: {err:?}"
        );
        assert_eq!(
            text,
            format!(
                "flow.json: block \"a\", module: module path {path:?} resolves outside \
                 the module directory (through a symbolic link)"
            )
        );
    }
}

#[test]
fn directories_are_refused() {
    let d = dirs();
    let engine = engine();
    for path in ["blocks", ".", "blocks/"] {
        let (err, _) = refused(&engine, &d.modules, path);
        assert!(
            matches!(&err, LoadError::NotAFile { path: p, kind: "directory" } if p == Path::new(path)),
            "{path}: {err:?}"
        );
    }
}

/// A device is never opened, even when the operator's module directory is
/// `/dev` (a flow cannot get there otherwise).
#[cfg(unix)]
#[test]
fn devices_are_refused() {
    let engine = engine();
    let (err, text) = refused(&engine, Path::new("/dev"), "zero");
    assert!(
        matches!(
            &err,
            LoadError::NotAFile {
                kind: "character device",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        text,
        "flow.json: block \"a\", module: module path \"zero\" is not a regular file \
         (it is a character device)"
    );
}

/// Opening a FIFO for reading waits for a writer: the loader must refuse it
/// from its metadata without opening it. Run on a thread so a regression
/// fails the test instead of hanging the suite.
#[cfg(unix)]
#[test]
fn fifos_are_refused_without_waiting() {
    let d = dirs();
    let fifo = d.modules.join("pipe.wasm");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let modules = d.modules.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(refused(&engine(), &modules, "pipe.wasm"));
    });
    let (err, _) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("loading a flow naming a FIFO hung");
    assert!(
        matches!(&err, LoadError::NotAFile { kind: "FIFO", .. }),
        "{err:?}"
    );
}

/// A 1 TiB sparse file: reading it would take minutes and more memory than
/// the machine has, so getting the typed error back at all (and quickly)
/// shows the size was taken from the metadata, before any read.
#[test]
fn oversized_files_are_refused_from_their_metadata() {
    let d = dirs();
    let huge = d.modules.join("huge.wasm");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(1 << 40).unwrap();
    drop(file);
    let engine = engine();
    let max = engine.sandbox().config().max_module_bytes;
    let started = Instant::now();
    let (err, text) = refused(&engine, &d.modules, "huge.wasm");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(&err, LoadError::FileTooLarge { size: Some(size), max: m, .. }
            if *size == 1 << 40 && *m == max),
        "{err:?}"
    );
    assert_eq!(
        text,
        format!(
            "flow.json: block \"a\", module: module file \"huge.wasm\" is 1099511627776 \
             bytes; the limit is {max} bytes"
        )
    );
}

/// `max_module_bytes` is inclusive: a module of exactly the cap loads, one
/// byte more does not.
#[test]
fn the_size_cap_is_exact() {
    let d = dirs();
    let size = minimal().len();
    loads(
        &engine_with(SandboxConfig::default().with_max_module_bytes(size)),
        &d.modules,
        "blocks/good.wasm",
    );
    let (err, _) = refused(
        &engine_with(SandboxConfig::default().with_max_module_bytes(size - 1)),
        &d.modules,
        "blocks/good.wasm",
    );
    assert!(
        matches!(&err, LoadError::FileTooLarge { size: Some(s), max, .. }
            if *s == size as u64 && *max == size - 1),
        "{err:?}"
    );
}

/// Files that are not wasm are refused in one line that says what they
/// look like, never what they hold (wasmtime's own message quotes the
/// first bytes).
#[test]
fn files_that_are_not_wasm_are_not_shown() {
    let d = dirs();
    let engine = engine();
    let secret_text = format!("{SECRET}\nDB_PASSWORD=hunter2\n");
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "secret.wasm",
            secret_text.as_bytes(),
            "starts like a text file",
        ),
        (
            "elf.wasm",
            b"\x7fELF\x02\x01\x01\x00sk-live-7f3a9c0d2e1b4a5f\x00\x00",
            "starts like binary data",
        ),
        ("empty.wasm", b"", "the file is empty"),
        (
            "module.wat",
            b"  (module (func $sk_live_7f3a9c0d2e1b4a5f))",
            "starts like WebAssembly text (.wat), which must be compiled to .wasm first",
        ),
    ];
    for (name, bytes, looks_like) in cases {
        std::fs::write(d.modules.join(name), bytes).unwrap();
        let (err, text) = refused(&engine, &d.modules, name);
        assert!(
            matches!(&err, LoadError::NotWasm { path, looks_like: l }
                if path == Path::new(name) && l == looks_like),
            "{err:?}"
        );
        assert_eq!(
            text,
            format!(
                "flow.json: block \"a\", module: module file {name:?} is not a \
                 WebAssembly module ({looks_like})"
            )
        );
        for leak in [
            "sk-live", "sk_live", "hunter2", "API_KEY", "ELF", "0x7f", "0x41",
        ] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
    }
}

#[test]
fn missing_files_name_the_path_as_written() {
    let d = dirs();
    let (err, text) = refused(&engine(), &d.modules, "blocks/missing.wasm");
    assert!(
        matches!(&err, LoadError::Io { path, .. } if path == Path::new("blocks/missing.wasm")),
        "{err:?}"
    );
    assert!(
        !text.contains(d.modules.to_str().unwrap()),
        "the module directory is not shown: {text}"
    );
}

#[test]
fn modules_inside_the_dir_load() {
    let d = dirs();
    let engine = engine();
    for path in [
        "blocks/good.wasm",
        "./blocks/good.wasm",
        "blocks//good.wasm",
    ] {
        loads(&engine, &d.modules, path);
    }
    // The default module directory: the flow file's own.
    let flow_path = d.modules.join("flow.json");
    std::fs::write(&flow_path, one_code_block_flow("blocks/good.wasm")).unwrap();
    engine.load_flow(&flow_path).unwrap();
    // `sha256:` references are unchanged: any module already loaded.
    let hash = engine.sandbox().load(&minimal()).unwrap().sha256_hex();
    loads(
        &engine,
        Path::new("/nonexistent"),
        &format!("sha256:{hash}"),
    );
}

/// An empty base directory (`Path::new("flow.json").parent()`) means the
/// current directory, which for the tests is the package's: `Cargo.toml`
/// is found there (and refused as text).
#[test]
fn an_empty_base_dir_is_the_current_dir() {
    let err = engine()
        .flow_loader()
        .load_str(
            "flow.json",
            &one_code_block_flow("Cargo.toml"),
            Path::new(""),
        )
        .unwrap_err();
    assert!(
        matches!(
            &err.problems[0].kind,
            ProblemKind::Module(LoadError::NotWasm {
                looks_like: "starts like a text file",
                ..
            })
        ),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn symlinks_that_stay_inside_load() {
    use std::os::unix::fs::symlink;
    let d = dirs();
    let engine = engine();
    symlink("blocks/good.wasm", d.modules.join("alias.wasm")).unwrap();
    symlink("blocks", d.modules.join("linked-blocks")).unwrap();
    loads(&engine, &d.modules, "alias.wasm");
    loads(&engine, &d.modules, "linked-blocks/good.wasm");
    // The module directory itself reached through a symbolic link: it is
    // resolved before the check, so its modules still count as inside.
    let link = d.root.join("modules-link");
    symlink(&d.modules, &link).unwrap();
    loads(&engine, &link, "blocks/good.wasm");
    loads(&engine, &link, "alias.wasm");
}

/// The operator's own paths may be anywhere, but a device or an endless
/// file is read at most one byte past the cap.
#[cfg(unix)]
#[test]
fn operator_paths_are_read_with_a_cap() {
    let engine = engine_with(SandboxConfig::default().with_max_module_bytes(64 * 1024));
    let sandbox = engine.sandbox();
    let err = sandbox.load_file(Path::new("/dev/zero")).unwrap_err();
    assert!(
        matches!(
            &err,
            LoadError::FileTooLarge {
                size: None,
                max: 65536,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "module file \"/dev/zero\" is larger than the limit of 65536 bytes"
    );
    let d = dirs();
    let module = sandbox.load_file(&d.root.join("outside.wasm")).unwrap();
    assert_eq!(module.size(), minimal().len());
    let err = sandbox.load_file(&d.modules).unwrap_err();
    assert!(
        matches!(
            &err,
            LoadError::NotAFile {
                kind: "directory",
                ..
            }
        ),
        "{err:?}"
    );
}
