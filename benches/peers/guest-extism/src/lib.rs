//! The peers comparison's workloads as an Extism plug-in: the same code as
//! chatflow's bench guests (`chatflow-bench-walk`), built with the same
//! profile and flags, with Extism's usual allocator (Rust's standard one:
//! a reused plug-in must free its memory). Each function takes the
//! document as its input and returns the answer as JSON text, which the
//! host compares with native's.

use extism_pdk::{FnResult, plugin_fn};

/// `chatflow_bench_walk::json_walk`'s summary.
#[plugin_fn]
pub fn json_walk(input: Vec<u8>) -> FnResult<String> {
    let summary = chatflow_bench_walk::json_walk(&input)?;
    Ok(serde_json::to_string(&summary)?)
}

/// `chatflow_bench_walk::xml_walk`'s summary.
#[plugin_fn]
pub fn xml_walk(input: Vec<u8>) -> FnResult<String> {
    let summary = chatflow_bench_walk::xml_walk(&input)?;
    Ok(serde_json::to_string(&summary)?)
}

/// The `…+set3` block: the image response parsed, its three values
/// returned (Extism has no properties to set).
#[plugin_fn]
pub fn parse_set3(input: Vec<u8>) -> FnResult<String> {
    let fields = chatflow_bench_walk::image_fields(&input)?;
    Ok(serde_json::to_string(&fields)?)
}

/// Does nothing: the per-call overhead.
#[plugin_fn]
pub fn empty() -> FnResult<()> {
    Ok(())
}
