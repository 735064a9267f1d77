//! `json_select` and `xml_select`: selectors that parse a property natively
//! in the host (safe Rust: serde_json, quick-xml), keep a compact index of
//! the parse for the rest of the run, and write only the selected value
//! into the guest's buffer.
//!
//! # Fuel
//!
//! Host code is not interrupted by fuel yields or epochs, so every selector
//! call pays for the work it does *before* doing it (the rates are below;
//! `docs/abi.md` has the table):
//!
//! - the import's base cost plus [`JSON_CALL_FUEL`] or [`XML_CALL_FUEL`],
//!   [`ARG_FUEL_PER_BYTE`] per byte of property name and selector, and
//!   [`JSON_STEP_FUEL`] or [`XML_STEP_FUEL`] per step of the selector;
//! - the first time a run selects from a property: [`JSON_PARSE_FUEL_PER_BYTE`]
//!   or [`XML_PARSE_FUEL_PER_BYTE`] per byte of its text, charged before
//!   parsing;
//! - then a [`Budget`] of the fuel left is carried into the selection: every
//!   member, element or sibling visited, every byte of key or name compared
//!   and every byte of the result scanned, unescaped, assembled or copied is
//!   spent from it *before* it is done, and running out stops the call with
//!   `FuelExhausted`. Work between two spends is bounded by a constant
//!   ([`SCAN_CHUNK`] bytes, one hop).
//!
//! The rates are calibrated by `engine/examples/selector_fuel_rate.rs`: the
//! worst case found for each kind of work costs no more nanoseconds per unit
//! of fuel than twice a plain wasm loop.
//!
//! # Memory
//!
//! The cached index of one property holds at most
//! [`json::INDEX_BYTES_PER_TEXT_BYTE`] (JSON) or
//! [`xml::INDEX_BYTES_PER_TEXT_BYTE`] (XML) bytes per byte of the property's
//! text, plus a constant: offsets into the text, never copies of it.
//! [`ParseCache::heap_bytes`] counts it.

use std::collections::HashMap;
use std::ops::Range;

use wasmtime::{Caller, Linker};

use chatflow_abi::IMPORT_MODULE;
use chatflow_abi::imports::{JSON_SELECT, XML_SELECT};

use super::{CALL_FUEL, RunState, charge, code, copy_fuel, memory, range};

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub(crate) mod json;
#[cfg(any(test, feature = "fuzzing"))]
pub mod reference;
pub(crate) mod xml;

#[cfg(test)]
mod proptests;

use json::JsonDoc;
use xml::{XmlDoc, XmlPath};

/// Fuel a `json_select` call pays on top of the import's base cost: the
/// fixed work of every call (argument checks, the property and cache
/// lookups, the return).
pub(crate) const JSON_CALL_FUEL: u64 = chatflow_abi::fuel::JSON_SELECT;

/// The same for `xml_select`.
pub(crate) const XML_CALL_FUEL: u64 = chatflow_abi::fuel::XML_SELECT;

/// Fuel per byte of property name plus selector (UTF-8 check, lookups,
/// copies in the rare case the buffer overlaps them).
pub(crate) const ARG_FUEL_PER_BYTE: u64 = 4;

/// Fuel per step of a JSON pointer (each `/`): splitting and unescaping it.
pub(crate) const JSON_STEP_FUEL: u64 = 16;

/// Fuel per `~` escape in a JSON pointer.
pub(crate) const JSON_TILDE_FUEL: u64 = 16;

/// Fuel per step of an XML path (each `/`): splitting and validating it.
pub(crate) const XML_STEP_FUEL: u64 = 128;

/// Fuel of a selector call that fails: its `last_error` message.
pub(crate) const ERROR_FUEL: u64 = chatflow_abi::fuel::SELECT_ERROR;

/// Fuel per byte of a property's text for its first JSON parse in a run
/// (validation, then building the index).
pub(crate) const JSON_PARSE_FUEL_PER_BYTE: u64 = 56;

/// Fuel per byte of a property's text for its first XML parse in a run.
pub(crate) const XML_PARSE_FUEL_PER_BYTE: u64 = 80;

