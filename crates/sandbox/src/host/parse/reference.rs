//! Straightforward reference implementations of `json_select` and
//! `xml_select` (`docs/abi.md`), written for obviousness, not speed: the
//! host's selectors must give the same result on every document and
//! selector. The property tests (`proptests.rs`) check that on generated
//! inputs, and a fuzz target can do the same on any input through
//! [`super::fuzzing`] (built with the `fuzzing` feature).
//!
//! The JSON reference parses the whole document into a plain tree (each
//! string both as written and decoded, each number as written) and walks
//! it; strings are decoded through UTF-16 code units with
//! [`char::decode_utf16`], so a lone surrogate becomes U+FFFD. What counts as
//! JSON is what serde_json accepts. The XML reference builds a plain
//! element tree with quick-xml (its own duplicate-attribute check) and
//! walks it.
//!
//! Both recurse once per level of nesting: give them documents a few
//! hundred levels deep at most (or a large stack).

use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

/// `INVALID`: the selector's syntax is wrong.
pub const INVALID: i32 = -2;
/// `NOT_FOUND`: nothing at that selector.
pub const NOT_FOUND: i32 = -1;
/// `NOT_PARSEABLE`: the document is not JSON / not well-formed XML.
pub const NOT_PARSEABLE: i32 = -3;

/// The reference `json_select`: the value at RFC 6901 `pointer` in JSON
/// `text` (a string unquoted, any other value compact), or the ABI's error
/// code.
pub fn json_select(text: &str, pointer: &str) -> Result<String, i32> {
    let tokens = pointer_tokens(pointer).ok_or(INVALID)?;
    if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
        return Err(NOT_PARSEABLE);
    }
    let doc = JsonParser {
        text: text.as_bytes(),
        pos: 0,
    }
    .value();
    let mut value = &doc;
    for token in &tokens {
        let next = match value {
            Json::Object(members) => members
                .iter()
                .rev() // the last of duplicate keys wins
                .find(|member| &member.key == token)
                .map(|member| &member.value),
            Json::Array(items) => array_index(token).and_then(|i| items.get(i)),
            _ => None,
        };
        value = next.ok_or(NOT_FOUND)?;
    }
    Ok(match value {
        Json::String { decoded, .. } => decoded.clone(),
        other => other.compact(),
    })
}

fn pointer_tokens(pointer: &str) -> Option<Vec<String>> {
    if pointer.is_empty() {
        return Some(Vec::new());
    }
    let rest = pointer.strip_prefix('/')?;
    let mut tokens = Vec::new();
    for raw in rest.split('/') {
        let mut token = String::new();
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '~' {
                match chars.next() {
                    Some('0') => token.push('~'),
                    Some('1') => token.push('/'),
                    _ => return None,
                }
            } else {
                token.push(c);
            }
        }
        tokens.push(token);
    }
    Some(tokens)
}

fn array_index(token: &str) -> Option<usize> {
    let digits_only = !token.is_empty() && token.chars().all(|c| c.is_ascii_digit());
    let leading_zero = token.len() > 1 && token.starts_with('0');
    if digits_only && !leading_zero {
        token.parse().ok()
    } else {
        None
    }
}

/// A JSON value, everything kept as written.
#[derive(Debug)]
enum Json {
    /// A number or `true`, `false`, `null`.
    Scalar(String),
    String {
        written: String,
        decoded: String,
    },
    Array(Vec<Json>),
    Object(Vec<Member>),
}

#[derive(Debug)]
struct Member {
    key: String,
    written_key: String,
    value: Json,
}

impl Json {
    /// The value's text with no whitespace between tokens.
    fn compact(&self) -> String {
        match self {
            Json::Scalar(s) => s.clone(),
            Json::String { written, .. } => written.clone(),
            Json::Array(items) => {
                let items: Vec<String> = items.iter().map(Json::compact).collect();
                format!("[{}]", items.join(","))
            }
            Json::Object(members) => {
                let members: Vec<String> = members
                    .iter()
                    .map(|m| format!("{}:{}", m.written_key, m.value.compact()))
                    .collect();
                format!("{{{}}}", members.join(","))
            }
        }
    }
}

/// A recursive-descent reader of text serde_json has accepted.
struct JsonParser<'a> {
    text: &'a [u8],
    pos: usize,
}

