//! The Code block as a flow file describes it.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::Read as _;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Sandbox;
use super::limits::LimitOverrides;
use super::module::{CodeModule, LoadError, hex, parse_hex32};

/// A Code block's configuration in a flow file.
///
/// ```
/// use chatflow_sandbox::{CodeBlockConfig, ModuleRef};
/// let block: CodeBlockConfig = serde_json::from_str(r#"{
///     "module": "blocks/parse_order.wasm",
///     "limits": {"fuel": 50000000, "wall_time_ms": 1000},
///     "ignore_error": true
/// }"#).unwrap();
/// assert_eq!(block.module, ModuleRef::Path("blocks/parse_order.wasm".into()));
/// assert!(block.ignore_error);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CodeBlockConfig {
    /// The module to run.
    pub module: ModuleRef,
    /// Limit overrides for this block (checked against the operator's
    /// maximums when the flow is loaded).
    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: LimitOverrides,
    /// On error, continue the conversation (nothing the run wrote is
    /// committed) instead of stopping it; the same meaning as the REST API
    /// block's option.
    ///
    /// By default `false`.
    #[serde(default)]
    pub ignore_error: bool,
}

fn is_default(o: &LimitOverrides) -> bool {
    *o == LimitOverrides::default()
}

impl CodeBlockConfig {
    /// A block running `module` with default limits that stops the
    /// conversation on error.
    pub fn new(module: ModuleRef) -> Self {
        CodeBlockConfig {
            module,
            limits: LimitOverrides::default(),
            ignore_error: false,
        }
    }
}

/// Which module a Code block runs: a file, or a module already in the
/// sandbox's cache named by its hash.
///
/// Written in flow files as a string: `"sha256:<64 hex digits>"` for a hash,
/// anything else is a path, relative to the module directory (the flow
/// file's directory unless the operator gave another): no absolute path, no
/// `..`, no symbolic link out of the directory (see [`Sandbox::load_ref`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModuleRef {
    /// A `.wasm` file.
    Path(PathBuf),
    /// A module in the cache, by the SHA-256 of its bytes.
    Sha256([u8; 32]),
}

/// A `sha256:` module reference that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("module reference {0:?}: expected sha256: followed by 64 hex digits")]
pub struct ModuleRefError(String);

impl FromStr for ModuleRef {
    type Err = ModuleRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("sha256:") {
            Some(digest) => parse_hex32(&digest.to_ascii_lowercase())
                .map(ModuleRef::Sha256)
                .ok_or_else(|| ModuleRefError(s.to_string())),
            None if s.is_empty() => Err(ModuleRefError(s.to_string())),
            None => Ok(ModuleRef::Path(PathBuf::from(s))),
        }
    }
}

impl fmt::Display for ModuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleRef::Path(p) => write!(f, "{}", p.display()),
            ModuleRef::Sha256(h) => write!(f, "sha256:{}", hex(h)),
        }
    }
}

impl Serialize for ModuleRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ModuleRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Sandbox {
    /// Loads the module a Code block refers to: a path is resolved inside
    /// `base_dir` (the module directory: the flow file's directory, or the
    /// one the operator gave) and read; a hash is looked up in the cache.
    ///
    /// A path comes from a flow file, which may be hostile, so it must name a
    /// regular file inside `base_dir`: it must be relative, have no `..`,
    /// and resolve (symbolic links followed, in `base_dir` too) to a file
    /// under `base_dir` resolved the same way. The size is checked from the
    /// file's metadata before anything is read, and the read stops one byte
    /// past [`max_module_bytes`](super::SandboxConfig::max_module_bytes), so
    /// a file that grows meanwhile cannot use more memory either. A file that
    /// does not start like WebAssembly is refused without showing its bytes.
    ///
    /// Reads the file synchronously; from async code, call it inside
    /// `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    ///
    /// For a path: [`LoadError::AbsolutePath`], [`LoadError::ParentDir`],
    /// [`LoadError::OutsideModuleDir`], [`LoadError::NotAFile`],
    /// [`LoadError::FileTooLarge`], [`LoadError::NotWasm`], or
    /// [`LoadError::Io`] if the file (or `base_dir`) cannot be read; each
    /// names the path as written. For a hash: [`LoadError::NotCached`]. Then
    /// every error of [`Sandbox::load`].
    pub fn load_ref(&self, module: &ModuleRef, base_dir: &Path) -> Result<CodeModule, LoadError> {
        match module {
            ModuleRef::Sha256(hash) => self.load_cached(hash),
            ModuleRef::Path(path) => {
                let bytes = read_in_dir(base_dir, path, self.config.max_module_bytes)?;
                check_wasm_header(path, &bytes)?;
                self.load(&bytes)
            }
        }
    }

