//! The conversation's property store.
//!
//! Everything a conversation knows lives in its *properties*: named text
//! values such as `phone`, `order_id` or `API Response`. Names are free text
//! (spaces allowed); values are UTF-8 text.
//!
//! Values are text, not bytes, because ABI v1 promises guests UTF-8 (the
//! SDK hands them `&str`, and `json_select`/`xml_select` work on text): a
//! value in another charset is decoded once, before it is stored. The REST
//! API block does that from the response's `Content-Type` charset; an
//! embedder holding a response's bytes uses
//! [`chatflow_net::decode_text`] the same way (Latin-1, Shift_JIS, UTF-16,
//! … per the WHATWG encodings; bad bytes become U+FFFD). A value the
//! embedder already holds as an `Arc<str>` is stored without a copy
//! ([`Properties::set`] takes `impl Into<Arc<str>>`).
//!
//! Blocks never write to [`Properties`] directly. A block reads a snapshot
//! (a cheap clone: the map is shared copy-on-write) and records its writes in
//! a [`ChangeSet`]; the caller commits the change set with
//! [`Properties::apply`] only when the block succeeds, so a failed block
//! commits nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The longest property name accepted from untrusted input, in bytes.
pub const MAX_NAME_LEN: usize = chatflow_abi::MAX_PROPERTY_NAME_BYTES;

/// A conversation's properties: an ordered map from name to text value.
///
/// Cloning is O(1): the map is reference counted and copied only when a
/// shared copy is modified, so taking a snapshot for a block costs nothing.
/// Serializes as a JSON object of strings, so an operator can persist a
/// conversation's state wherever they already keep it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Properties {
    map: Arc<BTreeMap<String, Arc<str>>>,
}

impl Properties {
    /// An empty property map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `name`, if it is set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(|v| &**v)
    }

    /// Whether `name` is set (to any value, including the empty string).
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Sets `name` to `value`, replacing any previous value.
    ///
    /// The value is kept as an `Arc<str>`: pass one (or a `Box<str>`) to
    /// hand over a large value, such as an HTTP response, without copying
    /// it; a `String` or `&str` is copied once.
    ///
    /// Host code is trusted: the name is not checked here. Names that come
    /// from flow files or guests are checked with [`validate_name`] first.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Arc<str>>) {
        Arc::make_mut(&mut self.map).insert(name.into(), value.into());
    }

    /// The value of `name` as the shared string it is kept in: cloning it
    /// copies no text.
    pub fn get_shared(&self, name: &str) -> Option<&Arc<str>> {
        self.map.get(name)
    }

    /// Removes `name`; returns whether it was set.
    pub fn remove(&mut self, name: &str) -> bool {
        if !self.map.contains_key(name) {
            return false;
        }
        Arc::make_mut(&mut self.map).remove(name).is_some()
    }

    /// Number of properties set.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// All properties, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), &**v))
    }

    /// Total bytes of names and values: what persisting this map costs.
    pub fn byte_size(&self) -> usize {
        self.map.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// Commits a block's writes: every set and remove in `changes`, at once.
    pub fn apply(&mut self, changes: ChangeSet) {
        if changes.is_empty() {
            return;
        }
        let map = Arc::make_mut(&mut self.map);
        for (name, change) in changes.changes {
            match change {
                Some(value) => {
                    map.insert(name, value);
                }
                None => {
                    map.remove(&name);
                }
            }
        }
    }
}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<String>, V: Into<Arc<str>>> FromIterator<(K, V)> for Properties {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut props = Properties::new();
        props.extend(iter);
        props
    }
}

impl<K: Into<String>, V: Into<Arc<str>>> Extend<(K, V)> for Properties {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        let map = Arc::make_mut(&mut self.map);
        for (k, v) in iter {
            map.insert(k.into(), v.into());
        }
    }
}

/// The writes a block made, not yet committed.
///
/// Last write per name wins; `None` records a removal. Reading through a
/// change set ([`ChangeSet::read`]) lets a block see its own writes before
/// they are committed.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChangeSet {
    changes: BTreeMap<String, Option<Arc<str>>>,
}

impl ChangeSet {
    /// No changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `name` is set to `value` (kept as an `Arc<str>`, as in
    /// [`Properties::set`]; committing it copies nothing).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Arc<str>>) {
        self.changes.insert(name.into(), Some(value.into()));
    }

    /// Records that `name` is removed (also when it was never set).
    pub fn remove(&mut self, name: impl Into<String>) {
        self.changes.insert(name.into(), None);
    }

    /// The pending change for `name`: `Some(Some(v))` set, `Some(None)`
    /// removed, `None` untouched.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.changes.get(name).map(|v| v.as_deref())
    }

    /// Reads `name` as the block sees it: its own pending write if any,
    /// otherwise the snapshot's value.
    pub fn read<'a>(&'a self, base: &'a Properties, name: &str) -> Option<&'a str> {
        match self.changes.get(name) {
            Some(change) => change.as_deref(),
            None => base.get(name),
        }
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Number of names touched.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Every change in name order: `(name, Some(value))` for a set,
    /// `(name, None)` for a removal.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.changes.iter().map(|(k, v)| (k.as_str(), v.as_deref()))
    }

    /// Adds `later`'s changes on top of these (later writes win).
    pub fn merge(&mut self, later: ChangeSet) {
        self.changes.extend(later.changes);
    }
}

