//! Flows and modules: validating what clients upload, compiling stored flow
//! versions once per replica, and importing `--flows` / `--modules`
//! directories at start.
//!
//! A flow stored in the service names its Code blocks' modules by hash
//! (`"module": "sha256:…"`), so that the flow means the same thing on every
//! replica; the module bytes live in the store. A path in a flow sent to the
//! API is refused (the server never reads files a client names); flows
//! imported from `--flows` have their paths resolved, uploaded and replaced
//! by hashes.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chatflow_engine::flow::model::FlowFile;
use chatflow_engine::flow::{FlowError, ProblemKind};
use chatflow_engine::sandbox::{CodeModule, LoadError, ModuleRef};
use chatflow_engine::{Engine, Flow};
use sha2::{Digest as _, Sha256};

use crate::error::{ApiError, ErrorKind, Problem, ServeError};
use crate::store::{ModuleRecord, Store};

/// A directory that is never created: relative module paths resolve
/// against it, so that a path that slipped past the checks reads nothing.
const NO_DIR: &str = "/nonexistent/chatflow-serve-modules";

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compiled flow versions, by version id (versions are immutable).
pub(crate) struct FlowCache {
    flows: Mutex<lru::LruCache<i64, Flow>>,
}

impl FlowCache {
    pub(crate) fn new(capacity: usize) -> FlowCache {
        let capacity = std::num::NonZeroUsize::new(capacity.max(1)).expect("at least 1");
        FlowCache {
            flows: Mutex::new(lru::LruCache::new(capacity)),
        }
    }

