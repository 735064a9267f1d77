//! The Code block as a flow file describes it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Sandbox;
use super::limits::LimitOverrides;
use super::module::{CodeModule, LoadError, hex, parse_hex32};

/// A Code block's configuration in a flow file.
///
/// ```
/// use chatflow_engine::sandbox::{CodeBlockConfig, ModuleRef};
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
/// anything else is a path, relative to the flow file's directory.
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
    /// Loads the module a Code block refers to: a path is resolved against
    /// `base_dir` (the flow file's directory) and read; a hash is looked up in
    /// the cache.
    ///
    /// Reads the file synchronously; from async code, call it inside
    /// `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    ///
    /// [`LoadError::Io`] if the file cannot be read, [`LoadError::NotCached`]
    /// for an unknown hash, and every error of [`Sandbox::load`].
    pub fn load_ref(&self, module: &ModuleRef, base_dir: &Path) -> Result<CodeModule, LoadError> {
        match module {
            ModuleRef::Sha256(hash) => self.load_cached(hash),
            ModuleRef::Path(path) => {
                let path = base_dir.join(path);
                let bytes = std::fs::read(&path).map_err(|e| LoadError::Io {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                self.load(&bytes)
            }
        }
    }
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