/// Most bytes scanned between two spends of a [`Budget`].
pub(crate) const SCAN_CHUNK: usize = 256;

/// Longest property name or selector quoted in a `last_error` message, in
/// bytes; longer ones are cut (the message would otherwise be as large as
/// whatever the guest passed).
const MAX_QUOTED: usize = 120;

/// The fuel a selector call may still spend, carried into the selection.
///
/// Every piece of work spends its fuel *before* it is done; a spend that
/// does not fit ends the selection with [`Exhausted`], and the call then
/// ends the run with `FuelExhausted`.
#[derive(Debug)]
pub(crate) struct Budget {
    left: u64,
    spent: u64,
}

/// A [`Budget`] ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exhausted;

impl Budget {
    /// A budget of `fuel`.
    pub(crate) fn new(fuel: u64) -> Budget {
        Budget {
            left: fuel,
            spent: 0,
        }
    }

    /// A budget that never runs out (fuel metering off, tests).
    pub(crate) fn unlimited() -> Budget {
        Budget::new(u64::MAX)
    }

    /// Spends `fuel`, or fails (spending nothing) if less is left.
    #[inline]
    pub(crate) fn spend(&mut self, fuel: u64) -> Result<(), Exhausted> {
        if fuel > self.left {
            return Err(Exhausted);
        }
        self.left -= fuel;
        self.spent += fuel;
        Ok(())
    }

    /// Spends `per_8_bytes` fuel per 8 bytes (rounded up) of `bytes`.
    #[inline]
    pub(crate) fn spend_bytes(&mut self, bytes: usize, per_8_bytes: u64) -> Result<(), Exhausted> {
        self.spend((bytes as u64).div_ceil(8).saturating_mul(per_8_bytes))
    }

    /// Gives back the fuel of `bytes` (rounded down) spent ahead at
    /// `per_8_bytes` but not scanned after all (the rest of a chunk past
    /// the end of a value).
    #[inline]
    pub(crate) fn refund_bytes(&mut self, bytes: usize, per_8_bytes: u64) {
        let fuel = ((bytes / 8) as u64 * per_8_bytes).min(self.spent);
        self.left += fuel;
        self.spent -= fuel;
    }

    /// Fuel spent so far.
    pub(crate) fn spent(&self) -> u64 {
        self.spent
    }
}

/// Where a selector writes its result: the guest's buffer (the first
/// `buf_cap` bytes of the result land there) and the result's full length
/// (the length protocol), without holding the result in host memory.
#[derive(Debug)]
pub(crate) struct Sink<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Sink<'b> {
    /// A sink writing into `buf`.
    pub(crate) fn new(buf: &'b mut [u8]) -> Sink<'b> {
        Sink { buf, len: 0 }
    }

    /// Appends `bytes` to the result.
    #[inline]
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.len < self.buf.len() {
            let n = bytes.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        }
        self.len += bytes.len();
    }

    /// Appends `c`, UTF-8 encoded.
    #[inline]
    pub(crate) fn push_char(&mut self, c: char) {
        self.push(c.encode_utf8(&mut [0; 4]).as_bytes());
    }

    /// The result's full length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes written into the buffer.
    pub(crate) fn copied(&self) -> usize {
        self.len.min(self.buf.len())
    }
}

/// Why a selection produced no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    /// Nothing at that selector.
    NotFound,
    /// The budget ran out.
    Exhausted,
}

impl From<Exhausted> for Miss {
    fn from(_: Exhausted) -> Miss {
        Miss::Exhausted
    }
}

/// Parsed documents of one run, by property name. An entry is dropped when
/// the guest writes or removes that property.
#[derive(Debug, Default)]
pub(crate) struct ParseCache {
    json: HashMap<String, Result<JsonDoc, String>>,
    xml: HashMap<String, Result<XmlDoc, String>>,
}

impl ParseCache {
    /// Drops whatever was parsed from property `name` (the guest wrote it).
    pub(crate) fn forget(&mut self, name: &str) {
        if !self.json.is_empty() {
            self.json.remove(name);
        }
        if !self.xml.is_empty() {
            self.xml.remove(name);
        }
    }

