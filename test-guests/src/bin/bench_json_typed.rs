//! bench_json_typed: parse `API Response` with serde derive into structs
//! holding the fields a real Code block would read, as
//! `chatflow_bench_walk::json_typed` does natively. Property `document`
//! names the corpus file (its shape); sets `summary` to the typed summary as
//! JSON.

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_bench_walk::Shape;
use chatflow_sdk::{API_RESPONSE, Context, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    let document = ctx.require("document")?;
    let shape = Shape::from_file_name(&document)
        .ok_or_else(|| format!("no typed parser for document {document:?}"))?;
    let bytes = ctx
        .get_bytes(API_RESPONSE)
        .ok_or("property `API Response` is not set")?;
    let summary = chatflow_bench_walk::json_typed(shape, &bytes)?;
    ctx.set("summary", serde_json::to_string(&summary)?)?;
    Ok(())
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
