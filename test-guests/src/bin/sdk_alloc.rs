//! sdk_alloc: allocation patterns against the memory limit, with the SDK's
//! default allocator (the bump allocator). `sdk_alloc_std` is the same block
//! with Rust's standard allocator.
//!
//! Property `mode`:
//!
//! - `hold`: allocates `chunks` blocks of `chunk_kib` KiB and keeps them all;
//! - `lifo`: allocates and drops one block at a time, `chunks` times (each
//!   drop frees the most recent allocation, which the bump allocator takes
//!   back);
//! - `churn`: allocates a block, then a small string it keeps, then drops
//!   the block: every dropped block is an older allocation (which the bump
//!   allocator never reuses).
//!
//! Sets `total_kib` (the KiB allocated over the run) and `checksum` (bytes
//! of the blocks are written and read, so nothing is optimised away).

#![cfg_attr(target_arch = "wasm32", no_main)]

#[path = "../blocks/alloc.rs"]
mod block;
pub use block::run;

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