    /// Host memory the cache holds, in bytes: the indexes (their capacity),
    /// the cached error messages, the names and the maps' slots.
    ///
    /// For each property selected from, at most
    /// `INDEX_BYTES_PER_TEXT_BYTE × its text's bytes` plus a constant
    /// (`json::INDEX_BYTES_PER_TEXT_BYTE`, `xml::INDEX_BYTES_PER_TEXT_BYTE`).
    #[allow(dead_code)] // counted by the run's host-memory accounting
    pub(crate) fn heap_bytes(&self) -> usize {
        fn map<T>(
            map: &HashMap<String, Result<T, String>>,
            doc_bytes: impl Fn(&T) -> usize,
        ) -> usize {
            let slots = map.capacity() * (size_of::<(String, Result<T, String>)>() + 1);
            let entries: usize = map
                .iter()
                .map(|(name, entry)| {
                    name.capacity()
                        + match entry {
                            Ok(doc) => doc_bytes(doc),
                            Err(message) => message.capacity(),
                        }
                })
                .sum();
            slots + entries
        }
        map(&self.json, JsonDoc::heap_bytes) + map(&self.xml, XmlDoc::heap_bytes)
    }
}

pub(super) fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    linker.func_wrap(IMPORT_MODULE, JSON_SELECT.name, json_select)?;
    linker.func_wrap(IMPORT_MODULE, XML_SELECT.name, xml_select)?;
    Ok(())
}

/// Which selector.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    Json,
    Xml,
}

impl Lang {
    fn import(self) -> &'static str {
        match self {
            Lang::Json => "json_select",
            Lang::Xml => "xml_select",
        }
    }

    fn call_fuel(self) -> u64 {
        match self {
            Lang::Json => JSON_CALL_FUEL,
            Lang::Xml => XML_CALL_FUEL,
        }
    }

    fn step_fuel(self) -> u64 {
        match self {
            Lang::Json => JSON_STEP_FUEL,
            Lang::Xml => XML_STEP_FUEL,
        }
    }
}

/// `s` for an error message: quoted, and cut to [`MAX_QUOTED`] bytes.
pub(crate) fn quoted(s: &str) -> String {
    if s.len() <= MAX_QUOTED {
        return format!("{s:?}");
    }
    let mut end = MAX_QUOTED;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &s[..end], s.len())
}

/// The property name and selector (read) and the result buffer (written)
/// in guest memory, borrowed side by side when the buffer overlaps
/// neither (the usual case, no copy), else `None`.
fn split_args<'d>(
    data: &'d mut [u8],
    prop: &Range<usize>,
    path: &Range<usize>,
    buf: &Range<usize>,
) -> Option<(&'d [u8], &'d [u8], &'d mut [u8])> {
    if buf.is_empty() {
        let data = &*data;
        return Some((&data[prop.clone()], &data[path.clone()], &mut []));
    }
    let (left, rest) = data.split_at_mut(buf.start);
    let (out, right) = rest.split_at_mut(buf.len());
    let (left, right) = (&*left, &*right);
    let side = |r: &Range<usize>| {
        if r.end <= buf.start {
            Some(&left[r.clone()])
        } else if r.start >= buf.end {
            Some(&right[r.start - buf.end..r.end - buf.end])
        } else {
            None
        }
    };
    Some((side(prop)?, side(path)?, out))
}

/// What a selection came to, before it is charged.
enum Selected {
    /// The import's return value (a length or an error code), and the
    /// bytes copied into the guest's buffer.
    Return(i32, usize),
    /// The budget ran out: the run ends.
    Exhausted,
}

