//! bench_http: one HTTP call through the host. GETs the URL in property
//! `url` and sets `status` and `body_bytes` from the response.

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_sdk::http::Request;
use chatflow_sdk::{Context, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    let url = ctx.require("url")?;
    let response = Request::get(url).send()?;
    ctx.set("status", response.status().to_string())?;
    ctx.set("body_bytes", response.bytes().len().to_string())?;
    Ok(())
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
