//! The on-disk module cache of the commands that load Code blocks (`check`,
//! `code`, `bench`, `run`): on by default, in the user's cache directory,
//! so a second invocation on the same module skips compiling it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use chatflow_engine::sandbox::{CacheStats, SandboxConfig};

/// The environment variable naming the cache directory (below
/// `--cache-dir`, above the user's cache directory).
pub const CACHE_DIR_ENV: &str = "CHATFLOW_CACHE_DIR";

/// Where compiled modules are kept between invocations.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CacheArgs {
    /// Compile every module and write nothing to the on-disk module cache.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
    /// Keep compiled modules in this directory (created with mode 0700,
    /// artifacts authenticated with a key kept in it). By default
    /// $CHATFLOW_CACHE_DIR, else $XDG_CACHE_HOME/chatflow/modules, else
    /// ~/.cache/chatflow/modules.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl CacheArgs {
    /// The cache directory these flags (and the environment) name, if any.
    pub fn dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        if let Some(dir) = &self.cache_dir {
            return Some(dir.clone());
        }
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(dir) = var(CACHE_DIR_ENV) {
            return Some(PathBuf::from(dir));
        }
        default_dir(var("XDG_CACHE_HOME"), var("HOME"))
    }

    /// Builds something that holds a sandbox (`build`) with the cache on;
    /// if that fails but works without the cache (a directory that cannot
    /// be created or has the wrong owner or mode), warns on stderr and
    /// returns the cacheless one. Any other failure is `build`'s error
    /// without the cache.
    pub fn build<T, E: std::fmt::Display>(
        &self,
        config: SandboxConfig,
        mut build: impl FnMut(SandboxConfig) -> Result<T, E>,
    ) -> Result<(T, Option<PathBuf>), E> {
        let Some(dir) = self.dir() else {
            return build(config).map(|built| (built, None));
        };
        match build(config.clone().with_cache_dir(&dir)) {
            Ok(built) => Ok((built, Some(dir))),
            Err(with_cache) => {
                let built = build(config)?;
                eprintln!(
                    "warning: module cache {} not used: {with_cache}",
                    dir.display()
                );
                Ok((built, None))
            }
        }
    }
}

/// `$XDG_CACHE_HOME/chatflow/modules` (an absolute `XDG_CACHE_HOME` only,
/// as the XDG specification says), else `$HOME/.cache/chatflow/modules`.
/// On systems without the disk cache (not Unix), none.
fn default_dir(xdg_cache_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    if !cfg!(unix) {
        return None;
    }
    let base = match xdg_cache_home.map(PathBuf::from) {
        Some(xdg) if xdg.is_absolute() => xdg,
        _ => Path::new(&home?).join(".cache"),
    };
    Some(base.join("chatflow").join("modules"))
}

/// What the module cache did for this command, for `--json` output:
/// `null` when it was off (`--no-cache`, or it could not be opened).
pub fn report(dir: Option<&Path>, stats: CacheStats) -> serde_json::Value {
    match dir {
        None => serde_json::Value::Null,
        Some(dir) => serde_json::json!({
            "dir": dir,
            "compiled": stats.compiles,
            "loaded": stats.disk_hits,
            "written": stats.disk_writes,
            "rejected": stats.disk_rejects,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(unix)]
    fn default_dir_follows_xdg_then_home() {
        let dir = |xdg: Option<&str>, home: Option<&str>| {
            default_dir(xdg.map(Into::into), home.map(Into::into))
        };
        assert_eq!(
            dir(Some("/x/cache"), Some("/home/a")),
            Some(PathBuf::from("/x/cache/chatflow/modules"))
        );
        assert_eq!(
            dir(Some("relative"), Some("/home/a")),
            Some(PathBuf::from("/home/a/.cache/chatflow/modules"))
        );
        assert_eq!(
            dir(None, Some("/home/a")),
            Some(PathBuf::from("/home/a/.cache/chatflow/modules"))
        );
        assert_eq!(dir(None, None), None);
    }
}
