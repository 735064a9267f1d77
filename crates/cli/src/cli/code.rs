//! `chatflow code MODULE`: run one Code block and print its outcome.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use chatflow_engine::Properties;
use chatflow_engine::net::HttpClient;
use chatflow_engine::sandbox::{
    CodeModule, LimitOverrides, Limits, Outcome, RunError, Sandbox, SandboxConfig,
};
use tokio::runtime::Runtime;

use super::cache_args::{self, CacheArgs};
use super::check::load_module;
use super::{Status, parse_sets};
use chatflow_server::NetArgs;

/// Arguments of `chatflow code`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 success, 1 the run failed, 2 bad arguments or invalid module.\n\n\
Network policy: the module's HTTP requests reach only public addresses unless\n\
allowed, exactly as for `chatflow rest` (see --allow-host).\n\n\
Module cache: the compiled module is kept in ~/.cache/chatflow/modules (see\n\
--cache-dir), so the next run of the same module does not compile it again.\n\n\
Example:\n  chatflow code parse_order.wasm --set 'API Response=@reply.json' --fuel 50000000"
)]
pub struct Args {
    #[command(flatten)]
    block: BlockArgs,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

/// The arguments `chatflow code` and `chatflow bench` share: the module, its
/// input and its limits.
#[derive(Debug, clap::Args)]
pub struct BlockArgs {
    /// The module: a `.wasm` file, or a `.wat` text file.
    pub module: PathBuf,
    /// A property of the conversation, `NAME=VALUE`, or `NAME=@FILE` to read
    /// the value from a file. Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    sets: Vec<String>,
    /// Fuel limit of a run (by default the engine's default limit).
    #[arg(long)]
    fuel: Option<u64>,
    /// Linear memory limit of a run, in bytes.
    #[arg(long, value_name = "BYTES")]
    memory: Option<u64>,
    /// Wall-clock limit of a run, in milliseconds.
    #[arg(long, value_name = "MS")]
    timeout: Option<u64>,
    /// The network policy for the module's HTTP requests (the same as for
    /// `chatflow rest`).
    #[command(flatten)]
    net: NetArgs,
    #[command(flatten)]
    cache: CacheArgs,
}

pub fn run(args: Args) -> Result<Status> {
    let runtime = super::runtime()?;
    let Loaded {
        props,
        sandbox,
        limits,
        module,
        cache_dir,
    } = match args.block.load(&runtime)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };
    let outcome = runtime.block_on(sandbox.run(&module, &props, &limits));
    let status = if outcome.is_ok() {
        Status::Ok
    } else {
        Status::Stopped
    };
    if args.json {
        let mut out = to_json(&outcome);
        out["module_cache"] = cache_args::report(cache_dir.as_deref(), sandbox.cache_stats());
        println!("{out:#}");
    } else {
        print_human(&outcome);
    }
    Ok(status)
}

/// A module ready to run: the `--set` properties, a one-slot sandbox, the
/// limits asked for, the module loaded in it, and the on-disk module cache
/// the sandbox uses (none with `--no-cache` or when it cannot be opened).
pub(super) struct Loaded {
    pub props: Properties,
    pub sandbox: Sandbox,
    pub limits: Limits,
    pub module: CodeModule,
    pub cache_dir: Option<PathBuf>,
}

