//! `xml_select`'s document model: one compact record per element over the
//! property's text, built once per run with quick-xml, and the simple path
//! language (`/order/items/item[2]/name`, `/order/@id`, `/order/item@id`).
//!
//! An element is three `u32`s: where its name starts in the text, where the
//! element ends, and the index just past its descendants (elements are
//! numbered in document order, so an element's first child, if any, is the
//! next one, and its next sibling is where its descendants end). Nothing
//! of the text is copied: names are compared in the text, and an element's
//! text or an attribute is read from the text again when selected.
//!
//! Memory: an element takes at least 4 bytes of text (`<a/>`) and 12 bytes
//! of index: [`INDEX_BYTES_PER_TEXT_BYTE`] bytes per byte of text, plus a
//! constant.
//!
//! Lookups: a step visits the children of the element before it in order,
//! spending [`HOP_FUEL`] for each (more for a name longer than
//! [`NAME_CHUNK`] bytes, and [`FAR_FUEL`] for a sibling far away in the
//! index or the text, a likely cache miss), from the last match of the same step if it is not
//! further (a few cursors per document make a loop over `item[1]`,
//! `item[2]`, … linear, not quadratic). An element's text spends
//! [`TEXT_FUEL_PER_8_BYTES`] per 8 bytes of the element, an attribute
//! [`TAG_FUEL_PER_8_BYTES`] per 8 bytes of its start tag, before reading
//! them.

use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::QName;
use quick_xml::reader::Reader;

use super::{Budget, Exhausted, Miss, SCAN_CHUNK, Sink, quoted};

/// Upper bound of the index's size per byte of text (see the module docs).
#[allow(dead_code)] // for the run's host-memory accounting
pub(crate) const INDEX_BYTES_PER_TEXT_BYTE: usize = 3;

/// Largest text indexed: offsets are `u32`, results `i32`.
const MAX_TEXT_BYTES: usize = i32::MAX as usize;

const NONE: u32 = u32::MAX;

/// Fuel per element visited in a step (including a name of up to
/// [`NAME_CHUNK`] bytes).
pub(crate) const HOP_FUEL: u64 = 64;

/// Bytes of an element's name that [`HOP_FUEL`] pays for; each further
/// chunk of a longer name spends [`NAME_CHUNK_FUEL`].
pub(crate) const NAME_CHUNK: usize = 32;

/// Fuel per further [`NAME_CHUNK`] bytes of a long name.
pub(crate) const NAME_CHUNK_FUEL: u64 = 112;

/// A sibling more elements away than this in the index, or with its name
/// more than [`FAR_BYTES`] away in the text, lies in memory that is likely
/// not cached.
const FAR_ELEMENTS: usize = 5;

/// See [`FAR_ELEMENTS`].
const FAR_BYTES: usize = 256;

/// Fuel of a hop that lands far away (see `json::FAR_FUEL`).
pub(crate) const FAR_FUEL: u64 = 3000;

/// Fuel per 8 bytes of an element read to assemble its text.
pub(crate) const TEXT_FUEL_PER_8_BYTES: u64 = 240;

/// Fuel per 8 bytes of a start tag read to find an attribute.
pub(crate) const TAG_FUEL_PER_8_BYTES: u64 = 200;

/// Longest parse error message kept (quick-xml quotes names, which may be
/// as long as the document).
const MAX_MESSAGE: usize = 300;

/// Step cursors kept per document.
const CURSORS: usize = 8;

/// Start tags with more attributes than this are checked for duplicates
/// by sorting keyed hashes instead of comparing every pair.
const FEW_ATTRIBUTES: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Element {
    /// Offset of the name (just after `<`).
    start: u32,
    /// Offset just past the element's end tag (or `/>`).
    end: u32,
    /// Index just past the element's descendants. While the element is
    /// open during the parse: the index of the enclosing open element.
    skip: u32,
}

/// The last match of a step among a parent's children.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// The parent (`NONE`: unused).
    parent: u32,
    /// Whether the step had a prefix (matched qualified names, not local
    /// names).
    prefixed: bool,
    /// Which match (from 1).
    n: u32,
    child: u32,
}

const NO_CURSOR: Cursor = Cursor {
    parent: NONE,
    prefixed: false,
    n: 0,
    child: 0,
};

