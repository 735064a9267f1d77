//! sdk_selectors: the host-side selectors (`json_select`, `xml_select`).
//!
//! For each line of property `json_pointers`, selects it from property
//! `doc` with `select_json`; for each line of `xml_paths`, with
//! `select_xml`. Result number `i` (from 0) is stored as `json_<i>` /
//! `xml_<i>`: the selected text, `<none>` when nothing matched, or
//! `<invalid>` / `<not parseable>` for those errors (the error message goes
//! to `json_<i>_error`). An empty line selects with the empty pointer / path.
//!
//! With `compare_in_guest` set to `true`, each selector is also evaluated
//! inside the guest on the same document (serde_json's `Value::pointer`,
//! `chatflow_sdk::xml::select`) and stored as `json_<i>_guest` /
//! `xml_<i>_guest` with the same conventions, so a test can assert that the
//! host's selectors and the SDK's agree on any document.

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
            if ctx.get("compare_in_guest").as_deref() == Some("true") {
                let guest = in_guest(ctx, prefix, selector)?;
                ctx.set(&format!("{prefix}_{i}_guest"), guest)?;
            }
        }
    }
    Ok(())
}

/// The same selection inside the guest, with the same conventions.
fn in_guest(ctx: &Context, prefix: &str, selector: &str) -> Result<String> {
    let doc = ctx.get("doc").unwrap_or_default();
    if prefix == "json" {
        if !selector.is_empty() && !selector.starts_with('/') {
            return Ok("<invalid>".into());
        }
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&doc) else {
            return Ok("<not parseable>".into());
        };
        Ok(match value.pointer(selector) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => "<none>".into(),
        })
    } else {
        Ok(match chatflow_sdk::xml::select(&doc, selector) {
            Ok(Some(text)) => text,
            Ok(None) => "<none>".into(),
            Err(chatflow_sdk::xml::Error::Path { .. }) => "<invalid>".into(),
            Err(_) => "<not parseable>".into(),
        })
    }
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
