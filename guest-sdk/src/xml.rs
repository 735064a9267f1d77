//! XML inside the sandbox, over [quick-xml](https://docs.rs/quick-xml).
//!
//! Three ways to read an XML document, from the simplest to the fastest:
//!
//! - [`Context::select_xml`](crate::Context::select_xml): the host picks
//!   one value out of a property (no parsing in the guest);
//! - [`parse`] (or [`Context::xml`](crate::Context::xml)) builds a small
//!   tree of [`Element`]s to walk, and [`select`] / [`Element::select`] use
//!   the same path syntax as the host selector on any text, for example an
//!   HTTP response body;
//! - the re-exported [`quick_xml`] crate, for a streaming event walk over
//!   large documents.
//!
//! Namespaces: element and attribute names keep their prefix
//! ([`Element::name`]), [`Element::local_name`] drops it, and
//! [`Element::namespace`] is the resolved namespace URI (a prefix that is not
//! declared resolves to none; the document is still read). Entities: the
//! five predefined ones (`&amp;` …) and character references (`&#8211;`,
//! `&#x2013;`) are decoded. Any other entity can only be declared in a DTD,
//! which this parser does not read: in a document with a `<!DOCTYPE>` it is
//! kept in the text as written (`&name;`), in one without, it makes the
//! document not well-formed, as XML specifies. Line endings (`\r\n`, `\r`)
//! in text and CDATA become `\n`, as XML 1.0 specifies.
//!
//! ```no_run
//! use chatflow_sdk::{xml, Context, Result};
//!
//! fn run(ctx: &mut Context) -> Result<()> {
//!     // <a:application xmlns:a="urn:example:apps" id="42">
//!     //   <a:status code="OK">Approved &amp; signed</a:status>
//!     // </a:application>
//!     let root = ctx.xml("API Response")?;
//!     let status = root.child("status").ok_or("no <status> element")?;
//!     ctx.set("status", status.text())?; // "Approved & signed"
//!     ctx.set("status_code", status.attr("code").unwrap_or("UNKNOWN"))?;
//!     ctx.set("application_id", root.select("/application/@id")?.unwrap_or_default())?;
//!     Ok(())
//! }
//! # chatflow_sdk::code_block!(run);
//! # fn main() {}
//! ```

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

pub use quick_xml;

/// Why a document could not be read or a path could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// quick-xml found a syntax or well-formedness error.
    #[error("not well-formed XML: {0}")]
    Syntax(#[from] quick_xml::Error),
    /// An entity reference other than the five predefined ones or a
    /// character reference, in a document without a `<!DOCTYPE>` (where it
    /// cannot have been declared), or in an attribute value.
    #[error("not well-formed XML: undeclared entity `&{name};`")]
    UnknownEntity {
        /// The entity name, without `&` and `;`.
        name: String,
    },
    /// The document has no root element, more than one, or text outside it.
    #[error("not well-formed XML: {reason}")]
    Structure {
        /// What is wrong, e.g. `no root element`.
        reason: String,
    },
    /// A path that does not follow the syntax of [`select`].
    #[error("invalid XML path `{path}`: {reason}")]
    Path {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// One element of a parsed document: its name, attributes and children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    name: String,
    namespace: Option<String>,
    attributes: Vec<(String, String)>,
    nodes: Vec<Node>,
}

/// A child of an [`Element`]: an element or a run of text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Text or CDATA, entities decoded (adjacent runs are merged).
    Text(String),
}

impl Element {
    /// The name as written, with its prefix: `"app:status"`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name without its prefix: `"status"`.
    pub fn local_name(&self) -> &str {
        local(&self.name)
    }

