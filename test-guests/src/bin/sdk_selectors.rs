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
//! host's selectors and the SDK's agree on any document. The guest parses
//! the document once (JSON on the first pointer, XML on the first path).

#![cfg_attr(target_arch = "wasm32", no_main)]

use chatflow_sdk::{Context, Error, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    let compare = ctx.get("compare_in_guest").as_deref() == Some("true");
    let mut guest = GuestDoc::default();
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
            if compare {
                let in_guest = guest.select(ctx, prefix, selector);
                ctx.set(&format!("{prefix}_{i}_guest"), in_guest)?;
            }
        }
    }
    Ok(())
}

/// The document as the guest parsed it, each way at most once.
#[derive(Default)]
struct GuestDoc {
    json: Option<Option<serde_json::Value>>,
    xml: Option<std::result::Result<chatflow_sdk::xml::Element, String>>,
}

impl GuestDoc {
    /// The same selection inside the guest, with the same conventions.
    fn select(&mut self, ctx: &Context, prefix: &str, selector: &str) -> String {
        if prefix == "json" {
            if !selector.is_empty() && !selector.starts_with('/') {
                return "<invalid>".into();
            }
            let value = self.json.get_or_insert_with(|| {
                serde_json::from_str(&ctx.get("doc").unwrap_or_default()).ok()
            });
            let Some(value) = value else {
                return "<not parseable>".into();
            };
            match value.pointer(selector) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "<none>".into(),
            }
        } else {
            // Path syntax first, as the host checks it.
            let root = chatflow_sdk::xml::parse("<r/>").expect("a trivial document");
            if let Err(chatflow_sdk::xml::Error::Path { .. }) = root.select(selector) {
                return "<invalid>".into();
            }
            let doc = self.xml.get_or_insert_with(|| {
                chatflow_sdk::xml::parse(&ctx.get("doc").unwrap_or_default())
                    .map_err(|e| e.to_string())
            });
            match doc {
                Err(_) => "<not parseable>".into(),
                Ok(root) => match root.select(selector) {
                    Ok(Some(text)) => text,
                    Ok(None) => "<none>".into(),
                    Err(_) => "<invalid>".into(),
                },
            }
        }
    }
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
