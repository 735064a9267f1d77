//! Building one Code block crate for wasm32: what `chatflow build` runs.

use std::env;
use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{
    BuildError, DEFAULT_PROFILE, DEFAULT_RUSTFLAGS, Guest, GuestKind, WASM_TARGET, defines_profile,
    ensure_target_in, guest_profile_config, run_cargo,
};

/// Environment variables that would replace or clobber the block's rustc
/// flags: they usually hold flags for the host (`-Ctarget-cpu=native`),
/// which break a wasm32 build. Removed from the build, and reported in
/// [`BlockPlan::ignored_env`] when set.
const FLAG_ENV: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
];

/// Profiles cargo defines itself.
const BUILT_IN_PROFILES: &[&str] = &["dev", "release", "test", "bench"];

/// A wasm32 build of one Code block crate (a package with a `cdylib`
/// library), outside any build script: what `chatflow build` runs.
///
/// It is the build an author would otherwise assemble by hand: `cargo build
/// --lib --target wasm32-unknown-unknown --profile guest` with the rustc
/// flags of [`DEFAULT_RUSTFLAGS`] in `CARGO_ENCODED_RUSTFLAGS`, the wasm32
/// target installed with rustup if missing (with a notice on stderr), and
/// the `guest` profile taken from the crate's workspace `Cargo.toml` or,
/// when that has none, defined with `--config` from
/// [`GUEST_PROFILE_SETTINGS`](crate::GUEST_PROFILE_SETTINGS). Cargo runs in
/// the crate's directory, so its `rust-toolchain.toml` and
/// `.cargo/config.toml` apply as they do to a plain `cargo build` there,
/// except for rustc flags (the environment variable wins over
/// `build.rustflags` and `target.*.rustflags`), and uses the crate's usual
/// target directory. Cargo's progress and diagnostics go to stderr as they
/// come.
///
/// ```no_run
/// let plan = chatflow_build_support::BlockBuild::new("greet-customer").plan()?;
/// eprintln!("profile {} ({:?})", plan.profile, plan.profile_source);
/// let module = plan.build()?;
/// println!("{}", module.path.display());
/// # Ok::<(), chatflow_build_support::BuildError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "call `plan()` or `build()`"]
pub struct BlockBuild {
    path: PathBuf,
    profile: String,
    rustflags: Vec<String>,
    target_dir: Option<PathBuf>,
}

/// How [`BlockBuild`] got the profile it builds with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProfileSource {
    /// The crate's workspace `Cargo.toml` defines it (or it is one of
    /// cargo's own: `dev`, `release`): used as it is.
    Manifest,
    /// The workspace does not define it: [`BlockBuild`] defines it with
    /// `--config profile.NAME.KEY=VALUE` arguments holding
    /// [`GUEST_PROFILE_SETTINGS`](crate::GUEST_PROFILE_SETTINGS).
    Settings,
}

/// What [`BlockBuild::plan`] found out about the crate, and the build it
/// will run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BlockPlan {
    /// The package name.
    pub package: String,
    /// The package's `Cargo.toml`.
    pub manifest_path: PathBuf,
    /// The `Cargo.toml` of its workspace root (the same file for a crate
    /// that is its own workspace).
    pub workspace_manifest: PathBuf,
    /// The target directory (where `wasm32-unknown-unknown/PROFILE/` is).
    pub target_dir: PathBuf,
    /// The cargo profile.
    pub profile: String,
    /// Where the profile's settings come from.
    pub profile_source: ProfileSource,
    /// The rustc flags (`CARGO_ENCODED_RUSTFLAGS`).
    pub rustflags: Vec<String>,
    /// Flag variables set in this environment that the build ignores
    /// (`RUSTFLAGS`, …).
    pub ignored_env: Vec<String>,
    target_dir_arg: Option<PathBuf>,
}

