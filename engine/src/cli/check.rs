//! `chatflow check`: work in progress (see the open issues).

use anyhow::{Result, bail};

use super::Status;

/// Arguments of `chatflow check` (not yet implemented).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> Result<Status> {
    bail!("`chatflow check` is not implemented yet")
}
