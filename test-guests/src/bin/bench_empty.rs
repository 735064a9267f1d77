//! bench_empty: a Code block that does nothing (per-run overhead).

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_sdk::{Context, Result};

pub fn run(_ctx: &mut Context) -> Result<()> {
    Ok(())
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