fn select(caller: &mut Caller<'_, RunState>, lang: Lang, raw: [i32; 6]) -> wasmtime::Result<i32> {
    let f = lang.import();
    let path_arg = match lang {
        Lang::Json => "pointer_ptr/pointer_len",
        Lang::Xml => "path_ptr/path_len",
    };
    let mem = memory(caller)?;
    let mem_len = mem.data_size(&*caller);
    let prop = range(f, "prop_ptr/prop_len", raw[0], raw[1], mem_len)?;
    let path = range(f, path_arg, raw[2], raw[3], mem_len)?;
    let buf = range(f, "buf_ptr/buf_cap", raw[4], raw[5], mem_len)?;
    // The fixed work, and the name and selector (scanned a few times), are
    // paid first; the rest is spent from a budget of what is left.
    let arg_bytes = (prop.len() + path.len()) as u64;
    charge(
        caller,
        CALL_FUEL + lang.call_fuel() + arg_bytes.saturating_mul(ARG_FUEL_PER_BYTE),
    )?;
    let mut budget = if caller.data().fuel_metering {
        Budget::new(caller.get_fuel()?)
    } else {
        Budget::unlimited()
    };
    let (data, state) = mem.data_and_store_mut(&mut *caller);
    let selected = match split_args(data, &prop, &path, &buf) {
        Some((name, selector, out)) => select_in(
            state,
            lang,
            name,
            selector,
            &mut Sink::new(out),
            &mut budget,
        ),
        None => {
            // The buffer overlaps the name or the selector: read them from
            // copies (their bytes are paid for).
            let (name, selector) = (data[prop].to_vec(), data[path].to_vec());
            let out = &mut Sink::new(&mut data[buf]);
            select_in(state, lang, &name, &selector, out, &mut budget)
        }
    };
    match selected {
        Selected::Return(ret, copied) => {
            charge(caller, budget.spent().saturating_add(copy_fuel(copied)))?;
            Ok(ret)
        }
        // Charging more than is left ends the run with `FuelExhausted`.
        Selected::Exhausted => {
            charge(caller, u64::MAX)?;
            Ok(code::NOT_FOUND)
        }
    }
}

