//! bench_xml_walk: walk every event of the XML in `API Response` with
//! quick-xml inside the sandbox (src/shared/walk.rs); sets `elements`,
//! `attributes` and `text_bytes` so the bench can check the answer against
//! native.

#![cfg_attr(target_arch = "wasm32", no_main)]

#[path = "../shared/walk.rs"]
#[allow(dead_code)]
mod walk;

use chatflow_sdk::{Context, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    let text = ctx
        .api_response()
        .ok_or("property `API Response` is not set")?;
    let totals = walk::xml(&text)?;
    ctx.set("elements", totals.elements.to_string())?;
    ctx.set("attributes", totals.attributes.to_string())?;
    ctx.set("text_bytes", totals.text_bytes.to_string())?;
    Ok(())
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