/// A well-formed XML document's element index.
#[derive(Debug)]
pub(crate) struct XmlDoc {
    elements: Vec<Element>,
    /// Entities other than the predefined five are kept as written in a
    /// document with a DOCTYPE (which may declare them; DTDs are not read).
    has_doctype: bool,
    cursors: [Cursor; CURSORS],
    next_cursor: usize,
}

/// One step of a path: a name and which matching sibling (from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step<'p> {
    name: &'p str,
    index: usize,
}

/// A path that passed the syntax check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct XmlPath<'p> {
    /// The element steps, `/`-separated, without the leading `/` and the
    /// attribute step.
    steps: &'p str,
    attr: Option<&'p str>,
}

impl<'p> XmlPath<'p> {
    /// Checks `/a/b[2]/c`, with an optional final `@attr` step (`/a/@id`
    /// or `/a/b@id`). `Err` is the message for `last_error`. Allocates
    /// nothing: the steps are split again when followed.
    pub(crate) fn parse(path: &'p str) -> Result<XmlPath<'p>, String> {
        let bad = |why: &str| format!("XML path {}: {why}", quoted(path));
        let Some(rest) = path.strip_prefix('/') else {
            return Err(bad("must start with '/'"));
        };
        let last_start = rest.rfind('/').map_or(0, |i| i + 1);
        if rest[..last_start].contains('@') {
            return Err(bad("'@attribute' must be the last step"));
        }
        let last = &rest[last_start..];
        let (steps, attr) = match last.split_once('@') {
            None => (rest, None),
            Some((element, attribute)) => {
                if !valid_name(attribute) {
                    return Err(bad("empty or invalid attribute name"));
                }
                let steps = if element.is_empty() {
                    rest[..last_start].strip_suffix('/').unwrap_or("")
                } else {
                    &rest[..last_start + element.len()]
                };
                (steps, Some(attribute))
            }
        };
        if steps.is_empty() {
            // `/@id`: an attribute of nothing.
            let why = if attr.is_some() && last_start == 0 {
                "no element step"
            } else {
                "empty step"
            };
            return Err(bad(why));
        }
        for part in parts(steps) {
            step(part).map_err(bad)?;
        }
        Ok(XmlPath { steps, attr })
    }

    fn steps(&self) -> impl Iterator<Item = Step<'p>> {
        parts(self.steps).filter_map(|part| step(part).ok())
    }
}

/// `steps` split at each `/`, with a plain byte loop: steps are short,
/// and a path may have tens of thousands of them.
fn parts(steps: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(steps);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == b'/') {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// One element step: `name` or `name[n]`.
fn step(part: &str) -> Result<Step<'_>, &'static str> {
    if part.is_empty() {
        return Err("empty step");
    }
    let (name, index) = match part.bytes().position(|b| b == b'[') {
        None => (part, 1),
        Some(open) => {
            let (name, index) = (&part[..open], &part[open + 1..]);
            let index = index
                .strip_suffix(']')
                .and_then(parse_index)
                .ok_or("an index must be [n], n digits from 1 without a leading zero")?;
            (name, index)
        }
    };
    if !valid_name(name) {
        return Err("empty or invalid element name");
    }
    Ok(Step { name, index })
}

/// `[n]`'s number: ASCII digits, no leading zero, at least 1.
fn parse_index(digits: &str) -> Option<usize> {
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // A number too large for memory cannot match: saturate.
    Some(digits.parse().unwrap_or(usize::MAX))
}

fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if first == b':' || last == b':' {
        return false;
    }
    let mut colons = 0;
    for &b in bytes {
        match b {
            b':' => colons += 1,
            b'[' | b']' | b'@' | b'/' | b'<' | b'>' | b'&' | b'"' | b'\'' => return false,
            b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' => return false,
            0x80.. => return !name.chars().any(char::is_whitespace) && colons_ok(name),
            _ => {}
        }
    }
    colons <= 1
}

/// The forbidden ASCII bytes were checked; the colon rule on the rest.
fn colons_ok(name: &str) -> bool {
    name.bytes().filter(|&b| b == b':').count() <= 1
        && !name.bytes().any(|b| {
            matches!(
                b,
                b'[' | b']' | b'@' | b'/' | b'<' | b'>' | b'&' | b'"' | b'\''
            )
        })
}

/// Whether a path step `step` matches qualified name `qname`: a step
/// without a prefix matches the local name whatever the prefix; a step with
/// one must match exactly.
fn name_matches(step: &str, qname: &str) -> bool {
    if qname == step {
        return true;
    }
    // Otherwise only an unprefixed step matching the part after the
    // qualified name's (last) colon.
    qname.len() > step.len()
        && qname.ends_with(step)
        && qname.as_bytes()[qname.len() - step.len() - 1] == b':'
        && !step.contains(':')
}

