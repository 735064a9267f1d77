//! bench_json_walk: parse `API Response` into a `serde_json::Value` inside
//! the sandbox and walk every node (src/shared/walk.rs); sets `nodes` and
//! `string_bytes` so the bench can check the answer against native.

#![cfg_attr(target_arch = "wasm32", no_main)]

#[path = "../shared/walk.rs"]
#[allow(dead_code)]
mod walk;

use chatflow_sdk::{API_RESPONSE, Context, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    let value: serde_json::Value = ctx.json(API_RESPONSE)?;
    let totals = walk::json(&value);
    ctx.set("nodes", totals.nodes.to_string())?;
    ctx.set("string_bytes", totals.string_bytes.to_string())?;
    Ok(())
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