/// The selection itself, on the run's state and the guest's bytes. The
/// order of checks is `docs/abi.md`'s: UTF-8, selector syntax, property
/// set, document parses, selector matches.
fn select_in(
    state: &mut RunState,
    lang: Lang,
    name: &[u8],
    selector: &[u8],
    out: &mut Sink<'_>,
    budget: &mut Budget,
) -> Selected {
    let RunState {
        props,
        changes,
        parse,
        last_error,
        ..
    } = state;
    // An error's message (a bounded amount of work: names and selectors
    // are quoted cut short) is paid for with the error.
    let mut fail = |budget: &mut Budget, code: i32, message: String| {
        if budget.spend(ERROR_FUEL).is_err() {
            return Selected::Exhausted;
        }
        *last_error = Some(message);
        Selected::Return(code, 0)
    };
    // Each step of the selector is split and validated, then followed.
    let steps = memchr::memchr_iter(b'/', selector).count() as u64;
    let escapes = match lang {
        Lang::Json => memchr::memchr_iter(b'~', selector).count() as u64,
        Lang::Xml => 0,
    };
    let fuel = steps.saturating_mul(lang.step_fuel()) + escapes.saturating_mul(JSON_TILDE_FUEL);
    if budget.spend(fuel).is_err() {
        return Selected::Exhausted;
    }
    let Ok(name) = std::str::from_utf8(name) else {
        return fail(budget, code::INVALID, "property name is not UTF-8".into());
    };
    let Ok(selector) = std::str::from_utf8(selector) else {
        return fail(budget, code::INVALID, "selector is not UTF-8".into());
    };
    let xml_path = match lang {
        Lang::Json => match json::check_pointer(selector) {
            Ok(()) => None,
            Err(message) => return fail(budget, code::INVALID, message),
        },
        Lang::Xml => match XmlPath::parse(selector) {
            Ok(path) => Some(path),
            Err(message) => return fail(budget, code::INVALID, message),
        },
    };
    let Some(text) = changes.read(props, name) else {
        return fail(
            budget,
            code::NOT_FOUND,
            format!("property {} is not set", quoted(name)),
        );
    };
    // One hash of the name when the parse is cached (the usual case).
    let cached = match (lang, &xml_path) {
        (Lang::Json, _) => parse
            .json
            .get_mut(name)
            .map(|doc| in_json(doc, text, selector, budget, out)),
        (Lang::Xml, Some(path)) => parse
            .xml
            .get_mut(name)
            .map(|doc| in_xml(doc, text, path, budget, out)),
        (Lang::Xml, None) => Some(Err(Fault::Miss(Miss::NotFound))),
    };
    let result = match cached {
        Some(result) => result,
        None => {
            // Paid before parsing.
            let per_byte = match lang {
                Lang::Json => JSON_PARSE_FUEL_PER_BYTE,
                Lang::Xml => XML_PARSE_FUEL_PER_BYTE,
            };
            if budget.spend(parse_fuel(text, per_byte)).is_err() {
                return Selected::Exhausted;
            }
            match (lang, &xml_path) {
                (Lang::Json, _) => {
                    let doc = parse.json.entry(name.to_string());
                    let doc = doc.or_insert(JsonDoc::parse(text));
                    in_json(doc, text, selector, budget, out)
                }
                (Lang::Xml, path) => {
                    let doc = parse.xml.entry(name.to_string());
                    let doc = doc.or_insert(XmlDoc::parse(text));
                    match path {
                        Some(path) => in_xml(doc, text, path, budget, out),
                        None => Err(Fault::Miss(Miss::NotFound)),
                    }
                }
            }
        }
    };
    let result = match result {
        Ok(()) => Ok(()),
        Err(Fault::Miss(miss)) => Err(miss),
        Err(Fault::NotParseable(message)) => {
            let what = match lang {
                Lang::Json => "JSON",
                Lang::Xml => "well-formed XML",
            };
            let message = format!("property {} is not {what}: {message}", quoted(name));
            return fail(budget, code::NOT_PARSEABLE, message);
        }
    };
    match result {
        // Results are bounded by the property's size, far below 2 GiB in
        // practice; saturate rather than wrap if an operator ever hands a
        // run a larger property.
        Ok(()) => Selected::Return(i32::try_from(out.len()).unwrap_or(i32::MAX), out.copied()),
        Err(Miss::Exhausted) => Selected::Exhausted,
        Err(Miss::NotFound) => {
            let what = match lang {
                Lang::Json => "JSON pointer",
                Lang::Xml => "XML path",
            };
            let message = format!(
                "nothing at {what} {} in property {}",
                quoted(selector),
                quoted(name)
            );
            fail(budget, code::NOT_FOUND, message)
        }
    }
}

/// Why a selection on a cached parse gave no value.
enum Fault {
    Miss(Miss),
    /// The property did not parse: the parser's message.
    NotParseable(String),
}

fn in_json(
    doc: &mut Result<JsonDoc, String>,
    text: &str,
    pointer: &str,
    budget: &mut Budget,
    out: &mut Sink<'_>,
) -> Result<(), Fault> {
    match doc {
        Ok(doc) => doc.select(text, pointer, budget, out).map_err(Fault::Miss),
        Err(message) => Err(Fault::NotParseable(message.clone())),
    }
}

fn in_xml(
    doc: &mut Result<XmlDoc, String>,
    text: &str,
    path: &XmlPath<'_>,
    budget: &mut Budget,
    out: &mut Sink<'_>,
) -> Result<(), Fault> {
    match doc {
        Ok(doc) => doc.select(text, path, budget, out).map_err(Fault::Miss),
        Err(message) => Err(Fault::NotParseable(message.clone())),
    }
}

/// The fuel of parsing `text` at `per_byte`.
fn parse_fuel(text: &str, per_byte: u64) -> u64 {
    (text.len() as u64).saturating_mul(per_byte)
}

fn json_select(
    mut caller: Caller<'_, RunState>,
    prop_ptr: i32,
    prop_len: i32,
    pointer_ptr: i32,
    pointer_len: i32,
    buf_ptr: i32,
    buf_cap: i32,
) -> wasmtime::Result<i32> {
    let raw = [
        prop_ptr,
        prop_len,
        pointer_ptr,
        pointer_len,
        buf_ptr,
        buf_cap,
    ];
    select(&mut caller, Lang::Json, raw)
}

