//! bench_parse_set3: the typical small Code block. Parses an image API
//! response (the JSON spec's `Image` example, `demo.json`, or a larger
//! response of the same shape) into a struct with `Context::json` and sets
//! three properties from it: `title`, `thumbnail_url`, `first_id`, with
//! `chatflow_bench_walk::image_fields`, which the native variant runs too.

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

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
