//! `http_request` and the response readers: requests through the engine's
//! shared HTTP client under the same network policy as the REST API block.
//!
//! Not wired yet: the shared client and policy (`chatflow_engine::net`) are
//! being written on another branch. Until they land, a module that imports
//! any `http_*` function is refused at load time with a message saying so.

use wasmtime::Linker;

use super::RunState;

/// HTTP bookkeeping of one run.
#[derive(Debug, Default)]
pub(crate) struct HttpState {
    /// `http_request` calls made.
    pub(crate) calls: u32,
    /// Why the first request denied by policy was denied.
    pub(crate) denied: Option<String>,
}

pub(super) fn add_to_linker(_linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    Ok(())
}
