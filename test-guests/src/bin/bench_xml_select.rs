//! bench_xml_select: pull three values out of the XML in `API Response`
//! with the host selector (`Context::select_xml`, parsed natively by the
//! engine). The paths come from properties `select_1`..`select_3`; each
//! result goes to `field_1`..`field_3` (removed when nothing matches).

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_sdk::{API_RESPONSE, Context, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    for i in 1..=3 {
        let path = ctx.require(&format!("select_{i}"))?;
        let field = format!("field_{i}");
        match ctx.select_xml(API_RESPONSE, &path)? {
            Some(value) => ctx.set(&field, value)?,
            None => ctx.remove(&field)?,
        }
    }
    Ok(())
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