impl JsonParser<'_> {
    fn skip_whitespace(&mut self) {
        while self.pos < self.text.len() && b" \t\r\n".contains(&self.text[self.pos]) {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Json {
        self.skip_whitespace();
        match self.text[self.pos] {
            b'{' => {
                self.pos += 1;
                let mut members = Vec::new();
                loop {
                    self.skip_whitespace();
                    if self.text[self.pos] == b'}' {
                        self.pos += 1;
                        return Json::Object(members);
                    }
                    if self.text[self.pos] == b',' {
                        self.pos += 1;
                        self.skip_whitespace();
                    }
                    let (written_key, key) = self.string();
                    self.skip_whitespace();
                    self.pos += 1; // ':'
                    let value = self.value();
                    members.push(Member {
                        key,
                        written_key,
                        value,
                    });
                }
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_whitespace();
                    if self.text[self.pos] == b']' {
                        self.pos += 1;
                        return Json::Array(items);
                    }
                    if self.text[self.pos] == b',' {
                        self.pos += 1;
                    }
                    items.push(self.value());
                }
            }
            b'"' => {
                let (written, decoded) = self.string();
                Json::String { written, decoded }
            }
            _ => {
                let start = self.pos;
                while self.pos < self.text.len() && !b" \t\r\n,]}".contains(&self.text[self.pos]) {
                    self.pos += 1;
                }
                Json::Scalar(String::from_utf8_lossy(&self.text[start..self.pos]).into_owned())
            }
        }
    }

    /// A string at `pos`: as written (with its quotes) and decoded.
    fn string(&mut self) -> (String, String) {
        let start = self.pos;
        self.pos += 1;
        let mut units: Vec<u16> = Vec::new();
        loop {
            let rest = std::str::from_utf8(&self.text[self.pos..]).unwrap_or("");
            let c = rest.chars().next().unwrap_or('"');
            match c {
                '"' => {
                    self.pos += 1;
                    break;
                }
                '\\' => {
                    let escaped = self.text[self.pos + 1];
                    self.pos += 2;
                    let unit = match escaped {
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => 0x0a,
                        b'r' => 0x0d,
                        b't' => 0x09,
                        b'u' => {
                            let hex = std::str::from_utf8(&self.text[self.pos..self.pos + 4])
                                .unwrap_or("FFFD");
                            self.pos += 4;
                            u16::from_str_radix(hex, 16).unwrap_or(0xfffd)
                        }
                        other => u16::from(other), // '"', '\\', '/'
                    };
                    units.push(unit);
                }
                c => {
                    let mut buf = [0; 2];
                    units.extend_from_slice(c.encode_utf16(&mut buf));
                    self.pos += c.len_utf8();
                }
            }
        }
        let written = String::from_utf8_lossy(&self.text[start..self.pos]).into_owned();
        let decoded = char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
        (written, decoded)
    }
}

/// The reference `xml_select`: the text of the element (or the attribute's
/// value) `path` selects in XML `text`, or the ABI's error code.
pub fn xml_select(text: &str, path: &str) -> Result<String, i32> {
    let path = XmlPathRef::parse(path).ok_or(INVALID)?;
    let root = parse_xml(text).ok_or(NOT_PARSEABLE)?;
    let (first, rest) = path.steps.split_first().ok_or(INVALID)?;
    if first.1 != 1 || !step_matches(&first.0, &root.name) {
        return Err(NOT_FOUND);
    }
    let mut element = &root;
    for (name, n) in rest {
        element = element
            .children
            .iter()
            .filter_map(|node| match node {
                XmlNode::Element(e) if step_matches(name, &e.name) => Some(e),
                _ => None,
            })
            .nth(n - 1)
            .ok_or(NOT_FOUND)?;
    }
    match &path.attr {
        None => Ok(element.text()),
        Some(attr) => element
            .attributes
            .iter()
            .find(|(key, _)| {
                key != "xmlns" && !key.starts_with("xmlns:") && step_matches(attr, key)
            })
            .map(|(_, value)| value.clone())
            .ok_or(NOT_FOUND),
    }
}

/// An XML path: element steps (name, which match from 1) and an optional
/// attribute.
struct XmlPathRef {
    steps: Vec<(String, usize)>,
    attr: Option<String>,
}

