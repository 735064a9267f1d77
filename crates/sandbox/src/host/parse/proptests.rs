//! The host's selectors against the [`reference`](super::reference)
//! implementations (and JSON against `serde_json::Value::pointer` too), on
//! generated documents and selectors. Documents are drawn from small
//! alphabets of names, keys, escapes and spellings so that generated
//! selectors hit often, duplicates occur and every rendering rule is
//! exercised; some documents are damaged to check both sides refuse them
//! alike. Each document is queried with several selectors on one parse, so
//! the index's cursors are exercised too.

use proptest::prelude::*;
use proptest::test_runner::Config;

use super::fuzzing::{Selected, json_select_all, xml_select_all};
use super::reference;

// ---- JSON ----

/// A generated JSON value, rendered with the whitespace choices in `ws`.
#[derive(Debug, Clone)]
enum GenJson {
    Scalar(&'static str),
    /// A string: pieces, each written as itself.
    Str(Vec<&'static str>),
    Array(Vec<GenJson>),
    Object(Vec<(Vec<&'static str>, GenJson)>),
}

const SCALARS: &[&str] = &[
    "0",
    "-1",
    "1.50e2",
    "1e400",
    "-0.0E-5",
    "123456789012345678901234567890",
    "true",
    "false",
    "null",
];

/// String pieces as written between the quotes.
const PIECES: &[&str] = &[
    "a",
    "b",
    "é",
    "😀",
    "/",
    "~",
    " ",
    "\\\"",
    "\\\\",
    "\\/",
    "\\n",
    "\\t",
    "\\r",
    "\\b",
    "\\f",
    "\\u0061",
    "\\u00e9",
    "\\u0000",
    "\\ud83d\\ude00",
    "\\ud800",
    "\\udc00",
    "\\uD83D",
];

const KEY_PIECES: &[&str] = &["a", "b", "\\u0061", "/", "~", "é", "\\\"", "\\ud800"];

const WS: &[&str] = &["", "", "", " ", "\n", "\t", " \r\n  "];

fn gen_json() -> impl Strategy<Value = GenJson> {
    let piece = || prop::sample::select(PIECES);
    let key = prop::collection::vec(prop::sample::select(KEY_PIECES), 0..3);
    let leaf = prop_oneof![
        prop::sample::select(SCALARS).prop_map(GenJson::Scalar),
        prop::collection::vec(piece(), 0..4).prop_map(GenJson::Str),
    ];
    leaf.prop_recursive(5, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(GenJson::Array),
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(GenJson::Object),
        ]
    })
}

impl GenJson {
    fn write(&self, ws: &[usize], at: &mut usize, out: &mut String) {
        let space = |out: &mut String, at: &mut usize| {
            if !ws.is_empty() {
                out.push_str(WS[ws[*at % ws.len()] % WS.len()]);
                *at += 1;
            }
        };
        match self {
            GenJson::Scalar(s) => out.push_str(s),
            GenJson::Str(pieces) => {
                out.push('"');
                pieces.iter().for_each(|p| out.push_str(p));
                out.push('"');
            }
            GenJson::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    space(out, at);
                    if i > 0 {
                        out.push(',');
                        space(out, at);
                    }
                    item.write(ws, at, out);
                }
                space(out, at);
                out.push(']');
            }
            GenJson::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    space(out, at);
                    if i > 0 {
                        out.push(',');
                        space(out, at);
                    }
                    out.push('"');
                    key.iter().for_each(|p| out.push_str(p));
                    out.push('"');
                    space(out, at);
                    out.push(':');
                    space(out, at);
                    value.write(ws, at, out);
                }
                space(out, at);
                out.push('}');
            }
        }
    }
}

/// Pointer tokens: keys (some as decoded text, some needing `~` escapes),
/// indices good and bad.
const TOKENS: &[&str] = &[
    "a",
    "b",
    "aa",
    "ab",
    "",
    "~1",
    "~0",
    "é",
    "\"",
    "a~1",
    "0",
    "1",
    "2",
    "5",
    "01",
    "-",
    "x",
    "\u{fffd}",
    "a\u{fffd}",
];

fn gen_pointer() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::collection::vec(prop::sample::select(TOKENS), 0..5)
            .prop_map(|tokens| tokens.iter().map(|t| format!("/{t}")).collect()),
        1 => prop::sample::select(&["a", "/~", "/a~2", "/~x/0"][..]).prop_map(String::from),
    ]
}

