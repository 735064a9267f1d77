//! sdk_json_parse: the typical small Code block (issue 6's latency target).
//!
//! Parses `API Response` (the corpus's `demo.json`, 387 bytes) into a typed
//! struct and sets three properties: `title`, `width` and `thumbnail_url`.

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_sdk::{Context, Result};
use serde::Deserialize;

#[derive(Deserialize)]
struct Demo {
    #[serde(rename = "Image")]
    image: Image,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Image {
    width: u32,
    title: String,
    thumbnail: Thumbnail,
}

#[derive(Deserialize)]
struct Thumbnail {
    #[serde(rename = "Url")]
    url: String,
}

pub fn run(ctx: &mut Context) -> Result<()> {
    let demo: Demo = ctx.json("API Response")?;
    ctx.set("title", &demo.image.title)?;
    ctx.set("width", demo.image.width.to_string())?;
    ctx.set("thumbnail_url", &demo.image.thumbnail.url)?;
    Ok(())
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
