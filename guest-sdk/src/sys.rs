//! The raw ABI v1 imports (`docs/abi.md`) and the length protocol.
//!
//! On `wasm32` every function here is one call into the host through module
//! `chatflow`. Everywhere else the same functions go to the in-process test
//! host ([`crate::testing`]), which implements the same contract, so the code
//! above this module (the retry logic, the error mapping) is the code that
//! runs in the sandbox, and native tests exercise it too.
//!
//! The import declarations are checked against the ABI crate's table
//! ([`chatflow_abi::IMPORTS`]) by a unit test, and the error codes are the
//! ABI crate's ([`chatflow_abi::code`]).
//!
//! Nothing here is public: the safe modules (`context`, `log`, `http`) are the
//! API.

use std::mem::MaybeUninit;

// The error codes the SDK's calls handle, as the host returns them.
pub(crate) use chatflow_abi::code::{
    CONNECTION, DENIED, INVALID, NOT_FOUND, NOT_PARSEABLE, TIMEOUT,
};

/// Declares the imports on wasm32 and, for the unit tests, the same
/// declarations as data (`DECLARED`), so a test checks them against
/// [`chatflow_abi::IMPORTS`]: Rust needs the names and types written out
/// in the `extern` block, and this way they are written once.
macro_rules! imports {
    (
        module $module:tt;
        $( fn $name:ident ( $( $arg:ident : $ty:ident ),* $(,)? ) $( -> $ret:ident )? ; )*
    ) => {
        #[cfg(target_arch = "wasm32")]
        mod imports {
            #[link(wasm_import_module = $module)]
            unsafe extern "C" {
                $( pub fn $name( $( $arg : $ty ),* ) $( -> $ret )?; )*
            }
        }

        /// The import module and every import declared: name, parameter
        /// types, result types, as written.
        #[cfg(test)]
        const DECLARED: (&str, &[(&str, &[&str], &[&str])]) = (
            $module,
            &[ $( (stringify!($name), &[ $( stringify!($ty) ),* ], &[ $( stringify!($ret) )? ]) ),* ],
        );
    };
}

// Types exactly as in docs/abi.md: every parameter and result is `i32`;
// pointers and lengths are unsigned 32-bit values carried in `i32`.
imports! {
    module "chatflow";
    fn property_get(name_ptr: i32, name_len: i32, buf_ptr: i32, buf_cap: i32) -> i32;
    fn property_set(name_ptr: i32, name_len: i32, val_ptr: i32, val_len: i32) -> i32;
    fn property_remove(name_ptr: i32, name_len: i32) -> i32;
    fn message_send(text_ptr: i32, text_len: i32) -> i32;
    fn log(level: i32, msg_ptr: i32, msg_len: i32);
    fn fail(msg_ptr: i32, msg_len: i32);
    fn last_error(buf_ptr: i32, buf_cap: i32) -> i32;
    fn http_request(req_ptr: i32, req_len: i32) -> i32;
    fn http_response_status(handle: i32) -> i32;
    fn http_response_headers(handle: i32, buf_ptr: i32, buf_cap: i32) -> i32;
    fn http_response_body(handle: i32, buf_ptr: i32, buf_cap: i32) -> i32;
    fn json_select(
        prop_ptr: i32,
        prop_len: i32,
        pointer_ptr: i32,
        pointer_len: i32,
        buf_ptr: i32,
        buf_cap: i32,
    ) -> i32;
    fn xml_select(
        prop_ptr: i32,
        prop_len: i32,
        path_ptr: i32,
        path_len: i32,
        buf_ptr: i32,
        buf_cap: i32,
    ) -> i32;
}

/// `(ptr, len)` of a byte string, as the ABI carries them.
#[cfg(target_arch = "wasm32")]
#[inline(always)]
fn arg(bytes: &[u8]) -> (i32, i32) {
    (bytes.as_ptr() as i32, bytes.len() as i32)
}

