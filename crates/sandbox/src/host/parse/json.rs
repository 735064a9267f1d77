//! `json_select`'s document model: a *tape* of offsets over the property's
//! text, built in one pass after serde_json has validated the text.
//!
//! The tape has one `u32` word per value and per object key, in document
//! order: the offset of its first byte. A non-empty object or array takes a
//! second word, the tape index just past its last member (so a lookup hops
//! from member to member without reading what is inside them); an empty
//! one (`[]`, `{ }`) is one word like a scalar. An object's members are
//! (key word, value words) pairs. Nothing of the text is copied: keys are
//! compared, and values rendered, from the text itself.
//!
//! Memory: every value owns at least two bytes of the text that no other
//! value owns (its first byte, and the `,` or closing bracket after it; a
//! key with its quotes and `:` owns three more), and costs at most two
//! words: so the tape is at most [`INDEX_BYTES_PER_TEXT_BYTE`] bytes per
//! byte of text, plus a constant (deep nesting, `[[[…[0]…]]]`, comes
//! closest: two words per level of two bytes; `[0,0,…]` is 2).
//!
//! Lookups: an object key is found by visiting its members in order (the
//! last of duplicate keys wins, as in serde_json), an array index by
//! hopping over the elements before it, from the last index looked up in
//! that array if it is not further (a few [`Cursor`]s per document make a
//! loop over an array's elements linear, not quadratic). Each member
//! visited spends [`HOP_FUEL`] plus its key comparison, and [`FAR_FUEL`]
//! for a hop that lands far away in the tape or the text (a likely cache
//! miss); rendering spends per byte scanned.

use std::borrow::Cow;

use serde::de::IgnoredAny;

use super::{Budget, Exhausted, Miss, SCAN_CHUNK, Sink};

/// Upper bound of the tape's size per byte of text (see the module docs).
#[allow(dead_code)] // for the run's host-memory accounting
pub(crate) const INDEX_BYTES_PER_TEXT_BYTE: usize = 4;

/// Texts longer than this have their tape's largest possible size
/// reserved up front (see `build_tape`).
const RESERVE_ABOVE: usize = 1 << 20;

/// Flag of a tape word that starts a non-empty object or array.
const CONTAINER: u32 = 1 << 31;

/// Largest text indexed: offsets must stay below [`CONTAINER`].
const MAX_TEXT_BYTES: usize = CONTAINER as usize - 1;

const NONE: u32 = u32::MAX;

/// Fuel per member or element visited in a lookup.
pub(crate) const HOP_FUEL: u64 = 12;

/// A hop over more tape words than this, or to a key more text bytes
/// away than [`FAR_BYTES`], lands in memory that is likely not cached.
const FAR_WORDS: usize = 16;

/// See [`FAR_WORDS`].
const FAR_BYTES: usize = 256;

/// Fuel of a hop that lands far away (a likely cache and TLB miss: on a
/// document much larger than the caches, with irregular strides, it costs
/// as much as a few hundred wasm instructions).
pub(crate) const FAR_FUEL: u64 = 3000;

/// Fuel per 8 bytes of the pointer token compared with each key visited.
pub(crate) const KEY_FUEL_PER_8_BYTES: u64 = 16;

/// Fuel per escape decoded in a key compared with a pointer token.
pub(crate) const ESCAPE_FUEL: u64 = 120;

/// Fuel per 8 bytes of the selected value's text scanned and written
/// (whitespace dropped, string escapes decoded).
pub(crate) const RENDER_FUEL_PER_8_BYTES: u64 = 112;

/// Array cursors kept per document.
const CURSORS: usize = 8;

/// The last index looked up in an array, and where its element is.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// Tape index of the array (`NONE`: unused).
    array: u32,
    index: u32,
    element: u32,
}

const NO_CURSOR: Cursor = Cursor {
    array: NONE,
    index: 0,
    element: 0,
};

/// A JSON document's tape.
#[derive(Debug)]
pub(crate) struct JsonDoc {
    tape: Vec<u32>,
    cursors: [Cursor; CURSORS],
    next_cursor: usize,
}

