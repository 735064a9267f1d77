//! The command-line interface: argument parsing and shared helpers. Each
//! subcommand lives in its own file and only calls the library.
//!
//! Exit codes, for every subcommand: `0` success (or an ignored error), `1`
//! the block or flow stopped on an error (for `build`: the compiler
//! failed), `2` bad arguments or invalid input. Never anything else: output
//! goes through `output.rs`, so a closed pipe is not a panic.

use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

use chatflow_engine::Properties;

// If you're reading this because `println!` in a subcommand does not behave
// like std's: these four macros shadow std's for every module below (macro
// textual scope), so no CLI output can panic on a closed pipe. Same syntax,
// same buffering; see `output.rs` for what happens on a write error.
macro_rules! print {
    ($($arg:tt)*) => { $crate::cli::output::stdout(format_args!($($arg)*)) };
}
macro_rules! println {
    () => { $crate::cli::output::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::output::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::cli::output::stderr(format_args!($($arg)*)) };
}
macro_rules! eprintln {
    () => { $crate::cli::output::stderr(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::output::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

mod bench;
mod build;
mod cache_args;
mod check;
mod code;
mod demo;
mod new;
mod output;
mod rest;
mod run;
mod serve;
mod transcript;

/// Run chatflow blocks and flows: REST API blocks natively, Code blocks
/// (WebAssembly) in a sandbox.
#[derive(Debug, Parser)]
#[command(name = "chatflow", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one REST API block and print its outcome.
    Rest(Box<rest::Args>),
    /// Validate a Code block module against ABI v1.
    Check(check::Args),
    /// Run one Code block and print its outcome.
    Code(code::Args),
    /// Run a flow and print the conversation.
    Run(run::Args),
    /// Run the example flows against a demo business API on this machine.
    Demo(demo::Args),
    /// Time a Code block over many runs: time, fuel, fuel per input byte.
    Bench(bench::Args),
    /// Create a Code block crate: the block, a unit test, a sample input.
    New(new::Args),
    /// Build the Code block crate in this directory for wasm32 and check
    /// the module against ABI v1.
    Build(build::Args),
    /// Serve the engine over HTTP, with conversations kept in SQLite (the
    /// default, nothing to install) or PostgreSQL (several replicas).
    Serve(Box<chatflow_server::ServeArgs>),
}

/// What a subcommand reports back; turned into the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exit 0: success, or an error the block was told to ignore.
    Ok,
    /// Exit 1: the block or flow stopped the conversation on an error.
    Stopped,
    /// Exit 2: bad arguments or invalid input.
    Invalid,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Rest(args) => rest::run(*args),
        Command::Check(args) => check::run(args),
        Command::Code(args) => code::run(args),
        Command::Run(args) => run::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::New(args) => new::run(args),
        Command::Build(args) => build::run(args),
        Command::Serve(args) => serve::run(*args),
    };
    let code = match result {
        Ok(Status::Ok) => ExitCode::SUCCESS,
        Ok(Status::Stopped) => ExitCode::from(1),
        Ok(Status::Invalid) => ExitCode::from(2),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    };
    // A closed pipe (`chatflow demo | head -3`) is not an error: the
    // command's own status stands. Any other failure to write means the
    // output is incomplete.
    match output::finish() {
        Some(err) => {
            eprintln!("error: writing the output to stdout: {err}");
            ExitCode::from(2)
        }
        None => code,
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CHATFLOW_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A multi-threaded tokio runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Parses `--set NAME=VALUE` arguments; `NAME=@path` reads the value from a
/// file (UTF-8), so `--set 'API Response=@reply.json'` works.
pub fn parse_sets(sets: &[String]) -> Result<Properties> {
    let mut props = Properties::new();
    for set in sets {
        let Some((name, value)) = set.split_once('=') else {
            bail!("--set {set:?}: expected NAME=VALUE or NAME=@file");
        };
        let name = name.trim();
        chatflow_engine::properties::validate_name(name)
            .with_context(|| format!("--set {set:?}"))?;
        let value = match value.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("--set {name}=@{path}: reading the file"))?,
            None => value.to_string(),
        };
        props.set(name, value);
    }
    Ok(props)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets() {
        let props = parse_sets(&[
            "id=42".into(),
            "API Response={\"a\":1}".into(),
            "empty=".into(),
        ])
        .unwrap();
        assert_eq!(props.get("id"), Some("42"));
        assert_eq!(props.get("API Response"), Some("{\"a\":1}"));
        assert_eq!(props.get("empty"), Some(""));
    }

    #[test]
    fn sets_bad() {
        for bad in ["novalue", "=x", "a{b=1", "x=@/definitely/not/here"] {
            assert!(parse_sets(&[bad.into()]).is_err(), "{bad:?}");
        }
    }
}
