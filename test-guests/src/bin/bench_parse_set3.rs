//! bench_parse_set3: the typical small Code block. Parses an image API
//! response (the JSON spec's `Image` example, `demo.json`, or a larger
//! response of the same shape) into a struct with `Context::json` and sets
//! three properties from it: `title`, `thumbnail_url`, `first_id`, with
//! `chatflow_bench_walk::image_fields`, which the native variant runs too.

#![cfg_attr(target_arch = "wasm32", no_main)]

#[path = "../blocks/parse_set3.rs"]
mod block;
pub use block::run;

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
