//! bench_parse_set3_dlmalloc: the same block as `bench_parse_set3` (see
//! there), declared with `code_block!(run, allocator = std)`: Rust's
//! standard allocator (dlmalloc on wasm32), to measure what the SDK's
//! default bump allocator saves.

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_bench_walk::ImageDoc;
use chatflow_sdk::{API_RESPONSE, Context, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    let doc: ImageDoc = ctx.json(API_RESPONSE)?;
    let [title, url, first_id] = doc.fields();
    ctx.set("title", title)?;
    ctx.set("thumbnail_url", url)?;
    ctx.set("first_id", first_id)?;
    Ok(())
}

chatflow_sdk::code_block!(run, allocator = std);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