    /// The compiled flow of `version`, compiling it (and loading its
    /// modules from the store) on first use.
    pub(crate) async fn get(
        &self,
        engine: &Engine,
        store: &dyn Store,
        version: i64,
    ) -> Result<Flow, ApiError> {
        if let Some(flow) = self.lock().get(&version) {
            return Ok(flow.clone());
        }
        let record = store.flow_version(version).await?.ok_or_else(|| {
            ApiError::new(
                ErrorKind::FlowUnavailable,
                format!("flow version {version} is not in the store"),
            )
        })?;
        let flow = check(engine, store, &record.source)
            .await
            .map_err(|problems| {
                let listed: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
                tracing::error!(version, problems = ?listed, "a stored flow no longer loads");
                ApiError::new(
                    ErrorKind::FlowUnavailable,
                    format!(
                        "flow {:?} (version {version}) no longer loads on this replica",
                        record.name
                    ),
                )
                .with_problems(problems)
            })?;
        self.lock().put(version, flow.clone());
        Ok(flow)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, lru::LruCache<i64, Flow>> {
        self.flows.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The Code blocks of a flow file and their module references, as the
/// engine's loader reads them. Empty if the file does not parse; the loader
/// then reports why.
fn module_refs(source: &str) -> Vec<(String, ModuleRef)> {
    serde_json::from_str::<FlowFile>(source).map_or_else(
        |_| Vec::new(),
        |file| {
            file.module_refs()
                .into_iter()
                .map(|(id, module)| (id.to_string(), module))
                .collect()
        },
    )
}

/// Validates a flow as `chatflow check` does, with its modules from the
/// store: every problem, each with its block and field. A module named by a
/// path, or by a hash the store does not have, is a problem.
pub(crate) async fn check(
    engine: &Engine,
    store: &dyn Store,
    source: &str,
) -> Result<Flow, Vec<Problem>> {
    let mut own = Vec::new();
    let mut supplied_paths = Vec::new();
    let mut modules = Vec::new();
    let mut seen = BTreeSet::new();
    for (block, module) in module_refs(source) {
        match &module {
            ModuleRef::Path(path) => {
                supplied_paths.push(path.to_string_lossy().into_owned());
                own.push(Problem {
                    block: Some(block),
                    field: Some("module".into()),
                    kind: "module_path".into(),
                    message: format!(
                        "{:?} is a path; a flow sent to the server names its modules by hash \
                         (\"sha256:…\", as PUT /v1/modules answers)",
                        path.display().to_string()
                    ),
                    line: None,
                    column: None,
                });
            }
            ModuleRef::Sha256(_) => {
                let hex = module.to_string()["sha256:".len()..].to_string();
                if !seen.insert(hex.clone()) {
                    continue;
                }
                match store.module_bytes(&hex).await {
                    Ok(Some(bytes)) => modules.push(bytes),
                    Ok(None) => own.push(Problem {
                        block: Some(block),
                        field: Some("module".into()),
                        kind: "module_not_found".into(),
                        message: format!(
                            "no module with sha256 {hex} has been uploaded (PUT /v1/modules)"
                        ),
                        line: None,
                        column: None,
                    }),
                    Err(e) => own.push(Problem {
                        block: Some(block),
                        field: Some("module".into()),
                        kind: "store".into(),
                        message: e.to_string(),
                        line: None,
                        column: None,
                    }),
                }
            }
        }
    }
    let own_blocks: BTreeSet<String> = own.iter().filter_map(|p| p.block.clone()).collect();

    let engine = engine.clone();
    let source = source.to_string();
    let loaded = tokio::task::spawn_blocking(move || {
        let mut loader = engine.flow_loader().module_dir(NO_DIR);
        // Paths get empty bytes: the loader reports them as invalid modules
        // (replaced by our own problem above) and reads no file.
        for path in supplied_paths {
            loader = loader.module(path, Vec::new());
        }
        for bytes in modules {
            loader = loader.module_bytes(bytes);
        }
        loader.load_str("flow", &source, Path::new(NO_DIR))
    })
    .await
    .expect("flow loading does not panic");

    let engine_problems = match loaded {
        Ok(flow) if own.is_empty() => return Ok(flow),
        Ok(_) => Vec::new(),
        Err(err) => problems(err),
    };
    let mut all = own;
    all.extend(engine_problems.into_iter().filter(|p| {
        !(p.field.as_deref() == Some("module")
            && p.block.as_ref().is_some_and(|b| own_blocks.contains(b)))
    }));
    all.sort_by(|a, b| (&a.block, &a.field).cmp(&(&b.block, &b.field)));
    Err(all)
}

/// The engine's problems as the API shows them.
fn problems(err: FlowError) -> Vec<Problem> {
    err.problems
        .into_iter()
        .map(|p| {
            let (line, column) = match &p.kind {
                ProblemKind::Syntax { line, column, .. } => (Some(*line), Some(*column)),
                _ => (None, None),
            };
            Problem {
                block: p.block,
                field: p.field,
                kind: problem_kind(&p.kind).into(),
                message: match &p.kind {
                    ProblemKind::Syntax { message, .. } => message.clone(),
                    other => other.to_string(),
                },
                line,
                column,
            }
        })
        .collect()
}

fn problem_kind(kind: &ProblemKind) -> &'static str {
    match kind {
        ProblemKind::Read(_) => "read",
        ProblemKind::Syntax { .. } => "syntax",
        ProblemKind::BadBlockId => "bad_block_id",
        ProblemKind::MissingType => "missing_type",
        ProblemKind::UnknownType { .. } => "unknown_type",
        ProblemKind::Fields { .. } => "fields",
        ProblemKind::UnknownTarget { .. } => "unknown_target",
        ProblemKind::Template(_) => "template",
        ProblemKind::Name(_) => "property_name",
        ProblemKind::Condition(_) => "condition",
        ProblemKind::Rest(_) => "rest",
        ProblemKind::RestLimit(_) => "rest_limit",
        ProblemKind::Module(LoadError::Abi { .. }) => "abi",
        ProblemKind::Module(_) => "module",
        ProblemKind::Limits(_) => "limits",
        _ => "other",
    }
}

/// A module validated against ABI v1 by this replica's sandbox (and
/// compiled into its cache), ready to store.
pub(crate) struct CheckedModule {
    pub(crate) record: ModuleRecord,
}

/// Validates and compiles `bytes` (on a blocking thread: compiling takes
/// CPU time). The problems are one per ABI problem, or the one reason the
/// bytes are not a module.
pub(crate) async fn check_module(
    engine: &Engine,
    bytes: Arc<Vec<u8>>,
    now: i64,
) -> Result<CheckedModule, Vec<Problem>> {
    let sandbox = engine.sandbox().clone();
    let loaded = tokio::task::spawn_blocking(move || sandbox.load(&bytes))
        .await
        .expect("module loading does not panic");
    match loaded {
        Ok(module) => Ok(CheckedModule {
            record: record(&module, now),
        }),
        Err(LoadError::Abi { problems }) => Err(problems
            .iter()
            .map(|p| Problem {
                block: None,
                field: None,
                kind: "abi".into(),
                message: p.to_string(),
                line: None,
                column: None,
            })
            .collect()),
        Err(other) => Err(vec![Problem {
            block: None,
            field: None,
            kind: match other {
                LoadError::Invalid { .. } => "not_wasm",
                LoadError::TooLarge { .. } => "too_large",
                _ => "module",
            }
            .into(),
            message: other.to_string(),
            line: None,
            column: None,
        }]),
    }
}

fn record(module: &CodeModule, now: i64) -> ModuleRecord {
    ModuleRecord {
        sha256: module.sha256_hex(),
        size: i64::try_from(module.size()).unwrap_or(i64::MAX),
        imports: module.imports().to_vec(),
        exports: module.exports().to_vec(),
        created_at: now,
    }
}

/// Uploads every `*.wasm` of `dir`.
pub(crate) async fn import_modules(
    engine: &Engine,
    store: &dyn Store,
    dir: &Path,
    now: i64,
) -> Result<usize, ServeError> {
    let mut count = 0;
    for path in files(dir, "wasm")? {
        upload_file(engine, store, &path, now).await?;
        count += 1;
    }
    Ok(count)
}

async fn upload_file(
    engine: &Engine,
    store: &dyn Store,
    path: &Path,
    now: i64,
) -> Result<String, ServeError> {
    let bytes = std::fs::read(path).map_err(|source| ServeError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bytes = Arc::new(bytes);
    let checked = check_module(engine, bytes.clone(), now)
        .await
        .map_err(|problems| ServeError::InvalidModule {
            path: path.to_path_buf(),
            problems: problems.into_iter().map(|p| p.message).collect(),
        })?;
    store.put_module(&checked.record, &bytes).await?;
    Ok(checked.record.sha256)
}

/// Stores every `*.json` of `dir` as the flow named by its file stem. Code
/// blocks' module paths are resolved against `modules_dir` (or the flow
/// file's directory), uploaded, and replaced by `sha256:` references.
pub(crate) async fn import_flows(
    engine: &Engine,
    store: &dyn Store,
    dir: &Path,
    modules_dir: Option<&Path>,
    now: i64,
) -> Result<Vec<String>, ServeError> {
    let mut names = Vec::new();
    for path in files(dir, "json")? {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !crate::api::valid_flow_name(&name) {
            return Err(ServeError::InvalidFlow {
                path,
                problems: vec![format!(
                    "{name:?} is not a flow name (1 to 128 of A-Z a-z 0-9 . _ -)"
                )],
            });
        }
        let source = std::fs::read_to_string(&path).map_err(|source| ServeError::Read {
            path: path.clone(),
            source,
        })?;
        let base = modules_dir.unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")));
        let source = resolve_paths(engine, store, &source, base, now).await?;
        let checked = check(engine, store, &source).await;
        if let Err(problems) = checked {
            return Err(ServeError::InvalidFlow {
                path,
                problems: problems.iter().map(describe).collect(),
            });
        }
        store
            .put_flow(&name, &source, &sha256_hex(source.as_bytes()), now)
            .await?;
        names.push(name);
    }
    Ok(names)
}

/// `problem` on one line, with its block and field.
pub(crate) fn describe(problem: &Problem) -> String {
    match (&problem.block, &problem.field) {
        (Some(b), Some(f)) => format!("block {b:?}, {f}: {}", problem.message),
        (Some(b), None) => format!("block {b:?}: {}", problem.message),
        (None, Some(f)) => format!("{f}: {}", problem.message),
        (None, None) => problem.message.clone(),
    }
}

/// Replaces the module paths of a flow file by the hashes of the uploaded
/// files. The file is returned unchanged when it names no path.
async fn resolve_paths(
    engine: &Engine,
    store: &dyn Store,
    source: &str,
    base: &Path,
    now: i64,
) -> Result<String, ServeError> {
    let paths: Vec<(String, PathBuf)> = module_refs(source)
        .into_iter()
        .filter_map(|(block, module)| match module {
            ModuleRef::Path(path) => Some((block, path)),
            ModuleRef::Sha256(_) => None,
        })
        .collect();
    if paths.is_empty() {
        return Ok(source.to_string());
    }
    let mut hashes: HashMap<String, String> = HashMap::new();
    for (block, path) in paths {
        let file = base.join(&path);
        let hex = upload_file(engine, store, &file, now).await?;
        hashes.insert(block, format!("sha256:{hex}"));
    }
    let mut value: serde_json::Value = serde_json::from_str(source).expect("module_refs parsed it");
    if let Some(blocks) = value.get_mut("blocks").and_then(|b| b.as_object_mut()) {
        for (block, reference) in hashes {
            if let Some(fields) = blocks.get_mut(&block).and_then(|b| b.as_object_mut()) {
                fields.insert("module".into(), reference.into());
            }
        }
    }
    Ok(serde_json::to_string_pretty(&value).expect("a JSON value serializes"))
}

/// The files of `dir` with extension `ext`, sorted.
fn files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, ServeError> {
    let read_err = |source| ServeError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == ext) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_module_references() {
        let hash = "ab".repeat(32);
        let source = format!(
            r#"{{"name": "n", "start": "a", "blocks": {{
                "a": {{"type": "code", "module": "x.wasm", "next": "b"}},
                "b": {{"type": "code", "module": "sha256:{hash}"}},
                "c": {{"type": "message", "text": "module"}}
            }}}}"#
        );
        assert_eq!(
            module_refs(&source),
            [
                ("a".to_string(), ModuleRef::Path("x.wasm".into())),
                ("b".to_string(), ModuleRef::Sha256([0xab; 32])),
            ]
        );
    }

    #[test]
    fn finds_module_references_bad() {
        // Not a flow, or a code block whose fields do not read: nothing (the
        // loader reports those).
        assert!(module_refs("{").is_empty());
        assert!(
            module_refs(
                r#"{"name": "n", "start": "a", "blocks": {
                    "a": {"type": "code", "module": "x.wasm", "typo": 1}}}"#
            )
            .is_empty()
        );
    }
}