    /// Loads a module file the operator named (a command-line argument, a
    /// path in the embedder's own configuration): any path, unlike
    /// [`Sandbox::load_ref`]'s, but still size-checked from its metadata,
    /// read at most one byte past
    /// [`max_module_bytes`](super::SandboxConfig::max_module_bytes), and
    /// refused without showing its bytes if it is not WebAssembly.
    ///
    /// # Errors
    ///
    /// [`LoadError::Io`], [`LoadError::NotAFile`] (a directory),
    /// [`LoadError::FileTooLarge`], [`LoadError::NotWasm`], then every error
    /// of [`Sandbox::load`].
    pub fn load_file(&self, path: &Path) -> Result<CodeModule, LoadError> {
        let bytes = self.read_module_file(path)?;
        check_wasm_header(path, &bytes)?;
        self.load(&bytes)
    }

    /// Reads a file the operator named, as [`Sandbox::load_file`] does
    /// (size checked first, read capped), without looking at what it holds:
    /// for a caller that translates it first (the CLI's `.wat` files).
    ///
    /// # Errors
    ///
    /// [`LoadError::Io`], [`LoadError::NotAFile`] (a directory),
    /// [`LoadError::FileTooLarge`].
    pub fn read_module_file(&self, path: &Path) -> Result<Vec<u8>, LoadError> {
        let max = self.config.max_module_bytes;
        let file = File::open(path).map_err(|e| io_error(path, &e))?;
        let meta = file.metadata().map_err(|e| io_error(path, &e))?;
        if meta.is_dir() {
            return Err(LoadError::NotAFile {
                path: path.to_path_buf(),
                kind: "directory",
            });
        }
        // Devices and pipes report no useful length; the capped read
        // bounds them.
        if meta.is_file() {
            check_len(path, meta.len(), max)?;
        }
        read_capped(file, path, meta.len(), max)
    }
}

/// Resolves a flow's module `path` inside `base_dir` and reads it (see
/// [`Sandbox::load_ref`] for the rules).
fn read_in_dir(base_dir: &Path, path: &Path, max: usize) -> Result<Vec<u8>, LoadError> {
    let written = || path.to_path_buf();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => {
                return Err(LoadError::AbsolutePath { path: written() });
            }
            Component::ParentDir => return Err(LoadError::ParentDir { path: written() }),
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    // `Path::new("flow.json").parent()` is the empty path.
    let base_dir = if base_dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base_dir
    };
    let base = std::fs::canonicalize(base_dir).map_err(|e| LoadError::Io {
        path: written(),
        message: format!("the module directory {}: {e}", base_dir.display()),
    })?;
    let target = std::fs::canonicalize(base.join(path)).map_err(|e| io_error(path, &e))?;
    if !target.starts_with(&base) {
        return Err(LoadError::OutsideModuleDir { path: written() });
    }
    // `target` has no symbolic links left, so this is the file itself. Its
    // type is checked before opening it: opening a FIFO would wait for a
    // writer.
    let meta = std::fs::symlink_metadata(&target).map_err(|e| io_error(path, &e))?;
    check_regular(path, &meta)?;
    check_len(path, meta.len(), max)?;
    // Should the file be swapped between the check and the open, the open
    // does not follow a symbolic link nor wait on a FIFO, and the checks are
    // repeated on what was opened.
    let file = open_no_follow(&target).map_err(|e| io_error(path, &e))?;
    let meta = file.metadata().map_err(|e| io_error(path, &e))?;
    check_regular(path, &meta)?;
    check_len(path, meta.len(), max)?;
    read_capped(file, path, meta.len(), max)
}