/// Whether `b` ends a name in a start tag.
#[inline]
fn ends_name(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>')
}

/// `message`, cut to [`MAX_MESSAGE`] bytes.
fn short(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

/// The offset of `part` (a subslice of `text`, as quick-xml's events are
/// when reading from a `&str`) in `text`.
fn offset(text: &str, part: &str) -> Result<u32, String> {
    (part.as_ptr() as usize)
        .checked_sub(text.as_ptr() as usize)
        .filter(|at| at + part.len() <= text.len())
        .map(|at| at as u32)
        .ok_or_else(|| "internal error: quick-xml returned a copy of the text".to_string())
}

impl XmlDoc {
    /// Parses `text`; `Err` with quick-xml's message (or ours) if it is not
    /// well-formed.
    pub(crate) fn parse(text: &str) -> Result<XmlDoc, String> {
        if text.len() > MAX_TEXT_BYTES {
            return Err(format!(
                "{} bytes is over the {MAX_TEXT_BYTES} bytes xml_select indexes",
                text.len()
            ));
        }
        let mut reader = Reader::from_str(text);
        reader.config_mut().check_end_names = true;
        // At most one element per `<`: reserved at once (pages not
        // touched stay free), trimmed at the end.
        let tags = memchr::memchr_iter(b'<', text.as_bytes()).count();
        let mut elements: Vec<Element> = Vec::with_capacity(tags);
        // The innermost open element; each open element's `skip` links to
        // the one enclosing it.
        let mut open = NONE;
        let mut seen_root = false;
        // Entities other than the five predefined ones can only be declared
        // in a DTD: without a DOCTYPE, using one is not well-formed (XML 1.0,
        // WFC: Entity Declared).
        let mut has_doctype = false;
        let hasher = RandomState::new();
        let mut keys = Vec::new();
        loop {
            let event = reader
                .read_event()
                .map_err(|e| short(format!("{e} at byte {}", reader.error_position())))?;
            match event {
                Event::Start(_) | Event::Empty(_) if open == NONE && seen_root => {
                    return Err("more than one root element".into());
                }
                Event::Start(start) => {
                    check_name(&start)?;
                    check_attributes(text, &start, &hasher, &mut keys)?;
                    let id = elements.len() as u32;
                    elements.push(Element {
                        start: offset(text, &start)?,
                        end: 0,
                        skip: open,
                    });
                    open = id;
                    seen_root = true;
                }
                Event::Empty(start) => {
                    check_name(&start)?;
                    check_attributes(text, &start, &hasher, &mut keys)?;
                    let id = elements.len() as u32;
                    elements.push(Element {
                        start: offset(text, &start)?,
                        end: reader.buffer_position() as u32,
                        skip: id + 1,
                    });
                    seen_root = true;
                }
                Event::End(_) => {
                    let count = elements.len() as u32;
                    let el = elements
                        .get_mut(open as usize)
                        .ok_or("end tag without a start tag")?;
                    open = el.skip;
                    el.skip = count;
                    el.end = reader.buffer_position() as u32;
                }
                Event::Text(t) => {
                    // Only XML whitespace (space, tab, CR, LF) may surround
                    // the root element.
                    if open == NONE && !t.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                    {
                        return Err("text outside the root element".into());
                    }
                }
                Event::CData(_) if open == NONE => {
                    return Err("CDATA outside the root element".into());
                }
                Event::GeneralRef(r) => {
                    if open == NONE {
                        return Err("reference outside the root element".into());
                    }
                    let known = r.resolve_char_ref().map_err(|e| short(e.to_string()))?;
                    if known.is_none() && resolve_predefined_entity(&r).is_none() && !has_doctype {
                        return Err(short(format!(
                            "undeclared entity &{}; (without a DOCTYPE only &lt; &gt; \
                             &amp; &apos; &quot; and character references may be used)",
                            &*r
                        )));
                    }
                }
                Event::Eof => break,
                // quick-xml reads a DOCTYPE anywhere; XML allows one only
                // before the root element (inside it, its text would be
                // taken for the element's).
                Event::DocType(_) if seen_root => {
                    return Err("DOCTYPE after the root element's start".into());
                }
                Event::DocType(_) => has_doctype = true,
                Event::CData(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            }
        }
        if open != NONE {
            return Err("unclosed element at end of document".into());
        }
        if !seen_root {
            return Err("no root element".into());
        }
        elements.shrink_to_fit();
        Ok(XmlDoc {
            elements,
            has_doctype,
            cursors: [NO_CURSOR; CURSORS],
            next_cursor: 0,
        })
    }

    /// Host memory held, in bytes (the index's capacity).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.elements.capacity() * size_of::<Element>()
    }

    /// Writes the text or attribute value `path` selects into `out`.
    pub(crate) fn select(
        &mut self,
        text: &str,
        path: &XmlPath<'_>,
        budget: &mut Budget,
        out: &mut Sink<'_>,
    ) -> Result<(), Miss> {
        let bytes = text.as_bytes();
        let mut steps = path.steps();
        let root_step = steps.next().ok_or(Miss::NotFound)?;
        budget.spend(HOP_FUEL)?;
        // The root element is element 0.
        if root_step.index != 1 || !self.matches(bytes, 0, root_step.name, budget)? {
            return Err(Miss::NotFound);
        }
        let mut current = 0usize;
        for step in steps {
            current = self.child(bytes, current, step, budget)?;
        }
        match path.attr {
            Some(attr) => self.attribute(text, current, attr, budget, out),
            None => Ok(self.text_of(text, current, budget, out)?),
        }
    }

    /// Whether element `id`'s name matches `step`, compared in the text:
    /// a step with a prefix must be the whole name; one without must be
    /// the name after its prefix, if any.
    fn matches(
        &self,
        text: &[u8],
        id: usize,
        step: &str,
        budget: &mut Budget,
    ) -> Result<bool, Exhausted> {
        let start = self.elements[id].start as usize;
        let step = step.as_bytes();
        let is_at = |at: usize| {
            text.get(at..at + step.len()) == Some(step)
                && text.get(at + step.len()).is_some_and(|&b| ends_name(b))
        };
        if is_at(start) {
            return Ok(true);
        }
        if step.contains(&b':') {
            return Ok(false);
        }
        // The local name starts after the name's colon, if there is one:
        // scan the name, a chunk at a time (the first is paid by the hop).
        let mut i = start;
        let mut paid = start + NAME_CHUNK;
        loop {
            let stop = paid.min(text.len());
            while i < stop {
                match text[i] {
                    b':' => return Ok(is_at(i + 1)),
                    b if ends_name(b) => return Ok(false),
                    _ => i += 1,
                }
            }
            if stop == text.len() {
                return Ok(false);
            }
            budget.spend(NAME_CHUNK_FUEL)?;
            paid += NAME_CHUNK;
        }
    }

    /// The `step.index`-th child of `parent` whose name matches `step`.
    fn child(
        &mut self,
        text: &[u8],
        parent: usize,
        step: Step<'_>,
        budget: &mut Budget,
    ) -> Result<usize, Miss> {
        let skip = self.elements[parent].skip as usize;
        let prefixed = step.name.contains(':');
        let (mut seen, mut id) = (0usize, parent + 1);
        let cursor = self.cursors.iter().position(|c| {
            c.parent as usize == parent && c.prefixed == prefixed && c.n as usize <= step.index
        });
        if let Some(c) = cursor.map(|i| self.cursors[i]) {
            budget.spend(HOP_FUEL)?;
            if self.matches(text, c.child as usize, step.name, budget)? {
                if c.n as usize == step.index {
                    return Ok(c.child as usize);
                }
                (seen, id) = (c.n as usize, self.elements[c.child as usize].skip as usize);
            }
        }
        loop {
            if id >= skip {
                return Err(Miss::NotFound);
            }
            budget.spend(HOP_FUEL)?;
            if self.matches(text, id, step.name, budget)? {
                seen += 1;
                if seen == step.index {
                    break;
                }
            }
            let next = self.elements[id].skip as usize;
            // A sibling after many descendants lies far away in the index,
            // and its name far away in the text: likely cache misses, paid
            // before they are read.
            if next < skip {
                if next.saturating_sub(id) > FAR_ELEMENTS {
                    budget.spend(FAR_FUEL)?;
                }
                let (from, to) = (self.elements[id].start, self.elements[next].start);
                if to.saturating_sub(from) as usize > FAR_BYTES {
                    budget.spend(FAR_FUEL)?;
                }
            }
            id = next;
        }
        let cursor = Cursor {
            parent: parent as u32,
            prefixed,
            n: seen as u32,
            child: id as u32,
        };
        match self
            .cursors
            .iter_mut()
            .find(|c| c.parent as usize == parent && c.prefixed == prefixed)
        {
            Some(c) => *c = cursor,
            None => {
                self.cursors[self.next_cursor] = cursor;
                self.next_cursor = (self.next_cursor + 1) % CURSORS;
            }
        }
        Ok(id)
    }

    /// Writes the value of element `id`'s first attribute matching `name`
    /// (namespace declarations excluded), normalized as XML specifies.
    fn attribute(
        &self,
        text: &str,
        id: usize,
        name: &str,
        budget: &mut Budget,
        out: &mut Sink<'_>,
    ) -> Result<(), Miss> {
        let bytes = text.as_bytes();
        let start = self.elements[id].start as usize;
        // The start tag ends at the first '>' outside quotes; read a chunk
        // at a time.
        let mut quote = None;
        let mut i = start;
        let tag_end = 'scan: loop {
            let chunk_end = (i + SCAN_CHUNK).min(bytes.len());
            budget.spend_bytes(chunk_end - i, TAG_FUEL_PER_8_BYTES)?;
            while i < chunk_end {
                match (quote, bytes[i]) {
                    (None, b'>') => {
                        budget.refund_bytes(chunk_end - i - 1, TAG_FUEL_PER_8_BYTES);
                        break 'scan i;
                    }
                    (None, q @ (b'"' | b'\'')) => quote = Some(q),
                    (Some(q), b) if b == q => quote = None,
                    _ => {}
                }
                i += 1;
            }
            if chunk_end == bytes.len() {
                return Err(Miss::NotFound);
            }
        };
        let content_end = if bytes[tag_end - 1] == b'/' {
            tag_end - 1
        } else {
            tag_end
        };
        // The document is well-formed: `name (ws key ws? = ws? quoted)*`.
        let content = &text[start..content_end];
        let b = content.as_bytes();
        let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
        let mut i = b.iter().position(|&c| is_space(c)).unwrap_or(b.len());
        loop {
            while i < b.len() && is_space(b[i]) {
                i += 1;
            }
            if i >= b.len() {
                return Err(Miss::NotFound);
            }
            let key_start = i;
            while i < b.len() && b[i] != b'=' && !is_space(b[i]) {
                i += 1;
            }
            let key = &content[key_start..i];
            while i < b.len() && b[i] != b'=' {
                i += 1;
            }
            i += 1;
            while i < b.len() && is_space(b[i]) {
                i += 1;
            }
            let Some(&quote) = b.get(i) else {
                return Err(Miss::NotFound);
            };
            let value_start = i + 1;
            i = value_start;
            while i < b.len() && b[i] != quote {
                i += 1;
            }
            let value = &content[value_start.min(i)..i];
            i += 1;
            let is_namespace_decl =
                key.starts_with("xmlns") && (key.len() == 5 || key.as_bytes()[5] == b':');
            if !is_namespace_decl && name_matches(name, key) {
                let attr = Attribute {
                    key: QName(key),
                    value: Cow::Borrowed(value),
                };
                let value = attr
                    .normalized_value(XmlVersion::Implicit1_0)
                    .map_err(|_| Miss::NotFound)?;
                out.push(value.as_bytes());
                return Ok(());
            }
        }
    }

    /// Writes element `id`'s text: all its descendant text and CDATA, with
    /// references decoded and line endings normalized.
    fn text_of(
        &self,
        text: &str,
        id: usize,
        budget: &mut Budget,
        out: &mut Sink<'_>,
    ) -> Result<(), Exhausted> {
        let el = self.elements[id];
        let Some(span) = text.get(el.start as usize - 1..el.end as usize) else {
            return Ok(());
        };
        // The element is read once more: paid before.
        budget.spend_bytes(span.len(), TEXT_FUEL_PER_8_BYTES)?;
        let bytes = span.as_bytes();
        push_text(bytes, self.has_doctype, out);
        Ok(())
    }
}

