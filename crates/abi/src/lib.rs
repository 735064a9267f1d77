//! The chatflow Code block ABI v1, as data: the one place the host and
//! the guest read the contract from, so that they cannot drift apart.
//!
//! A Code block is a core WebAssembly module that imports functions from
//! module [`IMPORT_MODULE`] and exports [`MEMORY_EXPORT`], [`MARKER_EXPORT`]
//! and [`RUN_EXPORT`]. This crate holds every name and type of that
//! contract ([`IMPORTS`], [`FUNC_EXPORTS`]), the error codes an import
//! returns ([`code`]), the request object `http_request` takes ([`http`]:
//! its fields, [`http::Method`], the forbidden headers), the stable names of
//! the run limits ([`limit`]), the fixed fuel charges ([`fuel`]) and the
//! sizes the host promises ([`MAX_FAIL_MESSAGE_BYTES`] …). `docs/abi.md` is
//! the prose; this crate is the part of it code can check. The engine's
//! sandbox registers its imports and validates modules from these tables,
//! and the guest SDK (`chatflow-sdk`) takes its error codes and forbidden
//! headers from here and tests its import declarations against
//! [`IMPORTS`]. It has no dependencies and is `no_std` (with `alloc`, for
//! one error message), so it builds for every guest target.
//!
//! ```
//! use chatflow_abi::{IMPORT_MODULE, ValType, code, http::Method};
//!
//! let get = chatflow_abi::import("property_get").unwrap();
//! assert_eq!(IMPORT_MODULE, "chatflow");
//! assert_eq!(get.params, [ValType::I32; 4]);
//! assert_eq!(get.results, [ValType::I32]);
//! assert_eq!(code::name(code::NOT_FOUND), Some("NOT_FOUND"));
//! assert_eq!("PATCH".parse::<Method>(), Ok(Method::Patch));
//! assert!(chatflow_abi::http::is_forbidden_header("Content-Length"));
//! ```

#![no_std]
#![deny(missing_docs)]

extern crate alloc;

use core::fmt;

pub mod http;

/// The version of the ABI this crate describes; a module that targets it
/// exports [`MARKER_EXPORT`].
pub const ABI_VERSION: u32 = 1;

/// The import module name of every ABI v1 import.
pub const IMPORT_MODULE: &str = "chatflow";

/// The guest's linear memory: required, a 32-bit memory that is not
/// shared, defined by the module (importing a memory is refused). The host
/// reads and writes guest buffers in it.
pub const MEMORY_EXPORT: &str = "memory";

/// The marker export, `() -> ()`: present means the module targets ABI v1.
/// Required; never called.
pub const MARKER_EXPORT: &str = "chatflow_abi_v1";

/// The entry point, `() -> i32`: required; `0` is success, anything else
/// is failure.
pub const RUN_EXPORT: &str = "chatflow_run";

/// A WebAssembly value type as the ABI uses it. ABI v1 passes and returns
/// `i32` only: pointers and lengths are unsigned 32-bit values carried in
/// `i32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValType {
    /// `i32`.
    I32,
}

impl ValType {
    /// The type as WebAssembly text writes it (`"i32"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ValType::I32 => "i32",
        }
    }
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A function of the ABI (an import or a required export): its name and
/// type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Func {
    /// The name (in module [`IMPORT_MODULE`] for an import).
    pub name: &'static str,
    /// The parameter types, in order.
    pub params: &'static [ValType],
    /// The result types (none or one).
    pub results: &'static [ValType],
}

const fn func(name: &'static str, params: &'static [ValType], results: &'static [ValType]) -> Func {
    Func {
        name,
        params,
        results,
    }
}

const I: ValType = ValType::I32;

/// Every ABI v1 import, in `docs/abi.md` order (the same as
/// [`imports`], one constant each). A module may import any subset of
/// them, each with exactly this type, and nothing else; the host defines
/// all of them.
pub const IMPORTS: &[Func] = &[
    imports::PROPERTY_GET,
    imports::PROPERTY_SET,
    imports::PROPERTY_REMOVE,
    imports::MESSAGE_SEND,
    imports::LOG,
    imports::FAIL,
    imports::LAST_ERROR,
    imports::HTTP_REQUEST,
    imports::HTTP_RESPONSE_STATUS,
    imports::HTTP_RESPONSE_HEADERS,
    imports::HTTP_RESPONSE_BODY,
    imports::JSON_SELECT,
    imports::XML_SELECT,
];

/// The ABI v1 imports one by one (all in [`IMPORTS`]), with their
/// parameters as `docs/abi.md` names them. A result `len | code` is the
/// length protocol's full length or a negative [`code`].
pub mod imports {
    use super::{Func, I, func};

