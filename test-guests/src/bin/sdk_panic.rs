//! sdk_panic: a block that panics after writing.
//!
//! Sets `before_panic` and sends a message (neither may be committed), then
//! panics with "sdk_panic: deliberate panic: <reason>", `reason` being the
//! property of that name (or "no reason"). The run's failure message must be
//! "panicked at test-guests/src/bin/sdk_panic.rs:LINE:COL: sdk_panic: …".

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_sdk::{Context, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    ctx.set("before_panic", "must not be committed")?;
    ctx.send_message("must not be delivered")?;
    let reason = ctx.get("reason").unwrap_or_else(|| "no reason".to_string());
    panic!("sdk_panic: deliberate panic: {reason}");
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