/// A key piece decoded.
fn decoded(piece: &str) -> &str {
    match piece {
        "\\u0061" => "a",
        "\\\"" => "\"",
        "\\ud800" => "\u{fffd}",
        other => other,
    }
}

impl GenJson {
    /// Pointers to every value (keys escaped for RFC 6901).
    fn pointers(&self, at: String, out: &mut Vec<String>) {
        out.push(at.clone());
        match self {
            GenJson::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    item.pointers(format!("{at}/{i}"), out);
                }
            }
            GenJson::Object(members) => {
                for (key, value) in members {
                    let key: String = key.iter().map(|p| decoded(p)).collect();
                    let token = key.replace('~', "~0").replace('/', "~1");
                    value.pointers(format!("{at}/{token}"), out);
                }
            }
            _ => {}
        }
    }
}

/// A document (damaged or not) and pointers, most of them to values in it.
fn json_case() -> impl Strategy<Value = (String, Vec<String>)> {
    json_doc().prop_flat_map(|(text, existing)| {
        let pointer = prop_oneof![
            3 => prop::sample::select(existing),
            1 => gen_pointer(),
        ];
        (Just(text), prop::collection::vec(pointer, 1..10))
    })
}

/// A document's text, damaged or not, and the pointers to its values.
fn json_doc() -> impl Strategy<Value = (String, Vec<String>)> {
    (
        gen_json(),
        prop::collection::vec(0usize..WS.len(), 0..8),
        prop::option::weighted(0.1, (any::<prop::sample::Index>(), 0..4u8)),
    )
        .prop_map(|(doc, ws, damage)| {
            let mut existing = Vec::new();
            doc.pointers(String::new(), &mut existing);
            let mut text = String::new();
            if !ws.is_empty() {
                text.push_str(WS[ws[0]]);
            }
            doc.write(&ws, &mut 1, &mut text);
            if let Some((at, how)) = damage {
                let mut cut = at.index(text.len() + 1);
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                match how {
                    0 => text.truncate(cut),
                    1 => text.insert(cut, ','),
                    2 => text.insert(cut, '"'),
                    _ => text.insert_str(cut, "\\u12"),
                }
            }
            (text, existing)
        })
}

fn check_json(text: &str, pointers: &[String]) -> Result<(), TestCaseError> {
    let refs: Vec<&str> = pointers.iter().map(String::as_str).collect();
    let value: Option<serde_json::Value> = serde_json::from_str(text).ok();
    for (pointer, Selected { result, .. }) in refs.iter().zip(json_select_all(text, &refs)) {
        let want = reference::json_select(text, pointer);
        prop_assert_eq!(&result, &want, "pointer {:?} in {:?}", pointer, text);
        // serde_json's own reading, where it has one: the same value.
        let Some(value) = &value else { continue };
        match (&result, value.pointer(pointer)) {
            (Err(code), found) => {
                if *code == reference::NOT_FOUND {
                    prop_assert!(found.is_none(), "{:?} in {:?}", pointer, text);
                }
            }
            (Ok(_), None) => prop_assert!(false, "serde_json: nothing at {:?}", pointer),
            (Ok(got), Some(serde_json::Value::String(s))) => prop_assert_eq!(got, s),
            (Ok(got), Some(other)) => {
                let got: serde_json::Value = serde_json::from_str(got).unwrap();
                prop_assert_eq!(&got, other, "pointer {:?} in {:?}", pointer, text);
            }
        }
    }
    Ok(())
}

// ---- XML ----

const NAMES: &[&str] = &["a", "b", "p:a", "q:a", "p:b", "item"];
const ATTRS: &[&str] = &["id", "p:id", "q:id", "x", "xmlns", "xmlns:p"];
const ATTR_VALUES: &[&str] = &[
    "1",
    "",
    "a&amp;b",
    "&#x41;&#66;",
    "t\tn\nr\r\n.",
    "&lt;&gt;&quot;&apos;",
    "\"q\"",
];
const TEXTS: &[&str] = &[
    "x",
    " ",
    "a\r\nb\rc",
    "&lt;&amp;&gt;",
    "&#13;&#x2615;",
    "<![CDATA[<x>\r\n]]>",
    "<!-- c -->",
    "<?pi x?>",
    "&e;",
    "é",
];

