//! Loading a Code block module: the size cap, compilation, and validation
//! against ABI v1 before any run.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use chatflow_abi::{FUNC_EXPORTS, IMPORT_MODULE};
use wasmtime::{ExternType, InstancePre, Module, ModuleExport, ValType};

// The one use of `host` here: a pre-instantiated module is typed by the
// store data its imports work on. Validation (`check_abi`) reads only the
// ABI crate's tables.
use super::host::RunState;

// The names the run loop needs, from the ABI crate (the sandbox's run code
// reaches them through this module).
use chatflow_abi::MEMORY_EXPORT;

/// A validated, compiled Code block module, ready to run.
///
/// Cheap to clone (reference counted) and `Send + Sync`. Obtained from
/// [`Sandbox::load`](super::Sandbox::load); only usable with the
/// [`Sandbox`](super::Sandbox) that loaded it.
#[derive(Clone)]
pub struct CodeModule {
    pub(crate) inner: Arc<ModuleInner>,
}

pub(crate) struct ModuleInner {
    pub(crate) sha256: [u8; 32],
    pub(crate) size: usize,
    pub(crate) module: Module,
    pub(crate) pre: InstancePre<RunState>,
    pub(crate) memory: ModuleExport,
    pub(crate) run: ModuleExport,
    pub(crate) imports: Vec<String>,
    pub(crate) exports: Vec<String>,
    /// Identifies the [`Sandbox`](super::Sandbox) that compiled it.
    pub(crate) sandbox_id: u64,
}

impl CodeModule {
    /// The SHA-256 of the module's bytes (its identity in the cache).
    pub fn sha256(&self) -> &[u8; 32] {
        &self.inner.sha256
    }

    /// The SHA-256 as lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex(&self.inner.sha256)
    }

    /// The size of the module's bytes (`.wasm`).
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// The ABI v1 imports the module uses (names in module `chatflow`).
    pub fn imports(&self) -> &[String] {
        &self.inner.imports
    }

    /// Every export name of the module.
    pub fn exports(&self) -> &[String] {
        &self.inner.exports
    }

    /// The size of the module's linear memory when a run starts, in bytes
    /// (its declared minimum): what a run uses before its first
    /// `memory.grow` (compare with [`Outcome::memory_bytes`](super::Outcome::memory_bytes)).
    pub fn initial_memory_bytes(&self) -> u64 {
        match self.inner.module.get_export(MEMORY_EXPORT) {
            Some(wasmtime::ExternType::Memory(memory)) => {
                memory.minimum().saturating_mul(memory.page_size())
            }
            // Validation guarantees the export.
            _ => 0,
        }
    }

    /// Whether two handles name the same compiled module (cache hit).
    pub fn ptr_eq(a: &CodeModule, b: &CodeModule) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }
}

impl fmt::Debug for CodeModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeModule")
            .field("sha256", &self.sha256_hex())
            .field("size", &self.inner.size)
            .field("imports", &self.inner.imports)
            .finish()
    }
}

