//! `xml_select`'s document model: a compact element tree over the
//! property's text, built once per run with quick-xml, and the simple path
//! language (`/order/items/item[2]/name`, `/order/@id`, `/order/item@id`).
//!
//! The tree stores byte ranges, not copies: each element's start tag, and
//! the document's text pieces in order (text, CDATA, resolved references).
//! An element's text is the contiguous run of pieces between its start and
//! end, so it is assembled only when selected.

use std::borrow::Cow;
use std::ops::Range;

use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

const NONE: u32 = u32::MAX;

/// A well-formed XML document's element tree.
#[derive(Debug)]
pub(crate) struct XmlDoc {
    elements: Vec<Element>,
    pieces: Vec<Piece>,
}

#[derive(Debug)]
struct Element {
    /// The start tag's content (name and attributes) in the text.
    tag: Range<usize>,
    /// Length of the qualified name at the start of `tag`.
    name_len: usize,
    first_child: u32,
    next_sibling: u32,
    /// The text pieces inside this element (descendants included).
    pieces: Range<u32>,
}

#[derive(Debug)]
enum Piece {
    /// Text or CDATA (line endings to normalize), or an entity reference
    /// kept as written (`verbatim`).
    Text { span: Range<usize>, verbatim: bool },
    /// A character or predefined entity reference, resolved.
    Char(char),
    /// A predefined entity.
    Str(&'static str),
}

/// One step of a path: a name and which matching sibling (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step<'p> {
    name: &'p str,
    index: usize,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XmlPath<'p> {
    steps: Vec<Step<'p>>,
    attr: Option<&'p str>,
}

/// Why a path could not be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SelectError {
    /// Bad path syntax.
    BadPath(String),
    /// Nothing matched.
    NotFound,
}

