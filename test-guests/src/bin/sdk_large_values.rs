//! sdk_large_values: values far larger than the SDK's first read buffer.
//!
//! Reads `big` (any size) and writes it back as `big_copy`, sets `big_len`
//! (bytes) and `big_chars` (Unicode scalar values); then builds a value of
//! `make_len` bytes (default 1 MiB) of repeated "é€𝄞a" (multi-byte
//! characters straddle every buffer boundary), sets it as `made`, reads it
//! back and fails unless it is identical.

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_sdk::{Context, Error, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    let big = ctx.require("big")?;
    ctx.set("big_len", big.len().to_string())?;
    ctx.set("big_chars", big.chars().count().to_string())?;
    ctx.set("big_copy", &big)?;
    drop(big);

    let make_len: usize = match ctx.get("make_len") {
        Some(n) => n
            .parse()
            .map_err(|_| Error::msg(format!("make_len {n:?} is not a number")))?,
        None => 1 << 20,
    };
    let unit = "é€𝄞a";
    let mut made = unit.repeat(make_len / unit.len() + 1);
    let mut end = make_len.min(made.len());
    while !made.is_char_boundary(end) {
        end -= 1;
    }
    made.truncate(end);
    ctx.set("made", &made)?;
    let back = ctx.require("made")?;
    if back != made {
        return Err(Error::msg(format!(
            "read back {} bytes, wrote {} bytes",
            back.len(),
            made.len()
        )));
    }
    ctx.set("made_len", made.len().to_string())?;
    Ok(())
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