/// Checks RFC 6901 syntax: empty, or `/` then tokens where `~` is followed
/// by `0` or `1`. `Err` is the message for `last_error`.
pub(crate) fn check_pointer(pointer: &str) -> Result<(), String> {
    if pointer.is_empty() {
        return Ok(());
    }
    if !pointer.starts_with('/') {
        return Err(format!(
            "JSON pointer {} must be empty or start with '/'",
            super::quoted(pointer)
        ));
    }
    let bytes = pointer.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'~' && !matches!(bytes.get(i + 1), Some(b'0' | b'1')) {
            return Err(format!(
                "JSON pointer {}: '~' must be followed by '0' or '1'",
                super::quoted(pointer)
            ));
        }
    }
    Ok(())
}

/// The reference tokens of a pointer that passed [`check_pointer`],
/// unescaped (`~1` is `/`, `~0` is `~`).
fn tokens(pointer: &str) -> impl Iterator<Item = Cow<'_, str>> {
    let rest = pointer.strip_prefix('/');
    rest.into_iter().flat_map(|rest| rest.split('/')).map(|t| {
        if !t.contains('~') {
            return Cow::Borrowed(t);
        }
        // `check_pointer` made sure each `~` is followed by 0 or 1.
        let bytes = t.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if b == b'~' {
                out.push(if bytes.get(i + 1) == Some(&b'1') {
                    b'/'
                } else {
                    b'~'
                });
                i += 2;
            } else {
                out.push(b);
                i += 1;
            }
        }
        // Only ASCII was replaced by ASCII: still UTF-8.
        Cow::Owned(String::from_utf8(out).unwrap_or_default())
    })
}

impl JsonDoc {
    /// Validates `text` with serde_json and builds its tape; `Err` with
    /// serde_json's message if it is not JSON.
    pub(crate) fn parse(text: &str) -> Result<JsonDoc, String> {
        serde_json::from_str::<IgnoredAny>(text).map_err(|e| e.to_string())?;
        if text.len() > MAX_TEXT_BYTES {
            return Err(format!(
                "{} bytes is over the {MAX_TEXT_BYTES} bytes json_select indexes",
                text.len()
            ));
        }
        Ok(JsonDoc {
            tape: build_tape(text.as_bytes()),
            cursors: [NO_CURSOR; CURSORS],
            next_cursor: 0,
        })
    }