    /// The namespace URI the element's prefix (or the default namespace)
    /// resolves to, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The value of attribute `name`, entities decoded. A name without a
    /// prefix matches an attribute's local name whatever its prefix; a name
    /// with one must match exactly; the first match in document order wins.
    /// Namespace declarations are matched only by their exact name
    /// (`attr("xmlns:h")`), never by a local name (`attr("h")`).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| {
                if is_namespace_declaration(n) {
                    n == name
                } else {
                    name_matches(name, n)
                }
            })
            .map(|(_, v)| v.as_str())
    }

    /// All attributes as `(name, value)`, in document order (namespace
    /// declarations included).
    pub fn attributes(&self) -> &[(String, String)] {
        &self.attributes
    }

    /// The child nodes (elements and text) in document order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The child elements in document order.
    pub fn children(&self) -> impl Iterator<Item = &Element> {
        self.nodes.iter().filter_map(|node| match node {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element called `name` (matched like [`attr`](Self::attr)).
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children().find(|e| name_matches(name, &e.name))
    }

    /// The child elements called `name`.
    pub fn children_named<'s>(&'s self, name: &str) -> impl Iterator<Item = &'s Element> {
        self.children().filter(move |e| name_matches(name, &e.name))
    }

    /// All descendant text and CDATA, concatenated in document order.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.collect_text(&mut out);
        out
    }

    fn collect_text(&self, out: &mut String) {
        for node in &self.nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Element(e) => e.collect_text(out),
            }
        }
    }

    /// The text (or attribute value) at `path`, taking this element as the
    /// document's root: the same syntax and result as the host selector,
    /// see [`select`].
    pub fn select(&self, path: &str) -> Result<Option<String>, Error> {
        let path = Path::parse(path)?;
        Ok(path.apply(self))
    }

    /// The elements matched by `path` (this element is the root; a final
    /// step without `[n]` matches every sibling of that name, with `[n]` only
    /// the n-th). An attribute step is not allowed here.
    ///
    /// ```
    /// let root = chatflow_sdk::xml::parse("<r><o id='1'/><o id='2'/></r>").unwrap();
    /// let ids: Vec<_> = root.find_all("/r/o").unwrap().iter().map(|o| o.attr("id").unwrap()).collect();
    /// assert_eq!(ids, ["1", "2"]);
    /// ```
    pub fn find_all(&self, path: &str) -> Result<Vec<&Element>, Error> {
        let parsed = Path::parse(path)?;
        if parsed.attr.is_some() {
            return Err(Error::Path {
                path: path.to_string(),
                reason: "an attribute step selects text, not elements",
            });
        }
        Ok(parsed.elements(self, true))
    }
}