/// Writes the text of `span`, a well-formed element: its text and CDATA
/// with line endings normalized, its references decoded (an entity other
/// than the five predefined ones kept as written when `has_doctype`), its
/// tags, comments and processing instructions left out.
fn push_text(span: &[u8], has_doctype: bool, out: &mut Sink<'_>) {
    let mut i = 0;
    while i < span.len() {
        if !matches!(span[i], b'<' | b'&' | b'\r') {
            let next = memchr::memchr3(b'<', b'&', b'\r', &span[i..]).map_or(span.len(), |p| i + p);
            out.push(&span[i..next]);
            i = next;
        }
        let Some(&b) = span.get(i) else { break };
        let rest = &span[i..];
        match b {
            b'\r' => {
                out.push(b"\n");
                i += if rest.get(1) == Some(&b'\n') { 2 } else { 1 };
            }
            b'&' => {
                let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
                let name = std::str::from_utf8(&rest[1..end]).unwrap_or("");
                match BytesRef::new(name).resolve_char_ref() {
                    Ok(Some(c)) => out.push_char(c),
                    _ => match resolve_predefined_entity(name) {
                        Some(s) => out.push(s.as_bytes()),
                        // An entity a DTD may declare: kept as written.
                        None if has_doctype => out.push(&rest[..(end + 1).min(rest.len())]),
                        None => {}
                    },
                }
                i += end + 1;
            }
            _ if rest.starts_with(b"<![CDATA[") => {
                let body = &rest[9..];
                let end = memchr::memmem::find(body, b"]]>").unwrap_or(body.len());
                push_normalized(out, &body[..end]);
                i += 9 + end + 3;
            }
            _ if rest.starts_with(b"<!--") => {
                i += memchr::memmem::find(&rest[4..], b"-->").map_or(rest.len(), |p| 4 + p + 3);
            }
            _ if rest.starts_with(b"<?") => {
                i += memchr::memmem::find(&rest[2..], b"?>").map_or(rest.len(), |p| 2 + p + 2);
            }
            _ => i += start_tag_end(rest).map_or(rest.len(), |p| p + 1),
        }
    }
}