impl<'p> XmlPath<'p> {
    /// Parses `/a/b[2]/c`, with an optional final `@attr` step (`/a/@id` or
    /// `/a/b@id`).
    pub(crate) fn parse(path: &'p str) -> Result<XmlPath<'p>, SelectError> {
        let bad = |why: &str| SelectError::BadPath(format!("XML path {path:?}: {why}"));
        let Some(rest) = path.strip_prefix('/') else {
            return Err(bad("must start with '/'"));
        };
        let mut steps = Vec::new();
        let mut attr = None;
        let parts: Vec<&str> = rest.split('/').collect();
        let last = parts.len() - 1;
        for (i, part) in parts.into_iter().enumerate() {
            let (element, attribute) = match part.split_once('@') {
                Some(_) if i != last => return Err(bad("'@attribute' must be the last step")),
                Some((element, attribute)) => (element, Some(attribute)),
                None => (part, None),
            };
            if let Some(attribute) = attribute {
                if !valid_name(attribute) {
                    return Err(bad("empty or invalid attribute name"));
                }
                attr = Some(attribute);
            }
            if element.is_empty() {
                if attribute.is_none() {
                    return Err(bad("empty step"));
                }
                continue;
            }
            let (name, index) =
                match element.split_once('[') {
                    None => (element, 1),
                    Some((name, index)) => {
                        let index = index.strip_suffix(']').and_then(parse_index).ok_or_else(
                            || bad("an index must be [n], n digits from 1 without a leading zero"),
                        )?;
                        (name, index)
                    }
                };
            if !valid_name(name) {
                return Err(bad("empty or invalid element name"));
            }
            steps.push(Step { name, index });
        }
        if steps.is_empty() {
            return Err(bad("no element step"));
        }
        Ok(XmlPath { steps, attr })
    }
}

/// `[n]`'s number: ASCII digits, no leading zero, at least 1.
fn parse_index(digits: &str) -> Option<usize> {
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.chars().any(|c| {
            c.is_whitespace() || matches!(c, '[' | ']' | '@' | '/' | '<' | '>' | '&' | '"' | '\'')
        })
        && name.split(':').count() <= 2
        && !name.starts_with(':')
        && !name.ends_with(':')
}

/// Whether a path step `step` matches qualified name `qname`: a step
/// without a prefix matches the local name whatever the prefix; a step with
/// one must match exactly.
fn name_matches(step: &str, qname: &str) -> bool {
    if step.contains(':') {
        return step == qname;
    }
    let local = qname.rsplit_once(':').map_or(qname, |(_, local)| local);
    local == step
}

impl XmlDoc {
    /// Parses `text`; `Err` with quick-xml's message if it is not
    /// well-formed.
    pub(crate) fn parse(text: &str) -> Result<XmlDoc, String> {
        let mut reader = Reader::from_str(text);
        reader.config_mut().check_end_names = true;
        let mut doc = XmlDoc {
            elements: Vec::new(),
            pieces: Vec::new(),
        };
        // Open elements; the last child of each, to link siblings.
        let mut open: Vec<(u32, u32)> = Vec::new();
        let mut seen_root = false;
        // Entities other than the five predefined ones can only be declared
        // in a DTD: without a DOCTYPE, using one is not well-formed (XML 1.0,
        // WFC: Entity Declared).
        let mut has_doctype = false;
        loop {
            let event = reader
                .read_event()
                .map_err(|e| format!("{e} at byte {}", reader.error_position()))?;
            match event {
                Event::Start(start) | Event::Empty(start) if open.is_empty() && seen_root => {
                    let _ = start;
                    return Err("more than one root element".into());
                }
                Event::Start(start) => {
                    let id = doc.open_element(text, &start, &mut open)?;
                    open.push((id, NONE));
                    seen_root = true;
                }
                Event::Empty(start) => {
                    let id = doc.open_element(text, &start, &mut open)?;
                    doc.elements[id as usize].pieces.end = doc.pieces.len() as u32;
                    seen_root = true;
                }
                Event::End(_) => {
                    let (id, _) = open.pop().ok_or("end tag without a start tag")?;
                    doc.elements[id as usize].pieces.end = doc.pieces.len() as u32;
                }
                Event::Text(t) => {
                    if open.is_empty() {
                        // Only XML whitespace (space, tab, CR, LF) may
                        // surround the root element.
                        if !t.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
                            return Err("text outside the root element".into());
                        }
                    } else {
                        doc.pieces.push(Piece::Text {
                            span: span_of(text, &t),
                            verbatim: false,
                        });
                    }
                }
                Event::CData(c) => {
                    if open.is_empty() {
                        return Err("CDATA outside the root element".into());
                    }
                    // Line endings are normalized in CDATA too: XML 1.0
                    // normalizes them in the whole document before parsing.
                    doc.pieces.push(Piece::Text {
                        span: span_of(text, &c),
                        verbatim: false,
                    });
                }
                Event::GeneralRef(r) => {
                    if open.is_empty() {
                        return Err("reference outside the root element".into());
                    }
                    let piece = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                        Some(c) => Piece::Char(c),
                        None => match resolve_predefined_entity(&r) {
                            Some(s) => Piece::Str(s),
                            // An entity a DTD may declare: kept as written
                            // (DTDs are not read).
                            None if has_doctype => {
                                let span = span_of(text, &r);
                                Piece::Text {
                                    span: span.start - 1..span.end + 1,
                                    verbatim: true,
                                }
                            }
                            None => {
                                return Err(format!(
                                    "undeclared entity &{}; (without a DOCTYPE only &lt; &gt; \
                                     &amp; &apos; &quot; and character references may be used)",
                                    &*r
                                ));
                            }
                        },
                    };
                    doc.pieces.push(piece);
                }
                Event::Eof => break,
                Event::DocType(_) => has_doctype = true,
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            }
        }
        if !open.is_empty() {
            return Err("unclosed element at end of document".into());
        }
        if !seen_root {
            return Err("no root element".into());
        }
        Ok(doc)
    }

    fn open_element(
        &mut self,
        text: &str,
        start: &BytesStart<'_>,
        open: &mut [(u32, u32)],
    ) -> Result<u32, String> {
        // Check the attributes now, so a malformed one anywhere makes the
        // whole document "not well-formed", as a full parser would.
        for attr in start.attributes().with_checks(true) {
            let attr = attr.map_err(|e| e.to_string())?;
            attr.normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| e.to_string())?;
        }
        let id = u32::try_from(self.elements.len()).map_err(|_| "too many elements".to_string())?;
        let tag = span_of(text, start);
        self.elements.push(Element {
            tag,
            name_len: start.name().0.len(),
            first_child: NONE,
            next_sibling: NONE,
            pieces: self.pieces.len() as u32..self.pieces.len() as u32,
        });
        if let Some((parent, last_child)) = open.last_mut() {
            if *last_child == NONE {
                self.elements[*parent as usize].first_child = id;
            } else {
                self.elements[*last_child as usize].next_sibling = id;
            }
            *last_child = id;
        }
        Ok(id)
    }

    /// The text or attribute value `path` selects.
    pub(crate) fn select<'t>(
        &self,
        text: &'t str,
        path: &XmlPath<'_>,
    ) -> Result<Cow<'t, str>, SelectError> {
        // The root element is element 0.
        let root_step = &path.steps[0];
        let root = &self.elements[0];
        if root_step.index != 1 || !name_matches(root_step.name, self.qname(text, root)) {
            return Err(SelectError::NotFound);
        }
        let mut current = 0u32;
        for step in &path.steps[1..] {
            let mut seen = 0;
            let mut child = self.elements[current as usize].first_child;
            loop {
                if child == NONE {
                    return Err(SelectError::NotFound);
                }
                let el = &self.elements[child as usize];
                if name_matches(step.name, self.qname(text, el)) {
                    seen += 1;
                    if seen == step.index {
                        break;
                    }
                }
                child = el.next_sibling;
            }
            current = child;
        }
        let el = &self.elements[current as usize];
        match path.attr {
            Some(attr) => self.attribute(text, el, attr),
            None => Ok(self.text_of(text, el)),
        }
    }

    fn qname<'t>(&self, text: &'t str, el: &Element) -> &'t str {
        &text[el.tag.start..el.tag.start + el.name_len]
    }

    fn attribute<'t>(
        &self,
        text: &'t str,
        el: &Element,
        name: &str,
    ) -> Result<Cow<'t, str>, SelectError> {
        let start = BytesStart::from_content(&text[el.tag.clone()], el.name_len);
        for attr in start.attributes().with_checks(true).flatten() {
            let key = attr.key.0;
            let is_namespace_decl = key == "xmlns" || key.starts_with("xmlns:");
            if !is_namespace_decl && name_matches(name, key) {
                let value = attr
                    .normalized_value(XmlVersion::Implicit1_0)
                    .map_err(|_| SelectError::NotFound)?;
                // Borrowing from `start` (a local) forces a copy here.
                return Ok(Cow::Owned(value.into_owned()));
            }
        }
        Err(SelectError::NotFound)
    }

    fn text_of<'t>(&self, text: &'t str, el: &Element) -> Cow<'t, str> {
        let pieces = &self.pieces[el.pieces.start as usize..el.pieces.end as usize];
        if let [Piece::Text { span, verbatim }] = pieces
            && (*verbatim || !text[span.clone()].contains('\r'))
        {
            return Cow::Borrowed(&text[span.clone()]);
        }
        let mut out = String::new();
        for piece in pieces {
            match piece {
                Piece::Text {
                    span,
                    verbatim: true,
                } => out.push_str(&text[span.clone()]),
                Piece::Text {
                    span,
                    verbatim: false,
                } => push_normalized(&mut out, &text[span.clone()]),
                Piece::Char(c) => out.push(*c),
                Piece::Str(s) => out.push_str(s),
            }
        }
        Cow::Owned(out)
    }
}