    /// Host memory held, in bytes (the tape's capacity).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.tape.capacity() * size_of::<u32>()
    }

    /// Writes the value at `pointer` (which passed [`check_pointer`]) into
    /// `out`: a string's text unescaped, any other value's text without
    /// whitespace.
    pub(crate) fn select(
        &mut self,
        text: &str,
        pointer: &str,
        budget: &mut Budget,
        out: &mut Sink<'_>,
    ) -> Result<(), Miss> {
        let bytes = text.as_bytes();
        let mut at = 0usize;
        for token in tokens(pointer) {
            let word = *self.tape.get(at).ok_or(Miss::NotFound)?;
            if word & CONTAINER == 0 {
                return Err(Miss::NotFound); // a scalar or an empty container
            }
            let end = self.tape[at + 1] as usize;
            at = match bytes[(word & !CONTAINER) as usize] {
                b'{' => self.member(bytes, at, end, &token, budget)?,
                _ => self.element(at, end, &token, budget)?,
            };
        }
        let start = (self.tape[at] & !CONTAINER) as usize;
        render(bytes, start, budget, out)?;
        Ok(())
    }

    /// The tape index of the value of the last member named `key` of the
    /// object at `at` (whose members end at `end`).
    fn member(
        &self,
        text: &[u8],
        at: usize,
        end: usize,
        key: &str,
        budget: &mut Budget,
    ) -> Result<usize, Miss> {
        let key_fuel = HOP_FUEL + (key.len() as u64 + 8).div_ceil(8) * KEY_FUEL_PER_8_BYTES;
        let mut found = None;
        let mut i = at + 2;
        let mut last_key = self.tape[at] as usize & !(CONTAINER as usize);
        while i + 1 < end {
            budget.spend(key_fuel)?;
            // The key is read where the text is: far from the last one,
            // likely a cache miss, paid before the read.
            let key_at = self.tape[i] as usize;
            if key_at.saturating_sub(last_key) > FAR_BYTES {
                budget.spend(FAR_FUEL)?;
            }
            last_key = key_at;
            let value = i + 1;
            if key_eq(text, key_at, key.as_bytes(), budget)? {
                found = Some(value);
            }
            i = self.hop(value, budget)?;
        }
        found.ok_or(Miss::NotFound)
    }

    /// The tape index of element `token` of the array at `at`.
    fn element(
        &mut self,
        at: usize,
        end: usize,
        token: &str,
        budget: &mut Budget,
    ) -> Result<usize, Miss> {
        let index = array_index(token).ok_or(Miss::NotFound)?;
        let (mut i, mut element) = (0usize, at + 2);
        if let Some(c) = self
            .cursors
            .iter()
            .find(|c| c.array as usize == at && c.index as usize <= index)
        {
            (i, element) = (c.index as usize, c.element as usize);
        }
        while i < index {
            if element >= end {
                return Err(Miss::NotFound);
            }
            budget.spend(HOP_FUEL)?;
            element = self.hop(element, budget)?;
            i += 1;
        }
        if element >= end {
            return Err(Miss::NotFound);
        }
        let cursor = Cursor {
            array: at as u32,
            index: index as u32,
            element: element as u32,
        };
        match self.cursors.iter_mut().find(|c| c.array as usize == at) {
            Some(c) => *c = cursor,
            None => {
                self.cursors[self.next_cursor] = cursor;
                self.next_cursor = (self.next_cursor + 1) % CURSORS;
            }
        }
        Ok(element)
    }

    /// The tape index just past the value at `at` and what is inside it,
    /// the next member's. A jump over a large value lands far in the tape
    /// (likely a cache miss): paid before the next member is read.
    #[inline]
    fn hop(&self, at: usize, budget: &mut Budget) -> Result<usize, Exhausted> {
        let next = self.after(at);
        if next.saturating_sub(at) > FAR_WORDS {
            budget.spend(FAR_FUEL)?;
        }
        Ok(next)
    }

    /// The tape index just past the value at `at` and what is inside it.
    #[inline]
    fn after(&self, at: usize) -> usize {
        if self.tape[at] & CONTAINER != 0 {
            self.tape[at + 1] as usize
        } else {
            at + 1
        }
    }
}

/// Builds the tape of `text`, which serde_json has validated.
///
/// The scanner trusts the validation: it only tells strings, scalars and
/// brackets apart. While a container is open, its second word links to
/// the enclosing open container (the stack lives in the tape) and is
/// replaced by the real end index when the container closes. Should the
/// text somehow not be valid JSON, the scan still ends and never panics;
/// the tape is then wrong but only makes lookups miss.
fn build_tape(text: &[u8]) -> Vec<u32> {
    // At most one word per byte of text, plus one (every value owns two
    // bytes no other value owns, a key three, and takes at most two
    // words). For a large text that is reserved at once, so the tape is
    // never copied while it grows (pages not touched stay free); a small
    // one starts from a guess, which is faster, and may briefly hold an
    // old and a new buffer while growing (a few MB at most).
    let capacity = if text.len() > RESERVE_ABOVE {
        text.len() + 1
    } else {
        text.len() / 16 + 4
    };
    let mut tape: Vec<u32> = Vec::with_capacity(capacity);
    let mut open = NONE;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' => i += 1,
            b'"' => {
                tape.push(i as u32);
                i = string_end(text, i);
            }
            b'[' | b'{' => {
                let first = skip_ws(text, i + 1);
                if matches!(text.get(first), Some(b']' | b'}')) {
                    tape.push(i as u32);
                    i = first + 1;
                } else {
                    let at = tape.len() as u32;
                    tape.push(i as u32 | CONTAINER);
                    tape.push(open);
                    open = at;
                    i = first;
                }
            }
            b']' | b'}' => {
                let end = tape.len() as u32;
                if let Some(link) = tape.get_mut(open as usize + 1) {
                    open = *link;
                    *link = end;
                }
                i += 1;
            }
            _ => {
                tape.push(i as u32);
                i = scalar_end(text, i);
            }
        }
    }
    tape.shrink_to_fit();
    tape
}

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while matches!(text.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The index just past the string starting (with its quote) at `start`.
fn string_end(text: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while let Some(&b) = text.get(i) {
        match b {
            b'"' => return i + 1,
            b'\\' => i += 2, // an escape: `\` and the character after it
            // A run of plain characters: skipped fast (but not a call per
            // escape, which would cost more than the escape).
            _ => match memchr::memchr2(b'"', b'\\', &text[i..]) {
                Some(found) => i += found,
                None => return text.len(),
            },
        }
    }
    text.len()
}

/// The index just past the number or literal starting at `start`.
fn scalar_end(text: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < text.len() && !ends_scalar(text[i]) {
        i += 1;
    }
    i
}

/// Whether `b` cannot be part of a number or literal.
#[inline]
fn ends_scalar(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\n' | b'\r' | b',' | b']' | b'}' | b':' | b'"' | b'[' | b'{'
    )
}

