//! `json_select`'s document model: a lazily expanded index of a JSON text.
//!
//! A full `serde_json::Value` would allocate every string, number and
//! container of a document only for the guest to ask for three fields. This
//! index instead keeps byte ranges into the property's text and expands a
//! container (object or array) only when a pointer goes into it: expanding
//! scans that container once with serde_json (validating it, borrowing
//! `RawValue` spans for its members, allocating nothing for their contents)
//! and caches the result for the rest of the run. The first use scans the
//! whole document, so a text that is not JSON is refused up front.
//!
//! Pulling `/statuses/0/user/name` out of a 600 KB document scans the
//! document about twice (root, then the `statuses` array) and allocates
//! about a hundred small entries, against a full parse that allocates
//! every value.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON document, expanded as far as pointers have gone into it.
#[derive(Debug)]
pub(crate) struct JsonDoc {
    root: Node,
}

#[derive(Debug)]
struct Node {
    /// The value's text (no surrounding whitespace) in the document.
    span: Range<usize>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// A scalar, or a container not expanded yet.
    Raw,
    /// An expanded object: keys (unescaped) and values, in document order.
    Object(Vec<(Box<str>, Node)>),
    /// An expanded array.
    Array(Vec<Node>),
}

/// Why a pointer could not be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SelectError {
    /// The pointer is not valid RFC 6901 syntax.
    BadPointer(String),
    /// Nothing is at that pointer.
    NotFound,
}

/// A parsed RFC 6901 pointer: its reference tokens, unescaped.
pub(crate) fn parse_pointer(pointer: &str) -> Result<Vec<Cow<'_, str>>, SelectError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(SelectError::BadPointer(format!(
            "JSON pointer {pointer:?} must be empty or start with '/'"
        )));
    };
    rest.split('/')
        .map(|token| {
            if !token.contains('~') {
                return Ok(Cow::Borrowed(token));
            }
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => out.push('~'),
                    Some('1') => out.push('/'),
                    _ => {
                        return Err(SelectError::BadPointer(format!(
                            "JSON pointer {pointer:?}: '~' must be followed by '0' or '1'"
                        )));
                    }
                }
            }
            Ok(Cow::Owned(out))
        })
        .collect()
}

impl JsonDoc {
    /// Scans `text` once; `Err` with serde_json's message if it is not JSON.
    /// Returns the document and the bytes scanned (for fuel).
    pub(crate) fn parse(text: &str) -> Result<(JsonDoc, usize), String> {
        let raw: &RawValue = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let root = Node {
            span: span_of(text, raw.get()),
            kind: Kind::Raw,
        };
        Ok((JsonDoc { root }, text.len()))
    }

    /// Follows `tokens` from the root, expanding containers on the way.
    /// `scanned` is increased by the bytes this lookup had to scan.
    pub(crate) fn select<'t>(
        &mut self,
        text: &'t str,
        tokens: &[Cow<'_, str>],
        scanned: &mut usize,
    ) -> Result<Cow<'t, str>, SelectError> {
        let mut node = &mut self.root;
        for token in tokens {
            node.expand(text, scanned);
            node = match &mut node.kind {
                Kind::Object(members) => members
                    .iter_mut()
                    .rev() // duplicate keys: the last one wins, as in serde_json
                    .find(|(key, _)| **key == **token)
                    .map(|(_, value)| value)
                    .ok_or(SelectError::NotFound)?,
                Kind::Array(items) => {
                    let index = array_index(token).ok_or(SelectError::NotFound)?;
                    items.get_mut(index).ok_or(SelectError::NotFound)?
                }
                Kind::Raw => return Err(SelectError::NotFound),
            };
        }
        Ok(render(&text[node.span.clone()]))
    }
}

impl Node {
    /// Expands a raw object or array into its members (once).
    fn expand(&mut self, text: &str, scanned: &mut usize) {
        if !matches!(self.kind, Kind::Raw) {
            return;
        }
        let src = &text[self.span.clone()];
        let kind = match src.as_bytes().first() {
            Some(b'{') => serde_json::from_str::<Members>(src).ok().map(|m| {
                Kind::Object(
                    m.0.into_iter()
                        .map(|(k, v)| (k.into(), Node::raw(text, v)))
                        .collect(),
                )
            }),
            Some(b'[') => serde_json::from_str::<Items>(src).ok().map(|items| {
                Kind::Array(items.0.into_iter().map(|v| Node::raw(text, v)).collect())
            }),
            _ => return,
        };
        *scanned += src.len();
        // The document was validated when parsed, so a container always
        // expands; if it somehow did not, it stays a leaf.
        if let Some(kind) = kind {
            self.kind = kind;
        }
    }