fn xml_select(
    mut caller: Caller<'_, RunState>,
    prop_ptr: i32,
    prop_len: i32,
    path_ptr: i32,
    path_len: i32,
    buf_ptr: i32,
    buf_cap: i32,
) -> wasmtime::Result<i32> {
    let raw = [prop_ptr, prop_len, path_ptr, path_len, buf_ptr, buf_cap];
    select(&mut caller, Lang::Xml, raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_bytes_counts_each_index_and_forgets_it() {
        let mut cache = ParseCache::default();
        assert_eq!(cache.heap_bytes(), 0);
        let json = format!("[{}0]", "0,".repeat(100_000));
        let xml = format!("<r>{}</r>", "<a/>".repeat(50_000));
        cache
            .json
            .insert("j".into(), JsonDoc::parse(&json).map_err(|e| e.to_string()));
        let with_json = cache.heap_bytes();
        // The tape: one word per value and two for the array.
        assert!(with_json >= 4 * 100_002, "{with_json}");
        assert!(
            with_json <= json::INDEX_BYTES_PER_TEXT_BYTE * json.len() + 1024,
            "{with_json}"
        );
        cache.xml.insert("x".into(), XmlDoc::parse(&xml));
        let both = cache.heap_bytes();
        assert!(both - with_json >= 12 * 50_001, "{both}");
        assert!(
            both - with_json <= xml::INDEX_BYTES_PER_TEXT_BYTE * xml.len() + 1024,
            "{both}"
        );
        // A document that did not parse costs its message.
        cache.json.insert("bad".into(), JsonDoc::parse("{"));
        assert!(cache.heap_bytes() > both);
        cache.forget("j");
        cache.forget("x");
        cache.forget("bad");
        // What is left: the maps' empty slots.
        assert!(cache.heap_bytes() < 4096, "{}", cache.heap_bytes());
    }

    #[test]
    fn budgets_spend_before_and_refund_unread_bytes() {
        let mut budget = Budget::new(100);
        assert_eq!(budget.spend(60), Ok(()));
        assert_eq!(budget.spend(41), Err(Exhausted));
        assert_eq!(budget.spent(), 60, "a refused spend spends nothing");
        assert_eq!(budget.spend_bytes(80, 4), Ok(())); // 10 × 4
        budget.refund_bytes(17, 4); // 2 whole 8-byte units
        assert_eq!(budget.spent(), 92);
        assert_eq!(budget.spend_bytes(64, 1), Ok(()));
        assert_eq!(budget.spend(1), Err(Exhausted));
    }

    #[test]
    fn sinks_keep_the_first_bytes_and_count_all() {
        let mut buf = [0u8; 4];
        let mut sink = Sink::new(&mut buf);
        sink.push(b"ab");
        sink.push_char('é');
        sink.push(b"cd");
        assert_eq!((sink.len(), sink.copied()), (6, 4));
        assert_eq!(&buf, b"ab\xc3\xa9");
        let mut none = Sink::new(&mut []);
        none.push(b"xyz");
        assert_eq!((none.len(), none.copied()), (3, 0));
    }

    #[test]
    fn arguments_overlapping_the_buffer_are_detected() {
        let mut data = [0u8; 32];
        let (prop, path) = (0..4, 4..8);
        assert!(split_args(&mut data, &prop, &path, &(8..16)).is_some());
        assert!(split_args(&mut data, &prop, &path, &(2..16)).is_none());
        assert!(split_args(&mut data, &prop, &path, &(6..7)).is_none());
        assert!(split_args(&mut data, &prop, &(20..24), &(8..16)).is_some());
        // An empty buffer overlaps nothing, wherever it is.
        assert!(split_args(&mut data, &prop, &path, &(2..2)).is_some());
    }

    #[test]
    fn long_names_are_quoted_cut_short() {
        assert_eq!(quoted("a b"), "\"a b\"");
        let long = "é".repeat(100);
        let q = quoted(&long);
        assert!(q.len() < 140 && q.ends_with("(200 bytes)"), "{q}");
    }
}
