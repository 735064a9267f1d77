//! Build chatflow Code blocks (Rust guests) for `wasm32-unknown-unknown`:
//! from a build script ([`GuestBuild`]), or one author's crate
//! ([`BlockBuild`], what `chatflow build` runs). Both run cargo the same
//! way (the same flags, the same profile settings,
//! [`GUEST_PROFILE_SETTINGS`], the same target check and artifact parsing).
//!
//! The engine embeds the example Code blocks, its tests load the test
//! guests, and the benches run both; all of them need the guests compiled
//! to wasm as part of an ordinary `cargo build`/`cargo test`. This crate does
//! that from a `build.rs`: a nested `cargo build --target
//! wasm32-unknown-unknown` with its own target directory inside `OUT_DIR`
//! (so it never waits on the outer build's lock), the outer build's
//! `RUSTFLAGS` removed (they are for the host, not for wasm), `+simd128` and
//! more inlining on ([`DEFAULT_RUSTFLAGS`]),
//! the small-module `guest` profile, and `rerun-if-changed` lines for every
//! source file the guests were built from. On a machine where the wasm32
//! target is missing it installs it with rustup (and says so), or fails with
//! the one command to run.
//!
//! ```no_run
//! // build.rs
//! use chatflow_build_support::GuestBuild;
//!
//! fn main() {
//!     let guests = GuestBuild::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
//!         .package("crm-profile")
//!         .package("validate-input")
//!         .build()
//!         .unwrap_or_else(|err| panic!("{err}"));
//!     for guest in &guests {
//!         println!(
//!             "cargo:rustc-env=GUEST_{}={}",
//!             chatflow_build_support::const_name(&guest.name),
//!             guest.path.display()
//!         );
//!     }
//! }
//! ```
//!
//! The packages must be in a workspace whose root `Cargo.toml` defines the
//! profile used (by default [`DEFAULT_PROFILE`], `guest`). This repository's
//! root `Cargo.toml` has it:
//!
//! ```toml
//! [profile.guest]
//! inherits = "release"
//! opt-level = 3
//! lto = true
//! codegen-units = 1
//! panic = "abort"
//! strip = true
//! debug = false
//! ```

#![deny(missing_docs)]

mod block;
mod profile;

pub use block::{BlockBuild, BlockPlan, ProfileSource};
pub use profile::{
    GUEST_PROFILE_SETTINGS, defines_profile, guest_profile_config, guest_profile_toml,
};

use std::collections::BTreeSet;
use std::env;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target every guest is built for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The cargo profile used unless [`GuestBuild::profile`] says otherwise; it
/// must be defined in the guests' workspace `Cargo.toml`.
pub const DEFAULT_PROFILE: &str = "guest";

/// `rustc` flags for every guest unless [`GuestBuild::rustflags`] replaces
/// them. `+simd128` lets memchr (used by quick-xml and serde_json) use wasm
/// SIMD; without it XML parsing is several times slower. wasmtime supports
/// SIMD by default. `-inline-threshold=1000` lets LLVM inline more of the
/// parsers' small functions: Cranelift, which compiles the module in the
/// engine, does not inline, and every call costs more under fuel metering
/// (the fuel counter is saved and reloaded around it). Measured in the
/// engine (fresh instance, fuel on): JSON and XML parsing 8–20 % faster,
/// modules 1.2–2.4 times larger (`docs/benchmarks.md`).
pub const DEFAULT_RUSTFLAGS: &[&str] = &[
    "-Ctarget-feature=+simd128",
    "-Cllvm-args=-inline-threshold=1000",
];

/// Environment variables of the outer build that must not reach the nested
/// one: flags meant for the host target (`-Ctarget-cpu=native` would break a
/// wasm build), clippy's wrapper (it would lint the guests with the outer
/// run's arguments and change their fingerprint on every switch between
/// `cargo clippy` and `cargo test`), and target settings we set ourselves.
const SCRUBBED_ENV: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
];