/// Why a module could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The module is larger than the operator's cap
    /// ([`SandboxConfig::max_module_bytes`](super::SandboxConfig::max_module_bytes),
    /// 16 MiB by default).
    #[error("module is {size} bytes; the limit is {max}")]
    TooLarge {
        /// The module's size in bytes.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// The bytes are not a valid WebAssembly module, or use a wasm feature
    /// the sandbox does not enable (threads, memory64, GC, exceptions …), or
    /// whose initial memory is over the operator's maximum memory limit.
    #[error("not a valid WebAssembly module: {message}")]
    Invalid {
        /// The validator's message.
        message: String,
    },
    /// The module is valid wasm but does not follow ABI v1; every problem
    /// found is listed.
    #[error("module does not follow ABI v1: {}", list(problems))]
    Abi {
        /// Every problem, in the order found (imports, then exports).
        problems: Vec<AbiProblem>,
    },
    /// A `sha256:` module reference names a module that is not in the cache.
    #[error("no module with sha256 {sha256} in the cache")]
    NotCached {
        /// The hex digest asked for.
        sha256: String,
    },
    /// A module file could not be read (it does not exist, no permission,
    /// …), or the module directory it is resolved against cannot be.
    #[error("reading module {path:?}: {message}")]
    Io {
        /// The path as written (in the flow file, or on the command line).
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// A flow's module path is absolute. A flow names its module by a path
    /// relative to the module directory (the flow file's directory, or the
    /// one the operator gave), so a flow file cannot make the engine read
    /// other files.
    #[error(
        "module path {path:?} is absolute; a flow's module must be a relative path inside the module directory"
    )]
    AbsolutePath {
        /// The path as written.
        path: PathBuf,
    },
    /// A flow's module path has a `..` component (even one that would stay
    /// inside the module directory).
    #[error(
        "module path {path:?} contains \"..\"; a flow's module must stay inside the module directory"
    )]
    ParentDir {
        /// The path as written.
        path: PathBuf,
    },
    /// A flow's module path resolves, through a symbolic link, to a file
    /// outside the module directory.
    #[error("module path {path:?} resolves outside the module directory (through a symbolic link)")]
    OutsideModuleDir {
        /// The path as written.
        path: PathBuf,
    },
    /// A flow's module path names something that is not a regular file (a
    /// directory, a FIFO, a device …); it is not opened.
    #[error("module path {path:?} is not a regular file (it is a {kind})")]
    NotAFile {
        /// The path as written.
        path: PathBuf,
        /// What it is: `directory`, `FIFO`, `character device`, `block
        /// device`, `socket` or `special file`.
        kind: &'static str,
    },
    /// A module file is larger than the operator's cap
    /// ([`SandboxConfig::max_module_bytes`](super::SandboxConfig::max_module_bytes)),
    /// found from its metadata before reading, or while reading (the read
    /// stops one byte past the cap).
    #[error("module file {path:?} is {}", too_large(*.size, *.max))]
    FileTooLarge {
        /// The path as written.
        path: PathBuf,
        /// The size its metadata gave, or `None` when the read went past
        /// the cap (a file that grew, or a device).
        size: Option<u64>,
        /// The cap.
        max: usize,
    },
    /// A module file does not start with the WebAssembly magic number. The
    /// message says what the file looks like (`the file is empty`,
    /// `starts like a text file`, …), never what it holds.
    #[error("module file {path:?} is not a WebAssembly module ({looks_like})")]
    NotWasm {
        /// The path as written.
        path: PathBuf,
        /// What the start of the file looks like.
        looks_like: &'static str,
    },
    /// The engine failed to compile or prepare a valid module (not the
    /// module's fault; for example the instance pool is too small for it).
    #[error("preparing the module: {message}")]
    Engine {
        /// wasmtime's message.
        message: String,
    },
}

fn too_large(size: Option<u64>, max: usize) -> String {
    match size {
        Some(size) => format!("{size} bytes; the limit is {max} bytes"),
        None => format!("larger than the limit of {max} bytes"),
    }
}

