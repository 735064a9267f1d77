//! The body of `bench_parse_set3` and `bench_parse_set3_dlmalloc`, which
//! differ only in their allocator (see those files).

use chatflow_bench_walk::ImageDoc;
use chatflow_sdk::{API_RESPONSE, Context, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    let doc: ImageDoc = ctx.json(API_RESPONSE)?;
    let [title, url, first_id] = doc.fields();
    ctx.set("title", title)?;
    ctx.set("thumbnail_url", url)?;
    ctx.set("first_id", first_id)?;
    Ok(())
}
