//! The module cache: compile once per hash, and the authenticated on-disk
//! cache of precompiled artifacts.

use chatflow_engine::Properties;
use chatflow_engine::sandbox::{CodeModule, ConfigError, LoadError, ModuleRef, SandboxConfig};

use super::{HEALTHY, ok, sandbox, sandbox_with, wat};

#[test]
fn same_bytes_compile_once() {
    let sb = sandbox();
    let wasm = wat::parse_str(wat(HEALTHY)).unwrap();
    let a = sb.load(&wasm).unwrap();
    let b = sb.load(&wasm).unwrap();
    assert!(CodeModule::ptr_eq(&a, &b));
    let stats = sb.cache_stats();
    assert_eq!(
        (stats.compiles, stats.hits, stats.entries),
        (1, 1, 1),
        "{stats:?}"
    );

    let by_hash = sb.load_cached(a.sha256()).unwrap();
    assert!(CodeModule::ptr_eq(&a, &by_hash));
    let by_ref = sb
        .load_ref(
            &format!("sha256:{}", a.sha256_hex()).parse().unwrap(),
            std::path::Path::new("."),
        )
        .unwrap();
    assert!(CodeModule::ptr_eq(&a, &by_ref));
}

#[test]
fn unknown_hash_is_not_cached() {
    let sb = sandbox();
    let err = sb.load_cached(&[7; 32]).unwrap_err();
    assert!(
        matches!(&err, LoadError::NotCached { sha256 } if sha256 == &"07".repeat(32)),
        "{err:?}"
    );
    let err = sb
        .load_ref(
            &ModuleRef::Path("definitely/not/here.wasm".into()),
            std::path::Path::new("/nonexistent"),
        )
        .unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }), "{err:?}");
}

#[test]
fn lru_evicts_beyond_capacity() {
    let sb = sandbox_with(SandboxConfig::default().with_module_cache_capacity(1));
    let one = wat::parse_str(wat(HEALTHY)).unwrap();
    let two = wat::parse_str(wat(
        r#"(func (export "chatflow_run") (result i32) (i32.const 0))"#,
    ))
    .unwrap();
    let first = sb.load(&one).unwrap();
    sb.load(&two).unwrap();
    assert!(sb.load_cached(first.sha256()).is_err(), "evicted");
    sb.load(&one).unwrap();
    assert_eq!(sb.cache_stats().compiles, 3);
}

#[tokio::test]
async fn disk_cache_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("modules");
    let wasm = wat::parse_str(wat(HEALTHY)).unwrap();
    let hash = {
        let sb = sandbox_with(SandboxConfig::default().with_cache_dir(&cache));
        let module = sb.load(&wasm).unwrap();
        assert_eq!(sb.cache_stats().disk_writes, 1);
        *module.sha256()
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&cache), 0o700);
        assert_eq!(mode(&cache.join("key")), 0o600);
    }

    // A new sandbox (a restarted process) loads by hash without compiling.
    let sb = sandbox_with(SandboxConfig::default().with_cache_dir(&cache));
    let module = sb.load_cached(&hash).unwrap();
    let stats = sb.cache_stats();
    assert_eq!((stats.compiles, stats.disk_hits), (0, 1), "{stats:?}");
    assert_eq!(module.size(), wasm.len());
    let output = ok(sb
        .run(&module, &Properties::new(), &sb.default_limits())
        .await);
    assert_eq!(output.changes.get("done"), Some(Some("yes")));
}

