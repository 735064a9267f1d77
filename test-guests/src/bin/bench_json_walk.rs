//! bench_json_walk: parse `API Response` into a `serde_json::Value` inside
//! the sandbox and walk every node, with the benches' own code
//! (`chatflow_bench_walk::json_walk`, which the native variant runs too);
//! sets `summary` to the walk's summary as JSON so the bench can check the
//! answer against native.

#![cfg_attr(target_arch = "wasm32", no_main)]

#[path = "../blocks/json_walk.rs"]
mod block;
pub use block::run;

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
