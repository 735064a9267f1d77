//! Document walks shared by the bench guests and the native side of the
//! benches (include this file with `#[path]`), so both sides run the same
//! code and must produce the same answer.

use chatflow_sdk::xml::quick_xml::{self, events::Event};

/// Totals from a walk over a JSON value: every node is visited.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JsonTotals {
    /// Nodes of any kind.
    pub nodes: u64,
    /// Bytes of string values and object keys.
    pub string_bytes: u64,
}

/// Walks every node of `value`.
pub fn json(value: &serde_json::Value) -> JsonTotals {
    let mut totals = JsonTotals::default();
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        totals.nodes += 1;
        match value {
            serde_json::Value::String(s) => totals.string_bytes += s.len() as u64,
            serde_json::Value::Array(items) => stack.extend(items),
            serde_json::Value::Object(map) => {
                for (key, item) in map {
                    totals.string_bytes += key.len() as u64;
                    stack.push(item);
                }
            }
            _ => {}
        }
    }
    totals
}

/// Totals from an event walk over an XML document.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XmlTotals {
    /// Start and empty-element tags.
    pub elements: u64,
    /// Attributes of those elements.
    pub attributes: u64,
    /// Bytes of text and CDATA (as written, entities not expanded).
    pub text_bytes: u64,
}

/// Walks every event of `text` with quick-xml.
pub fn xml(text: &str) -> Result<XmlTotals, quick_xml::Error> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut totals = XmlTotals::default();
    loop {
        match reader.read_event()? {
            Event::Start(e) | Event::Empty(e) => {
                totals.elements += 1;
                for attr in e.attributes() {
                    attr.map_err(quick_xml::Error::from)?;
                    totals.attributes += 1;
                }
            }
            Event::Text(t) => totals.text_bytes += t.len() as u64,
            Event::CData(c) => totals.text_bytes += c.len() as u64,
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(totals)
}