/// The index of the `>` that ends the start tag at the front of `tag`
/// (the first one outside quotes).
fn start_tag_end(tag: &[u8]) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in tag.iter().enumerate() {
        match (quote, b) {
            (None, b'>') => return Some(i),
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), b) if b == q => quote = None,
            _ => {}
        }
    }
    None
}

/// Refuses an element name with a `/` (no XML name has one): quick-xml
/// takes everything up to the first whitespace for the name, so `<r//>`
/// would be an element named `r/`, and `<a/b>` one named `a/b`, which the
/// path steps, matched in the text up to a `/`, would take for `r` and `a`.
fn check_name(start: &BytesStart<'_>) -> Result<(), String> {
    let name = start.name().0;
    if name.contains('/') {
        return Err(short(format!("element name {} contains '/'", quoted(name))));
    }
    Ok(())
}

/// Checks a start tag's attributes: syntax, values (references), and no
/// name twice. quick-xml's own duplicate check hashes names with a fixed
/// key; this one uses a per-parse random key, so no document can make it
/// compare many pairs.
fn check_attributes(
    text: &str,
    start: &BytesStart<'_>,
    hasher: &RandomState,
    keys: &mut Vec<(u64, u32, u32)>,
) -> Result<(), String> {
    keys.clear();
    for attr in start.attributes().with_checks(false) {
        let attr = attr.map_err(|e| short(e.to_string()))?;
        attr.normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| short(e.to_string()))?;
        let key = attr.key.0;
        // quick-xml reads `<a =x="1">` as an attribute named `=x`, which
        // the attribute step's own scan of the tag would read differently.
        if key.contains('=') {
            return Err(short(format!(
                "attribute name {} contains '='",
                quoted(key)
            )));
        }
        keys.push((0, offset(text, key)?, key.len() as u32));
    }
    let key = |&(_, at, len): &(u64, u32, u32)| &text[at as usize..(at + len) as usize];
    let duplicate = if keys.len() <= FEW_ATTRIBUTES {
        (1..keys.len()).find_map(|i| {
            keys[..i]
                .iter()
                .any(|k| key(k) == key(&keys[i]))
                .then(|| key(&keys[i]))
        })
    } else {
        for k in keys.iter_mut() {
            k.0 = hasher.hash_one(key(k));
        }
        keys.sort_unstable();
        keys.windows(2)
            .find(|w| w[0].0 == w[1].0 && key(&w[0]) == key(&w[1]))
            .map(|w| key(&w[0]))
    };
    match duplicate {
        Some(name) => Err(short(format!("duplicate attribute {}", quoted(name)))),
        None => Ok(()),
    }
}