/// Why guests could not be built. Every message says what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Neither [`GuestBuild::target_dir`] nor `OUT_DIR` is set: not called
    /// from a build script.
    #[error(
        "no target directory for the guests: call GuestBuild::build from a build script (which has OUT_DIR) or set GuestBuild::target_dir"
    )]
    NoTargetDir,
    /// The wasm32 target is not installed and could not be installed.
    #[error(
        "the {WASM_TARGET} target is not installed for toolchain {toolchain} and installing it failed{detail}.\n\
         Install it with:\n\n    {command}\n"
    )]
    MissingTarget {
        /// The toolchain (e.g. `1.95.0-x86_64-unknown-linux-gnu`).
        toolchain: String,
        /// The command to run.
        command: String,
        /// What went wrong when we tried (starts with `: `), or empty.
        detail: String,
    },
    /// A program (`cargo`, `rustc`, `rustup`) could not be started.
    #[error("could not run `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The nested cargo build failed; its diagnostics are above this message
    /// in the build script's output.
    #[error(
        "building the wasm guests failed ({status}); the compiler's messages are above. The command was:\n\n    {command}\n"
    )]
    CargoFailed {
        /// The exit status.
        status: String,
        /// The command line, to run it by hand.
        command: String,
    },
    /// `cargo metadata` could not read the crate [`BlockBuild`] was given:
    /// no `Cargo.toml` there, or one cargo rejects.
    #[error("{manifest} is not a crate cargo can read: {detail}")]
    Metadata {
        /// The manifest path asked for.
        manifest: String,
        /// Cargo's message.
        detail: String,
    },
    /// The manifest [`BlockBuild`] was given has no `[package]`: a virtual
    /// workspace manifest.
    #[error(
        "{manifest} is a workspace without a package: pass the Code block's own Cargo.toml (--manifest-path path/to/block/Cargo.toml)"
    )]
    NotAPackage {
        /// The manifest path.
        manifest: String,
    },
    /// The package [`BlockBuild`] was given has no `cdylib` library, so
    /// there is no module to build.
    #[error(
        "package `{package}` ({manifest}) is not a Code block crate: it needs a library with\n\n    [lib]\n    crate-type = [\"cdylib\", \"rlib\"]\n\nin its Cargo.toml (`chatflow new` creates one)"
    )]
    NotACodeBlock {
        /// The package name.
        package: String,
        /// The manifest path.
        manifest: String,
    },
    /// The build succeeded but produced no `.wasm` file for the packages:
    /// they have neither `bin` targets nor a `cdylib` library.
    #[error(
        "building {packages} produced no .wasm file: a guest package needs `crate-type = [\"cdylib\"]` in [lib] or a `bin` target"
    )]
    NoArtifacts {
        /// The packages asked for.
        packages: String,
    },
}

/// The nested builds' target directory for a build script whose `OUT_DIR`
/// is `out_dir`: `wasm32-guests` beside the outer build's profile
/// directories (`<target>/wasm32-guests`, found from
/// `<target>[/<triple>]/<profile>/build/<pkg>-<hash>/out`), shared by every
/// build script of the outer build and by its dev, release and clippy runs,
/// so the example Code blocks the engine embeds and the test guests are
/// compiled once. The nested cargo's own lock serializes build scripts that
/// run at the same time. When `out_dir` does not have that shape (a build
/// tool other than cargo), `$OUT_DIR/wasm32-guests`.
pub fn shared_target_dir(out_dir: &Path) -> PathBuf {
    let mut up = out_dir.ancestors();
    let build = up.nth(2);
    match (build, up.nth(1)) {
        (Some(build), Some(target)) if build.file_name().is_some_and(|n| n == "build") => {
            target.join("wasm32-guests")
        }
        _ => out_dir.join("wasm32-guests"),
    }
}

/// One built guest module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    /// The cargo target's name: the bin name (`sdk_roundtrip`) or the
    /// library's crate name (`crm_profile`).
    pub name: String,
    /// The package it belongs to (`crm-profile`).
    pub package: String,
    /// Whether it is a `bin` or a `cdylib` library.
    pub kind: GuestKind,
    /// Absolute path of the `.wasm` file.
    pub path: PathBuf,
}

/// The kind of cargo target a guest was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum GuestKind {
    /// A `bin` target (the layout of `test-guests/`: one file per guest in
    /// `src/bin/`).
    Bin,
    /// A library with `crate-type = ["cdylib", …]` (the layout of a Code
    /// block crate).
    Cdylib,
}

/// A nested wasm32 build of one or more packages.
#[derive(Debug, Clone)]
#[must_use = "call `build()`"]
pub struct GuestBuild {
    manifest_path: PathBuf,
    packages: Vec<String>,
    profile: String,
    features: Vec<String>,
    no_default_features: bool,
    target_dir: Option<PathBuf>,
    rustflags: Vec<String>,
    emit_rerun: bool,
}