/// An RFC 6901 array index: `0`, or digits without a leading zero.
fn array_index(token: &str) -> Option<usize> {
    let bytes = token.as_bytes();
    if bytes.is_empty()
        || !bytes.iter().all(u8::is_ascii_digit)
        || (bytes.len() > 1 && bytes[0] == b'0')
    {
        return None;
    }
    token.parse().ok()
}

/// Decodes the escape at `text[i]` (a `\`): the character and the index
/// after the escape. A `\u` escape of a lone surrogate (which UTF-8 cannot
/// carry) decodes to U+FFFD; a pair decodes to its character.
fn escape(text: &[u8], i: usize) -> (char, usize) {
    let simple = match text.get(i + 1) {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(b'u') => {
            let Some(unit) = hex4(text, i + 2) else {
                return (char::REPLACEMENT_CHARACTER, i + 2);
            };
            if (0xD800..0xDC00).contains(&unit)
                && text.get(i + 6) == Some(&b'\\')
                && text.get(i + 7) == Some(&b'u')
                && let Some(low) = hex4(text, i + 8)
                && (0xDC00..0xE000).contains(&low)
            {
                let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                return (
                    char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER),
                    i + 12,
                );
            }
            return (
                char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER),
                i + 6,
            );
        }
        _ => char::REPLACEMENT_CHARACTER,
    };
    (simple, i + 2)
}

/// Writes the escape at `text[i]` (a `\\`) decoded; returns the index
/// after it.
#[inline]
fn push_escape(text: &[u8], i: usize, out: &mut Sink<'_>) -> usize {
    let simple: &[u8] = match text.get(i + 1) {
        Some(b'"') => b"\"",
        Some(b'\\') => b"\\",
        Some(b'/') => b"/",
        Some(b'n') => b"\n",
        Some(b't') => b"\t",
        Some(b'r') => b"\r",
        Some(b'b') => b"\x08",
        Some(b'f') => b"\x0c",
        _ => {
            let (c, next) = escape(text, i);
            out.push_char(c);
            return next;
        }
    };
    out.push(simple);
    i + 2
}

fn hex4(text: &[u8], at: usize) -> Option<u32> {
    let digits = text.get(at..at + 4)?;
    let mut v = 0;
    for &d in digits {
        v = v * 16 + (d as char).to_digit(16)?;
    }
    Some(v)
}