impl BlockBuild {
    /// A build of the crate at `path`: its directory or its `Cargo.toml`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        BlockBuild {
            path: path.into(),
            profile: DEFAULT_PROFILE.to_string(),
            rustflags: DEFAULT_RUSTFLAGS.iter().map(|s| s.to_string()).collect(),
            target_dir: None,
        }
    }

    /// The cargo profile. By default [`DEFAULT_PROFILE`] (`guest`).
    pub fn profile(mut self, name: impl Into<String>) -> Self {
        self.profile = name.into();
        self
    }

    /// Replaces the rustc flags. By default [`DEFAULT_RUSTFLAGS`].
    pub fn rustflags<I, S>(mut self, flags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rustflags = flags.into_iter().map(Into::into).collect();
        self
    }

    /// The target directory (`--target-dir`). By default cargo's choice for
    /// the crate (`CARGO_TARGET_DIR`, its configuration, or `target/` in
    /// the workspace root).
    pub fn target_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.target_dir = Some(dir.into());
        self
    }

    /// Reads the crate with `cargo metadata --no-deps` (no network, no
    /// build) and decides the build: the package, the profile and where it
    /// comes from, the flags.
    pub fn plan(&self) -> Result<BlockPlan, BuildError> {
        let manifest = if self.path.is_dir() {
            self.path.join("Cargo.toml")
        } else {
            self.path.clone()
        };
        let manifest = std::path::absolute(&manifest).unwrap_or(manifest);
        let shown = manifest.display().to_string();
        let metadata_error = |detail: String| BuildError::Metadata {
            manifest: shown.clone(),
            detail,
        };
        if !manifest.is_file() {
            return Err(metadata_error("no such file".into()));
        }
        let dir = manifest.parent().unwrap_or(Path::new("."));
        let output = Command::new(cargo())
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .arg("--manifest-path")
            .arg(&manifest)
            .current_dir(dir)
            .output()
            .map_err(|source| BuildError::Spawn {
                program: "cargo".into(),
                source,
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(metadata_error(stderr.trim().to_string()));
        }
        let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
            .map_err(|err| metadata_error(format!("unreadable `cargo metadata` output: {err}")))?;
        let (package, has_cdylib) =
            find_package(&metadata, &manifest).ok_or_else(|| BuildError::NotAPackage {
                manifest: shown.clone(),
            })?;
        if !has_cdylib {
            return Err(BuildError::NotACodeBlock {
                package,
                manifest: shown,
            });
        }
        let field = |name: &str| metadata[name].as_str().map(PathBuf::from);
        let workspace_manifest = field("workspace_root")
            .map(|root| root.join("Cargo.toml"))
            .ok_or_else(|| metadata_error("no workspace_root in `cargo metadata`".into()))?;
        let target_dir = match &self.target_dir {
            Some(dir) => std::path::absolute(dir).unwrap_or_else(|_| dir.clone()),
            None => field("target_directory")
                .ok_or_else(|| metadata_error("no target_directory in `cargo metadata`".into()))?,
        };
        let root_text = std::fs::read_to_string(&workspace_manifest).map_err(|err| {
            metadata_error(format!("reading {}: {err}", workspace_manifest.display()))
        })?;
        let profile_source = if BUILT_IN_PROFILES.contains(&self.profile.as_str())
            || defines_profile(&root_text, &self.profile)
        {
            ProfileSource::Manifest
        } else {
            ProfileSource::Settings
        };
        let ignored_env = FLAG_ENV
            .iter()
            .filter(|var| env::var_os(var).is_some_and(|v| !v.is_empty()))
            .map(|var| var.to_string())
            .collect();
        Ok(BlockPlan {
            package,
            manifest_path: manifest,
            workspace_manifest,
            target_dir,
            profile: self.profile.clone(),
            profile_source,
            rustflags: self.rustflags.clone(),
            ignored_env,
            target_dir_arg: self.target_dir.clone(),
        })
    }

    /// [`plan`](Self::plan), then [`BlockPlan::build`].
    pub fn build(&self) -> Result<Guest, BuildError> {
        self.plan()?.build()
    }
}

impl BlockPlan {
    /// The crate's directory.
    pub fn dir(&self) -> &Path {
        self.manifest_path.parent().unwrap_or(Path::new("."))
    }