#[cfg(unix)]
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

fn check_regular(path: &Path, meta: &Metadata) -> Result<(), LoadError> {
    if meta.is_file() {
        return Ok(());
    }
    Err(LoadError::NotAFile {
        path: path.to_path_buf(),
        kind: file_kind(meta),
    })
}

fn file_kind(meta: &Metadata) -> &'static str {
    let ty = meta.file_type();
    if ty.is_dir() {
        return "directory";
    }
    if ty.is_symlink() {
        return "symbolic link";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if ty.is_fifo() {
            return "FIFO";
        }
        if ty.is_char_device() {
            return "character device";
        }
        if ty.is_block_device() {
            return "block device";
        }
        if ty.is_socket() {
            return "socket";
        }
    }
    "special file"
}

fn check_len(path: &Path, len: u64, max: usize) -> Result<(), LoadError> {
    if len > max as u64 {
        return Err(LoadError::FileTooLarge {
            path: path.to_path_buf(),
            size: Some(len),
            max,
        });
    }
    Ok(())
}

/// Reads at most `max + 1` bytes: one more than allowed tells a file that
/// grew past the cap (or an endless device) from one that is exactly `max`.
fn read_capped(file: File, path: &Path, len_hint: u64, max: usize) -> Result<Vec<u8>, LoadError> {
    let cap = max.saturating_add(1);
    let hint = usize::try_from(len_hint).unwrap_or(cap).min(cap);
    let mut bytes = Vec::with_capacity(hint);
    file.take(cap as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, &e))?;
    if bytes.len() > max {
        return Err(LoadError::FileTooLarge {
            path: path.to_path_buf(),
            size: None,
            max,
        });
    }
    Ok(bytes)
}

fn io_error(path: &Path, e: &std::io::Error) -> LoadError {
    LoadError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The first four bytes of every WebAssembly binary (module or component).
const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// Refuses bytes that do not start with the WebAssembly magic number,
/// saying what they look like instead. wasmtime's own error for them quotes
/// the first bytes, which for a file that is not wasm may be a secret.
fn check_wasm_header(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.starts_with(WASM_MAGIC) {
        return Ok(());
    }
    Err(LoadError::NotWasm {
        path: path.to_path_buf(),
        looks_like: looks_like(bytes),
    })
}

/// What the start of a file that is not wasm looks like, in a few words
/// that reveal nothing of its contents.
fn looks_like(bytes: &[u8]) -> &'static str {
    if bytes.is_empty() {
        return "the file is empty";
    }
    let head = &bytes[..bytes.len().min(512)];
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        // A multi-byte character cut at the end of `head` is still text.
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return "starts like binary data",
    };
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c'))
    {
        return "starts like binary data";
    }
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with("(module") {
        return "starts like WebAssembly text (.wat), which must be compiled to .wasm first";
    }
    "starts like a text file"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_refs() {
        let hash = "ab".repeat(32);
        let cases = [
            ("a/b.wasm", ModuleRef::Path("a/b.wasm".into())),
            (&*format!("sha256:{hash}"), ModuleRef::Sha256([0xab; 32])),
            (
                &*format!("sha256:{}", hash.to_uppercase()),
                ModuleRef::Sha256([0xab; 32]),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<ModuleRef>(), Ok(want.clone()), "{text:?}");
            let json = serde_json::to_string(&want).unwrap();
            assert_eq!(serde_json::from_str::<ModuleRef>(&json).unwrap(), want);
        }
    }

    #[test]
    fn module_refs_bad() {
        for bad in [
            "",
            "sha256:",
            "sha256:abc",
            &format!("sha256:{}", "zz".repeat(32)),
        ] {
            assert!(bad.parse::<ModuleRef>().is_err(), "{bad:?}");
        }
        let unknown = serde_json::from_str::<CodeBlockConfig>(r#"{"module": "a.wasm", "fule": 1}"#);
        assert!(unknown.is_err());
    }
}
