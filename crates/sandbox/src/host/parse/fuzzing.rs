//! The host's selectors as plain functions, next to their [`reference`](mod@reference)
//! implementations, for property tests and fuzz targets (public with the
//! `fuzzing` feature, as `chatflow_sandbox::host::fuzzing`).
//!
//! A fuzz target feeds the same document and selectors to both and asserts
//! equal results:
//!
//! ```ignore
//! use chatflow_sandbox::host::fuzzing::{json_select_all, reference};
//! let host = json_select_all(text, &pointers);
//! for (pointer, got) in pointers.iter().zip(host) {
//!     assert_eq!(got.result, reference::json_select(text, pointer));
//! }
//! ```

use super::json::{self, JsonDoc};
use super::xml::{XmlDoc, XmlPath};
use super::{Budget, Miss, Sink};

// Reached from outside the crate only with the `fuzzing` feature.
#[allow(unused_imports)]
pub use super::reference;

/// One selection by the host: its result (or the ABI's error code), the
/// fuel it spent, and the size of the document's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// The selected text, or `-1` (nothing there), `-2` (bad selector),
    /// `-3` (not JSON / not well-formed XML).
    pub result: Result<String, i32>,
    /// Fuel spent by the selection after the parse (the parse itself costs
    /// the per-byte rate of `docs/abi.md`).
    pub fuel: u64,
    /// Bytes the document's index holds (0 if it did not parse).
    pub index_bytes: usize,
}

/// Selects each of `pointers` in turn from JSON `text`, with one parse
/// (and so one index, with its cursors) for all of them, as a guest
/// calling `json_select` repeatedly on one property does.
pub fn json_select_all(text: &str, pointers: &[&str]) -> Vec<Selected> {
    let mut doc = JsonDoc::parse(text);
    pointers
        .iter()
        .map(|pointer| {
            let mut budget = Budget::unlimited();
            let result = match (&mut doc, json::check_pointer(pointer)) {
                (_, Err(_)) => Err(super::super::code::INVALID),
                (Err(_), Ok(())) => Err(super::super::code::NOT_PARSEABLE),
                (Ok(doc), Ok(())) => run(text, |out| doc.select(text, pointer, &mut budget, out)),
            };
            Selected {
                result,
                fuel: budget.spent(),
                index_bytes: doc.as_ref().map_or(0, JsonDoc::heap_bytes),
            }
        })
        .collect()
}

/// Selects each of `paths` in turn from XML `text`, with one parse for all
/// of them.
pub fn xml_select_all(text: &str, paths: &[&str]) -> Vec<Selected> {
    let mut doc = XmlDoc::parse(text);
    paths
        .iter()
        .map(|path| {
            let mut budget = Budget::unlimited();
            let result = match (&mut doc, XmlPath::parse(path)) {
                (_, Err(_)) => Err(super::super::code::INVALID),
                (Err(_), Ok(_)) => Err(super::super::code::NOT_PARSEABLE),
                (Ok(doc), Ok(path)) => run(text, |out| doc.select(text, &path, &mut budget, out)),
            };
            Selected {
                result,
                fuel: budget.spent(),
                index_bytes: doc.as_ref().map_or(0, XmlDoc::heap_bytes),
            }
        })
        .collect()
}

/// Runs a selection into a buffer as large as the document (no result is
/// longer than the text it comes from) and checks the result is UTF-8.
fn run(text: &str, select: impl FnOnce(&mut Sink<'_>) -> Result<(), Miss>) -> Result<String, i32> {
    let mut buf = vec![0; text.len()];
    let mut out = Sink::new(&mut buf);
    match select(&mut out) {
        Ok(()) => {}
        Err(Miss::NotFound) => return Err(super::super::code::NOT_FOUND),
        Err(Miss::Exhausted) => unreachable!("an unlimited budget ran out"),
    }
    let len = out.len();
    assert!(
        len <= buf.len(),
        "a {len}-byte result from a {}-byte document",
        text.len()
    );
    buf.truncate(len);
    Ok(String::from_utf8(buf).expect("selectors write UTF-8"))
}
