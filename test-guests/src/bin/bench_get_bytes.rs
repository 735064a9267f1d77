//! bench_get_bytes: copies `API Response` into the guest
//! (`Context::get_bytes`, as the walk blocks do first) and sets `bytes` to
//! its length, nothing else: what copying the input in costs, next to
//! `bench_empty` (`benches/peers`, the sandbox's cost breakdown).

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_sdk::{API_RESPONSE, Context, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    let bytes = ctx
        .get_bytes(API_RESPONSE)
        .ok_or("property `API Response` is not set")?;
    ctx.set("bytes", bytes.len().to_string())?;
    Ok(())
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
