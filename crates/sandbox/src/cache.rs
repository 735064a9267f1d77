//! Compiled modules by SHA-256: a bounded in-memory LRU of ready-to-run
//! modules, and an optional on-disk cache of precompiled artifacts.
//!
//! # Why the disk cache can be trusted
//!
//! `Module::deserialize` is `unsafe`: it maps the bytes as native code
//! without checking them, so bytes an attacker could write must never reach
//! it. The sandbox therefore only deserializes artifacts it authenticated:
//!
//! - On first use the cache directory is created with mode `0700`, and a
//!   32-byte secret key is written to `key` inside it with mode `0600`
//!   (created exclusively, from the OS random source). On later starts the
//!   directory and key must be owned by the same user as the process, the
//!   directory must not be writable by group or others, and the key must not
//!   be readable by them; otherwise the sandbox refuses to start.
//! - Each artifact file carries an HMAC-SHA-256 tag, under that key, over a
//!   format tag, the module's SHA-256, the engine's compatibility hash, the
//!   module size and the artifact bytes. The file is read into memory once,
//!   the tag is checked (in constant time) on those bytes, and only those
//!   same bytes are deserialized, so a file swapped after the check is never
//!   used.
//!
//! An attacker who can write to the directory but not read the key cannot
//! produce a file that passes the check (they can only delete files, which
//! costs a recompile). An attacker who can read the key already runs as the
//! engine's user and can do anything the engine can. A file that fails the
//! check is ignored (and logged), and the module is compiled from source.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{Read as _, Write as _};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use lru::LruCache;
use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

use super::module::{CodeModule, hex};
use super::{ConfigError, SandboxConfig};

const ARTIFACT_MAGIC: &[u8; 8] = b"CFCWASM1";
const KEY_FILE: &str = "key";
/// Distinguishes the temporary files this process writes at once (a key
/// by sandboxes opened concurrently, artifacts by concurrent loads): the
/// process id tells processes apart, this tells writes within one apart.
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 32;
const HEADER_LEN: usize = ARTIFACT_MAGIC.len() + TAG_LEN + 8;

/// Counters of a sandbox's module cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CacheStats {
    /// Loads answered from memory.
    pub hits: u64,
    /// Modules compiled from wasm.
    pub compiles: u64,
    /// Modules loaded from the disk cache (authenticated artifacts).
    pub disk_hits: u64,
    /// Disk cache files ignored because their tag did not check out or they
    /// could not be read or deserialized.
    pub disk_rejects: u64,
    /// Artifacts written to the disk cache.
    pub disk_writes: u64,
    /// Modules in memory now.
    pub entries: usize,
}

pub(crate) struct ModuleCache {
    memory: Mutex<LruCache<[u8; 32], CodeModule>>,
    disk: Option<DiskCache>,
    hits: AtomicU64,
    compiles: AtomicU64,
    disk_hits: AtomicU64,
    disk_rejects: AtomicU64,
    disk_writes: AtomicU64,
}

struct DiskCache {
    dir: PathBuf,
    key: [u8; KEY_LEN],
    /// Hex of the engine's precompile compatibility hash: artifacts of
    /// another wasmtime version or config are never even opened.
    engine_hash: String,
}

