//! bench_xml_walk: walk every event of the XML in `API Response` with
//! quick-xml inside the sandbox, with the benches' own code
//! (`chatflow_bench_walk::xml_walk`, which the native variant runs too);
//! sets `summary` to the walk's summary as JSON.

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_sdk::{API_RESPONSE, Context, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    let bytes = ctx
        .get_bytes(API_RESPONSE)
        .ok_or("property `API Response` is not set")?;
    let summary = chatflow_bench_walk::xml_walk(&bytes)?;
    ctx.set("summary", serde_json::to_string(&summary)?)?;
    Ok(())
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