impl fmt::Debug for ChangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Why a property name from a flow file or a guest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty or only whitespace.
    #[error("property name is empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("property name is {len} bytes long; the limit is {max}")]
    TooLong {
        /// Length of the refused name in bytes.
        len: usize,
        /// The limit, [`MAX_NAME_LEN`].
        max: usize,
    },
    /// The name has leading or trailing whitespace, which `{{ Name }}`
    /// templates trim, so the property could never be referenced.
    #[error("property name {name:?} has leading or trailing whitespace")]
    Whitespace {
        /// The refused name.
        name: String,
    },
    /// The name contains `{`, `}` or a control character.
    #[error("property name {name:?} contains {ch:?}, which is not allowed in names")]
    BadChar {
        /// The refused name.
        name: String,
        /// The first offending character.
        ch: char,
    },
}

/// Checks a property name that comes from untrusted input (a flow file, a
/// guest's `property_set`).
///
/// A valid name is 1 to [`MAX_NAME_LEN`] bytes, has no leading or trailing
/// whitespace, and contains no `{`, `}` or control characters, so that every
/// valid name can be written as `{{Name}}` in a template. Spaces inside are
/// fine: `API Response` is a valid name.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.trim().is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            len: name.len(),
            max: MAX_NAME_LEN,
        });
    }
    if name.trim() != name {
        return Err(NameError::Whitespace {
            name: name.to_string(),
        });
    }
    if let Some(ch) = name
        .chars()
        .find(|c| *c == '{' || *c == '}' || c.is_control())
    {
        return Err(NameError::BadChar {
            name: name.to_string(),
            ch,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_value_is_kept_without_a_copy() {
        let document: Arc<str> = Arc::from("x".repeat(1 << 20));
        let mut props = Properties::new();
        props.set("API Response", document.clone());
        let kept = props.get_shared("API Response").unwrap();
        assert!(Arc::ptr_eq(kept, &document));
        // A snapshot shares it too.
        let snapshot = props.clone();
        assert!(Arc::ptr_eq(
            snapshot.get_shared("API Response").unwrap(),
            &document
        ));
        let collected: Properties = [("doc", document.clone())].into_iter().collect();
        assert!(Arc::ptr_eq(collected.get_shared("doc").unwrap(), &document));
    }

    #[test]
    fn snapshot_is_isolated_from_later_writes() {
        let mut props: Properties = [("phone", "+44 20"), ("API Response", "{}")]
            .into_iter()
            .collect();
        let snapshot = props.clone();
        props.set("phone", "+1 555");
        assert!(props.remove("API Response"));
        assert_eq!(snapshot.get("phone"), Some("+44 20"));
        assert_eq!(snapshot.get("API Response"), Some("{}"));
        assert_eq!(props.get("phone"), Some("+1 555"));
        assert!(!props.contains("API Response"));
    }

    #[test]
    fn change_set_reads_through_and_commits_at_once() {
        let base: Properties = [("a", "1"), ("b", "2")].into_iter().collect();
        let mut changes = ChangeSet::new();
        changes.set("a", "10");
        changes.remove("b");
        changes.set("c", "3");
        assert_eq!(changes.read(&base, "a"), Some("10"));
        assert_eq!(changes.read(&base, "b"), None);
        assert_eq!(changes.read(&base, "c"), Some("3"));
        assert_eq!(base.get("a"), Some("1"), "nothing committed yet");

        let mut committed = base.clone();
        committed.apply(changes);
        let got: Vec<_> = committed.iter().collect();
        assert_eq!(got, vec![("a", "10"), ("c", "3")]);
        assert_eq!(base.get("b"), Some("2"), "the snapshot is untouched");
    }

    #[test]
    fn last_write_wins_and_merge_keeps_later() {
        let mut first = ChangeSet::new();
        first.set("x", "1");
        first.remove("x");
        assert_eq!(first.get("x"), Some(None));
        let mut later = ChangeSet::new();
        later.set("x", "2");
        first.merge(later);
        assert_eq!(first.get("x"), Some(Some("2")));
        assert_eq!(first.get("y"), None);
    }

    #[test]
    fn serializes_as_a_json_object() {
        let props: Properties = [("API Response", "{\"ok\":true}"), ("name", "Zoë")]
            .into_iter()
            .collect();
        let json = serde_json::to_string(&props).unwrap();
        assert_eq!(json, r#"{"API Response":"{\"ok\":true}","name":"Zoë"}"#);
        let back: Properties = serde_json::from_str(&json).unwrap();
        assert_eq!(back, props);
    }

    #[test]
    fn names() {
        for good in ["a", "API Response", "order_id", "Zoë's phone", "x.y-z"] {
            assert_eq!(validate_name(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn names_bad() {
        let long = "n".repeat(MAX_NAME_LEN + 1);
        let cases: [(&str, NameError); 6] = [
            ("", NameError::Empty),
            ("   ", NameError::Empty),
            (
                " padded",
                NameError::Whitespace {
                    name: " padded".into(),
                },
            ),
            (
                "a{b",
                NameError::BadChar {
                    name: "a{b".into(),
                    ch: '{',
                },
            ),
            (
                "line\nbreak",
                NameError::BadChar {
                    name: "line\nbreak".into(),
                    ch: '\n',
                },
            ),
            (
                &long,
                NameError::TooLong {
                    len: MAX_NAME_LEN + 1,
                    max: MAX_NAME_LEN,
                },
            ),
        ];
        for (name, want) in cases {
            assert_eq!(validate_name(name), Err(want), "{name:?}");
        }
    }
}