fn list(problems: &[AbiProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One way a module departs from ABI v1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AbiProblem {
    /// An import that is not an ABI v1 function.
    #[error("unknown import {module}::{name}")]
    UnknownImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// An ABI v1 import declared with another type.
    #[error("import {IMPORT_MODULE}::{name} has type {found} but ABI v1 says {expected}")]
    ImportType {
        /// Import name.
        name: String,
        /// The declared type.
        found: String,
        /// The ABI v1 type.
        expected: String,
    },
    /// An imported memory, table, global or tag: a module must define its
    /// own memory and import only functions.
    #[error("import {module}::{name} is a {kind}; only functions may be imported")]
    ImportKind {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
        /// `memory`, `table`, `global` or `tag`.
        kind: &'static str,
    },
    /// A required export is missing.
    #[error("missing export {name}")]
    MissingExport {
        /// The export's name.
        name: &'static str,
    },
    /// A required export has the wrong kind or type.
    #[error("export {name} is {found} but ABI v1 says {expected}")]
    ExportType {
        /// The export's name.
        name: &'static str,
        /// What it is.
        found: String,
        /// What ABI v1 requires.
        expected: String,
    },
}

/// Checks a compiled module against ABI v1 ([`chatflow_abi::IMPORTS`],
/// [`chatflow_abi::FUNC_EXPORTS`], [`MEMORY_EXPORT`]), collecting every
/// problem.
pub(crate) fn check_abi(module: &Module) -> Vec<AbiProblem> {
    let mut problems = Vec::new();
    for import in module.imports() {
        let (m, name) = (import.module(), import.name());
        let ty = import.ty();
        let func = match ty {
            ExternType::Func(f) => f,
            other => {
                problems.push(AbiProblem::ImportKind {
                    module: m.to_string(),
                    name: name.to_string(),
                    kind: kind_name(&other),
                });
                continue;
            }
        };
        let abi = (m == IMPORT_MODULE)
            .then(|| chatflow_abi::import(name))
            .flatten();
        let Some(abi) = abi else {
            problems.push(AbiProblem::UnknownImport {
                module: m.to_string(),
                name: name.to_string(),
            });
            continue;
        };
        if !same_types(abi.params, func.params()) || !same_types(abi.results, func.results()) {
            problems.push(AbiProblem::ImportType {
                name: name.to_string(),
                found: render_func(func.params(), func.results()),
                expected: render_abi(abi),
            });
        }
    }

    match module.get_export(MEMORY_EXPORT) {
        None => problems.push(AbiProblem::MissingExport {
            name: MEMORY_EXPORT,
        }),
        Some(ExternType::Memory(mem)) => {
            if mem.is_64() || mem.is_shared() {
                let found = match (mem.is_64(), mem.is_shared()) {
                    (true, true) => "a shared 64-bit memory",
                    (true, false) => "a 64-bit memory",
                    _ => "a shared memory",
                };
                problems.push(AbiProblem::ExportType {
                    name: MEMORY_EXPORT,
                    found: found.into(),
                    expected: "a 32-bit memory, not shared".into(),
                });
            }
        }
        Some(other) => problems.push(AbiProblem::ExportType {
            name: MEMORY_EXPORT,
            found: format!("a {}", kind_name(&other)),
            expected: "a 32-bit memory, not shared".into(),
        }),
    }
    for abi in FUNC_EXPORTS {
        let name = abi.name;
        match module.get_export(name) {
            None => problems.push(AbiProblem::MissingExport { name }),
            Some(ExternType::Func(f)) => {
                if !same_types(abi.params, f.params()) || !same_types(abi.results, f.results()) {
                    problems.push(AbiProblem::ExportType {
                        name,
                        found: format!("a function {}", render_func(f.params(), f.results())),
                        expected: format!("a function {}", render_abi(abi)),
                    });
                }
            }
            Some(other) => problems.push(AbiProblem::ExportType {
                name,
                found: format!("a {}", kind_name(&other)),
                expected: format!("a function {}", render_abi(abi)),
            }),
        }
    }
    problems
}

fn kind_name(ty: &ExternType) -> &'static str {
    match ty {
        ExternType::Func(_) => "function",
        ExternType::Global(_) => "global",
        ExternType::Table(_) => "table",
        ExternType::Memory(_) => "memory",
        ExternType::Tag(_) => "tag",
    }
}

fn render_func(
    params: impl ExactSizeIterator<Item = ValType>,
    results: impl ExactSizeIterator<Item = ValType>,
) -> String {
    let params: Vec<String> = params.map(|t| t.to_string()).collect();
    let results: Vec<String> = results.map(|t| t.to_string()).collect();
    render(&params, &results)
}

/// Whether wasm types are exactly the ABI's.
fn same_types(
    abi: &[chatflow_abi::ValType],
    found: impl ExactSizeIterator<Item = ValType>,
) -> bool {
    abi.len() == found.len()
        && abi.iter().zip(found).all(|(abi, found)| match abi {
            chatflow_abi::ValType::I32 => found.is_i32(),
            // A type this sandbox does not know cannot match.
            _ => false,
        })
}

fn render_abi(func: &chatflow_abi::Func) -> String {
    let text = |types: &[chatflow_abi::ValType]| {
        types
            .iter()
            .map(|t| t.as_str().to_string())
            .collect::<Vec<_>>()
    };
    render(&text(func.params), &text(func.results))
}

fn render(params: &[String], results: &[String]) -> String {
    let results = match results {
        [one] => one.clone(),
        many => format!("({})", many.join(", ")),
    };
    format!("({}) -> {results}", params.join(", "))
}

/// Lowercase hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Parses a 64-digit hex SHA-256.
pub(crate) fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_types() {
        assert_eq!(
            render_abi(&chatflow_abi::imports::LOG),
            "(i32, i32, i32) -> ()"
        );
        assert_eq!(
            render_abi(&chatflow_abi::imports::HTTP_RESPONSE_STATUS),
            "(i32) -> i32"
        );
        assert_eq!(
            render(&[], &["i32".into(), "i64".into()]),
            "() -> (i32, i64)"
        );
    }

    #[test]
    fn hex_round_trip() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 7) as u8);
        assert_eq!(parse_hex32(&hex(&bytes)), Some(bytes));
        for bad in ["", "zz", &"0".repeat(63), &"g".repeat(64)] {
            assert_eq!(parse_hex32(bad), None, "{bad:?}");
        }
    }
}
