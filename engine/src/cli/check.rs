//! `chatflow check MODULE`: validate a Code block module against ABI v1.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use chatflow_engine::net::{HttpClient, NetPolicy};
use chatflow_engine::sandbox::{LoadError, Sandbox, SandboxConfig};

use super::Status;

/// Arguments of `chatflow check`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 valid, 2 invalid (every reason is listed).\n\n\
Example:\n  chatflow check target/wasm32-unknown-unknown/release/parse_order.wasm"
)]
pub struct Args {
    /// The module: a `.wasm` file, or a `.wat` text file.
    module: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<Status> {
    let wasm = match read_module(&args.module)? {
        Ok(wasm) => wasm,
        Err(message) => {
            eprintln!("{}: invalid: {message}", args.module.display());
            return Ok(Status::Invalid);
        }
    };
    // Validation makes no requests: the default (deny-private) policy will do.
    let http = HttpClient::new(NetPolicy::default()).context("building the HTTP client")?;
    let sandbox = Sandbox::new(SandboxConfig::default().with_max_concurrent_runs(1), http)
        .context("starting the sandbox")?;
    match sandbox.load(&wasm) {
        Ok(module) => {
            let imports: Vec<String> = module
                .imports()
                .iter()
                .map(|i| format!("chatflow::{i}"))
                .collect();
            if args.json {
                let out = serde_json::json!({
                    "valid": true,
                    "size": module.size(),
                    "sha256": module.sha256_hex(),
                    "imports": imports,
                    "exports": module.exports(),
                });
                println!("{out:#}");
            } else {
                println!("{}: valid ABI v1 module", args.module.display());
                println!("  size:    {} bytes", module.size());
                println!("  sha256:  {}", module.sha256_hex());
                println!("  imports: {}", list(&imports));
                println!("  exports: {}", list(module.exports()));
            }
            Ok(Status::Ok)
        }
        Err(err) => {
            let reasons = reasons(&err);
            if args.json {
                let out = serde_json::json!({ "valid": false, "errors": reasons });
                println!("{out:#}");
            } else {
                eprintln!("{}: invalid", args.module.display());
                for reason in reasons {
                    eprintln!("  - {reason}");
                }
            }
            Ok(Status::Invalid)
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(", ")
    }
}

/// One line per problem.
pub fn reasons(err: &LoadError) -> Vec<String> {
    match err {
        LoadError::Abi { problems } => problems.iter().map(ToString::to_string).collect(),
        other => vec![other.to_string()],
    }
}

/// Reads a module file; `.wat` files are translated to wasm. The inner
/// error is a problem with the module itself (exit 2), the outer one an I/O
/// failure.
pub fn read_module(path: &Path) -> Result<Result<Vec<u8>, String>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("wat"))
    {
        return Ok(wat::parse_bytes(&bytes)
            .map(|wasm| wasm.into_owned())
            .map_err(|e| format!("not valid WAT: {e}")));
    }
    Ok(Ok(bytes))
}