/// Whether the key whose quote is at `text[start]` is `key` once
/// unescaped. Reads at most `key.len() + 1` bytes of the key, plus its
/// escapes, each of which spends [`ESCAPE_FUEL`] before it is decoded.
fn key_eq(text: &[u8], start: usize, key: &[u8], budget: &mut Budget) -> Result<bool, Exhausted> {
    let raw = &text[(start + 1).min(text.len())..];
    // Up to the first quote or backslash, a plain comparison (a byte loop
    // for short keys, where a call would cost more).
    let window = &raw[..raw.len().min(key.len() + 1)];
    let plain = if window.len() <= 16 {
        window
            .iter()
            .position(|&b| b == b'"' || b == b'\\')
            .unwrap_or(window.len())
    } else {
        memchr::memchr2(b'"', b'\\', window).unwrap_or(window.len())
    };
    if plain > key.len() || raw[..plain] != key[..plain] {
        return Ok(false);
    }
    if raw.get(plain) == Some(&b'"') {
        return Ok(plain == key.len());
    }
    let (mut i, mut k) = (plain, plain);
    loop {
        match raw.get(i) {
            None => return Ok(false),
            Some(b'"') => return Ok(k == key.len()),
            Some(b'\\') => {
                budget.spend(ESCAPE_FUEL)?;
                let (c, next) = escape(raw, i);
                let mut buf = [0; 4];
                let c = c.encode_utf8(&mut buf).as_bytes();
                if key.get(k..k + c.len()) != Some(c) {
                    return Ok(false);
                }
                k += c.len();
                i = next;
            }
            Some(&b) => {
                if key.get(k) != Some(&b) {
                    return Ok(false);
                }
                k += 1;
                i += 1;
            }
        }
    }
}

