//! bench_xml_walk: walk every event of the XML in `API Response` with
//! quick-xml inside the sandbox, with the benches' own code
//! (`chatflow_bench_walk::xml_walk`, which the native variant runs too);
//! sets `summary` to the walk's summary as JSON.

#![cfg_attr(target_arch = "wasm32", no_main)]

#[path = "../blocks/xml_walk.rs"]
mod block;
pub use block::run;

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