#[derive(Debug, Clone)]
enum GenXml {
    Text(&'static str),
    Element {
        name: &'static str,
        attrs: Vec<(&'static str, &'static str)>,
        children: Vec<GenXml>,
    },
}

fn gen_element() -> impl Strategy<Value = GenXml> {
    // Attribute names are unique, but for one start tag in about fifty.
    let attrs = (
        prop::collection::vec(
            (
                prop::sample::select(ATTRS),
                prop::sample::select(ATTR_VALUES),
            ),
            0..3,
        ),
        prop::bool::weighted(0.02),
    )
        .prop_map(|(mut attrs, duplicate)| {
            if !duplicate {
                let mut seen = Vec::new();
                attrs.retain(|(key, _)| {
                    let new = !seen.contains(key);
                    seen.push(*key);
                    new
                });
            }
            attrs
        });
    let leaf =
        (prop::sample::select(NAMES), attrs.clone()).prop_map(|(name, attrs)| GenXml::Element {
            name,
            attrs,
            children: Vec::new(),
        });
    leaf.prop_recursive(5, 48, 6, move |inner| {
        let child = prop_oneof![
            2 => inner,
            1 => prop::sample::select(TEXTS).prop_map(GenXml::Text),
        ];
        (
            prop::sample::select(NAMES),
            attrs.clone(),
            prop::collection::vec(child, 0..6),
        )
            .prop_map(|(name, attrs, children)| GenXml::Element {
                name,
                attrs,
                children,
            })
    })
}

impl GenXml {
    /// Paths to every element and attribute, each step written with the
    /// local name or the qualified name (with its index among the siblings
    /// that step matches).
    fn paths(&self, at: &str, out: &mut Vec<String>) {
        let GenXml::Element {
            attrs, children, ..
        } = self
        else {
            return;
        };
        for (key, _) in attrs {
            out.push(format!("{at}/@{key}"));
            out.push(format!("{at}@{}", key.rsplit(':').next().unwrap_or(key)));
        }
        let local = |name: &str| name.rsplit(':').next().unwrap_or(name).to_string();
        let mut before: Vec<&str> = Vec::new();
        for child in children {
            let GenXml::Element { name, .. } = child else {
                continue;
            };
            let same_local = before.iter().filter(|b| local(b) == local(name)).count();
            let same_qname = before.iter().filter(|b| *b == name).count();
            before.push(name);
            out.push(format!("{at}/{}[{}]", local(name), same_local + 1));
            let qualified = format!("{at}/{name}[{}]", same_qname + 1);
            out.push(qualified.clone());
            child.paths(&qualified, out);
        }
    }