    /// `(name_ptr, name_len, buf_ptr, buf_cap) -> len | code`
    pub const PROPERTY_GET: Func = func("property_get", &[I, I, I, I], &[I]);
    /// `(name_ptr, name_len, val_ptr, val_len) -> 0 | code`
    pub const PROPERTY_SET: Func = func("property_set", &[I, I, I, I], &[I]);
    /// `(name_ptr, name_len) -> 0 | code`
    pub const PROPERTY_REMOVE: Func = func("property_remove", &[I, I], &[I]);
    /// `(text_ptr, text_len) -> 0 | code`
    pub const MESSAGE_SEND: Func = func("message_send", &[I, I], &[I]);
    /// `(level, msg_ptr, msg_len) -> ()`
    pub const LOG: Func = func("log", &[I, I, I], &[]);
    /// `(msg_ptr, msg_len) -> ()`
    pub const FAIL: Func = func("fail", &[I, I], &[]);
    /// `(buf_ptr, buf_cap) -> len | code`
    pub const LAST_ERROR: Func = func("last_error", &[I, I], &[I]);
    /// `(req_ptr, req_len) -> handle | code`; the request is described in
    /// [`http`](crate::http).
    pub const HTTP_REQUEST: Func = func("http_request", &[I, I], &[I]);
    /// `(handle) -> status | code`
    pub const HTTP_RESPONSE_STATUS: Func = func("http_response_status", &[I], &[I]);
    /// `(handle, buf_ptr, buf_cap) -> len | code`
    pub const HTTP_RESPONSE_HEADERS: Func = func("http_response_headers", &[I, I, I], &[I]);
    /// `(handle, buf_ptr, buf_cap) -> len | code`
    pub const HTTP_RESPONSE_BODY: Func = func("http_response_body", &[I, I, I], &[I]);
    /// `(prop_ptr, prop_len, pointer_ptr, pointer_len, buf_ptr, buf_cap) -> len | code`
    pub const JSON_SELECT: Func = func("json_select", &[I, I, I, I, I, I], &[I]);
    /// `(prop_ptr, prop_len, path_ptr, path_len, buf_ptr, buf_cap) -> len | code`
    pub const XML_SELECT: Func = func("xml_select", &[I, I, I, I, I, I], &[I]);
}

/// The ABI v1 import named `name` (in module [`IMPORT_MODULE`]), if there
/// is one.
pub fn import(name: &str) -> Option<&'static Func> {
    IMPORTS.iter().find(|f| f.name == name)
}

/// The function exports a module must have, besides [`MEMORY_EXPORT`]:
/// [`RUN_EXPORT`] `() -> i32` and [`MARKER_EXPORT`] `() -> ()`. Other
/// exports are allowed and ignored.
pub const FUNC_EXPORTS: &[Func] = &[func(RUN_EXPORT, &[], &[I]), func(MARKER_EXPORT, &[], &[])];

/// The error codes: an import's negative return value (`docs/abi.md`,
/// "Error codes"). The message of the most recent one is readable with
/// `last_error`. Limits are not codes: hitting one ends the run.
pub mod code {
    /// `-1`: property not set; selector matched nothing; `last_error` with
    /// no error recorded.
    pub const NOT_FOUND: i32 = -1;
    /// `-2`: an argument is invalid: not UTF-8, not a valid property name,
    /// malformed request JSON, bad URL, bad JSON pointer or XML path syntax.
    pub const INVALID: i32 = -2;
    /// `-3`: `json_select` on a property that is not JSON, `xml_select` on
    /// one that is not well-formed XML.
    pub const NOT_PARSEABLE: i32 = -3;
    /// `-4`: HTTP request refused by the network policy (scheme, host not
    /// allowed, private address).
    pub const DENIED: i32 = -4;
    /// `-5`: HTTP request timed out (connect or total timeout of the
    /// network policy).
    pub const TIMEOUT: i32 = -5;
    /// `-6`: HTTP request failed: connection refused or reset, DNS failure,
    /// TLS or protocol error, response headers over
    /// [`MAX_RESPONSE_HEADER_BYTES`](crate::MAX_RESPONSE_HEADER_BYTES).
    pub const CONNECTION: i32 = -6;
    /// `-7`: no HTTP response with that handle in this run (or its body was
    /// read in full and released by a later `http_request`).
    pub const BAD_HANDLE: i32 = -7;

    /// Every code with its name, from `-1` down.
    pub const ALL: [(i32, &str); 7] = [
        (NOT_FOUND, "NOT_FOUND"),
        (INVALID, "INVALID"),
        (NOT_PARSEABLE, "NOT_PARSEABLE"),
        (DENIED, "DENIED"),
        (TIMEOUT, "TIMEOUT"),
        (CONNECTION, "CONNECTION"),
        (BAD_HANDLE, "BAD_HANDLE"),
    ];

    /// The name of an error code (`"NOT_FOUND"` for `-1`), or `None` for a
    /// value that is not one.
    pub fn name(code: i32) -> Option<&'static str> {
        ALL.iter().find(|(c, _)| *c == code).map(|(_, name)| *name)
    }
}