impl GuestBuild {
    /// A build of packages from the workspace (or package) whose
    /// `Cargo.toml` is `manifest_path`. Without [`package`](Self::package)
    /// calls, cargo's default selection for that manifest is built.
    pub fn new(manifest_path: impl Into<PathBuf>) -> Self {
        GuestBuild {
            manifest_path: manifest_path.into(),
            packages: Vec::new(),
            profile: DEFAULT_PROFILE.to_string(),
            features: Vec::new(),
            no_default_features: false,
            target_dir: None,
            rustflags: DEFAULT_RUSTFLAGS.iter().map(|s| s.to_string()).collect(),
            emit_rerun: true,
        }
    }

    /// Adds a package to build (`-p NAME`): all its `bin` targets and its
    /// `cdylib` library become guests.
    pub fn package(mut self, name: impl Into<String>) -> Self {
        self.packages.push(name.into());
        self
    }

    /// The cargo profile (`--profile NAME`). By default [`DEFAULT_PROFILE`].
    pub fn profile(mut self, name: impl Into<String>) -> Self {
        self.profile = name.into();
        self
    }

    /// Enables a feature (`--features NAME`; with several packages, write
    /// `package/feature`). By default none beyond the packages' defaults.
    pub fn feature(mut self, name: impl Into<String>) -> Self {
        self.features.push(name.into());
        self
    }

    /// Turns off the packages' default features. By default they are on.
    pub fn no_default_features(mut self) -> Self {
        self.no_default_features = true;
        self
    }

