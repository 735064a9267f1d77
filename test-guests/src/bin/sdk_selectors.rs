//! sdk_selectors: the host-side selectors (`json_select`, `xml_select`).
//!
//! For each line of property `json_pointers`, selects it from property
//! `doc` with `select_json`; for each line of `xml_paths`, with
//! `select_xml`. Result number `i` (from 0) is stored as `json_<i>` /
//! `xml_<i>`: the selected text, `<none>` when nothing matched, or
//! `<invalid>` / `<not parseable>` for those errors (the error message goes
//! to `json_<i>_error`). An empty line selects with the empty pointer / path.

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_sdk::{Context, Error, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    for (prefix, list) in [("json", "json_pointers"), ("xml", "xml_paths")] {
        let Some(lines) = ctx.get(list) else { continue };
        for (i, selector) in lines.split('\n').enumerate() {
            let result = if prefix == "json" {
                ctx.select_json("doc", selector)
            } else {
                ctx.select_xml("doc", selector)
            };
            let value = match result {
                Ok(Some(text)) => text,
                Ok(None) => "<none>".to_string(),
                Err(err) => {
                    ctx.set(&format!("{prefix}_{i}_error"), err.to_string())?;
                    match err {
                        Error::InvalidArgument { .. } => "<invalid>".to_string(),
                        Error::NotParseable { .. } => "<not parseable>".to_string(),
                        other => return Err(other),
                    }
                }
            };
            ctx.set(&format!("{prefix}_{i}"), value)?;
        }
    }
    Ok(())
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