impl BlockArgs {
    /// Reads the properties and the module and loads it into a sandbox
    /// whose HTTP client runs on `runtime`. Bad arguments, limits over the
    /// maximums and a module that does not load are printed and come back
    /// as `Ok(Err(Status::Invalid))`; only failures of the machine itself
    /// (no runtime, no TLS backend) are `Err`.
    pub fn load(&self, runtime: &Runtime) -> Result<std::result::Result<Loaded, Status>> {
        let props = match parse_sets(&self.sets) {
            Ok(props) => props,
            Err(err) => {
                eprintln!("error: {err:#}");
                return Ok(Err(Status::Invalid));
            }
        };
        let policy = match self.net.policy() {
            Ok(policy) => policy,
            Err(err) => {
                eprintln!("error: {err:#}");
                return Ok(Err(Status::Invalid));
            }
        };
        let http = runtime
            .block_on(async { HttpClient::new(policy) })
            .context("building the HTTP client")?;
        // One run at a time: a one-slot pool reserves next to nothing.
        let (sandbox, cache_dir) = self
            .cache
            .build(
                SandboxConfig::default().with_max_concurrent_runs(1),
                |config| Sandbox::new(config, http.clone()),
            )
            .context("starting the sandbox")?;
        let overrides = LimitOverrides {
            fuel: self.fuel,
            memory_bytes: self.memory,
            wall_time_ms: self.timeout,
            ..LimitOverrides::default()
        };
        let limits = match sandbox.limits(&overrides) {
            Ok(limits) => limits,
            Err(err) => {
                eprintln!("error: {err}");
                return Ok(Err(Status::Invalid));
            }
        };
        let module = match load_module(&sandbox, &self.module) {
            Ok(module) => module,
            Err(reasons) => {
                eprintln!("{}: invalid", self.module.display());
                for reason in reasons {
                    eprintln!("  - {reason}");
                }
                return Ok(Err(Status::Invalid));
            }
        };
        Ok(Ok(Loaded {
            props,
            sandbox,
            limits,
            module,
            cache_dir,
        }))
    }
}

fn to_json(outcome: &Outcome) -> serde_json::Value {
    let mut out = serde_json::json!({
        "ok": outcome.is_ok(),
        "logs": outcome.logs,
        "logs_dropped": outcome.logs_dropped,
        "fuel_used": outcome.fuel_used,
        "duration_us": outcome.duration.as_micros() as u64,
        "http_calls": outcome.http_calls,
        "fail_message": outcome.fail_message,
    });
    match &outcome.result {
        Ok(output) => {
            out["changes"] = serde_json::to_value(&output.changes).unwrap_or_default();
            out["messages"] = serde_json::to_value(&output.messages).unwrap_or_default();
        }
        Err(err) => {
            out["error"] = serde_json::json!({ "kind": err.kind(), "message": err.to_string() });
        }
    }
    out
}

fn print_human(outcome: &Outcome) {
    let took = outcome.duration.as_secs_f64() * 1000.0;
    match &outcome.result {
        Ok(output) => {
            println!(
                "ok in {took:.3} ms, fuel used {}, http calls {}",
                outcome.fuel_used, outcome.http_calls
            );
            if output.changes.is_empty() {
                println!("changes: none");
            } else {
                println!("changes:");
                for (name, value) in output.changes.iter() {
                    match value {
                        Some(value) => println!("  set {name} = {}", preview(value)),
                        None => println!("  remove {name}"),
                    }
                }
            }
            if !output.messages.is_empty() {
                println!("messages:");
                for message in &output.messages {
                    println!("  {}", preview(message));
                }
            }
        }
        Err(err) => {
            println!(
                "failed after {took:.3} ms, fuel used {}: {err}",
                outcome.fuel_used
            );
            if let RunError::Trap {
                backtrace: Some(bt),
                ..
            } = err
            {
                println!("backtrace:\n{bt}");
            }
            if let Some(message) = &outcome.fail_message
                && !matches!(err, RunError::GuestFailed { .. })
            {
                println!("guest message: {message}");
            }
            println!("nothing was committed");
        }
    }
    if !outcome.logs.is_empty() {
        println!("logs:");
        for log in &outcome.logs {
            println!("  [{}] {}", log.level, log.message);
        }
    }
    if outcome.logs_dropped > 0 {
        println!(
            "  ({} log lines dropped: log bytes limit reached)",
            outcome.logs_dropped
        );
    }
}

/// A value as a quoted string, shortened for the terminal.
fn preview(value: &str) -> String {
    const MAX: usize = 200;
    if value.len() <= MAX {
        return format!("{value:?}");
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &value[..end], value.len())
}