    fn raw(text: &str, value: &RawValue) -> Node {
        Node {
            span: span_of(text, value.get()),
            kind: Kind::Raw,
        }
    }
}

/// The range of `part` (a subslice of `text`) within `text`.
fn span_of(text: &str, part: &str) -> Range<usize> {
    let start = part.as_ptr() as usize - text.as_ptr() as usize;
    start..start + part.len()
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

/// A value as `json_select` returns it: a string's text unquoted, any other
/// value's JSON text with insignificant whitespace removed.
fn render(raw: &str) -> Cow<'_, str> {
    if raw.starts_with('"') {
        let inner = &raw[1..raw.len() - 1];
        if !inner.contains('\\') {
            return Cow::Borrowed(inner);
        }
        return serde_json::from_str::<String>(raw)
            .map(Cow::Owned)
            .unwrap_or(Cow::Borrowed(inner));
    }
    minify(raw)
}

/// Removes whitespace outside strings from valid JSON text.
fn minify(raw: &str) -> Cow<'_, str> {
    let is_ws = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let bytes = raw.as_bytes();
    let mut in_string = false;
    let mut escaped = false;
    let needs_work = bytes.iter().any(|&b| {
        let ws = !in_string && is_ws(b);
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        }
        ws
    });
    if !needs_work {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
            out.push(b);
        } else if !is_ws(b) {
            out.push(b);
        }
    }
    // Only ASCII whitespace bytes were removed, so this is still UTF-8.
    Cow::Owned(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

/// An object's members as (unescaped key, raw value) pairs, in order.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// An array's items as raw values.
struct Items<'a>(Vec<&'a RawValue>);

/// A key borrowed from the text when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> de::Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((Key(k), v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> de::Deserialize<'de> for Items<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Items<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items<'de>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(8));
                while let Some(v) = seq.next_element::<&'de RawValue>()? {
                    out.push(v);
                }
                Ok(Items(out))
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#" {
        "user": {"name": "Zoë \"Z\" Smith", "id": 42, "tags": ["a", "b"] },
        "items": [ {"id": 1.50e2}, {"id": null, "ok": true} ],
        "a/b": 1, "m~n": 2, "": 3, "dup": 1, "dup": 2
    } "#;

    fn select(pointer: &str) -> Result<String, SelectError> {
        let (mut doc, _) = JsonDoc::parse(DOC).unwrap();
        let tokens = parse_pointer(pointer)?;
        let mut scanned = 0;
        doc.select(DOC, &tokens, &mut scanned).map(Cow::into_owned)
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
            ("/a~1b", "1"),
            ("/m~0n", "2"),
            ("/", "3"),
            ("/dup", "2"),
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
            "/items/2",
            "/items/01",
            "/items/-",
            "/items/x",
            "/user/id/0",
        ] {
            assert_eq!(select(missing), Err(SelectError::NotFound), "{missing}");
        }
        for bad in ["user", "/a~2", "/a~"] {
            assert!(
                matches!(select(bad), Err(SelectError::BadPointer(_))),
                "{bad}"
            );
        }
        for not_json in ["", "{", "{\"a\":1} x", "[1,]", "nul"] {
            assert!(JsonDoc::parse(not_json).is_err(), "{not_json:?}");
        }
    }

    #[test]
    fn scalar_documents() {
        for (text, want) in [(" 42 ", "42"), ("\"hi\"", "hi"), ("true", "true")] {
            let (mut doc, _) = JsonDoc::parse(text).unwrap();
            let mut scanned = 0;
            assert_eq!(doc.select(text, &[], &mut scanned).unwrap(), want);
            assert_eq!(
                doc.select(text, &[Cow::Borrowed("a")], &mut scanned),
                Err(SelectError::NotFound)
            );
        }
    }

    #[test]
    fn expansion_is_counted_once() {
        let (mut doc, scanned_at_parse) = JsonDoc::parse(DOC).unwrap();
        assert_eq!(scanned_at_parse, DOC.len());
        let tokens = parse_pointer("/user/id").unwrap();
        let mut scanned = 0;
        doc.select(DOC, &tokens, &mut scanned).unwrap();
        let first = scanned;
        assert!(first > 0);
        doc.select(DOC, &tokens, &mut scanned).unwrap();
        assert_eq!(scanned, first, "a second lookup scans nothing");
    }
}