    /// The cargo command, without running it.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(cargo());
        cmd.current_dir(self.dir())
            .arg("build")
            .arg("--manifest-path")
            .arg(&self.manifest_path)
            .args(["-p", &self.package, "--lib"])
            .args(["--target", WASM_TARGET])
            .args(["--profile", &self.profile])
            .arg("--message-format=json-render-diagnostics");
        if self.profile_source == ProfileSource::Settings {
            for setting in guest_profile_config(&self.profile) {
                cmd.args(["--config", &setting]);
            }
        }
        if let Some(dir) = &self.target_dir_arg {
            cmd.arg("--target-dir").arg(dir);
        }
        for var in FLAG_ENV.iter().chain(&["CARGO_BUILD_TARGET"]) {
            cmd.env_remove(var);
        }
        cmd.env("CARGO_ENCODED_RUSTFLAGS", self.rustflags.join("\x1f"));
        cmd
    }

    /// Installs the wasm32 target if the crate's toolchain lacks it (saying
    /// so on stderr), runs the build, and returns the module.
    pub fn build(&self) -> Result<Guest, BuildError> {
        ensure_target_in(Some(self.dir()), &mut |notice| {
            let _ = writeln!(std::io::stderr(), "note: {notice}");
        })?;
        let nested = run_cargo(self.command())?;
        nested.check_status()?;
        let ours = canonical(&self.manifest_path);
        nested
            .guests
            .into_iter()
            .zip(nested.guest_manifests)
            .find(|(guest, manifest)| {
                guest.kind == GuestKind::Cdylib && canonical(manifest) == ours
            })
            .map(|(guest, _)| guest)
            .ok_or_else(|| BuildError::NoArtifacts {
                packages: self.package.clone(),
            })
    }
}