/// Appends `s` with XML 1.0 line endings normalized (`\r\n` and `\r` to
/// `\n`).
fn push_normalized(out: &mut Sink<'_>, s: &[u8]) {
    let mut rest = s;
    while let Some(i) = memchr::memchr(b'\r', rest) {
        out.push(&rest[..i]);
        out.push(b"\n");
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix(b"\n") {
            rest = after;
        }
    }
    out.push(rest);
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
    <item sku="z" note="a > b"><name>Cake</name></item>
  </o:items>
  <note>line1&#13;
line2</note>
</o:order>"#;

    fn select_in(doc: &str, path: &str) -> Result<String, Miss> {
        let mut parsed = XmlDoc::parse(doc).unwrap_or_else(|e| panic!("{doc:?}: {e}"));
        let path = XmlPath::parse(path).map_err(|_| Miss::NotFound)?;
        let mut buf = vec![0; doc.len()];
        let mut out = Sink::new(&mut buf);
        parsed.select(doc, &path, &mut Budget::unlimited(), &mut out)?;
        let len = out.len();
        Ok(String::from_utf8(buf[..len].to_vec()).unwrap())
    }

    fn select(path: &str) -> Result<String, Miss> {
        select_in(DOC, path)
    }

    #[test]
    fn selects() {
        let cases = [
            ("/order/items/item/name", "Tea"),
            ("/order/items/item[2]/name", "Coffee & <milk> ☕"),
            ("/order/items/item[3]/name", "Cake"),
            ("/o:order/o:items/item[3]@sku", "z"),
            ("/order/items/item[3]@note", "a > b"),
            ("/order/@id", "A&1"),
            ("/order@id", "A&1"),
            ("/order/@status", "open"),
            ("/order/@o:status", "open"),
            ("/order/items/item[2]", "Coffee & <milk> ☕"),
            ("/order/note", "line1\r\nline2"),
            ("/order/items/other", ""),
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
            "/order/items/item[99999999999999999999999]",
        ] {
            assert_eq!(select(missing), Err(Miss::NotFound), "{missing}");
        }
        for bad in [
            "", "order", "/", "//a", "/a[0]", "/a[x]", "/a[01]", "/a[+1]", "/a[ 1]", "/a@",
            "/a@b/c", "/a[1", "/a b", "/:a", "/a:", "/a:b:c", "/a<", "/a/@x:", "/@a", "/a/",
            "/a//b", "/a/@b@c",
        ] {
            assert!(XmlPath::parse(bad).is_err(), "{bad:?}");
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
            "</a>",
            // Found by the `select` fuzz target: quick-xml reads these as
            // elements named `r/` and `r/G<r`, which `/r` selected.
            "<r//>",
            "<r/G<r/>",
            "<a/b></a/b>",
            // Also found by `select`: a DOCTYPE inside the root, whose
            // internal subset ended up in the element's text.
            "<r>x<!DOCTYPE r [<!ENTITY e \"E\">]>y</r>",
            "<r/><!DOCTYPE r>",
            // And an attribute quick-xml names `=p:id`, which `/r/a@id`
            // selected in the reference and missed in the host.
            "<r><a =p:id=\"2\"/></r>",
            "<a x='1'=y='2'/>",
        ] {
            assert!(XmlDoc::parse(not_xml).is_err(), "{not_xml:?}");
        }
    }

    #[test]
    fn duplicate_attributes_among_many() {
        let attrs: String = (0..100).map(|i| format!(" a{i}='{i}'")).collect();
        assert!(XmlDoc::parse(&format!("<r{attrs}/>")).is_ok());
        let err = XmlDoc::parse(&format!("<r{attrs} a42='x'/>")).unwrap_err();
        assert!(err.contains("duplicate attribute \"a42\""), "{err}");
        let err = XmlDoc::parse("<r a='1' b='2' a='3'/>").unwrap_err();
        assert!(err.contains("duplicate attribute \"a\""), "{err}");
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
        assert_eq!(select_in(doc, "/z:a"), Err(Miss::NotFound));
    }

    #[test]
    fn cursors_make_sibling_loops_linear() {
        let doc = format!("<r>{}</r>", "<i/><j/>".repeat(1000));
        let mut parsed = XmlDoc::parse(&doc).unwrap();
        let mut spent = 0;
        for n in 1..=1000 {
            let path = format!("/r/i[{n}]");
            let mut budget = Budget::unlimited();
            let mut buf = [0; 8];
            parsed
                .select(
                    &doc,
                    &XmlPath::parse(&path).unwrap(),
                    &mut budget,
                    &mut Sink::new(&mut buf),
                )
                .unwrap();
            spent += budget.spent();
        }
        // The root, the cursor, two siblings (an `i` and a `j`), the text.
        assert!(
            spent <= 1000 * (5 * HOP_FUEL + TEXT_FUEL_PER_8_BYTES),
            "{spent}"
        );
        // A prefixed step keeps its own count.
        let doc = "<r><a:i>1</a:i><i>2</i><a:i>3</a:i></r>";
        assert_eq!(select_in(doc, "/r/i[2]").unwrap(), "2");
        let mut parsed = XmlDoc::parse(doc).unwrap();
        let mut buf = [0; 8];
        for (path, want) in [
            ("/r/i[2]", "2"),
            ("/r/a:i[2]", "3"),
            ("/r/i[3]", "3"),
            ("/r/i[1]", "1"),
        ] {
            let mut out = Sink::new(&mut buf);
            parsed
                .select(
                    doc,
                    &XmlPath::parse(path).unwrap(),
                    &mut Budget::unlimited(),
                    &mut out,
                )
                .unwrap();
            let len = out.len();
            assert_eq!(&buf[..len], want.as_bytes(), "{path}");
        }
    }

    #[test]
    fn far_siblings_pay_for_cache_misses() {
        // Each `<i>` has 10 descendants (far in the index) spanning 40
        // bytes of text (near); `<z>` names are 300 bytes apart (far).
        let doc = format!(
            "<r>{}<z/></r>",
            format!("<i>{}</i>", "<a/>".repeat(10)).repeat(3)
        );
        let mut parsed = XmlDoc::parse(&doc).unwrap();
        let mut budget = Budget::unlimited();
        let mut buf = [0; 8];
        let path = XmlPath::parse("/r/z").unwrap();
        parsed
            .select(&doc, &path, &mut budget, &mut Sink::new(&mut buf))
            .unwrap();
        let text = TEXT_FUEL_PER_8_BYTES; // `<z/>`: 4 bytes
        assert_eq!(budget.spent(), 5 * HOP_FUEL + 3 * FAR_FUEL + text);
        let pad = "x".repeat(FAR_BYTES);
        let doc = format!("<r><a>{pad}</a><a>{pad}</a><b/></r>");
        let mut parsed = XmlDoc::parse(&doc).unwrap();
        let mut budget = Budget::unlimited();
        let path = XmlPath::parse("/r/b").unwrap();
        parsed
            .select(&doc, &path, &mut budget, &mut Sink::new(&mut buf))
            .unwrap();
        assert_eq!(budget.spent(), 4 * HOP_FUEL + 2 * FAR_FUEL + text);
    }

    #[test]
    fn runs_out_of_budget_before_the_work() {
        let doc = format!("<r>{}</r>", "<i/>".repeat(10_000));
        let mut parsed = XmlDoc::parse(&doc).unwrap();
        let path = XmlPath::parse("/r/i[10000]").unwrap();
        let mut buf = [0; 8];
        let mut budget = Budget::new(100 * HOP_FUEL);
        let err = parsed.select(&doc, &path, &mut budget, &mut Sink::new(&mut buf));
        assert_eq!(err, Err(Miss::Exhausted));
        // The root's text is paid for before it is read.
        let mut budget = Budget::new(1000);
        let path = XmlPath::parse("/r").unwrap();
        let err = parsed.select(&doc, &path, &mut budget, &mut Sink::new(&mut buf));
        assert_eq!(err, Err(Miss::Exhausted));
        assert_eq!(budget.spent(), HOP_FUEL);
    }

    #[test]
    fn index_memory_is_bounded() {
        let cases = [
            format!("<r>{}</r>", "<a/>".repeat(100_000)),
            format!("<r>{}</r>", "<a></a>".repeat(100_000)),
            format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000)),
            format!("<r>{}</r>", "x&#1;<a/>".repeat(10_000)),
        ];
        for text in cases {
            let doc = XmlDoc::parse(&text).unwrap();
            assert!(
                doc.heap_bytes() <= INDEX_BYTES_PER_TEXT_BYTE * text.len() + 64,
                "{} bytes of index for {} bytes",
                doc.heap_bytes(),
                text.len()
            );
        }
    }
}
