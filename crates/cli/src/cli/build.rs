//! `chatflow build`: build the Code block crate in this directory for
//! wasm32 and check the module against ABI v1.
//!
//! The build itself is `chatflow_build_support::BlockBuild` (the same code
//! the repository's build scripts use); this file prints what it decided,
//! loads the module the way the engine does and prints where it is.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use chatflow_build_support::{BlockBuild, BuildError, GUEST_PROFILE_SETTINGS, ProfileSource};
use chatflow_engine::net::{HttpClient, NetPolicy};
use chatflow_engine::sandbox::{Sandbox, SandboxConfig};

use super::Status;
use super::check::reasons;

/// Arguments of `chatflow build`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Builds with `cargo build --lib --target wasm32-unknown-unknown --profile guest`, the\n\
rustc flags -Ctarget-feature=+simd128 -Cllvm-args=-inline-threshold=1000 (RUSTFLAGS and\n\
rustflags in cargo's configuration are not used), and the crate's [profile.guest], or\n\
chatflow's settings for it when the crate's workspace has none. Installs the wasm32\n\
target with rustup if it is missing.\n\n\
Exit codes: 0 built and valid, 1 the build failed (cargo's messages are above),\n\
2 bad arguments, not a Code block crate, or a module that is not valid ABI v1.\n\n\
Examples:\n  chatflow build\n  chatflow build --manifest-path blocks/greet-customer/Cargo.toml --json"
)]
pub struct Args {
    /// The crate's `Cargo.toml` (or its directory). By default the current
    /// directory's.
    #[arg(long, value_name = "PATH")]
    manifest_path: Option<PathBuf>,
    /// The cargo profile.
    #[arg(long, default_value = chatflow_build_support::DEFAULT_PROFILE)]
    profile: String,
    /// Where cargo puts what it builds (as `cargo build --target-dir`). By
    /// default cargo's choice: `CARGO_TARGET_DIR`, or `target/`.
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,
    /// Print the result as JSON on stdout (cargo's progress stays on
    /// stderr).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<Status> {
    let mut build = BlockBuild::new(args.manifest_path.unwrap_or_else(|| PathBuf::from(".")))
        .profile(&args.profile);
    if let Some(dir) = &args.target_dir {
        build = build.target_dir(dir);
    }
    let plan = match build.plan() {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(Status::Invalid);
        }
    };
    let from = match plan.profile_source {
        ProfileSource::Settings => {
            let settings: Vec<String> = GUEST_PROFILE_SETTINGS
                .iter()
                .map(|(key, value)| format!("{key} = {value}"))
                .collect();
            format!(
                "not in {}, so chatflow's settings, passed with --config: {}",
                plan.workspace_manifest.display(),
                settings.join(", ")
            )
        }
        _ => format!("from {}", plan.workspace_manifest.display()),
    };
    eprintln!(
        "building `{}` ({}) for wasm32-unknown-unknown",
        plan.package,
        plan.manifest_path.display()
    );
    eprintln!("  profile:     {} ({from})", plan.profile);
    eprintln!("  rustc flags: {}", plan.rustflags.join(" "));
    for var in &plan.ignored_env {
        eprintln!(
            "  note: {var} is set in this environment and not used (it usually holds flags for the host)"
        );
    }

    let guest = match plan.build() {
        Ok(guest) => guest,
        Err(err @ BuildError::CargoFailed { .. }) => {
            eprintln!("error: {err}");
            return Ok(Status::Stopped);
        }
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(Status::Invalid);
        }
    };

    let wasm =
        std::fs::read(&guest.path).with_context(|| format!("reading {}", guest.path.display()))?;
    // Loading makes no requests: the default (deny-private) policy will do.
    let http = HttpClient::new(NetPolicy::default()).context("building the HTTP client")?;
    let sandbox = Sandbox::new(SandboxConfig::default().with_max_concurrent_runs(1), http)
        .context("starting the sandbox")?;
    let module = match sandbox.load(&wasm) {
        Ok(module) => module,
        Err(err) => {
            eprintln!(
                "{}: built, but not a valid ABI v1 module:",
                guest.path.display()
            );
            for reason in reasons(&err) {
                eprintln!("  - {reason}");
            }
            return Ok(Status::Invalid);
        }
    };
    let reference = format!("sha256:{}", module.sha256_hex());
    if args.json {
        let out = serde_json::json!({
            "package": plan.package,
            "path": guest.path,
            "size": module.size(),
            "sha256": module.sha256_hex(),
            "module": reference,
            "profile": plan.profile,
            "profile_source": match plan.profile_source {
                ProfileSource::Settings => "settings",
                _ => "manifest",
            },
            "rustflags": plan.rustflags,
            "imports": module.imports(),
            "exports": module.exports(),
        });
        println!("{out:#}");
    } else {
        let file = guest.path.file_name().unwrap_or_default().to_string_lossy();
        println!("built {file}: a valid ABI v1 module");
        println!("  path:   {}", guest.path.display());
        println!("  size:   {} bytes", module.size());
        println!("  sha256: {reference}");
    }
    Ok(Status::Ok)
}
