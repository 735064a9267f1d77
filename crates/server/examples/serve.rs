//! `chatflow serve` as a standalone binary of this crate: the same
//! arguments ([`ServeArgs`]) without the rest of the CLI. The load example
//! starts replicas with it.
//!
//! ```sh
//! cargo run -p chatflow-server --example serve -- --help
//! ```
//!
//! Prints `listening on ADDR` on standard output once it accepts requests.

use anyhow::Result;
use chatflow_server::{ServeArgs, Server, shutdown_signal};
use clap::Parser as _;

#[derive(Debug, clap::Parser)]
#[command(name = "serve", version, about)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CHATFLOW_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let server = Server::bind(cli.serve.config()?).await?;
    println!("listening on {}", server.local_addr());
    server.run(shutdown_signal()).await?;
    Ok(())
}
