//! bench_json_walk_dlmalloc: the same block as `bench_json_walk` (see
//! there), declared with `code_block!(run, allocator = std)`: Rust's
//! standard allocator (dlmalloc on wasm32), to measure what the SDK's
//! default bump allocator saves.

#![cfg_attr(target_arch = "wasm32", no_main)]

#[path = "../blocks/json_walk.rs"]
mod block;
pub use block::run;

chatflow_sdk::code_block!(run, allocator = std);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