    /// Where the nested build puts its target directory. By default
    /// [`shared_target_dir`]: one directory for every build script of the
    /// outer build, so a guest several crates need is compiled once.
    pub fn target_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.target_dir = Some(dir.into());
        self
    }

    /// Replaces the `rustc` flags of the nested build. By default
    /// [`DEFAULT_RUSTFLAGS`].
    pub fn rustflags<I, S>(mut self, flags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rustflags = flags.into_iter().map(Into::into).collect();
        self
    }

    /// Whether [`build`](Self::build) prints `cargo:rerun-if-changed` lines
    /// for the guests' sources and manifests. By default `true`.
    pub fn emit_rerun_if_changed(mut self, emit: bool) -> Self {
        self.emit_rerun = emit;
        self
    }

    /// The nested command, without running it.
    pub fn command(&self) -> Result<Command, BuildError> {
        let target_dir = match &self.target_dir {
            Some(dir) => dir.clone(),
            None => {
                let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or(BuildError::NoTargetDir)?);
                shared_target_dir(&out_dir)
            }
        };
        let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        let mut cmd = Command::new(cargo);
        cmd.arg("build")
            .arg("--manifest-path")
            .arg(&self.manifest_path)
            .args(["--target", WASM_TARGET])
            .args(["--profile", &self.profile])
            .arg("--message-format=json-render-diagnostics");
        for package in &self.packages {
            cmd.args(["-p", package]);
        }
        if !self.features.is_empty() {
            cmd.args(["--features", &self.features.join(",")]);
        }
        if self.no_default_features {
            cmd.arg("--no-default-features");
        }
        for var in SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        cmd.env("CARGO_TARGET_DIR", &target_dir);
        cmd.env("CARGO_ENCODED_RUSTFLAGS", self.rustflags.join("\x1f"));
        Ok(cmd)
    }

    /// Builds the guests and returns them, sorted by name.
    ///
    /// Checks (and if needed installs) the wasm32 target first. The nested
    /// cargo's diagnostics go to this process's stderr, which cargo shows
    /// when a build script fails.
    pub fn build(&self) -> Result<Vec<Guest>, BuildError> {
        ensure_wasm_target()?;
        let cmd = self.command()?;
        let nested = run_cargo(cmd)?;
        if self.emit_rerun {
            // Emitted before checking the status: if the build failed, a fix
            // to any of these files must trigger a new attempt.
            self.emit_rerun_lines(&nested.guests, &nested.manifests);
        }
        nested.check_status()?;
        let mut guests = nested.guests;
        if guests.is_empty() {
            return Err(BuildError::NoArtifacts {
                packages: if self.packages.is_empty() {
                    self.manifest_path.display().to_string()
                } else {
                    self.packages.join(", ")
                },
            });
        }
        guests.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(guests)
    }

    fn emit_rerun_lines(&self, guests: &[Guest], manifests: &BTreeSet<PathBuf>) {
        let mut paths = BTreeSet::new();
        paths.insert(self.manifest_path.clone());
        if let Some(dir) = self.manifest_path.parent() {
            paths.insert(dir.join("Cargo.lock"));
        }
        for manifest in manifests {
            paths.insert(manifest.clone());
            if let Some(dir) = manifest.parent() {
                // New files (a new bin in src/bin/) show up as a directory change.
                paths.insert(dir.join("src"));
            }
        }
        let cargo_home = cargo_home();
        for guest in guests {
            let Ok(dep_info) = std::fs::read_to_string(guest.path.with_extension("d")) else {
                continue;
            };
            for dep in parse_dep_info(&dep_info) {
                // Registry sources never change in place; leave them out.
                if cargo_home
                    .as_ref()
                    .is_some_and(|home| dep.starts_with(home))
                {
                    continue;
                }
                paths.insert(dep);
            }
        }
        for path in paths {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// What a nested cargo build produced.
struct Nested {
    /// The `.wasm` artifacts, in cargo's order.
    guests: Vec<Guest>,
    /// The manifest of each `.wasm` artifact's package, in the same order.
    guest_manifests: Vec<PathBuf>,
    /// The manifests of every local package built (guests and path
    /// dependencies).
    manifests: BTreeSet<PathBuf>,
    status: std::process::ExitStatus,
    /// The command as a shell line.
    command: String,
}

impl Nested {
    fn check_status(&self) -> Result<(), BuildError> {
        if self.status.success() {
            Ok(())
        } else {
            Err(BuildError::CargoFailed {
                status: self.status.to_string(),
                command: self.command.clone(),
            })
        }
    }
}

/// Runs a `cargo build --message-format=json-render-diagnostics` command:
/// its stderr (progress and rendered diagnostics) goes to ours as it comes,
/// its stdout (JSON messages) is read for the artifacts. The one place both
/// [`GuestBuild`] and [`BlockBuild`] run cargo.
fn run_cargo(mut cmd: Command) -> Result<Nested, BuildError> {
    let command = render(&cmd);
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(|source| BuildError::Spawn {
        program: program.clone(),
        source,
    })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut guests = Vec::new();
    let mut guest_manifests = Vec::new();
    let mut manifests = BTreeSet::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(manifest) = local_manifest(&line) {
            manifests.insert(manifest);
        }
        if let Some((guest, manifest)) = parse_artifact(&line) {
            guests.push(guest);
            guest_manifests.push(manifest);
        }
    }
    let status = child
        .wait()
        .map_err(|source| BuildError::Spawn { program, source })?;
    Ok(Nested {
        guests,
        guest_manifests,
        manifests,
        status,
        command,
    })
}

/// `SHOUTY_SNAKE` form of a guest name, for generated constants:
/// `sdk_roundtrip` → `SDK_ROUNDTRIP`, `crm-profile` → `CRM_PROFILE`.
pub fn const_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '-' | '.' | ' ' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// Makes sure the wasm32 target's standard library is installed for the
/// toolchain this build uses, installing it with rustup if not.
///
/// Why this exists: `targets = ["wasm32-unknown-unknown"]` in
/// `rust-toolchain.toml` only takes effect when rustup installs the
/// toolchain itself. On a machine that already had the toolchain, the target
/// is missing and the nested build would fail with "can't find crate for
/// `core`".
///
/// For a build script: the notice that the target is being installed is a
/// `cargo:warning` line. [`BlockBuild`] does the same check for the
/// toolchain of the crate it builds and prints the notice on stderr.
pub fn ensure_wasm_target() -> Result<(), BuildError> {
    ensure_target_in(None, &mut |notice| println!("cargo:warning={notice}"))
}

/// [`ensure_wasm_target`] for the toolchain that applies in `dir` (rustup
/// picks it from a `rust-toolchain.toml` there), telling `notice` before
/// installing anything.
fn ensure_target_in(dir: Option<&Path>, notice: &mut dyn FnMut(&str)) -> Result<(), BuildError> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let toolchain = env::var("RUSTUP_TOOLCHAIN").ok();
    ensure_target_with(
        &rustc,
        OsStr::new("rustup"),
        toolchain.as_deref(),
        dir,
        notice,
    )
}

