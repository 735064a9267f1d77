//! `json_select` and `xml_select` against their straightforward reference
//! implementations (`crates/sandbox/src/host/parse/reference.rs`), through
//! the engine's `fuzzing` feature.
//!
//! Input: a flag byte (bit 0 clear: JSON, set: XML), the document, then
//! the selectors, each introduced by a `0xff` byte (at most 16). Invalid
//! UTF-8 is replaced (U+FFFD). All selectors run against one parse of the
//! document, in order, as a guest calling the selector repeatedly does (so
//! the index's cursors are exercised).
//!
//! Checks, for every selector:
//! - the host's result (text, or error code `-1`/`-2`/`-3`) is the
//!   reference's;
//! - the fuel the host spent pays at least for the work the selection
//!   must have done, at the rates `docs/abi.md` publishes: JSON, every
//!   member of every object the pointer walks through (the last of
//!   duplicate keys wins, so all are compared) and every byte of the
//!   result (a result is never longer than the text scanned for it);
//!   XML, one element visited per step and every byte of the result;
//! - the document's index stays within its documented bound: 4 bytes per
//!   byte of text for JSON, 3 for XML, plus a small constant.

#![no_main]

use chatflow_engine::sandbox::host::fuzzing::{
    Selected, json_select_all, reference, xml_select_all,
};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde::de::{MapAccess, SeqAccess, Visitor};

/// The selector rates of `docs/abi.md`'s fuel table.
mod rate {
    /// `json_select`: each object member visited.
    pub const JSON_MEMBER: u64 = 12;
    /// … plus this per 8 bytes of the token (one more 8 for the key's end).
    pub const JSON_KEY_PER_8: u64 = 16;
    /// `json_select`: the selected value, per 8 bytes scanned.
    pub const JSON_RENDER_PER_8: u64 = 112;
    /// `xml_select`: each element visited in a step.
    pub const XML_HOP: u64 = 64;
    /// `xml_select`: the selected element's text, per 8 bytes of element.
    pub const XML_TEXT_PER_8: u64 = 240;
    /// `xml_select`: an attribute, per 8 bytes of its start tag.
    pub const XML_TAG_PER_8: u64 = 200;
}

/// Text is scanned this many bytes at a time, each chunk paid before; an
/// escape at a chunk's end may run up to 12 bytes past it unpaid.
const SCAN_CHUNK: u64 = 256;
const PAST_CHUNK: u64 = 12;

/// The index bound's constant: a few words of slack (the JSON tape has a
/// word more than its text has bytes at most).
const INDEX_SLACK: usize = 64;

const MAX_SELECTORS: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Some((&flag, rest)) = data.split_first() else {
        return;
    };
    let mut chunks = rest.split(|&b| b == 0xff);
    let text = String::from_utf8_lossy(chunks.next().unwrap_or_default()).into_owned();
    let selectors: Vec<String> = chunks
        .take(MAX_SELECTORS)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let selectors: Vec<&str> = selectors.iter().map(String::as_str).collect();
    if flag & 1 == 0 {
        check_json(&text, &selectors);
    } else {
        check_xml(&text, &selectors);
    }
});

fn check_json(text: &str, pointers: &[&str]) {
    let tree: Option<Tree> = serde_json::from_str(text).ok();
    for (pointer, selected) in pointers.iter().zip(json_select_all(text, pointers)) {
        let Selected {
            result,
            fuel,
            index_bytes,
        } = selected;
        let want = reference::json_select(text, pointer);
        assert_eq!(result, want, "pointer {pointer:?} in {text:?}");
        assert!(
            index_bytes <= 4 * text.len() + INDEX_SLACK,
            "a {index_bytes}-byte JSON index for {} bytes of text",
            text.len()
        );
        // Fuel: the members compared on the way, then the result rendered.
        let lookup = match &tree {
            Some(tree) if result != Err(reference::INVALID) => tree.lookup_fuel(pointer),
            _ => 0,
        };
        assert!(
            fuel >= lookup,
            "{fuel} fuel for a lookup that compared keys worth {lookup}: {pointer:?} in {text:?}"
        );
        if let Ok(value) = &result {
            let paid = render_bytes_paid(fuel - lookup, rate::JSON_RENDER_PER_8);
            assert!(
                value.len() as u64 <= paid + 1,
                "a {}-byte result for {} fuel of rendering (pays {paid} bytes): {pointer:?} in {text:?}",
                value.len(),
                fuel - lookup
            );
        }
    }
}