/// `(ptr, cap)` of an output buffer. An empty buffer is passed as `(0, 0)`,
/// the ABI's "length only" form, rather than as a dangling pointer.
#[cfg(target_arch = "wasm32")]
#[inline(always)]
fn out(buf: &mut [MaybeUninit<u8>]) -> (i32, i32) {
    if buf.is_empty() {
        (0, 0)
    } else {
        (buf.as_mut_ptr() as i32, buf.len() as i32)
    }
}

// One wrapper per import, with the same Rust signature on every target.
// SAFETY (wasm32, all wrappers): every pointer passed is a live Rust slice of
// the given length in this module's own memory; the host reads or writes at
// most that many bytes (docs/abi.md "Bounds") and keeps no pointer after the
// call returns.

#[cfg(target_arch = "wasm32")]
pub(crate) fn property_get(name: &str, buf: &mut [MaybeUninit<u8>]) -> i32 {
    let (n, nl) = arg(name.as_bytes());
    let (b, bc) = out(buf);
    unsafe { imports::property_get(n, nl, b, bc) }
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn property_set(name: &str, value: &str) -> i32 {
    let (n, nl) = arg(name.as_bytes());
    let (v, vl) = arg(value.as_bytes());
    unsafe { imports::property_set(n, nl, v, vl) }
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn property_remove(name: &str) -> i32 {
    let (n, nl) = arg(name.as_bytes());
    unsafe { imports::property_remove(n, nl) }
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn message_send(text: &str) -> i32 {
    let (t, tl) = arg(text.as_bytes());
    unsafe { imports::message_send(t, tl) }
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn log(level: i32, msg: &str) {
    let (m, ml) = arg(msg.as_bytes());
    unsafe { imports::log(level, m, ml) }
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn fail(msg: &str) {
    let (m, ml) = arg(msg.as_bytes());
    unsafe { imports::fail(m, ml) }
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn last_error(buf: &mut [MaybeUninit<u8>]) -> i32 {
    let (b, bc) = out(buf);
    unsafe { imports::last_error(b, bc) }
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn http_request(request_json: &[u8]) -> i32 {
    let (r, rl) = arg(request_json);
    unsafe { imports::http_request(r, rl) }
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn http_response_status(handle: i32) -> i32 {
    unsafe { imports::http_response_status(handle) }
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn http_response_headers(handle: i32, buf: &mut [MaybeUninit<u8>]) -> i32 {
    let (b, bc) = out(buf);
    unsafe { imports::http_response_headers(handle, b, bc) }
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn http_response_body(handle: i32, buf: &mut [MaybeUninit<u8>]) -> i32 {
    let (b, bc) = out(buf);
    unsafe { imports::http_response_body(handle, b, bc) }
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn json_select(prop: &str, pointer: &str, buf: &mut [MaybeUninit<u8>]) -> i32 {
    let (p, pl) = arg(prop.as_bytes());
    let (q, ql) = arg(pointer.as_bytes());
    let (b, bc) = out(buf);
    unsafe { imports::json_select(p, pl, q, ql, b, bc) }
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn xml_select(prop: &str, path: &str, buf: &mut [MaybeUninit<u8>]) -> i32 {
    let (p, pl) = arg(prop.as_bytes());
    let (q, ql) = arg(path.as_bytes());
    let (b, bc) = out(buf);
    unsafe { imports::xml_select(p, pl, q, ql, b, bc) }
}

// Off wasm32: the same functions, answered by the in-process test host.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use crate::testing::host::{
    fail, http_request, http_response_body, http_response_headers, http_response_status,
    json_select, last_error, log, message_send, property_get, property_remove, property_set,
    xml_select,
};

/// Results up to this size are read with one host call into a stack buffer.
///
/// Most properties a Code block reads (a phone number, an id, a small API
/// response) fit, so the common case is one call and one exact-size copy. A
/// larger result costs one extra call; the bytes already copied into the
/// stack buffer are the only waste.
const STACK_BUF: usize = 1024;

/// Reads a result through the length protocol and hands the bytes to `with`,
/// without a heap copy when the result fits [`STACK_BUF`].
///
/// `call` is one import call that fills the buffer it is given and returns
/// the full length, or a negative error code, which is returned as `Err`.
#[inline]
pub(crate) fn with_bytes<R>(
    mut call: impl FnMut(&mut [MaybeUninit<u8>]) -> i32,
    with: impl FnOnce(&[u8]) -> R,
) -> Result<R, i32> {
    let mut stack = [MaybeUninit::<u8>::uninit(); STACK_BUF];
    match first_call(&mut call, &mut stack)? {
        First::Fits(bytes) => Ok(with(bytes)),
        First::Larger(len) => {
            let vec = read_exact(call, len)?;
            Ok(with(&vec))
        }
    }
}

/// Reads a result into an exact-size `Vec`: one call into a stack buffer for
/// small results, otherwise a second call straight into the final allocation
/// (no double copy of large values).
pub(crate) fn read_vec(
    mut call: impl FnMut(&mut [MaybeUninit<u8>]) -> i32,
) -> Result<Vec<u8>, i32> {
    let mut stack = [MaybeUninit::<u8>::uninit(); STACK_BUF];
    match first_call(&mut call, &mut stack)? {
        First::Fits(bytes) => Ok(bytes.to_vec()),
        First::Larger(len) => read_exact(call, len),
    }
}

/// What the first call of the length protocol, into a stack buffer, gave.
enum First<'a> {
    /// All of the result, in the stack buffer.
    Fits(&'a [u8]),
    /// The result's full length, larger than the stack buffer.
    Larger(usize),
}

/// First step of the length protocol: one call into `stack`; a negative
/// return (an error code) is `Err`.
#[inline]
fn first_call<'a>(
    call: &mut impl FnMut(&mut [MaybeUninit<u8>]) -> i32,
    stack: &'a mut [MaybeUninit<u8>; STACK_BUF],
) -> Result<First<'a>, i32> {
    let len = call(&mut stack[..]);
    if len < 0 {
        return Err(len);
    }
    let len = len as usize;
    if len > STACK_BUF {
        return Ok(First::Larger(len));
    }
    // SAFETY: the host wrote `len` bytes (all of the result) at the start of
    // the buffer.
    let bytes = unsafe { std::slice::from_raw_parts(stack.as_ptr().cast::<u8>(), len) };
    Ok(First::Fits(bytes))
}

/// Reads a result expected to be large (an API response, a response body):
/// asks for the length first (`buf_cap = 0`, nothing copied), then copies
/// once into an exact-size allocation.
pub(crate) fn read_vec_sized(
    mut call: impl FnMut(&mut [MaybeUninit<u8>]) -> i32,
) -> Result<Vec<u8>, i32> {
    let len = call(&mut []);
    if len < 0 {
        return Err(len);
    }
    read_exact(call, len as usize)
}

/// Second step of the length protocol: a buffer of exactly `len` bytes. The
/// ABI says results do not change during a run unless the guest changes them,
/// so one retry is the rule; the loop only guards against a host that breaks
/// that promise (it would otherwise be a truncated read).
fn read_exact(
    mut call: impl FnMut(&mut [MaybeUninit<u8>]) -> i32,
    mut len: usize,
) -> Result<Vec<u8>, i32> {
    loop {
        let mut vec: Vec<u8> = Vec::with_capacity(len);
        let got = call(&mut vec.spare_capacity_mut()[..len]);
        if got < 0 {
            return Err(got);
        }
        let got = got as usize;
        if got <= len {
            // SAFETY: the host wrote `got` bytes at the start of the buffer.
            unsafe { vec.set_len(got) };
            return Ok(vec);
        }
        len = got;
    }
}

/// The message of the most recent failed call (`last_error`), or a fallback
/// naming the code when the host has none.
pub(crate) fn last_error_message(code: i32) -> String {
    match read_vec(last_error) {
        Ok(bytes) => String::from_utf8(bytes)
            .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned()),
        Err(_) => format!("host returned error code {code} ({})", code_name(code)),
    }
}

/// The ABI name of an error code, for messages.
pub(crate) fn code_name(code: i32) -> &'static str {
    chatflow_abi::code::name(code).unwrap_or("unknown code")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every import the SDK declares is an ABI v1 import with the ABI's
    /// type, in the ABI's module, and the SDK declares all of them.
    #[test]
    fn the_declared_imports_are_the_abis() {
        let (module, declared) = DECLARED;
        assert_eq!(module, chatflow_abi::IMPORT_MODULE);
        let text = |types: &[chatflow_abi::ValType]| -> Vec<&str> {
            types.iter().map(|t| t.as_str()).collect()
        };
        for (name, params, results) in declared {
            let abi = chatflow_abi::import(name)
                .unwrap_or_else(|| panic!("{name} is not an ABI v1 import"));
            assert_eq!(
                (*params, *results),
                (&text(abi.params)[..], &text(abi.results)[..]),
                "{name}"
            );
        }
        let mut names: Vec<&str> = declared.iter().map(|(name, _, _)| *name).collect();
        let mut abi: Vec<&str> = chatflow_abi::IMPORTS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        abi.sort_unstable();
        assert_eq!(names, abi);
    }

    /// A fake import that follows the length protocol over `value`, counting
    /// calls and the bytes it copied.
    struct Fake {
        value: Vec<u8>,
        calls: usize,
        copied: usize,
    }

    impl Fake {
        fn new(len: usize) -> Self {
            Fake {
                value: (0..len).map(|i| (i % 251) as u8).collect(),
                calls: 0,
                copied: 0,
            }
        }

        fn call(&mut self, buf: &mut [MaybeUninit<u8>]) -> i32 {
            self.calls += 1;
            let n = self.value.len().min(buf.len());
            for (dst, src) in buf.iter_mut().zip(&self.value[..n]) {
                dst.write(*src);
            }
            self.copied += n;
            self.value.len() as i32
        }
    }

    #[test]
    fn small_values_take_one_call() {
        for len in [0, 1, 387, STACK_BUF] {
            let mut fake = Fake::new(len);
            let value = fake.value.clone();
            let got = read_vec(|buf| fake.call(buf)).unwrap();
            assert_eq!(got, value);
            assert_eq!(fake.calls, 1, "len {len}");
            let mut fake = Fake::new(len);
            let sum = with_bytes(|buf| fake.call(buf), |b| b.len()).unwrap();
            assert_eq!((sum, fake.calls), (len, 1));
        }
    }

    #[test]
    fn large_values_retry_once_with_exact_buffer() {
        let len = STACK_BUF * 40 + 3;
        let mut fake = Fake::new(len);
        let value = fake.value.clone();
        let got = read_vec(|buf| fake.call(buf)).unwrap();
        assert_eq!(got, value);
        assert_eq!(got.capacity(), len, "exact-size allocation");
        assert_eq!(fake.calls, 2);
        // The first call copied at most the stack buffer.
        assert_eq!(fake.copied, STACK_BUF + len);
    }

    #[test]
    fn sized_reads_never_copy_twice() {
        let len = 1 << 20;
        let mut fake = Fake::new(len);
        let got = read_vec_sized(|buf| fake.call(buf)).unwrap();
        assert_eq!(got.len(), len);
        assert_eq!((fake.calls, fake.copied), (2, len));
    }

    #[test]
    fn a_value_that_grows_between_calls_is_read_in_full() {
        // Not allowed by the ABI, but it must not truncate silently.
        let mut calls = 0;
        let got = read_vec(|buf| {
            calls += 1;
            let value = vec![7u8; 2000 + calls.min(2) * 10];
            let n = value.len().min(buf.len());
            for (dst, src) in buf.iter_mut().zip(&value[..n]) {
                dst.write(*src);
            }
            value.len() as i32
        })
        .unwrap();
        assert_eq!(got.len(), 2020);
        assert_eq!(calls, 3);
    }

    #[test]
    fn negative_codes_are_errors_bad() {
        assert_eq!(read_vec(|_| NOT_FOUND), Err(NOT_FOUND));
        assert_eq!(read_vec_sized(|_| INVALID), Err(INVALID));
        assert_eq!(with_bytes(|_| DENIED, |_| ()), Err(DENIED));
        assert_eq!(code_name(chatflow_abi::code::BAD_HANDLE), "BAD_HANDLE");
        assert_eq!(code_name(-99), "unknown code");
    }
}