/// Parses `text` as an XML document and returns its root element.
///
/// Comments, processing instructions and the XML declaration are skipped;
/// whitespace is kept as written. Fails with [`Error`] for a document that
/// is not well-formed.
pub fn parse(text: &str) -> Result<Element, Error> {
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut has_doctype = false;
    loop {
        let (ns, event) = reader.read_resolved_event()?;
        let namespace = match ns {
            ResolveResult::Bound(ns) => Some(ns.as_ref().to_string()),
            _ => None,
        };
        match event {
            Event::Start(start) | Event::Empty(start) if root.is_some() && stack.is_empty() => {
                let _ = start;
                return Err(structure("more than one root element"));
            }
            Event::Start(start) => stack.push(element(&start, namespace)?),
            Event::Empty(start) => {
                let e = element(&start, namespace)?;
                close(e, &mut stack, &mut root);
            }
            Event::End(_) => {
                // quick-xml checks that end tags match their start tags.
                let e = stack.pop().ok_or_else(|| structure("unexpected end tag"))?;
                close(e, &mut stack, &mut root);
            }
            Event::Text(t) => {
                let text = t.xml10_content();
                push_text(&mut stack, &text)?;
            }
            Event::CData(c) => {
                let text = c.xml10_content();
                match stack.last_mut() {
                    Some(_) => push_text(&mut stack, &text)?,
                    None => return Err(structure("CDATA outside the root element")),
                }
            }
            Event::GeneralRef(r) => {
                let decoded: String = match r.resolve_char_ref()? {
                    Some(ch) => ch.to_string(),
                    None => match quick_xml::escape::resolve_predefined_entity(&r) {
                        Some(s) => s.to_string(),
                        // A DTD may declare it; DTDs are not read.
                        None if has_doctype => format!("&{};", &*r),
                        None => {
                            return Err(Error::UnknownEntity {
                                name: r.to_string(),
                            });
                        }
                    },
                };
                if stack.is_empty() {
                    return Err(structure("entity reference outside the root element"));
                }
                push_text(&mut stack, &decoded)?;
            }
            Event::DocType(_) => has_doctype = true,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(structure(&format!("element <{}> is not closed", open.name)));
    }
    root.ok_or_else(|| structure("no root element"))
}

/// The text (or attribute value) at `path` in the XML document `text`, with
/// the host selector's syntax and result (`docs/abi.md`, `xml_select`):
///
/// - steps from the root element down: `/order/items/item[2]/name`; `[n]`
///   picks the n-th matching sibling, counting from 1; without it, the first;
/// - an optional final attribute step: `/order/@id` or `/order/item@id`;
/// - a step without a prefix matches the local name whatever the prefix; a
///   step with one (`a:item`) must match the name exactly;
/// - each step picks one element (the first match, or the n-th) and the next
///   step looks only inside it: `/a/b/c` finds nothing when the first `<b>`
///   has no `<c>`, even if a later `<b>` has one;
/// - an element's text is all its descendant text and CDATA;
/// - an attribute step follows the same prefix rule and never matches a
///   namespace declaration (`xmlns`, `xmlns:p`).
///
/// `Ok(None)` when nothing matches.
///
/// ```
/// use chatflow_sdk::xml;
///
/// let doc = r#"<o:order xmlns:o="urn:x" id="7"><o:item>tea</o:item><o:item>milk &amp; honey</o:item></o:order>"#;
/// assert_eq!(xml::select(doc, "/order/item[2]").unwrap().as_deref(), Some("milk & honey"));
/// assert_eq!(xml::select(doc, "/order/@id").unwrap().as_deref(), Some("7"));
/// assert_eq!(xml::select(doc, "/order/missing").unwrap(), None);
/// assert!(matches!(xml::select(doc, "order"), Err(xml::Error::Path { .. })));
/// ```
pub fn select(text: &str, path: &str) -> Result<Option<String>, Error> {
    // Check the path before parsing, so a bad path is reported as such even
    // for a bad document (the host does the same).
    let path = Path::parse(path)?;
    let root = parse(text)?;
    Ok(path.apply(&root))
}

/// Checks the syntax of a path without a document (the test host's
/// `xml_select` reports a bad path before anything else, as the engine does).
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn check_path(path: &str) -> Result<(), Error> {
    Path::parse(path).map(|_| ())
}

fn structure(reason: &str) -> Error {
    Error::Structure {
        reason: reason.to_string(),
    }
}

fn element(
    start: &quick_xml::events::BytesStart<'_>,
    namespace: Option<String>,
) -> Result<Element, Error> {
    let name = start.name().as_ref().to_string();
    let mut attributes = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(quick_xml::Error::from)?;
        let key = attr.key.as_ref().to_string();
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)?
            .into_owned();
        attributes.push((key, value));
    }
    Ok(Element {
        name,
        namespace,
        attributes,
        nodes: Vec::new(),
    })
}

fn close(e: Element, stack: &mut [Element], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.nodes.push(Node::Element(e)),
        None => *root = Some(e),
    }
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), Error> {
    let Some(parent) = stack.last_mut() else {
        // Whitespace around the root element is allowed; anything else is not.
        if text.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n')) {
            return Ok(());
        }
        return Err(structure("text outside the root element"));
    };
    if let Some(Node::Text(last)) = parent.nodes.last_mut() {
        last.push_str(text);
    } else if !text.is_empty() {
        parent.nodes.push(Node::Text(text.to_string()));
    }
    Ok(())
}

fn local(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, l)| l)
}

/// A path step name matches a qualified name: exactly if it has a prefix,
/// by local name otherwise.
fn name_matches(step: &str, name: &str) -> bool {
    if step.contains(':') {
        step == name
    } else {
        step == local(name)
    }
}

