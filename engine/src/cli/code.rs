//! `chatflow code`: work in progress (see the open issues).

use anyhow::{Result, bail};

use super::Status;

/// Arguments of `chatflow code` (not yet implemented).
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> Result<Status> {
    bail!("`chatflow code` is not implemented yet")
}
