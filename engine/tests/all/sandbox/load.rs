//! Loading: the size cap, wasm validation, and ABI v1 checks that list
//! every problem.

use chatflow_engine::sandbox::{AbiProblem, LoadError, SandboxConfig};

use super::{HEALTHY, IMPORTS, sandbox, sandbox_with, wat};

fn abi_problems(
    result: Result<chatflow_engine::sandbox::CodeModule, LoadError>,
) -> Vec<AbiProblem> {
    match result {
        Err(LoadError::Abi { problems }) => problems,
        other => panic!("expected an ABI error, got {other:?}"),
    }
}

#[test]
fn a_valid_module_lists_its_imports_and_exports() {
    let sb = sandbox();
    let wasm = wat::parse_str(wat(HEALTHY)).unwrap();
    let module = sb.load(&wasm).unwrap();
    assert_eq!(module.size(), wasm.len());
    assert_eq!(module.sha256_hex().len(), 64);
    assert!(module.imports().iter().any(|i| i == "property_set"));
    for export in ["memory", "chatflow_abi_v1", "chatflow_run"] {
        assert!(module.exports().iter().any(|e| e == export), "{export}");
    }
}

#[test]
fn every_problem_is_listed() {
    let sb = sandbox();
    let wasm = wat::parse_str(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
             (import "chatflow" "log" (func (param i32)))
             (import "chatflow" "no_such_thing" (func))
             (import "env" "memory" (memory 1))
             (import "env" "g" (global i32))
             (func (export "chatflow_abi_v1") (param i32)))"#,
    )
    .unwrap();
    let err = sb.load(&wasm).unwrap_err();
    let message = err.to_string();
    let problems = abi_problems(Err(err));
    assert_eq!(
        problems,
        vec![
            AbiProblem::UnknownImport {
                module: "wasi_snapshot_preview1".into(),
                name: "fd_write".into()
            },
            AbiProblem::ImportType {
                name: "log".into(),
                found: "(i32) -> ()".into(),
                expected: "(i32, i32, i32) -> ()".into(),
            },
            AbiProblem::UnknownImport {
                module: "chatflow".into(),
                name: "no_such_thing".into()
            },
            AbiProblem::ImportKind {
                module: "env".into(),
                name: "memory".into(),
                kind: "memory"
            },
            AbiProblem::ImportKind {
                module: "env".into(),
                name: "g".into(),
                kind: "global"
            },
            AbiProblem::MissingExport { name: "memory" },
            AbiProblem::MissingExport {
                name: "chatflow_run"
            },
            AbiProblem::ExportType {
                name: "chatflow_abi_v1",
                found: "a function (i32) -> ()".into(),
                expected: "a function () -> ()".into(),
            },
        ]
    );
    assert!(
        message.contains("unknown import wasi_snapshot_preview1::fd_write"),
        "{message}"
    );
    assert!(
        message.contains(
            "import chatflow::log has type (i32) -> () but ABI v1 says (i32, i32, i32) -> ()"
        ),
        "{message}"
    );
    assert!(message.contains("missing export chatflow_run"), "{message}");
}

#[test]
fn missing_exports() {
    let sb = sandbox();
    let wasm = wat::parse_str("(module)").unwrap();
    let problems = abi_problems(sb.load(&wasm));
    assert_eq!(
        problems,
        vec![
            AbiProblem::MissingExport { name: "memory" },
            AbiProblem::MissingExport {
                name: "chatflow_run"
            },
            AbiProblem::MissingExport {
                name: "chatflow_abi_v1"
            },
        ]
    );
}

#[test]
fn wrong_run_signature() {
    let sb = sandbox();
    let wasm = wat::parse_str(format!(
        r#"(module {IMPORTS} (memory (export "memory") 1)
             (func (export "chatflow_abi_v1"))
             (func (export "chatflow_run") (param i32) (result i64) (i64.const 0)))"#
    ))
    .unwrap();
    let problems = abi_problems(sb.load(&wasm));
    assert_eq!(
        problems,
        vec![AbiProblem::ExportType {
            name: "chatflow_run",
            found: "a function (i32) -> i64".into(),
            expected: "a function () -> i32".into(),
        }]
    );
}

#[test]
fn invalid_bytes() {
    let sb = sandbox();
    for bad in [
        &b""[..],
        b"\0asm",
        b"not wasm at all",
        b"\0asm\x01\0\0\0\x01\xff",
    ] {
        let err = sb.load(bad).unwrap_err();
        assert!(matches!(err, LoadError::Invalid { .. }), "{bad:?}: {err:?}");
    }
}

#[test]
fn disabled_features_are_refused() {
    let sb = sandbox();
    let cases = [
        // threads: a shared memory
        r#"(module (memory (export "memory") 1 1 shared))"#,
        // memory64
        r#"(module (memory (export "memory") i64 1))"#,
        // multi-memory
        r#"(module (memory 1) (memory (export "memory") 1))"#,
    ];
    for case in cases {
        let wasm = wat::parse_str(case).unwrap();
        let err = sb.load(&wasm).unwrap_err();
        assert!(matches!(err, LoadError::Invalid { .. }), "{case}: {err:?}");
    }
}

#[test]
fn module_over_the_size_cap() {
    let sb = sandbox_with(SandboxConfig::default().with_max_module_bytes(100));
    let wasm = wat::parse_str(wat(HEALTHY)).unwrap();
    assert!(wasm.len() > 100);
    let err = sb.load(&wasm).unwrap_err();
    assert!(
        matches!(err, LoadError::TooLarge { size, max: 100 } if size == wasm.len()),
        "{err:?}"
    );
}

#[test]
fn initial_memory_over_the_operator_maximum() {
    let max = chatflow_engine::sandbox::Limits::maximum().with_memory_bytes(1 << 20);
    let sb = sandbox_with(
        SandboxConfig::default()
            .with_max_limits(max)
            .with_default_limits(
                chatflow_engine::sandbox::Limits::default().with_memory_bytes(1 << 20),
            ),
    );
    let wasm = wat::parse_str(
        r#"(module (memory (export "memory") 17)
             (func (export "chatflow_abi_v1"))
             (func (export "chatflow_run") (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    let err = sb.load(&wasm).unwrap_err();
    assert!(
        matches!(&err, LoadError::Invalid { message } if message.contains("exceeds the limit")),
        "{err:?}"
    );
}
