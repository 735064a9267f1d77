//! sdk_messages: messages and logs.
//!
//! Sends `count` messages (default 3) "message 1", "message 2", … and logs
//! one line at each level (debug, info, warn, error), then `log_lines` more
//! info lines of 100 bytes each (default 0, for the log budget test).

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_sdk::{Context, Result, log};

pub fn run(ctx: &mut Context) -> Result<()> {
    let count: u32 = ctx.get("count").and_then(|n| n.parse().ok()).unwrap_or(3);
    for i in 1..=count {
        ctx.send_message(format!("message {i}"))?;
    }
    log::debug!("debug line");
    log::info!("info line");
    log::warn!("warn line");
    log::error!("error line");
    let log_lines: u32 = ctx
        .get("log_lines")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let line = "x".repeat(100);
    for _ in 0..log_lines {
        log::info!("{line}");
    }
    Ok(())
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