/// Writes the value starting at `text[start]`: a string unescaped, any
/// other value with the whitespace between its tokens removed. Spends
/// [`RENDER_FUEL_PER_8_BYTES`] for each chunk of text before scanning it.
fn render(
    text: &[u8],
    start: usize,
    budget: &mut Budget,
    out: &mut Sink<'_>,
) -> Result<(), Exhausted> {
    if text[start] == b'"' {
        return render_string(text, start, budget, out);
    }
    if !matches!(text[start], b'[' | b'{') {
        // A number may be as long as the document: scanned a chunk at a
        // time too.
        let mut end = start + 1;
        loop {
            let chunk_end = (end + SCAN_CHUNK).min(text.len());
            budget.spend_bytes(chunk_end - end, RENDER_FUEL_PER_8_BYTES)?;
            while end < chunk_end && !ends_scalar(text[end]) {
                end += 1;
            }
            if end < chunk_end || chunk_end == text.len() {
                budget.refund_bytes(chunk_end - end, RENDER_FUEL_PER_8_BYTES);
                out.push(&text[start..end]);
                return Ok(());
            }
        }
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = start;
    let mut run = start; // start of the bytes not yet written
    while i < text.len() {
        let chunk_end = (i + SCAN_CHUNK).min(text.len());
        budget.spend_bytes(chunk_end - i, RENDER_FUEL_PER_8_BYTES)?;
        while i < chunk_end {
            if in_string {
                match text[i] {
                    b'"' => {
                        in_string = false;
                        i += 1;
                    }
                    b'\\' => i += 2, // may step past the chunk by one byte
                    _ => match memchr::memchr2(b'"', b'\\', &text[i..chunk_end]) {
                        None => i = chunk_end,
                        Some(found) => i += found,
                    },
                }
                continue;
            }
            match text[i] {
                b'"' => in_string = true,
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        budget
                            .refund_bytes(chunk_end.saturating_sub(i + 1), RENDER_FUEL_PER_8_BYTES);
                        out.push(&text[run..=i]);
                        return Ok(());
                    }
                }
                b' ' | b'\t' | b'\n' | b'\r' => {
                    out.push(&text[run..i]);
                    run = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
    }
    out.push(&text[run.min(text.len())..]);
    Ok(())
}

/// Writes the string starting (with its quote) at `text[start]`, unescaped.
fn render_string(
    text: &[u8],
    start: usize,
    budget: &mut Budget,
    out: &mut Sink<'_>,
) -> Result<(), Exhausted> {
    let mut i = start + 1;
    while i < text.len() {
        let chunk_end = (i + SCAN_CHUNK).min(text.len());
        budget.spend_bytes(chunk_end - i, RENDER_FUEL_PER_8_BYTES)?;
        while i < chunk_end {
            if text[i] == b'\\' {
                // An escape may run up to 11 bytes past the chunk.
                i = push_escape(text, i, out);
                continue;
            }
            match memchr::memchr2(b'"', b'\\', &text[i..chunk_end]) {
                None => {
                    out.push(&text[i..chunk_end]);
                    i = chunk_end;
                }
                Some(found) => {
                    out.push(&text[i..i + found]);
                    i += found;
                    if text[i] == b'"' {
                        budget.refund_bytes(chunk_end - i - 1, RENDER_FUEL_PER_8_BYTES);
                        return Ok(());
                    }
                    // An escape may run up to 11 bytes past the chunk.
                    i = push_escape(text, i, out);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#" {
        "user": {"name": "Zoë \"Z\" Smith", "id": 42, "tags": ["a", "b"] },
        "items": [ {"id": 1.50e2}, {"id": null, "ok": true}, [ ], { } ],
        "a/b": 1, "m~n": 2, "": 3, "dup": 1, "dup": 2,
        "esc\u0041pe": "x\ud83d\ude00y\ud800z", "line": "a\nb"
    } "#;

    fn select_in(doc: &str, pointer: &str) -> Result<String, Miss> {
        check_pointer(pointer).map_err(|_| Miss::NotFound)?;
        let mut doc_index = JsonDoc::parse(doc).unwrap();
        let mut buf = vec![0; doc.len() * 2];
        let mut out = Sink::new(&mut buf);
        doc_index.select(doc, pointer, &mut Budget::unlimited(), &mut out)?;
        let len = out.len();
        Ok(String::from_utf8(buf[..len].to_vec()).unwrap())
    }

    fn select(pointer: &str) -> Result<String, Miss> {
        select_in(DOC, pointer)
    }

    #[test]
    fn selects() {
        let cases = [
            ("/user/name", r#"Zoë "Z" Smith"#),
            ("/user/id", "42"),
            ("/user/tags", r#"["a","b"]"#),
            ("/user/tags/1", "b"),
            ("/items/0/id", "1.50e2"),
            ("/items/1/id", "null"),
            ("/items/1", r#"{"id":null,"ok":true}"#),
            ("/items/2", "[]"),
            ("/items/3", "{}"),
            ("/a~1b", "1"),
            ("/m~0n", "2"),
            ("/", "3"),
            ("/dup", "2"),
            ("/escApe", "x😀y\u{fffd}z"),
            ("/line", "a\nb"),
        ];
        for (pointer, want) in cases {
            assert_eq!(select(pointer).as_deref(), Ok(want), "{pointer}");
        }
        assert!(
            select("")
                .unwrap()
                .starts_with(r#"{"user":{"name":"Zoë \"Z\" Smith""#)
        );
    }

    #[test]
    fn selects_bad() {
        for missing in [
            "/nope",
            "/user/name/x",
            "/items/4",
            "/items/01",
            "/items/-",
            "/items/x",
            "/items/2/0",
            "/items/3/a",
            "/user/id/0",
            "/esc\\u0041pe",
        ] {
            assert_eq!(select(missing), Err(Miss::NotFound), "{missing}");
        }
        for bad in ["user", "/a~2", "/a~"] {
            assert!(check_pointer(bad).is_err(), "{bad}");
        }
        for not_json in ["", "{", "{\"a\":1} x", "[1,]", "nul", "\"\u{1}\""] {
            assert!(JsonDoc::parse(not_json).is_err(), "{not_json:?}");
        }
    }

    #[test]
    fn scalar_documents() {
        for (text, want) in [
            (" 42 ", "42"),
            ("\"hi\"", "hi"),
            ("true", "true"),
            ("[ ]", "[]"),
        ] {
            assert_eq!(select_in(text, "").unwrap(), want);
            assert_eq!(select_in(text, "/a"), Err(Miss::NotFound));
            assert_eq!(select_in(text, "/0"), Err(Miss::NotFound));
        }
    }

    #[test]
    fn tape_of_a_small_document() {
        let doc = JsonDoc::parse(r#"{"a": [1, []], "b": {}}"#).unwrap();
        // {  "a"  [   1  []   "b"  {}
        let want = vec![CONTAINER, 9, 1, 6 | CONTAINER, 7, 7, 10, 15, 20];
        assert_eq!(doc.tape, want);
    }

    #[test]
    fn cursors_make_array_loops_linear() {
        let text = format!("[{}0]", "0,".repeat(999));
        let mut doc = JsonDoc::parse(&text).unwrap();
        let mut spent = 0;
        for i in 0..1000 {
            let mut budget = Budget::unlimited();
            let mut buf = [0; 8];
            doc.select(
                &text,
                &format!("/{i}"),
                &mut budget,
                &mut Sink::new(&mut buf),
            )
            .unwrap();
            spent += budget.spent();
        }
        // One hop per element, and one byte rendered each.
        assert!(
            spent <= 1000 * (HOP_FUEL + RENDER_FUEL_PER_8_BYTES),
            "{spent}"
        );
        // Going back starts from the front again.
        let mut budget = Budget::unlimited();
        let mut buf = [0; 8];
        doc.select(&text, "/998", &mut budget, &mut Sink::new(&mut buf))
            .unwrap();
        assert_eq!(budget.spent(), 998 * HOP_FUEL + RENDER_FUEL_PER_8_BYTES);
    }

    #[test]
    fn far_hops_pay_for_a_cache_miss() {
        let big = format!("[{}0]", "0,".repeat(100));
        let text = format!("[{}0]", format!("{big},").repeat(10));
        let mut doc = JsonDoc::parse(&text).unwrap();
        let mut budget = Budget::unlimited();
        let mut buf = [0; 8];
        doc.select(&text, "/10", &mut budget, &mut Sink::new(&mut buf))
            .unwrap();
        assert_eq!(
            budget.spent(),
            10 * (HOP_FUEL + FAR_FUEL) + RENDER_FUEL_PER_8_BYTES
        );
        // Keys far apart in the text: each one read pays too.
        let long = "x".repeat(FAR_BYTES);
        let text = format!(r#"{{"a":"{long}","b":"{long}","c":1}}"#);
        let mut doc = JsonDoc::parse(&text).unwrap();
        let mut budget = Budget::unlimited();
        doc.select(&text, "/c", &mut budget, &mut Sink::new(&mut buf))
            .unwrap();
        let key = HOP_FUEL + 2 * KEY_FUEL_PER_8_BYTES;
        assert_eq!(
            budget.spent(),
            3 * key + 2 * FAR_FUEL + RENDER_FUEL_PER_8_BYTES
        );
    }

    #[test]
    fn runs_out_of_budget_before_the_work() {
        let text = format!("[{}0]", "0,".repeat(9999));
        let mut doc = JsonDoc::parse(&text).unwrap();
        let mut buf = [0; 8];
        let mut budget = Budget::new(100 * HOP_FUEL);
        let err = doc.select(&text, "/9999", &mut budget, &mut Sink::new(&mut buf));
        assert_eq!(err, Err(Miss::Exhausted));
        assert_eq!(budget.spent(), 100 * HOP_FUEL);
        // Rendering a large value spends per chunk, before scanning it.
        let mut budget = Budget::new(RENDER_FUEL_PER_8_BYTES * 64);
        let err = doc.select(&text, "", &mut budget, &mut Sink::new(&mut buf));
        assert_eq!(err, Err(Miss::Exhausted));
        assert_eq!(budget.spent(), RENDER_FUEL_PER_8_BYTES * 64);
    }

    #[test]
    fn index_memory_is_bounded() {
        let cases = [
            format!("[{}0]", "0,".repeat(100_000)),
            format!("[{}[0]]", "[0],".repeat(50_000)),
            format!("[{}[]]", "[],".repeat(50_000)),
            format!("{{{}\"\":0}}", "\"\":0,".repeat(50_000)),
            format!("[{}]", "[".repeat(128) + &"]".repeat(128)),
            format!(
                "[{}0]",
                format!("{}0{},", "[".repeat(120), "]".repeat(120)).repeat(1000)
            ),
        ];
        for text in cases {
            let doc = JsonDoc::parse(&text).unwrap();
            assert!(
                doc.heap_bytes() <= INDEX_BYTES_PER_TEXT_BYTE * text.len() + 64,
                "{} bytes of index for {} bytes",
                doc.heap_bytes(),
                text.len()
            );
        }
    }
}