#[tokio::test]
async fn tampered_artifacts_are_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("modules");
    let wasm = wat::parse_str(wat(HEALTHY)).unwrap();
    drop(
        sandbox_with(SandboxConfig::default().with_cache_dir(&cache))
            .load(&wasm)
            .unwrap(),
    );
    let artifact = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("an artifact was written");

    // Flip one byte of the native code: the tag no longer checks out.
    let mut bytes = std::fs::read(&artifact).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&artifact, &bytes).unwrap();
    let sb = sandbox_with(SandboxConfig::default().with_cache_dir(&cache));
    let module = sb.load(&wasm).unwrap();
    let stats = sb.cache_stats();
    assert_eq!(
        (stats.disk_rejects, stats.disk_hits, stats.compiles),
        (1, 0, 1),
        "{stats:?}"
    );
    ok(sb
        .run(&module, &Properties::new(), &sb.default_limits())
        .await);

    // A file planted by someone without the key (valid header, own tag).
    let mut planted = b"CFCWASM1".to_vec();
    planted.extend([0u8; 32]);
    planted.extend((wasm.len() as u64).to_le_bytes());
    planted.extend(b"\x7fELF not really");
    std::fs::write(&artifact, &planted).unwrap();
    let sb = sandbox_with(SandboxConfig::default().with_cache_dir(&cache));
    assert!(sb.load_cached(module.sha256()).is_err());
    assert_eq!(sb.cache_stats().disk_rejects, 1);
}

/// Sandboxes (or processes) that open a fresh cache directory at the same
/// moment all get the same key: none sees it half-written (the server's
/// tests once failed that way, starting several servers at once).
#[cfg(unix)]
#[test]
fn concurrent_first_opens_share_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("modules");
    let wasm = wat::parse_str(wat(HEALTHY)).unwrap();
    let start = std::sync::Barrier::new(6);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    chatflow_engine::sandbox::Sandbox::new(
                        SandboxConfig::default()
                            .with_cache_dir(&cache)
                            .with_max_concurrent_runs(1),
                        crate::support::loopback_client(),
                    )
                })
            })
            .collect();
        for h in handles {
            let sb = h.join().unwrap().expect("every opener gets the key");
            drop(sb);
        }
    });
    let names: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["key"], "no temporary key files are left behind");
    // One key for all: what one sandbox writes, the next one trusts.
    sandbox_with(SandboxConfig::default().with_cache_dir(&cache))
        .load(&wasm)
        .unwrap();
    let sb = sandbox_with(SandboxConfig::default().with_cache_dir(&cache));
    sb.load(&wasm).unwrap();
    assert_eq!(sb.cache_stats().disk_hits, 1, "{:?}", sb.cache_stats());
}

#[cfg(unix)]
#[test]
fn a_readable_key_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("modules");
    drop(sandbox_with(
        SandboxConfig::default().with_cache_dir(&cache),
    ));
    std::fs::set_permissions(cache.join("key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = chatflow_engine::sandbox::Sandbox::new(
        SandboxConfig::default()
            .with_cache_dir(&cache)
            .with_max_concurrent_runs(2),
        crate::support::loopback_client(),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn a_code_block_config_loads_its_module_relative_to_the_flow() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("blocks")).unwrap();
    std::fs::write(
        dir.path().join("blocks/healthy.wasm"),
        wat::parse_str(wat(HEALTHY)).unwrap(),
    )
    .unwrap();
    let block: chatflow_engine::sandbox::CodeBlockConfig = serde_json::from_str(
        r#"{"module": "blocks/healthy.wasm", "limits": {"fuel": 100000}, "ignore_error": true}"#,
    )
    .unwrap();
    let sb = sandbox();
    let module = sb.load_ref(&block.module, dir.path()).unwrap();
    let limits = sb.limits(&block.limits).unwrap();
    assert_eq!(limits.fuel, 100_000);
    let output = ok(sb.run(&module, &Properties::new(), &limits).await);
    assert_eq!(output.changes.get("done"), Some(Some("yes")));

    let too_much: chatflow_engine::sandbox::CodeBlockConfig =
        serde_json::from_str(r#"{"module": "blocks/healthy.wasm", "limits": {"http_calls": 101}}"#)
            .unwrap();
    assert!(matches!(
        sb.limits(&too_much.limits),
        Err(chatflow_engine::sandbox::LimitError::OverMaximum {
            value: 101,
            max: 100,
            ..
        })
    ));
    // Limits over the maximum passed straight to run are refused too.
    let outcome = sb
        .run(
            &module,
            &Properties::new(),
            &chatflow_engine::sandbox::Limits::maximum().with_http_calls(101),
        )
        .await;
    assert!(matches!(
        outcome.result,
        Err(chatflow_engine::sandbox::RunError::InvalidLimits(_))
    ));
}