/// `$CARGO` (set when we run under cargo) or `cargo` from `PATH` (rustup's
/// proxy, which honours the crate's `rust-toolchain.toml`).
fn cargo() -> OsString {
    env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The package of `cargo metadata` whose manifest is `manifest`: its name,
/// and whether it has a `cdylib` library.
fn find_package(metadata: &serde_json::Value, manifest: &Path) -> Option<(String, bool)> {
    let ours = canonical(manifest);
    let package = metadata["packages"].as_array()?.iter().find(|p| {
        p["manifest_path"]
            .as_str()
            .is_some_and(|m| canonical(Path::new(m)) == ours)
    })?;
    let name = package["name"].as_str()?.to_string();
    let has_cdylib = package["targets"].as_array().is_some_and(|targets| {
        targets.iter().any(|t| {
            t["crate_types"]
                .as_array()
                .is_some_and(|types| types.iter().any(|k| k == "cdylib"))
        })
    });
    Some((name, has_cdylib))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    const BLOCK: &str = "[package]\nname = \"my-block\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n[workspace]\n";

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// A crate with its own `[profile.guest]`: used as it is, no `--config`.
    #[test]
    fn the_manifest_profile_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{BLOCK}\n{}", crate::guest_profile_toml("guest"));
        write(&dir.path().join("Cargo.toml"), &text);
        write(&dir.path().join("src/lib.rs"), "");
        let plan = BlockBuild::new(dir.path()).plan().unwrap();
        assert_eq!(plan.package, "my-block");
        assert_eq!(plan.profile_source, ProfileSource::Manifest);
        assert_eq!(
            canonical(&plan.workspace_manifest),
            canonical(&plan.manifest_path)
        );
        let args = args(&plan.command());
        assert!(!args.contains(&"--config".to_string()), "{args:?}");
        assert_eq!(
            args[3..],
            [
                "-p",
                "my-block",
                "--lib",
                "--target",
                "wasm32-unknown-unknown",
                "--profile",
                "guest",
                "--message-format=json-render-diagnostics"
            ]
        );
        let envs: Vec<_> = plan
            .command()
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
            .collect();
        assert!(envs.contains(&(
            "CARGO_ENCODED_RUSTFLAGS".into(),
            Some("-Ctarget-feature=+simd128\x1f-Cllvm-args=-inline-threshold=1000".into())
        )));
        assert!(envs.contains(&("RUSTFLAGS".into(), None)));
    }

    /// Without `[profile.guest]`, the settings come with `--config`; a
    /// built-in profile needs none.
    #[test]
    fn a_missing_profile_is_passed_with_config() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("Cargo.toml"), BLOCK);
        write(&dir.path().join("src/lib.rs"), "");
        let plan = BlockBuild::new(dir.path().join("Cargo.toml"))
            .target_dir(dir.path().join("t"))
            .plan()
            .unwrap();
        assert_eq!(plan.profile_source, ProfileSource::Settings);
        assert_eq!(plan.target_dir, dir.path().join("t"));
        let args = args(&plan.command());
        let configs: Vec<&str> = args
            .windows(2)
            .filter(|w| w[0] == "--config")
            .map(|w| w[1].as_str())
            .collect();
        assert_eq!(configs, guest_profile_config("guest"));
        assert!(args.ends_with(&[
            "--target-dir".into(),
            dir.path().join("t").display().to_string()
        ]));

        let release = BlockBuild::new(dir.path())
            .profile("release")
            .plan()
            .unwrap();
        assert_eq!(release.profile_source, ProfileSource::Manifest);
        assert_eq!(release.target_dir, canonical(dir.path()).join("target"));
    }

    /// A member of a workspace: the profile is looked for in the root.
    #[test]
    fn a_workspace_member_uses_the_root_profile() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("Cargo.toml"),
            &format!(
                "[workspace]\nmembers = [\"blocks/a\"]\n\n{}",
                crate::guest_profile_toml("guest")
            ),
        );
        write(
            &dir.path().join("blocks/a/Cargo.toml"),
            &BLOCK.replace("[workspace]\n", "").replace("my-block", "a"),
        );
        write(&dir.path().join("blocks/a/src/lib.rs"), "");
        let plan = BlockBuild::new(dir.path().join("blocks/a")).plan().unwrap();
        assert_eq!(plan.package, "a");
        assert_eq!(
            canonical(&plan.workspace_manifest),
            canonical(&dir.path().join("Cargo.toml"))
        );
        assert_eq!(plan.profile_source, ProfileSource::Manifest);

        let err = BlockBuild::new(dir.path()).plan().unwrap_err();
        assert!(matches!(err, BuildError::NotAPackage { .. }), "{err:?}");
        assert!(err.to_string().contains("--manifest-path"), "{err}");
    }

    /// A real build of a dependency-free block, once with `[profile.guest]`
    /// in its manifest and once without: cargo accepts the profile defined
    /// by `--config`, and the same settings give the same module.
    #[test]
    fn both_profile_sources_build_the_same_module() {
        let dir = tempfile::tempdir().unwrap();
        let lib = "#[unsafe(no_mangle)]\npub extern \"C\" fn chatflow_abi_v1() {}\n";
        let mut modules = Vec::new();
        for (name, profile) in [
            ("with", crate::guest_profile_toml("guest")),
            ("without", String::new()),
        ] {
            let root = dir.path().join(name);
            write(
                &root.join("Cargo.toml"),
                &format!("{}\n{profile}", BLOCK.replace("my-block", "tiny")),
            );
            write(&root.join("src/lib.rs"), lib);
            let plan = BlockBuild::new(&root)
                .target_dir(dir.path().join("target"))
                .plan()
                .unwrap();
            let want = if profile.is_empty() {
                ProfileSource::Settings
            } else {
                ProfileSource::Manifest
            };
            assert_eq!(plan.profile_source, want);
            let guest = plan.build().unwrap();
            assert_eq!(guest.name, "tiny");
            assert_eq!(guest.kind, GuestKind::Cdylib);
            assert!(
                guest
                    .path
                    .ends_with("wasm32-unknown-unknown/guest/tiny.wasm"),
                "{}",
                guest.path.display()
            );
            modules.push(std::fs::read(&guest.path).unwrap());
        }
        assert_eq!(&modules[0][..4], b"\0asm");
        assert_eq!(modules[0], modules[1]);
    }

    #[test]
    fn not_a_code_block_bad() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("Cargo.toml"),
            "[package]\nname = \"plain\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[workspace]\n",
        );
        write(&dir.path().join("src/lib.rs"), "");
        let err = BlockBuild::new(dir.path()).plan().unwrap_err();
        assert!(
            matches!(&err, BuildError::NotACodeBlock { package, .. } if package == "plain"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("crate-type = [\"cdylib\", \"rlib\"]"),
            "{err}"
        );

        let missing = dir.path().join("nothing-here");
        let err = BlockBuild::new(&missing).plan().unwrap_err();
        assert!(matches!(err, BuildError::Metadata { .. }), "{err:?}");
        assert!(err.to_string().contains("nothing-here"), "{err}");

        write(&dir.path().join("Cargo.toml"), "[package\n");
        let err = BlockBuild::new(dir.path()).plan().unwrap_err();
        assert!(matches!(err, BuildError::Metadata { .. }), "{err:?}");
    }
}