/// The stable names of the run limits, as flow files and error messages
/// write them (the engine's `LimitKind::as_str`). Hitting one ends the run
/// with an error naming it (except log bytes: excess lines are dropped and
/// counted).
pub mod limit {
    /// Fuel (wasm instructions and host work).
    pub const FUEL: &str = "fuel";
    /// Linear memory bytes.
    pub const MEMORY_BYTES: &str = "memory_bytes";
    /// Wall-clock time, in milliseconds.
    pub const WALL_TIME_MS: &str = "wall_time_ms";
    /// `http_request` calls.
    pub const HTTP_CALLS: &str = "http_calls";
    /// Response body bytes held at once.
    pub const HTTP_RESPONSE_BYTES: &str = "http_response_bytes";
    /// Bytes of one property value.
    pub const PROPERTY_VALUE_BYTES: &str = "property_value_bytes";
    /// Total bytes written (writes, removals, messages, requests, each
    /// with [`WRITE_OVERHEAD`](crate::WRITE_OVERHEAD)).
    pub const WRITTEN_BYTES: &str = "written_bytes";
    /// Messages sent.
    pub const MESSAGES: &str = "messages";
    /// Log bytes (each line with [`LOG_LINE_OVERHEAD`](crate::LOG_LINE_OVERHEAD)).
    pub const LOG_BYTES: &str = "log_bytes";

    /// Every limit name, in the engine's `LimitKind::ALL` order.
    pub const ALL: [&str; 9] = [
        FUEL,
        MEMORY_BYTES,
        WALL_TIME_MS,
        HTTP_CALLS,
        HTTP_RESPONSE_BYTES,
        PROPERTY_VALUE_BYTES,
        WRITTEN_BYTES,
        MESSAGES,
        LOG_BYTES,
    ];
}

/// The fixed fuel charges of `docs/abi.md` ("Fuel") that do not depend on
/// the size of the input: what a guest can count on per call. The charges
/// per byte and per step are in the document's table.
pub mod fuel {
    /// Any import call (the call itself, and the wall-time check at its
    /// return).
    pub const CALL: u64 = 250;
    /// An import that returns an error code with a message for
    /// `last_error`, on top of [`CALL`] (the selectors charge
    /// [`SELECT_ERROR`] instead).
    pub const ERROR: u64 = 1_000;
    /// `http_request`, on top of [`CALL`], whatever the request's size.
    pub const HTTP_REQUEST: u64 = 1_000_000;
    /// `json_select`, on top of [`CALL`].
    pub const JSON_SELECT: u64 = 1_000;
    /// `xml_select`, on top of [`CALL`].
    pub const XML_SELECT: u64 = 1_500;
    /// A selector call that fails (its `last_error` message).
    pub const SELECT_ERROR: u64 = 1_200;
}

/// The longest property name, in bytes (a longer one is `INVALID`, refused
/// before it is read).
pub const MAX_PROPERTY_NAME_BYTES: usize = 256;

/// The most of a `fail` message the host reads and keeps, in bytes (cut at
/// a character boundary).
pub const MAX_FAIL_MESSAGE_BYTES: usize = 64 * 1024;

/// The longest `last_error` message, in bytes: messages quoting guest
/// input are cut there.
pub const MAX_LAST_ERROR_BYTES: usize = 1024;

/// The longest response header block (as `name: value\n` lines) a response
/// may have; a response with more fails its request with
/// [`code::CONNECTION`].
pub const MAX_RESPONSE_HEADER_BYTES: usize = 64 * 1024;

/// What a kept log line takes from the run's log bytes beyond its text.
pub const LOG_LINE_OVERHEAD: u64 = 64;

/// What a property write or removal, a message or an HTTP request object
/// takes from the run's total bytes written beyond its own bytes.
pub const WRITE_OVERHEAD: u64 = 128;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_unique_and_found_by_name() {
        for (i, f) in IMPORTS.iter().enumerate() {
            assert_eq!(import(f.name), Some(f));
            assert!(
                IMPORTS[i + 1..].iter().all(|g| g.name != f.name),
                "{} twice",
                f.name
            );
            assert!(f.results.len() <= 1, "{}", f.name);
        }
        assert_eq!(IMPORTS.len(), 13);
    }

    #[test]
    fn import_bad() {
        for name in [
            "",
            "Property_get",
            "property_get ",
            "chatflow_run",
            "memory",
        ] {
            assert_eq!(import(name), None, "{name:?}");
        }
    }

    #[test]
    fn exports_are_not_imports() {
        for f in FUNC_EXPORTS {
            assert_eq!(import(f.name), None);
            assert!(f.params.is_empty());
        }
        assert_eq!(FUNC_EXPORTS[0].results, [ValType::I32]);
        assert_eq!(FUNC_EXPORTS[1].results, []);
    }

    #[test]
    fn codes_are_named_and_distinct() {
        for (i, (code, name)) in code::ALL.iter().enumerate() {
            assert_eq!(*code, -(i as i32) - 1, "{name}");
            assert_eq!(code::name(*code), Some(*name));
        }
    }

    #[test]
    fn code_name_bad() {
        for value in [0, 1, -8, i32::MIN, i32::MAX] {
            assert_eq!(code::name(value), None, "{value}");
        }
    }

    #[test]
    fn limit_names_are_distinct_snake_case() {
        for (i, name) in limit::ALL.iter().enumerate() {
            assert!(!limit::ALL[i + 1..].contains(name), "{name}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
    }

    #[test]
    fn val_type_text() {
        assert_eq!(alloc::format!("{}", ValType::I32), "i32");
    }
}