impl ModuleCache {
    pub(crate) fn new(engine: &Engine, config: &SandboxConfig) -> Result<Self, ConfigError> {
        let capacity = NonZeroUsize::new(config.module_cache_capacity).ok_or_else(|| {
            ConfigError::Invalid("module_cache_capacity must be at least 1".into())
        })?;
        let disk = match &config.cache_dir {
            None => None,
            Some(dir) => Some(DiskCache::open(dir, engine)?),
        };
        Ok(ModuleCache {
            memory: Mutex::new(LruCache::new(capacity)),
            disk,
            hits: AtomicU64::new(0),
            compiles: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            disk_rejects: AtomicU64::new(0),
            disk_writes: AtomicU64::new(0),
        })
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            compiles: self.compiles.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            disk_rejects: self.disk_rejects.load(Ordering::Relaxed),
            disk_writes: self.disk_writes.load(Ordering::Relaxed),
            entries: self.lock().len(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<[u8; 32], CodeModule>> {
        // A panic while holding the lock cannot leave the LRU inconsistent
        // in a way that matters (worst case an entry is missing).
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, sha256: &[u8; 32]) -> Option<CodeModule> {
        let module = self.lock().get(sha256).cloned();
        if module.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        module
    }

    pub(crate) fn insert(&self, module: &CodeModule) {
        self.lock().put(module.inner.sha256, module.clone());
    }

    pub(crate) fn record_compile(&self) {
        self.compiles.fetch_add(1, Ordering::Relaxed);
    }

    /// The authenticated artifact for `sha256` and the module's size, if the
    /// disk cache has one.
    pub(crate) fn load_from_disk(
        &self,
        engine: &Engine,
        sha256: &[u8; 32],
    ) -> Option<(Module, usize)> {
        let disk = self.disk.as_ref()?;
        let path = disk.path(sha256);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "module cache: cannot read artifact");
                self.disk_rejects.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        let Some((size, artifact)) = disk.verify(sha256, &bytes) else {
            tracing::warn!(path = %path.display(), "module cache: artifact failed authentication; ignored");
            self.disk_rejects.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        // SAFETY: `artifact` is exactly the bytes whose HMAC under this
        // cache's secret key was just verified, and only this sandbox (same
        // engine compatibility hash, part of the MAC) writes such tags, from
        // `Module::serialize` output. See the module docs for the argument.
        match unsafe { Module::deserialize(engine, artifact) } {
            Ok(module) => {
                self.disk_hits.fetch_add(1, Ordering::Relaxed);
                Some((module, size))
            }
            Err(err) => {
                tracing::warn!(path = %path.display(), err = %format!("{err:#}"), "module cache: cannot deserialize artifact");
                self.disk_rejects.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Writes `module`'s artifact to the disk cache, if there is one. Errors
    /// are logged: the cache is an optimization.
    pub(crate) fn store_on_disk(&self, module: &CodeModule) {
        let Some(disk) = &self.disk else { return };
        let inner = &module.inner;
        let result = inner
            .module
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))
            .and_then(|artifact| disk.write(&inner.sha256, inner.size, &artifact));
        match result {
            Ok(()) => {
                self.disk_writes.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                tracing::warn!(dir = %disk.dir.display(), %err, "module cache: cannot write artifact");
            }
        }
    }
}

impl DiskCache {
    #[cfg(unix)]
    fn open(dir: &Path, engine: &Engine) -> Result<DiskCache, ConfigError> {
        use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};

        let io = |what: String| move |source| ConfigError::Io { what, source };
        let shown = dir.display().to_string();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(format!("creating module cache directory {shown}")))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        let meta = fs::metadata(dir).map_err(io(format!("reading {shown}")))?;
        if meta.uid() != euid || meta.mode() & 0o022 != 0 {
            return Err(ConfigError::Invalid(format!(
                "module cache directory {shown} must be owned by this user and not writable by group or others"
            )));
        }

        let key_path = dir.join(KEY_FILE);
        let mut key = [0u8; KEY_LEN];
        // Usually the key is there: read it (below) without writing
        // anything, so opening the cache costs no fsync.
        let exists = fs::symlink_metadata(&key_path).is_ok();
        // Otherwise the key appears whole or not at all: it is written to a
        // private temporary file and then hard-linked into place, which
        // fails if another process (or sandbox) got there first. Creating
        // `key` directly would let a concurrent opener read it half-written.
        let tmp_path = dir.join(format!(
            "{KEY_FILE}.{}.{}.tmp",
            std::process::id(),
            NEXT_TMP.fetch_add(1, Ordering::Relaxed)
        ));
        let mut create = || -> Result<bool, ConfigError> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp_path)
                .map_err(io(format!("creating {}", tmp_path.display())))?;
            fs::File::open("/dev/urandom")
                .and_then(|mut r| r.read_exact(&mut key))
                .map_err(io("reading /dev/urandom".into()))?;
            file.write_all(&key)
                .and_then(|()| file.sync_all())
                .map_err(io(format!("writing {}", tmp_path.display())))?;
            match fs::hard_link(&tmp_path, &key_path) {
                Ok(()) => Ok(true),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(err) => Err(io(format!("creating {}", key_path.display()))(err)),
            }
        };
        let created = if exists {
            false
        } else {
            let created = create();
            // Best effort: a leftover temporary file holds a key nobody uses.
            let _ = fs::remove_file(&tmp_path);
            created?
        };
        if !created {
            let mut file =
                fs::File::open(&key_path).map_err(io(format!("opening {}", key_path.display())))?;
            let meta = file
                .metadata()
                .map_err(io(format!("reading {}", key_path.display())))?;
            if !meta.is_file()
                || meta.uid() != euid
                || meta.mode() & 0o077 != 0
                || meta.len() != KEY_LEN as u64
            {
                return Err(ConfigError::Invalid(format!(
                    "module cache key {} must be a {KEY_LEN}-byte file owned by this user with mode 0600",
                    key_path.display()
                )));
            }
            file.read_exact(&mut key)
                .map_err(io(format!("reading {}", key_path.display())))?;
        }

        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = hex(&hasher.0.finalize()[..8]);
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            key,
            engine_hash,
        })
    }

    #[cfg(not(unix))]
    fn open(_dir: &Path, _engine: &Engine) -> Result<DiskCache, ConfigError> {
        Err(ConfigError::Invalid(
            "the on-disk module cache is only supported on Unix".into(),
        ))
    }

    fn path(&self, sha256: &[u8; 32]) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", hex(sha256), self.engine_hash))
    }

    fn mac(&self, sha256: &[u8; 32], size: u64, artifact: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(ARTIFACT_MAGIC);
        mac.update(sha256);
        mac.update(self.engine_hash.as_bytes());
        mac.update(&size.to_le_bytes());
        mac.update(artifact);
        mac
    }

    /// Checks a file's tag; returns the module size and the artifact bytes.
    fn verify<'a>(&self, sha256: &[u8; 32], file: &'a [u8]) -> Option<(usize, &'a [u8])> {
        if file.len() < HEADER_LEN || &file[..ARTIFACT_MAGIC.len()] != ARTIFACT_MAGIC {
            return None;
        }
        let tag = &file[ARTIFACT_MAGIC.len()..ARTIFACT_MAGIC.len() + TAG_LEN];
        let size_bytes: [u8; 8] = file[ARTIFACT_MAGIC.len() + TAG_LEN..HEADER_LEN]
            .try_into()
            .ok()?;
        let size = u64::from_le_bytes(size_bytes);
        let artifact = &file[HEADER_LEN..];
        self.mac(sha256, size, artifact).verify_slice(tag).ok()?;
        Some((usize::try_from(size).ok()?, artifact))
    }

    /// Writes an authenticated artifact (to a temporary file, then renamed
    /// into place so a reader never sees half a file).
    fn write(&self, sha256: &[u8; 32], size: usize, artifact: &[u8]) -> std::io::Result<()> {
        let size = size as u64;
        let tag = self.mac(sha256, size, artifact).finalize().into_bytes();
        let path = self.path(sha256);
        let tmp = self.dir.join(format!(
            ".{}-{}-{}.tmp",
            hex(sha256),
            std::process::id(),
            NEXT_TMP.fetch_add(1, Ordering::Relaxed)
        ));
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        let written = file
            .write_all(ARTIFACT_MAGIC)
            .and_then(|()| file.write_all(&tag))
            .and_then(|()| file.write_all(&size.to_le_bytes()))
            .and_then(|()| file.write_all(artifact))
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }
}

/// Feeds `Hash` output into SHA-256, for a hash that is stable across runs
/// and Rust versions (unlike `DefaultHasher`).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