impl XmlPathRef {
    fn parse(path: &str) -> Option<XmlPathRef> {
        let rest = path.strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        let mut steps = Vec::new();
        let mut attr = None;
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let (element, attribute) = match part.find('@') {
                Some(at) if last => (&part[..at], Some(&part[at + 1..])),
                Some(_) => return None,
                None => (*part, None),
            };
            if let Some(attribute) = attribute {
                if !xml_name_ok(attribute) {
                    return None;
                }
                attr = Some(attribute.to_string());
                if element.is_empty() {
                    continue;
                }
            }
            let (name, n) = match element.find('[') {
                None => (element, 1),
                Some(open) => {
                    let digits = element[open + 1..].strip_suffix(']')?;
                    let ok = !digits.is_empty()
                        && !digits.starts_with('0')
                        && digits.chars().all(|c| c.is_ascii_digit());
                    if !ok {
                        return None;
                    }
                    (&element[..open], digits.parse().unwrap_or(usize::MAX))
                }
            };
            if !xml_name_ok(name) {
                return None;
            }
            steps.push((name.to_string(), n));
        }
        if steps.is_empty() {
            return None;
        }
        Some(XmlPathRef { steps, attr })
    }
}

fn xml_name_ok(name: &str) -> bool {
    let forbidden = |c: char| c.is_whitespace() || "[]@/<>&\"'".contains(c);
    let colons = name.matches(':').count();
    !name.is_empty()
        && !name.chars().any(forbidden)
        && colons <= 1
        && !name.starts_with(':')
        && !name.ends_with(':')
}

/// A step without a prefix matches the local name; with one, the whole name.
fn step_matches(step: &str, qname: &str) -> bool {
    if step.contains(':') {
        step == qname
    } else {
        qname.split(':').next_back() == Some(step)
    }
}

#[derive(Debug)]
struct XmlElement {
    name: String,
    attributes: Vec<(String, String)>,
    children: Vec<XmlNode>,
}

#[derive(Debug)]
enum XmlNode {
    Element(XmlElement),
    Text(String),
}

impl XmlElement {
    fn text(&self) -> String {
        let mut out = String::new();
        for child in &self.children {
            match child {
                XmlNode::Text(t) => out.push_str(t),
                XmlNode::Element(e) => out.push_str(&e.text()),
            }
        }
        out
    }
}

fn normalize_line_endings(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

fn xml_element(start: &BytesStart<'_>) -> Option<XmlElement> {
    // No XML name has a `/` (quick-xml would read `<r//>` as an element
    // named `r/`).
    if start.name().0.contains('/') {
        return None;
    }
    let mut attributes = Vec::new();
    for attr in start.attributes() {
        let attr = attr.ok()?;
        // No XML name has a `=` (quick-xml reads `<a =x="1">` as `=x`).
        if attr.key.0.contains('=') {
            return None;
        }
        let value = attr.normalized_value(XmlVersion::Implicit1_0).ok()?;
        attributes.push((attr.key.0.to_string(), value.into_owned()));
    }
    Some(XmlElement {
        name: start.name().0.to_string(),
        attributes,
        children: Vec::new(),
    })
}

/// The root element of a well-formed document: quick-xml's checks, plus
/// one root, only whitespace outside it, and no entity but the predefined
/// ones unless there is a DOCTYPE (where they are kept as written).
fn parse_xml(text: &str) -> Option<XmlElement> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut open: Vec<XmlElement> = Vec::new();
    let mut root = None;
    let mut doctype = false;
    loop {
        let event = reader.read_event().ok()?;
        match event {
            Event::Start(start) => {
                if open.is_empty() && root.is_some() {
                    return None;
                }
                open.push(xml_element(&start)?);
            }
            Event::Empty(start) => {
                let element = xml_element(&start)?;
                match open.last_mut() {
                    Some(parent) => parent.children.push(XmlNode::Element(element)),
                    None if root.is_none() => root = Some(element),
                    None => return None,
                }
            }
            Event::End(_) => {
                let element = open.pop()?;
                match open.last_mut() {
                    Some(parent) => parent.children.push(XmlNode::Element(element)),
                    None => root = Some(element),
                }
            }
            Event::Text(t) => match open.last_mut() {
                Some(parent) => parent
                    .children
                    .push(XmlNode::Text(normalize_line_endings(&t))),
                None => {
                    if !t.chars().all(|c| " \t\r\n".contains(c)) {
                        return None;
                    }
                }
            },
            Event::CData(c) => {
                let parent = open.last_mut()?;
                parent
                    .children
                    .push(XmlNode::Text(normalize_line_endings(&c)));
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().ok()? {
                    Some(c) => c.to_string(),
                    None => match resolve_predefined_entity(&r) {
                        Some(s) => s.to_string(),
                        None if doctype => format!("&{};", &*r),
                        None => return None,
                    },
                };
                let parent = open.last_mut()?;
                parent.children.push(XmlNode::Text(resolved));
            }
            // A DOCTYPE belongs before the root element.
            Event::DocType(_) if root.is_some() || !open.is_empty() => return None,
            Event::DocType(_) => doctype = true,
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
    if open.is_empty() { root } else { None }
}