/// [`ensure_wasm_target`] with the programs spelled out (tests use fakes).
fn ensure_target_with(
    rustc: &OsStr,
    rustup: &OsStr,
    rustup_toolchain: Option<&str>,
    dir: Option<&Path>,
    notice: &mut dyn FnMut(&str),
) -> Result<(), BuildError> {
    let libdir = rustc_print(
        rustc,
        dir,
        &["--print", "target-libdir", "--target", WASM_TARGET],
    )?;
    if target_installed(Path::new(&libdir)) {
        return Ok(());
    }
    let sysroot = rustc_print(rustc, dir, &["--print", "sysroot"])?;
    let toolchain = toolchain_name(rustup_toolchain, &sysroot);
    let command = format!("rustup target add {WASM_TARGET} --toolchain {toolchain}");
    // If you're reading this because the build stopped here: this machine's
    // toolchain has no wasm32 standard library. We try to add it; if rustup
    // is not available or offline, run the command in the error yourself.
    notice(&format!(
        "installing the {WASM_TARGET} target for toolchain {toolchain} (running `{command}`)"
    ));
    let mut rustup = Command::new(rustup);
    if let Some(dir) = dir {
        rustup.current_dir(dir);
    }
    let result = rustup
        .args(["target", "add", WASM_TARGET, "--toolchain", &toolchain])
        // rustup's progress goes to the build script's stderr, which cargo
        // shows if the build fails; stdout would be read as cargo directives.
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status();
    let detail = match result {
        Ok(status) if status.success() && target_installed(Path::new(&libdir)) => return Ok(()),
        Ok(status) if status.success() => format!(
            ": rustup succeeded but {libdir} is still missing (is this toolchain managed by rustup?)"
        ),
        Ok(status) => format!(": rustup exited with {status}"),
        Err(err) => format!(": could not run rustup ({err})"),
    };
    Err(BuildError::MissingTarget {
        toolchain,
        command,
        detail,
    })
}

fn rustc_print(rustc: &OsStr, dir: Option<&Path>, args: &[&str]) -> Result<String, BuildError> {
    let mut cmd = Command::new(rustc);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let output = cmd
        .args(args)
        .output()
        .map_err(|source| BuildError::Spawn {
            program: rustc.to_string_lossy().into_owned(),
            source,
        })?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Whether a target's library directory holds a standard library.
fn target_installed(libdir: &Path) -> bool {
    std::fs::read_dir(libdir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libcore-") && name.ends_with(".rlib")
        })
    })
}

/// The toolchain name for rustup: `RUSTUP_TOOLCHAIN` when rustup's proxy set
/// it, otherwise the sysroot directory's name
/// (`~/.rustup/toolchains/1.95.0-x86_64-unknown-linux-gnu`).
fn toolchain_name(rustup_toolchain: Option<&str>, sysroot: &str) -> String {
    if let Some(name) = rustup_toolchain.filter(|s| !s.is_empty()) {
        return name.to_string();
    }
    Path::new(sysroot)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "stable".to_string())
}

fn cargo_home() -> Option<PathBuf> {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
}

/// The manifest of a local (path) package built by the nested cargo (a
/// guest or a path dependency such as the SDK): a change to it must rerun
/// the build script.
fn local_manifest(line: &str) -> Option<PathBuf> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg["reason"] != "compiler-artifact" {
        return None;
    }
    let id = msg["package_id"].as_str()?;
    if !id.starts_with("path+") {
        return None;
    }
    Some(PathBuf::from(msg["manifest_path"].as_str()?))
}

/// One line of cargo's JSON output: a `.wasm` artifact of a `bin` or
/// `cdylib` target, with its package's manifest path.
fn parse_artifact(line: &str) -> Option<(Guest, PathBuf)> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg["reason"] != "compiler-artifact" {
        return None;
    }
    let kinds = msg["target"]["kind"].as_array()?;
    let kind = if kinds.iter().any(|k| k == "bin") {
        GuestKind::Bin
    } else if kinds.iter().any(|k| k == "cdylib") {
        GuestKind::Cdylib
    } else {
        return None;
    };
    let path = msg["filenames"]
        .as_array()?
        .iter()
        .filter_map(|f| f.as_str())
        .find(|f| f.ends_with(".wasm"))?;
    let name = msg["target"]["name"].as_str()?.replace('-', "_");
    let package = package_name(msg["package_id"].as_str()?);
    let manifest = PathBuf::from(msg["manifest_path"].as_str()?);
    Some((
        Guest {
            name,
            package,
            kind,
            path: PathBuf::from(path),
        },
        manifest,
    ))
}