/// The most bytes `fuel` pays for scanning at `per_8` fuel per 8 bytes,
/// with what the scan may read past a chunk unpaid.
fn render_bytes_paid(fuel: u64, per_8: u64) -> u64 {
    let bytes = fuel * 8 / per_8;
    bytes + PAST_CHUNK * (1 + bytes / SCAN_CHUNK)
}

fn check_xml(text: &str, paths: &[&str]) {
    for (path, selected) in paths.iter().zip(xml_select_all(text, paths)) {
        let Selected {
            result,
            fuel,
            index_bytes,
        } = selected;
        let want = reference::xml_select(text, path);
        assert_eq!(result, want, "path {path:?} in {text:?}");
        assert!(
            index_bytes <= 3 * text.len() + INDEX_SLACK,
            "a {index_bytes}-byte XML index for {} bytes of text",
            text.len()
        );
        // Fuel: the root compared, then one element visited per further
        // step (at least), then the text or attribute read.
        let (steps, attribute) = xml_steps(path);
        let value = match &result {
            Ok(value) => value,
            Err(reference::NOT_FOUND) => {
                assert!(
                    fuel >= rate::XML_HOP,
                    "{fuel} fuel for a miss that compared the root: {path:?} in {text:?}"
                );
                continue;
            }
            Err(_) => continue,
        };
        let lookup = rate::XML_HOP * steps;
        assert!(
            fuel >= lookup,
            "{fuel} fuel for {steps} steps found: {path:?} in {text:?}"
        );
        let per_8 = if attribute {
            rate::XML_TAG_PER_8
        } else {
            rate::XML_TEXT_PER_8
        };
        // An element's text is read from one span paid whole (no chunks),
        // as is an attribute's start tag (paid by chunk, refunded to the
        // byte that ends it).
        let paid = (fuel - lookup) * 8 / per_8;
        assert!(
            value.len() as u64 <= paid,
            "a {}-byte result for {} fuel of reading (pays {paid} bytes): {path:?} in {text:?}",
            value.len(),
            fuel - lookup
        );
    }
}

/// The element steps of a valid path, and whether it ends in an attribute.
fn xml_steps(path: &str) -> (u64, bool) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let last = parts.last().copied().unwrap_or_default();
    let attribute = last.contains('@');
    let steps = parts.len() as u64 - u64::from(last.starts_with('@'));
    (steps, attribute)
}

/// A JSON document as serde_json reads it, every member of every object
/// kept (duplicates too), in order.
enum Tree {
    Scalar,
    Array(Vec<Tree>),
    Object(Vec<(String, Tree)>),
}

impl Tree {
    /// The fuel the members compared along `pointer` cost at least: every
    /// member of each object the pointer walks through. Array hops are
    /// not counted (a cursor may skip them).
    fn lookup_fuel(&self, pointer: &str) -> u64 {
        let Some(rest) = pointer.strip_prefix('/') else {
            return 0;
        };
        let mut fuel = 0;
        let mut at = self;
        for raw in rest.split('/') {
            let token = raw.replace("~1", "/").replace("~0", "~");
            at = match at {
                Tree::Object(members) => {
                    let per_member = rate::JSON_MEMBER
                        + (token.len() as u64 + 8).div_ceil(8) * rate::JSON_KEY_PER_8;
                    fuel += members.len() as u64 * per_member;
                    match members.iter().rev().find(|(key, _)| *key == token) {
                        Some((_, value)) => value,
                        None => return fuel,
                    }
                }
                Tree::Array(items) => {
                    let index = (token == "0" || !token.starts_with('0'))
                        .then(|| token.parse::<usize>().ok())
                        .flatten()
                        .filter(|_| token.bytes().all(|b| b.is_ascii_digit()));
                    match index.and_then(|i| items.get(i)) {
                        Some(item) => item,
                        None => return fuel,
                    }
                }
                Tree::Scalar => return fuel,
            };
        }
        fuel
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Tree, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Tree, E> {
        Ok(Tree::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Tree, E> {
        Ok(Tree::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Tree, E> {
        Ok(Tree::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Tree, E> {
        Ok(Tree::Scalar)
    }
    fn visit_str<E>(self, _: &str) -> Result<Tree, E> {
        Ok(Tree::Scalar)
    }
    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Scalar)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tree::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut members = Vec::new();
        while let Some(entry) = map.next_entry::<String, Tree>()? {
            members.push(entry);
        }
        Ok(Tree::Object(members))
    }
}
