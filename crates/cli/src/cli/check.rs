//! `chatflow check MODULE | FLOW.json`: validate a Code block module against
//! ABI v1, or a flow file (everything loading checks, modules included).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use chatflow_engine::net::{HttpClient, NetPolicy};
use chatflow_engine::sandbox::{CodeModule, LoadError, Sandbox, SandboxConfig};

use super::Status;

/// Arguments of `chatflow check`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 valid, 2 invalid (every reason is listed).\n\n\
Examples:\n  chatflow check target/wasm32-unknown-unknown/release/parse_order.wasm\n  \
chatflow check examples/flows/crm-profile.json --module-dir /tmp/chatflow-modules"
)]
pub struct Args {
    /// The module (a `.wasm` file, or a `.wat` text file), or a flow file
    /// (`.json`).
    module: PathBuf,
    /// For a flow: resolve Code blocks' module paths inside this directory
    /// instead of the flow file's. A flow can only name modules inside it:
    /// relative paths, no `..`, no symbolic link leading out.
    #[arg(long, value_name = "DIR")]
    module_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<Status> {
    if args.module.extension().is_some_and(|e| e == "json") {
        return check_flow(&args);
    }
    // Validation makes no requests: the default (deny-private) policy will do.
    let http = HttpClient::new(NetPolicy::default()).context("building the HTTP client")?;
    let sandbox = Sandbox::new(SandboxConfig::default().with_max_concurrent_runs(1), http)
        .context("starting the sandbox")?;
    match load_module(&sandbox, &args.module) {
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
        Err(reasons) => {
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

/// Loads the module file the operator named into `sandbox`; a `.wat` text
/// file is translated to wasm first. The file may be anywhere, but its size
/// is checked before it is read and the read is capped at the sandbox's
/// `max_module_bytes` (`.wat` text included), so `/dev/zero` or a huge file
/// cannot exhaust memory. On error, one line per problem.
pub fn load_module(sandbox: &Sandbox, path: &Path) -> std::result::Result<CodeModule, Vec<String>> {
    let is_wat = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("wat"));
    let loaded = if is_wat {
        let text = sandbox.read_module_file(path).map_err(|e| reasons(&e))?;
        let wasm = wat::parse_bytes(&text).map_err(|e| vec![format!("not valid WAT: {e}")])?;
        sandbox.load(&wasm)
    } else {
        sandbox.load_file(path)
    };
    loaded.map_err(|e| reasons(&e))
}

/// `chatflow check FLOW.json`: load the flow as `chatflow run` would (every
/// problem reported, each with its block and field).
fn check_flow(args: &Args) -> Result<Status> {
    let engine = chatflow_engine::Engine::new(chatflow_engine::EngineConfig::default())
        .context("starting the engine")?;
    let mut loader = engine.flow_loader();
    if let Some(dir) = &args.module_dir {
        loader = loader.module_dir(dir);
    }
    match loader.load_file(&args.module) {
        Ok(flow) => {
            let blocks: Vec<serde_json::Value> = flow
                .block_ids()
                .map(|id| serde_json::json!({"id": id, "type": flow.block_type(id)}))
                .collect();
            if args.json {
                let out = serde_json::json!({
                    "valid": true,
                    "name": flow.name(),
                    "start": flow.start(),
                    "blocks": blocks,
                    "warnings": flow.warnings().iter().map(ToString::to_string).collect::<Vec<_>>(),
                });
                println!("{out:#}");
            } else {
                println!(
                    "{}: valid flow {:?}: {} blocks, starts at {:?}",
                    args.module.display(),
                    flow.name(),
                    blocks.len(),
                    flow.start()
                );
                for warning in flow.warnings() {
                    println!("  warning: {warning}");
                }
            }
            Ok(Status::Ok)
        }
        Err(err) => {
            if args.json {
                let errors: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
                let out = serde_json::json!({ "valid": false, "errors": errors });
                println!("{out:#}");
            } else {
                eprintln!("{err}");
            }
            Ok(Status::Invalid)
        }
    }
}
