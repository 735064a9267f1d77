//! bench_empty_no_panic_hook: a Code block that does nothing, declared with
//! `code_block!(run, panic_message = false)`: what the panic hook costs per
//! run and in module size, compared with bench_empty.

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_sdk::{Context, Result};

pub fn run(_ctx: &mut Context) -> Result<()> {
    Ok(())
}

chatflow_sdk::code_block!(run, panic_message = false);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
