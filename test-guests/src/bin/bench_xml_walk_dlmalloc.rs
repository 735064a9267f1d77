//! bench_xml_walk_dlmalloc: the same block as `bench_xml_walk` (see
//! there), declared with `code_block!(run, allocator = std)`: Rust's
//! standard allocator (dlmalloc on wasm32), which frees memory, so one
//! instance can run it again and again (the peers comparison's reused
//! instances, `benches/peers`).

#![cfg_attr(target_arch = "wasm32", no_main)]

#[path = "../blocks/xml_walk.rs"]
mod block;
pub use block::run;

chatflow_sdk::code_block!(run, allocator = std);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