/// The package name in a cargo package id: `path+file:///x/y#name@0.1.0`,
/// or `path+file:///x/name#0.1.0` when the directory is named after the
/// package, or the old `name 0.1.0 (path+file:///x)` form.
fn package_name(id: &str) -> String {
    if let Some((url, fragment)) = id.split_once('#') {
        return match fragment.split_once('@') {
            Some((name, _)) => name.to_string(),
            None => url.rsplit('/').next().unwrap_or(url).to_string(),
        };
    }
    id.split(' ').next().unwrap_or(id).to_string()
}

/// The dependencies listed in a Makefile-style dep-info file
/// (`out: dep dep\ with\ space …`).
fn parse_dep_info(text: &str) -> Vec<PathBuf> {
    let mut deps = Vec::new();
    let joined = text.replace("\\\n", " ");
    for line in joined.lines() {
        let Some((_, rest)) = split_rule(line) else {
            continue;
        };
        let mut current = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&' ') => {
                    current.push(' ');
                    chars.next();
                }
                ' ' | '\t' => {
                    if !current.is_empty() {
                        deps.push(PathBuf::from(std::mem::take(&mut current)));
                    }
                }
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            deps.push(PathBuf::from(current));
        }
    }
    deps
}

/// Splits `target: deps` at the first `: ` (a Windows drive letter's `C:\`
/// is not followed by a space).
fn split_rule(line: &str) -> Option<(&str, &str)> {
    let at = line
        .find(": ")
        .or_else(|| line.strip_suffix(':').map(|s| s.len()))?;
    Some((&line[..at], line.get(at + 1..).unwrap_or("")))
}

