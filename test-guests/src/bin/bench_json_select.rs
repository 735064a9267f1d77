//! bench_json_select: pull three fields out of the JSON in `API Response`
//! with the host selector (`Context::select_json`, parsed natively by the
//! engine). The JSON pointers come from properties `select_1`..`select_3`;
//! each result goes to `field_1`..`field_3` (removed when nothing matches).

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_sdk::{API_RESPONSE, Context, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    for i in 1..=3 {
        let pointer = ctx.require(&format!("select_{i}"))?;
        let field = format!("field_{i}");
        match ctx.select_json(API_RESPONSE, &pointer)? {
            Some(value) => ctx.set(&field, value)?,
            None => ctx.remove(&field)?,
        }
    }
    Ok(())
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
