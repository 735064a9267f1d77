//! bench_json_walk_dlmalloc: the same block as `bench_json_walk` (see
//! there), declared with `code_block!(run, allocator = std)`: Rust's
//! standard allocator (dlmalloc on wasm32), to measure what the SDK's
//! default bump allocator saves.

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_sdk::{API_RESPONSE, Context, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    let bytes = ctx
        .get_bytes(API_RESPONSE)
        .ok_or("property `API Response` is not set")?;
    let summary = chatflow_bench_walk::json_walk(&bytes)?;
    ctx.set("summary", serde_json::to_string(&summary)?)?;
    Ok(())
}

chatflow_sdk::code_block!(run, allocator = std);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
