//! sdk_roundtrip: properties through the SDK, both ways.
//!
//! Reads `input` and writes it back as `output` (so any value, large or
//! non-ASCII, must survive the trip), sets `input_len` to its byte length,
//! removes `to_remove`, and checks that its own write is visible to a later
//! read in the same run (`read_back` = `written`). Fails with
//! "property `input` is not set" without `input`.

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_sdk::{Context, Error, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    let input = ctx.require("input")?;
    ctx.set("output", &input)?;
    ctx.set("input_len", input.len().to_string())?;
    ctx.remove("to_remove")?;
    if ctx.contains("to_remove") {
        return Err(Error::msg("`to_remove` is still visible after remove"));
    }
    ctx.set("written", "written by sdk_roundtrip ✓")?;
    let back = ctx.require("written")?;
    ctx.set("read_back", back)?;
    Ok(())
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
