//! Parses arbitrary text as a template and as a URL template and renders it
//! in every context with arbitrary property values, checking what the
//! template module promises (`engine/tests/all/support/invariants.rs`,
//! shared with the proptest properties that run in CI).
//!
//! Input: the template source, then the property values, each introduced
//! by a `0xff` byte; a value starting with `0xfe` is "not set". The first
//! distinct placeholder name takes the first value, and so on, cycling.
//! Invalid UTF-8 is replaced (U+FFFD), so any bytes are an input.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../engine/tests/all/support/invariants.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    let mut chunks = data.split(|&b| b == 0xff);
    let source = String::from_utf8_lossy(chunks.next().unwrap_or_default());
    let values: Vec<Option<String>> = chunks
        .take(8)
        .map(|chunk| match chunk {
            [0xfe, ..] => None,
            chunk => Some(String::from_utf8_lossy(chunk).into_owned()),
        })
        .collect();
    invariants::template(&source, &values);
});
