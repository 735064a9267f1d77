//! sdk_alloc_std: the same block as `sdk_alloc` (see there for the
//! properties), declared with `code_block!(run, allocator = std)`: Rust's
//! standard allocator, which reuses freed memory.

#![cfg_attr(target_arch = "wasm32", no_main)]

#[path = "../blocks/alloc.rs"]
mod block;
pub use block::run;

chatflow_sdk::code_block!(run, allocator = std);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