/// The command as a shell line, to paste and run by hand.
fn render(cmd: &Command) -> String {
    let mut line = String::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            line.push_str(&format!(
                "{}={} ",
                key.to_string_lossy(),
                shell_quote(&value.to_string_lossy())
            ));
        }
    }
    line.push_str(&shell_quote(&cmd.get_program().to_string_lossy()));
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&shell_quote(&arg.to_string_lossy()));
    }
    line
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=+,:@".contains(c))
    {
        s.to_string()
    } else {
        format!(
            "'{}'",
            s.replace('\'', r"'\''").replace('\x1f', "'$'\\x1f''")
        )
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn shared_target_dir_is_beside_the_profiles() {
        let cases = [
            (
                "/w/target/debug/build/engine-0123/out",
                "/w/target/wasm32-guests",
            ),
            ("/w/target/release/build/x-9/out", "/w/target/wasm32-guests"),
            (
                "/w/target/x86_64-unknown-linux-gnu/debug/build/x-9/out",
                "/w/target/x86_64-unknown-linux-gnu/wasm32-guests",
            ),
            ("/elsewhere/out", "/elsewhere/out/wasm32-guests"),
        ];
        for (out_dir, want) in cases {
            assert_eq!(
                shared_target_dir(Path::new(out_dir)),
                Path::new(want),
                "{out_dir}"
            );
        }
    }
    use super::*;

    #[test]
    fn artifacts_are_recognised() {
        let bin = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/test-guests#chatflow-test-guests@0.1.0","manifest_path":"/w/test-guests/Cargo.toml","target":{"kind":["bin"],"crate_types":["bin"],"name":"sdk_roundtrip"},"filenames":["/t/wasm32-unknown-unknown/guest/sdk_roundtrip.wasm"]}"#;
        let (guest, manifest) = parse_artifact(bin).unwrap();
        assert_eq!(
            guest,
            Guest {
                name: "sdk_roundtrip".into(),
                package: "chatflow-test-guests".into(),
                kind: GuestKind::Bin,
                path: "/t/wasm32-unknown-unknown/guest/sdk_roundtrip.wasm".into(),
            }
        );
        assert_eq!(manifest, PathBuf::from("/w/test-guests/Cargo.toml"));
        assert_eq!(local_manifest(bin), Some(manifest));
        let sdk = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/guest-sdk#chatflow-sdk@0.1.0","manifest_path":"/w/guest-sdk/Cargo.toml","target":{"kind":["lib"],"name":"chatflow_sdk"},"filenames":["/t/libchatflow_sdk.rlib"]}"#;
        assert!(parse_artifact(sdk).is_none());
        assert_eq!(
            local_manifest(sdk),
            Some(PathBuf::from("/w/guest-sdk/Cargo.toml"))
        );
        let registry = r#"{"reason":"compiler-artifact","package_id":"registry+https://github.com/rust-lang/crates.io-index#serde@1.0.0","manifest_path":"/h/serde/Cargo.toml","target":{"kind":["lib"],"name":"serde"},"filenames":[]}"#;
        assert_eq!(local_manifest(registry), None);
        let lib = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/examples/code-blocks/crm-profile#0.1.0","manifest_path":"/w/examples/code-blocks/crm-profile/Cargo.toml","target":{"kind":["cdylib","rlib"],"name":"crm_profile"},"filenames":["/t/guest/libcrm_profile.rlib","/t/guest/crm_profile.wasm"]}"#;
        let (guest, _) = parse_artifact(lib).unwrap();
        assert_eq!(
            (guest.name.as_str(), guest.package.as_str()),
            ("crm_profile", "crm-profile")
        );
        assert_eq!(guest.kind, GuestKind::Cdylib);
        assert_eq!(guest.path, PathBuf::from("/t/guest/crm_profile.wasm"));
    }

    #[test]
    fn other_messages_are_ignored_bad() {
        for line in [
            "",
            "not json",
            r#"{"reason":"build-finished","success":true}"#,
            r#"{"reason":"compiler-artifact","package_id":"serde 1.0.0","manifest_path":"/x","target":{"kind":["lib"],"name":"serde"},"filenames":["/t/libserde.rlib"]}"#,
            r#"{"reason":"compiler-artifact","package_id":"x","manifest_path":"/x","target":{"kind":["bin"],"name":"x"},"filenames":["/t/x"]}"#,
        ] {
            assert!(parse_artifact(line).is_none(), "{line}");
        }
    }

    #[test]
    fn package_ids() {
        let cases = [
            ("path+file:///w/a#name@0.1.0", "name"),
            ("path+file:///w/crm-profile#0.1.0", "crm-profile"),
            (
                "registry+https://github.com/rust-lang/crates.io-index#serde@1.0.0",
                "serde",
            ),
            ("serde 1.0.0 (registry+https://x)", "serde"),
        ];
        for (id, want) in cases {
            assert_eq!(package_name(id), want, "{id}");
        }
    }

    #[test]
    fn dep_info_parses_escapes_and_continuations() {
        let text =
            "/t/guest/a.wasm: /w/src/lib.rs /w/my\\ dir/x.rs \\\n  /w/y.rs\n\n/w/src/lib.rs:\n";
        let deps = parse_dep_info(text);
        assert_eq!(
            deps,
            [
                PathBuf::from("/w/src/lib.rs"),
                PathBuf::from("/w/my dir/x.rs"),
                PathBuf::from("/w/y.rs"),
            ]
        );
    }

    #[test]
    fn const_names() {
        assert_eq!(const_name("sdk_roundtrip"), "SDK_ROUNDTRIP");
        assert_eq!(const_name("crm-profile"), "CRM_PROFILE");
    }

    #[test]
    fn toolchain_names() {
        assert_eq!(toolchain_name(Some("1.95.0"), "/x/y"), "1.95.0");
        assert_eq!(
            toolchain_name(
                None,
                "/root/.rustup/toolchains/1.95.0-x86_64-unknown-linux-gnu"
            ),
            "1.95.0-x86_64-unknown-linux-gnu"
        );
        assert_eq!(toolchain_name(Some(""), "/a/b"), "b");
    }

    #[test]
    fn target_detection_looks_for_core() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!target_installed(&dir.path().join("missing")));
        assert!(!target_installed(dir.path()));
        std::fs::write(dir.path().join("libstd-abc.rlib"), b"").unwrap();
        assert!(!target_installed(dir.path()));
        std::fs::write(dir.path().join("libcore-abc.rlib"), b"").unwrap();
        assert!(target_installed(dir.path()));
    }

    /// Writes an executable shell script.
    #[cfg(unix)]
    fn script(path: &Path, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A fake toolchain without the wasm32 target: `rustc` prints a libdir
    /// that does not exist yet, `rustup` either creates it (as `rustup
    /// target add` would) or fails.
    #[cfg(unix)]
    #[test]
    fn a_missing_target_is_installed_or_explained() {
        let dir = tempfile::tempdir().unwrap();
        let libdir = dir
            .path()
            .join("sysroot/lib/rustlib/wasm32-unknown-unknown/lib");
        let rustc = dir.path().join("rustc");
        script(
            &rustc,
            &format!(
                "case \"$2\" in target-libdir) echo {libdir};; sysroot) echo {sysroot};; esac",
                libdir = libdir.display(),
                sysroot = dir
                    .path()
                    .join("toolchains/1.95.0-x86_64-unknown-linux-gnu")
                    .display()
            ),
        );
        let args = dir.path().join("rustup-args");
        let good_rustup = dir.path().join("rustup-good");
        script(
            &good_rustup,
            &format!(
                "echo \"$@\" > {args}\nmkdir -p {libdir} && touch {libdir}/libcore-0123.rlib",
                args = args.display(),
                libdir = libdir.display()
            ),
        );
        let bad_rustup = dir.path().join("rustup-bad");
        script(&bad_rustup, "echo offline >&2; exit 3");

        let mut notices = Vec::new();

        let err = ensure_target_with(
            rustc.as_os_str(),
            bad_rustup.as_os_str(),
            None,
            None,
            &mut |n| notices.push(n.to_string()),
        )
        .unwrap_err();
        match &err {
            BuildError::MissingTarget {
                toolchain,
                command,
                detail,
            } => {
                assert_eq!(toolchain, "1.95.0-x86_64-unknown-linux-gnu");
                assert_eq!(
                    command,
                    "rustup target add wasm32-unknown-unknown --toolchain 1.95.0-x86_64-unknown-linux-gnu"
                );
                assert!(detail.contains("exit status: 3"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            notices,
            [
                "installing the wasm32-unknown-unknown target for toolchain 1.95.0-x86_64-unknown-linux-gnu (running `rustup target add wasm32-unknown-unknown --toolchain 1.95.0-x86_64-unknown-linux-gnu`)"
            ]
        );
        assert!(
            err.to_string()
                .contains("Install it with:\n\n    rustup target add")
        );

        let missing = dir.path().join("no-such-rustup");
        let err = ensure_target_with(
            rustc.as_os_str(),
            missing.as_os_str(),
            Some("1.95.0"),
            None,
            &mut |_| {},
        )
        .unwrap_err();
        assert!(
            matches!(&err, BuildError::MissingTarget { toolchain, detail, .. }
            if toolchain == "1.95.0" && detail.contains("could not run rustup")),
            "{err:?}"
        );

        ensure_target_with(
            rustc.as_os_str(),
            good_rustup.as_os_str(),
            Some("1.95.0"),
            Some(dir.path()),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&args).unwrap().trim(),
            "target add wasm32-unknown-unknown --toolchain 1.95.0"
        );
        // Installed now: rustup is not asked again.
        let mut asked = false;
        ensure_target_with(
            rustc.as_os_str(),
            missing.as_os_str(),
            None,
            None,
            &mut |_| asked = true,
        )
        .unwrap();
        assert!(!asked, "no notice when nothing is installed");
    }

    #[test]
    fn the_installed_target_is_found() {
        // This repository's toolchain has the target (.ci/run adds it).
        ensure_wasm_target().unwrap();
    }

    #[test]
    fn nested_command_scrubs_the_outer_flags() {
        let cmd = GuestBuild::new("/w/Cargo.toml")
            .package("a")
            .package("b")
            .feature("a/x")
            .target_dir("/t")
            .command()
            .unwrap();
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "build",
                "--manifest-path",
                "/w/Cargo.toml",
                "--target",
                "wasm32-unknown-unknown",
                "--profile",
                "guest",
                "--message-format=json-render-diagnostics",
                "-p",
                "a",
                "-p",
                "b",
                "--features",
                "a/x"
            ]
        );
        let envs: Vec<(String, Option<String>)> = cmd
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        for var in [
            "RUSTFLAGS",
            "CARGO_BUILD_RUSTFLAGS",
            "RUSTC_WORKSPACE_WRAPPER",
        ] {
            assert!(envs.contains(&(var.to_string(), None)), "{var} removed");
        }
        assert!(envs.contains(&("CARGO_TARGET_DIR".into(), Some("/t".into()))));
        assert!(envs.contains(&(
            "CARGO_ENCODED_RUSTFLAGS".into(),
            Some("-Ctarget-feature=+simd128\x1f-Cllvm-args=-inline-threshold=1000".into())
        )));
    }

    #[test]
    fn no_out_dir_is_a_clear_error_bad() {
        // Unit tests do not run in a build script: no OUT_DIR.
        if env::var_os("OUT_DIR").is_none() {
            let err = GuestBuild::new("/w/Cargo.toml").command().unwrap_err();
            assert!(matches!(err, BuildError::NoTargetDir));
        }
    }
}