/// Appends `s` with XML 1.0 line endings normalized (`\r\n` and `\r` to
/// `\n`).
fn push_normalized(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(i) = rest.find('\r') {
        out.push_str(&rest[..i]);
        out.push('\n');
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('\n') {
            rest = after;
        }
    }
    out.push_str(rest);
}

/// The range of `part` (a subslice of `text`) within `text`.
fn span_of(text: &str, part: &str) -> Range<usize> {
    let start = part.as_ptr() as usize - text.as_ptr() as usize;
    debug_assert!(start + part.len() <= text.len());
    start..start + part.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<?xml version="1.0"?>
<!-- orders -->
<o:order xmlns:o="urn:o" id="A&amp;1" o:status="open">
  <o:items>
    <item sku="x"><name>Tea</name></item>
    <item sku="y"><name>Coffee &amp; <![CDATA[<milk>]]> &#x2615;</name></item>
    <other/>
    <item sku="z"><name>Cake</name></item>
  </o:items>
  <note>line1&#13;
line2</note>
</o:order>"#;

    fn select(path: &str) -> Result<String, SelectError> {
        let doc = XmlDoc::parse(DOC).unwrap();
        let path = XmlPath::parse(path)?;
        doc.select(DOC, &path).map(Cow::into_owned)
    }

    #[test]
    fn selects() {
        let cases = [
            ("/order/items/item/name", "Tea"),
            ("/order/items/item[2]/name", "Coffee & <milk> ☕"),
            ("/order/items/item[3]/name", "Cake"),
            ("/o:order/o:items/item[3]@sku", "z"),
            ("/order/@id", "A&1"),
            ("/order@id", "A&1"),
            ("/order/@status", "open"),
            ("/order/@o:status", "open"),
            ("/order/items/item[2]", "Coffee & <milk> ☕"),
            ("/order/note", "line1\r\nline2"),
        ];
        for (path, want) in cases {
            assert_eq!(select(path).as_deref(), Ok(want), "{path}");
        }
    }

    #[test]
    fn selects_bad() {
        for missing in [
            "/nope",
            "/order[2]",
            "/order/items/item[4]",
            "/x:order",
            "/order/@missing",
            "/order/@xmlns:o",
            "/order/@o",
            "/order/items/other/name",
        ] {
            assert_eq!(select(missing), Err(SelectError::NotFound), "{missing}");
        }
        for bad in [
            "", "order", "/", "//a", "/a[0]", "/a[x]", "/a[01]", "/a[+1]", "/a[ 1]", "/a@",
            "/a@b/c", "/a[1", "/a b", "/:a", "/a:", "/a:b:c", "/a<", "/a/@x:",
        ] {
            assert!(
                matches!(select(bad), Err(SelectError::BadPath(_))),
                "{bad:?}"
            );
        }
        for not_xml in [
            "",
            "just text",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "<a x='1' x='2'/>",
            "<a x=1/>",
            "<a>&#0;</a>",
            "text<a/>",
            "\u{a0}<a/>",
            "<a/>\u{a0}",
            "<a>&nbsp;</a>",
            "<a x='&nbsp;'/>",
        ] {
            assert!(XmlDoc::parse(not_xml).is_err(), "{not_xml:?}");
        }
    }

    fn select_in(doc: &str, path: &str) -> Result<String, SelectError> {
        let parsed = XmlDoc::parse(doc).unwrap_or_else(|e| panic!("{doc:?}: {e}"));
        parsed
            .select(doc, &XmlPath::parse(path)?)
            .map(Cow::into_owned)
    }

    #[test]
    fn line_endings_are_normalized_in_text_and_cdata() {
        let doc = "<a>x\r\ny<![CDATA[p\r\nq\rr]]>z\rw&#13;</a>";
        assert_eq!(select_in(doc, "/a").unwrap(), "x\nyp\nq\nrz\nw\r");
        assert_eq!(select_in("<a><![CDATA[\r\n]]></a>", "/a").unwrap(), "\n");
    }

    #[test]
    fn other_entities_need_a_doctype() {
        // With a DOCTYPE the entity may be declared there; DTDs are not
        // read, so it is kept as written.
        let doc = "<!DOCTYPE a [<!ENTITY e \"E\">]>\n<a>x&e;y&amp;</a>";
        assert_eq!(select_in(doc, "/a").unwrap(), "x&e;y&");
        let err = XmlDoc::parse("<a>x&e;</a>").unwrap_err();
        assert!(err.contains("undeclared entity &e;"), "{err}");
    }

    #[test]
    fn undeclared_prefixes_are_well_formed_xml() {
        // Namespaces are not resolved: names are matched as written.
        let doc = "<x:a y:k='v'><x:b>t</x:b></x:a>";
        assert_eq!(select_in(doc, "/a/b").unwrap(), "t");
        assert_eq!(select_in(doc, "/x:a/x:b").unwrap(), "t");
        assert_eq!(select_in(doc, "/a/@k").unwrap(), "v");
        assert_eq!(select_in(doc, "/z:a"), Err(SelectError::NotFound));
    }
}