/// A parsed path: element steps, then perhaps an attribute.
#[derive(Debug, PartialEq, Eq)]
struct Path<'a> {
    steps: Vec<Step<'a>>,
    attr: Option<&'a str>,
}

#[derive(Debug, PartialEq, Eq)]
struct Step<'a> {
    name: &'a str,
    /// 1-based index among matching siblings; `None` means "the first"
    /// (or "all" for [`Element::find_all`]'s last step).
    index: Option<usize>,
}

impl<'a> Path<'a> {
    fn parse(path: &'a str) -> Result<Self, Error> {
        let bad = |reason| Error::Path {
            path: path.to_string(),
            reason,
        };
        let rest = path
            .strip_prefix('/')
            .ok_or_else(|| bad("a path starts with `/` and the root element's name"))?;
        let mut steps = Vec::new();
        let mut attr = None;
        let parts: Vec<&str> = rest.split('/').collect();
        let last = parts.len() - 1;
        for (i, part) in parts.into_iter().enumerate() {
            let (part, part_attr) = match part.split_once('@') {
                Some((p, a)) => (p, Some(a)),
                None => (part, None),
            };
            if let Some(a) = part_attr {
                if i != last {
                    return Err(bad("an `@attribute` step must be the last one"));
                }
                if a.is_empty() || !valid_name(a) {
                    return Err(bad("`@` must be followed by an attribute name"));
                }
                attr = Some(a);
                if part.is_empty() {
                    // `/order/@id`: attribute of the previous step.
                    if steps.is_empty() {
                        return Err(bad("an attribute needs an element before it"));
                    }
                    continue;
                }
            }
            let (name, index) = match part.split_once('[') {
                Some((name, idx)) => {
                    let idx = idx
                        .strip_suffix(']')
                        .ok_or_else(|| bad("`[` must be closed by `]`"))?;
                    if idx.starts_with('0') && idx.len() > 1 {
                        return Err(bad("`[n]` has no leading zero"));
                    }
                    if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(bad("`[n]` must hold a number from 1"));
                    }
                    let n: usize = idx.parse().map_err(|_| bad("`[n]` is too large"))?;
                    if n == 0 {
                        return Err(bad("`[n]` counts from 1"));
                    }
                    (name, Some(n))
                }
                None => (part, None),
            };
            if name.is_empty() {
                return Err(bad("empty step (`//` or a trailing `/`)"));
            }
            if !valid_name(name) {
                return Err(bad(
                    "a step name may not contain whitespace or `[ ] @ / < > & \" '`, \
                     nor more than one `:`, nor start or end with `:`",
                ));
            }
            steps.push(Step { name, index });
        }
        Ok(Path { steps, attr })
    }

    /// Elements matched by the steps. With `all_last`, a last step without
    /// `[n]` keeps every match; otherwise each step without `[n]` takes the
    /// first match.
    fn elements<'e>(&self, root: &'e Element, all_last: bool) -> Vec<&'e Element> {
        let mut current = vec![root];
        for (i, step) in self.steps.iter().enumerate() {
            if i == 0 {
                // The first step names the root element itself.
                let ok = name_matches(step.name, &root.name) && step.index.is_none_or(|n| n == 1);
                if !ok {
                    return Vec::new();
                }
                continue;
            }
            let keep_all = all_last && i == self.steps.len() - 1;
            let mut next = Vec::new();
            for parent in current {
                let mut matches = parent.children_named(step.name);
                match step.index {
                    Some(n) => next.extend(matches.nth(n - 1)),
                    None if keep_all => next.extend(matches),
                    None => next.extend(matches.next()),
                }
                // Without `keep_all` every step picks one element.
                if !keep_all && !next.is_empty() {
                    break;
                }
            }
            current = next;
            if current.is_empty() {
                break;
            }
        }
        current
    }

    fn apply(&self, root: &Element) -> Option<String> {
        let element = *self.elements(root, false).first()?;
        match self.attr {
            Some(attr) => element
                .attributes
                .iter()
                .find(|(n, _)| !is_namespace_declaration(n) && name_matches(attr, n))
                .map(|(_, v)| v.clone()),
            None => Some(element.text()),
        }
    }
}