    /// Writes the element; each one's text starts with `#n` (`n` counting
    /// elements in document order), so selecting the wrong element shows.
    fn write(&self, doctype: bool, count: &mut usize, out: &mut String) {
        match self {
            // Only a DOCTYPE may declare `e`.
            GenXml::Text("&e;") if !doctype => out.push_str("&amp;e;"),
            GenXml::Text(t) => out.push_str(t),
            GenXml::Element {
                name,
                attrs,
                children,
            } => {
                out.push('<');
                out.push_str(name);
                for (key, value) in attrs {
                    let q = if value.contains('"') { '\'' } else { '"' };
                    out.push_str(&format!(" {key}={q}{value}{q}"));
                }
                *count += 1;
                if children.is_empty() && (*count).is_multiple_of(3) {
                    out.push_str("/>");
                    return;
                }
                out.push_str(&format!(">#{count}"));
                children.iter().for_each(|c| c.write(doctype, count, out));
                out.push_str(&format!("</{name}>"));
            }
        }
    }
}

/// The root's name: paths mostly start with one that matches it.
const ROOTS: &[&str] = &["r", "p:r"];

/// A document (damaged or not) and paths, most of them to elements or
/// attributes in it.
fn xml_case() -> impl Strategy<Value = (String, Vec<String>)> {
    xml_doc().prop_flat_map(|(text, existing)| {
        let path = prop_oneof![
            3 => prop::sample::select(existing),
            1 => gen_path(),
        ];
        (Just(text), prop::collection::vec(path, 1..12))
    })
}

fn xml_doc() -> impl Strategy<Value = (String, Vec<String>)> {
    (
        gen_element(),
        prop::sample::select(ROOTS),
        any::<bool>(),
        prop::option::weighted(0.1, (any::<prop::sample::Index>(), 0..4u8)),
    )
        .prop_map(|(mut root, root_name, doctype, damage)| {
            if let GenXml::Element { name, .. } = &mut root {
                *name = root_name;
            }
            let mut existing = vec![format!("/{root_name}"), "/r".to_string()];
            root.paths(&format!("/{root_name}"), &mut existing);
            let mut text = String::from(if doctype {
                "<?xml version=\"1.0\"?>\n<!DOCTYPE r [<!ENTITY e \"E\">]>\n"
            } else {
                "\n"
            });
            root.write(doctype, &mut 0, &mut text);
            text.push('\n');
            if let Some((at, how)) = damage {
                let mut cut = at.index(text.len() + 1);
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                match how {
                    0 => text.truncate(cut),
                    1 => text.insert(cut, '<'),
                    2 => text.insert(cut, '&'),
                    _ => text.insert_str(cut, "<a/>"),
                }
            }
            (text, existing)
        })
}

fn gen_path() -> impl Strategy<Value = String> {
    let step = (
        prop::sample::select(NAMES),
        prop::option::weighted(0.4, 1usize..4),
    )
        .prop_map(|(name, n)| match n {
            Some(n) => format!("{name}[{n}]"),
            None => name.to_string(),
        });
    prop_oneof![
        8 => (
            prop::sample::select(&["r", "r", "r", "p:r", "q:r", "a"][..]),
            prop::collection::vec(step, 0..4),
            prop::option::weighted(0.3, (prop::sample::select(ATTRS), any::<bool>())),
        )
            .prop_map(|(root, steps, attr)| {
                let mut path = format!("/{root}");
                for step in steps {
                    path.push('/');
                    path.push_str(&step);
                }
                if let Some((attr, own_step)) = attr {
                    path.push_str(if own_step { "/@" } else { "@" });
                    path.push_str(attr);
                }
                path
            }),
        1 => prop::sample::select(
            &["", "a", "/", "//a", "/a[0]", "/a[01]", "/a/@", "/@id", "/a@b/c", "/a:b:c", "/a[1"][..]
        )
        .prop_map(String::from),
    ]
}

fn check_xml(text: &str, paths: &[String]) -> Result<(), TestCaseError> {
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    for (path, Selected { result, .. }) in refs.iter().zip(xml_select_all(text, &refs)) {
        let want = reference::xml_select(text, path);
        prop_assert_eq!(&result, &want, "path {:?} in {:?}", path, text);
    }
    Ok(())
}

fn config() -> Config {
    Config {
        cases: 512,
        // Failures are reported with the shrunk input; nothing persisted
        // in the tree.
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn json_select_agrees_with_the_reference((text, pointers) in json_case()) {
        check_json(&text, &pointers)?;
    }

    #[test]
    fn xml_select_agrees_with_the_reference((text, paths) in xml_case()) {
        check_xml(&text, &paths)?;
    }
}

/// Hand-picked cases the generators reach rarely.
#[test]
fn edge_cases_agree_with_the_reference() {
    let json = [
        (r#"{"a":1,"a":2}"#, "/a"),
        (r#"{"\u0061":1}"#, "/a"),
        (r#"{"a":"\ud800\u0041"}"#, "/a"),
        (r#"{"a":"\ud800\ud800\udc00"}"#, "/a"),
        (r#"{"\ud800":1}"#, "/\u{fffd}"),
        ("[ [ ] , { } ]", ""),
        ("[1,2,3]", "/2"),
        ("[1,2,3]", "/3"),
        ("\"x\"", ""),
        ("1e400", ""),
        (r#"{"a/b":{"m~n":[0,[1]]}}"#, "/a~1b/m~0n/1/0"),
    ];
    for (text, pointer) in json {
        check_json(text, &[pointer.to_string()]).unwrap();
    }
    let xml = [
        ("<r><a>1</a><p:a>2</p:a></r>", "/r/a[2]"),
        ("<r><a>1</a><p:a>2</p:a></r>", "/r/p:a"),
        ("<r xmlns:p='u' p:id='1' id='2'/>", "/r/@id"),
        ("<r>a<!--c-->b<?p?>c</r>", "/r"),
        ("<!DOCTYPE r><r>&e;&#65;</r>", "/r"),
        ("<r x='a&#10;b\tc'/>", "/r@x"),
        // Found by the `select` fuzz target (names with a `/`).
        ("<r//>", "/r"),
        ("<r/G<r/>", "/r"),
        ("<a/b>t</a/b>", "/a"),
        // A DOCTYPE inside the root element (also `select`).
        ("<r>x<!DOCTYPE r [<!ENTITY e \"E\">]>y</r>", "/r"),
        // An attribute quick-xml names `=p:id` (also `select`).
        ("<r><a =p:id=\"2\"/></r>", "/r/a@id"),
    ];
    for (text, path) in xml {
        check_xml(text, &[path.to_string()]).unwrap();
    }
}
