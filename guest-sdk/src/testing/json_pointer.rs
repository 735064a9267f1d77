//! The test host's `json_select`, with the engine's semantics
//! (`docs/abi.md`): RFC 6901 pointers, and the selected value's text as
//! written in the document with the whitespace between tokens removed
//! (member order, number spelling and string escapes kept), a string's text
//! unquoted. A `serde_json::Value` would sort keys and respell numbers, so
//! the document is walked as raw text instead.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Why a selection failed, as the ABI's error codes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SelectError {
    /// `INVALID`: bad pointer syntax.
    Pointer(String),
    /// `NOT_PARSEABLE`: the text is not JSON.
    Document(String),
}

/// The pointer's reference tokens, unescaped; checked before anything else
/// (the engine reports a bad pointer before a missing property).
pub(crate) fn tokens(pointer: &str) -> Result<Vec<String>, SelectError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(SelectError::Pointer(format!(
            "JSON pointer {pointer:?} must be empty or start with '/'"
        )));
    };
    rest.split('/')
        .map(|token| {
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
                        return Err(SelectError::Pointer(format!(
                            "JSON pointer {pointer:?}: '~' must be followed by '0' or '1'"
                        )));
                    }
                }
            }
            Ok(out)
        })
        .collect()
}

/// The value at `tokens` in the JSON document `text`: `Ok(None)` when
/// nothing is there.
pub(crate) fn select(text: &str, tokens: &[String]) -> Result<Option<String>, SelectError> {
    let mut value: &RawValue =
        serde_json::from_str(text).map_err(|e| SelectError::Document(e.to_string()))?;
    for token in tokens {
        let raw = value.get();
        let next = match raw.as_bytes().first() {
            Some(b'{') => serde_json::from_str::<Members<'_>>(raw)
                .ok()
                .and_then(|members| {
                    // Duplicate keys: the last one wins, as in serde_json.
                    members.0.into_iter().rev().find(|(k, _)| k == token)
                })
                .map(|(_, v)| v),
            Some(b'[') => index(token).and_then(|i| {
                serde_json::from_str::<Vec<&RawValue>>(raw)
                    .ok()
                    .and_then(|items| items.get(i).copied())
            }),
            _ => None,
        };
        match next {
            Some(next) => value = next,
            None => return Ok(None),
        }
    }
    Ok(Some(render(value.get())))
}

/// An RFC 6901 array index: `0`, or digits without a leading zero.
fn index(token: &str) -> Option<usize> {
    let digits = token.as_bytes();
    if digits.is_empty()
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return None;
    }
    token.parse().ok()
}

/// A string's text unquoted; any other value with the whitespace between
/// its tokens removed.
fn render(raw: &str) -> String {
    if raw.starts_with('"') {
        return serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

/// An object's members as (unescaped key, raw value), in document order.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> de::Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(text: &str, pointer: &str) -> Result<Option<String>, SelectError> {
        select(text, &tokens(pointer)?)
    }

    #[test]
    fn values_as_written() {
        let doc = r#"{"b": 1, "a": {"z": 1, "y": [1.50e2, "x\u00e9"]}, "a/b": true, "m~n": 0}"#;
        let cases = [
            (
                "",
                r#"{"b":1,"a":{"z":1,"y":[1.50e2,"x\u00e9"]},"a/b":true,"m~n":0}"#,
            ),
            ("/a", r#"{"z":1,"y":[1.50e2,"x\u00e9"]}"#),
            ("/a/y/0", "1.50e2"),
            ("/a/y/1", "xé"),
            ("/a~1b", "true"),
            ("/m~0n", "0"),
        ];
        for (pointer, want) in cases {
            assert_eq!(sel(doc, pointer), Ok(Some(want.to_string())), "{pointer}");
        }
        for missing in ["/c", "/a/y/2", "/a/y/01", "/a/y/-", "/b/x"] {
            assert_eq!(sel(doc, missing), Ok(None), "{missing}");
        }
        assert_eq!(sel(r#"{"a":1,"a":2}"#, "/a"), Ok(Some("2".into())));
        assert_eq!(sel(r#"{"a":1e400}"#, "/a"), Ok(Some("1e400".into())));
        assert_eq!(
            sel(r#"{"s":"a \" b"}"#, ""),
            Ok(Some(r#"{"s":"a \" b"}"#.into()))
        );
    }

    #[test]
    fn errors() {
        for bad in ["a", "/a~", "/a~5"] {
            assert!(matches!(tokens(bad), Err(SelectError::Pointer(_))), "{bad}");
        }
        assert!(matches!(
            sel("{not json", "/a"),
            Err(SelectError::Document(_))
        ));
    }
}
