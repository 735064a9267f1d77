//! sdk_err: a block that returns `Err`.
//!
//! Sets `before_err`, sends a message and logs (only the log may survive),
//! then fails according to property `mode`:
//! - unset or `message`: "sdk_err: deliberate failure with ünïcødé";
//! - `missing`: requires property `does not exist` ("property `does not exist` is not set");
//! - `json`: parses `API Response` as JSON (the message names the property,
//!   line and column);
//! - `invalid_name`: sets property `{bad}` (the host's INVALID message).

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_sdk::{Context, Error, Result, log};

pub fn run(ctx: &mut Context) -> Result<()> {
    ctx.set("before_err", "must not be committed")?;
    ctx.send_message("must not be delivered")?;
    log::error!("sdk_err is about to fail");
    match ctx.get("mode").as_deref() {
        None | Some("message") => Err(Error::msg("sdk_err: deliberate failure with ünïcødé")),
        Some("missing") => ctx.require("does not exist").map(drop),
        Some("json") => ctx.json_value("API Response").map(drop),
        Some("invalid_name") => ctx.set("{bad}", "x"),
        Some(other) => Err(Error::msg(format!("sdk_err: unknown mode {other:?}"))),
    }
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
