//! `json_select` and `xml_select`: selectors that parse a property natively
//! in the host (safe Rust: serde_json, quick-xml), keep the parse for the
//! rest of the run, and copy only the selected value into the guest.
//!
//! Fuel: the call's base cost; 1 per byte of the property's text the first
//! time a run selects from it (charged *before* parsing, so a guest cannot
//! make the host parse more than its budget allows); for JSON, 1 per byte of
//! each nested object or array the first time a pointer goes into it; and
//! the usual copy cost for the result.

use std::collections::HashMap;
use std::ops::Range;

use wasmtime::{Caller, Linker};

use super::{CALL_FUEL, RunState, charge, code, copy_fuel, memory, put, range};
use crate::sandbox::module::IMPORT_MODULE;

mod json;
mod xml;

use json::JsonDoc;
use xml::{XmlDoc, XmlPath};

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
}

pub(super) fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    linker.func_wrap(IMPORT_MODULE, "json_select", json_select)?;
    linker.func_wrap(IMPORT_MODULE, "xml_select", xml_select)?;
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
}

/// The checked arguments of a selector call.
struct Args {
    prop: Range<usize>,
    path: Range<usize>,
    buf: Range<usize>,
}

/// Bounds-checks the arguments and checks what can fail before parsing.
/// `Err(code)` is the import's return value; `Ok` gives the arguments and
/// the bytes the first parse of the property will cost.
fn prepare(
    caller: &mut Caller<'_, RunState>,
    lang: Lang,
    raw: [i32; 6],
) -> wasmtime::Result<Result<(Args, usize), i32>> {
    let f = lang.import();
    let mem = memory(caller)?;
    let (data, state) = mem.data_and_store_mut(&mut *caller);
    let path_arg = match lang {
        Lang::Json => "pointer_ptr/pointer_len",
        Lang::Xml => "path_ptr/path_len",
    };
    let args = Args {
        prop: range(f, "prop_ptr/prop_len", raw[0], raw[1], data.len())?,
        path: range(f, path_arg, raw[2], raw[3], data.len())?,
        buf: range(f, "buf_ptr/buf_cap", raw[4], raw[5], data.len())?,
    };
    let Ok(name) = std::str::from_utf8(&data[args.prop.clone()]) else {
        return Ok(Err(state.error(code::INVALID, "property name is not UTF-8")));
    };
    let Ok(path) = std::str::from_utf8(&data[args.path.clone()]) else {
        return Ok(Err(state.error(code::INVALID, "selector is not UTF-8")));
    };
    let syntax = match lang {
        Lang::Json => json::parse_pointer(path).err().map(|e| match e {
            json::SelectError::BadPointer(m) => m,
            json::SelectError::NotFound => String::new(),
        }),
        Lang::Xml => XmlPath::parse(path).err().map(|e| match e {
            xml::SelectError::BadPath(m) => m,
            xml::SelectError::NotFound => String::new(),
        }),
    };
    if let Some(message) = syntax {
        return Ok(Err(state.error(code::INVALID, message)));
    }
    let Some(text) = state.changes.read(&state.props, name) else {
        let message = format!("property {name:?} is not set");
        return Ok(Err(state.error(code::NOT_FOUND, message)));
    };
    let cached = match lang {
        Lang::Json => state.parse.json.contains_key(name),
        Lang::Xml => state.parse.xml.contains_key(name),
    };
    let cost = if cached { 0 } else { text.len() };
    Ok(Ok((args, cost)))
}

fn select(caller: &mut Caller<'_, RunState>, lang: Lang, raw: [i32; 6]) -> wasmtime::Result<i32> {
    charge(caller, CALL_FUEL)?;
    let (args, parse_cost) = match prepare(caller, lang, raw)? {
        Ok(prepared) => prepared,
        Err(code) => return Ok(code),
    };
    charge(caller, parse_cost as u64)?;

    let mem = memory(caller)?;
    let (data, state) = mem.data_and_store_mut(&mut *caller);
    let RunState {
        props,
        changes,
        parse,
        last_error,
        ..
    } = state;
    // Checked by `prepare`, and no wasm ran since: these cannot fail.
    let (Ok(name), Ok(path)) = (
        std::str::from_utf8(&data[args.prop.clone()]),
        std::str::from_utf8(&data[args.path.clone()]),
    ) else {
        return Ok(code::INVALID);
    };
    let Some(text) = changes.read(props, name) else {
        return Ok(code::NOT_FOUND);
    };
    let mut scanned = 0usize;
    let selected = match lang {
        Lang::Json => {
            if !parse.json.contains_key(name) {
                let doc = JsonDoc::parse(text).map(|(doc, _)| doc);
                parse.json.insert(name.to_string(), doc);
            }
            let Some(entry) = parse.json.get_mut(name) else {
                return Ok(code::NOT_FOUND);
            };
            match entry {
                Err(message) => Err((
                    code::NOT_PARSEABLE,
                    format!("property {name:?} is not JSON: {message}"),
                )),
                Ok(doc) => {
                    let tokens = json::parse_pointer(path).unwrap_or_default();
                    doc.select(text, &tokens, &mut scanned).map_err(|_| {
                        (
                            code::NOT_FOUND,
                            format!("nothing at JSON pointer {path:?} in property {name:?}"),
                        )
                    })
                }
            }
        }
        Lang::Xml => {
            if !parse.xml.contains_key(name) {
                parse.xml.insert(name.to_string(), XmlDoc::parse(text));
            }
            let Some(entry) = parse.xml.get(name) else {
                return Ok(code::NOT_FOUND);
            };
            match entry {
                Err(message) => Err((
                    code::NOT_PARSEABLE,
                    format!("property {name:?} is not well-formed XML: {message}"),
                )),
                Ok(doc) => match XmlPath::parse(path) {
                    Ok(xpath) => doc.select(text, &xpath).map_err(|_| {
                        (
                            code::NOT_FOUND,
                            format!("nothing at XML path {path:?} in property {name:?}"),
                        )
                    }),
                    Err(_) => Err((code::INVALID, format!("bad XML path {path:?}"))),
                },
            }
        }
    };
    let value = match selected {
        Ok(value) => value,
        Err((code, message)) => {
            *last_error = Some(message);
            return Ok(code);
        }
    };
    let (len, copied) = put(&mut data[args.buf.clone()], value.as_bytes());
    drop(value);
    charge(caller, scanned as u64 + copy_fuel(copied))?;
    Ok(len)
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
