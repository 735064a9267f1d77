//! The body of `bench_xml_walk` and `bench_xml_walk_dlmalloc`, which
//! differ only in their allocator (see those files).

use chatflow_sdk::{API_RESPONSE, Context, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    let bytes = ctx
        .get_bytes(API_RESPONSE)
        .ok_or("property `API Response` is not set")?;
    let summary = chatflow_bench_walk::xml_walk(&bytes)?;
    ctx.set("summary", serde_json::to_string(&summary)?)?;
    Ok(())
}