/// A step or attribute name: no whitespace, no path or markup characters,
/// at most one `:` and not at either end (the host's rule).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.chars().any(|c| {
            c.is_whitespace() || matches!(c, '[' | ']' | '@' | '/' | '<' | '>' | '&' | '"' | '\'')
        })
        && name.split(':').count() <= 2
        && !name.starts_with(':')
        && !name.ends_with(':')
}

/// `xmlns` or `xmlns:prefix`: a namespace declaration, not an attribute
/// for paths.
fn is_namespace_declaration(name: &str) -> bool {
    name == "xmlns" || name.starts_with("xmlns:")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment -->
<app:application xmlns:app="urn:example:applications:v1" xmlns:h="urn:example:history" id="APP-42">
  <app:applicant>Ada Lovelace &amp; Co.</app:applicant>
  <app:status code="IN_REVIEW">In review &#8211; documents <![CDATA[<received>]]></app:status>
  <h:history>
    <h:event at="2024-04-28">Submitted</h:event>
    <h:event at="2024-05-02">Documents &#x2713;</h:event>
  </h:history>
  <status>unprefixed</status>
</app:application>
"#;

    #[test]
    fn paths_select_text_and_attributes() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/application/applicant", Some("Ada Lovelace & Co.")),
            (
                "/application/status",
                Some("In review – documents <received>"),
            ),
            (
                "/app:application/app:status",
                Some("In review – documents <received>"),
            ),
            ("/application/status/@code", Some("IN_REVIEW")),
            ("/application/status@code", Some("IN_REVIEW")),
            ("/application/@id", Some("APP-42")),
            ("/application/history/event[2]", Some("Documents ✓")),
            ("/application/history/event[2]/@at", Some("2024-05-02")),
            ("/application/history/h:event", Some("Submitted")),
            ("/application/status[2]", Some("unprefixed")),
            ("/application/app:status[2]", None),
            ("/application/history/event[3]", None),
            ("/application/nothing", None),
            ("/other", None),
            ("/application/status/@missing", None),
            ("/application[1]/applicant", Some("Ada Lovelace & Co.")),
            ("/application[2]/applicant", None),
        ];
        let root = parse(DOC).unwrap();
        for (path, want) in cases {
            assert_eq!(root.select(path).unwrap().as_deref(), *want, "{path}");
            assert_eq!(select(DOC, path).unwrap().as_deref(), *want, "{path}");
        }
    }

    #[test]
    fn paths_bad() {
        for path in [
            "",
            "application",
            "/",
            "/a//b",
            "/a/",
            "/a[0]",
            "/a[x]",
            "/a[1",
            "/@id",
            "/a/@",
            "/a@id/b",
            "/a b",
            "/a/@i d",
            "/a[01]",
            "/a[+1]",
            "/a[ 1]",
            "/a:b:c",
            "/:a",
            "/a:",
            "/a<",
            "/a/@x:",
        ] {
            let err = select(DOC, path).unwrap_err();
            assert!(matches!(err, Error::Path { .. }), "{path}: {err:?}");
        }
    }

    #[test]
    fn walking_the_tree() {
        let root = parse(DOC).unwrap();
        assert_eq!(root.name(), "app:application");
        assert_eq!(root.local_name(), "application");
        assert_eq!(root.namespace(), Some("urn:example:applications:v1"));
        let history = root.child("history").unwrap();
        assert_eq!(history.namespace(), Some("urn:example:history"));
        let dates: Vec<_> = history
            .children_named("event")
            .map(|e| e.attr("at").unwrap())
            .collect();
        assert_eq!(dates, ["2024-04-28", "2024-05-02"]);
        assert_eq!(
            root.child("status").unwrap().attr("code"),
            Some("IN_REVIEW")
        );
        assert_eq!(root.attr("xmlns:h"), Some("urn:example:history"));
        assert_eq!(root.find_all("/application/status").unwrap().len(), 2);
        assert_eq!(
            root.find_all("/application/history/event[1]")
                .unwrap()
                .len(),
            1
        );
        assert!(matches!(
            root.find_all("/application/@id"),
            Err(Error::Path { .. })
        ));
        assert_eq!(parse("<a>x<b>y</b>z</a>").unwrap().text(), "xyz");
    }

    #[test]
    fn documents_bad() {
        let cases = [
            ("", "no root"),
            ("just text", "text outside"),
            ("<a>", "not closed"),
            ("<a></b>", "syntax"),
            ("<a/><b/>", "two roots"),
            ("<a>&nbsp;</a>", "unknown entity"),
            (
                "<!DOCTYPE a><a x='&nbsp;'/>",
                "unknown entity in an attribute",
            ),
            ("\u{a0}<a/>", "non-XML whitespace before the root"),
            ("<a x='1' x='2'/>", "duplicate attribute"),
            ("<a>&#0;</a>", "bad char ref"),
            ("<a></a>trailing", "text after root"),
        ];
        for (doc, what) in cases {
            assert!(parse(doc).is_err(), "{what}: {doc:?} parsed");
        }
        assert!(
            matches!(parse("<a>&nbsp;</a>"), Err(Error::UnknownEntity { name }) if name == "nbsp")
        );
    }

    #[test]
    fn whitespace_and_line_endings() {
        let root = parse("\n  <a>\r\n line\r\n</a>\n").unwrap();
        assert_eq!(root.text(), "\n line\n");
        // CDATA too (XML 1.0 normalizes the whole document); a character
        // reference to CR is kept.
        let doc = "<a>x\r\ny<![CDATA[p\r\nq\rr]]>z\rw&#13;</a>";
        assert_eq!(
            select(doc, "/a").unwrap().as_deref(),
            Some("x\nyp\nq\nrz\nw\r")
        );
    }

    #[test]
    fn other_entities_need_a_doctype() {
        let doc = "<!DOCTYPE a [<!ENTITY e \"E\">]>\n<a>x&e;y&amp;</a>";
        assert_eq!(select(doc, "/a").unwrap().as_deref(), Some("x&e;y&"));
        assert!(matches!(
            parse("<a>x&e;</a>"),
            Err(Error::UnknownEntity { name }) if name == "e"
        ));
    }

    #[test]
    fn undeclared_prefixes_are_read() {
        let doc = "<x:a y:k='v'><x:b>t</x:b></x:a>";
        let root = parse(doc).unwrap();
        assert_eq!(root.namespace(), None);
        assert_eq!(select(doc, "/a/b").unwrap().as_deref(), Some("t"));
        assert_eq!(select(doc, "/x:a/x:b").unwrap().as_deref(), Some("t"));
        assert_eq!(select(doc, "/a/@k").unwrap().as_deref(), Some("v"));
        assert_eq!(select(doc, "/z:a").unwrap(), None);
    }

    #[test]
    fn namespace_declarations_are_not_attributes_for_paths() {
        let doc = "<a xmlns:p='u' xmlns='d' p:id='1' id='2'/>";
        for path in ["/a/@p", "/a/@xmlns:p", "/a/@xmlns"] {
            assert_eq!(select(doc, path).unwrap(), None, "{path}");
        }
        assert_eq!(select(doc, "/a/@id").unwrap().as_deref(), Some("1"));
        assert_eq!(select(doc, "/a/@p:id").unwrap().as_deref(), Some("1"));
        let root = parse(doc).unwrap();
        assert_eq!(root.attr("p"), None);
        assert_eq!(root.attr("xmlns:p"), Some("u"));
        assert_eq!(root.attr("xmlns"), Some("d"));
    }

    #[test]
    fn each_step_picks_one_element() {
        let doc = "<a><b/><b><c>x</c></b></a>";
        assert_eq!(select(doc, "/a/b/c").unwrap(), None);
        assert_eq!(select(doc, "/a/b[2]/c").unwrap().as_deref(), Some("x"));
    }
}
