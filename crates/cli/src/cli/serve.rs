//! `chatflow serve`: the engine as an HTTP service (crate `chatflow-server`,
//! `docs/service.md`). The arguments and the server are that crate's; this
//! only runs it until SIGTERM or Ctrl-C.

use anyhow::{Context as _, Result};
use chatflow_server::{ServeArgs, Server, shutdown_signal};

use super::{Status, runtime};

pub fn run(args: ServeArgs) -> Result<Status> {
    let config = match args.config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(Status::Invalid);
        }
    };
    runtime()?.block_on(async {
        let server = Server::bind(config).await.context("starting the server")?;
        // The line scripts and the tests wait for, with the port chosen.
        println!("listening on {}", server.local_addr());
        server.run(shutdown_signal()).await.context("serving")?;
        Ok(Status::Ok)
    })
}
