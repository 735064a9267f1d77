//! `{{Property Name}}` templates, parsed once and rendered per context.
//!
//! A template is text with placeholders: `Hello {{ first name }}!`. It is
//! parsed once (when a block is compiled) into literal and property
//! segments, and rendered many times against a conversation's
//! [`Properties`].
//!
//! # Syntax
//!
//! - `{{Name}}` is replaced by the value of property `Name`. Whitespace
//!   inside the braces is trimmed: `{{ API Response }}` reads `API Response`.
//! - The name must be a valid property name (see
//!   [`validate_name`]): not empty, no `{`, `}` or control
//!   characters. `{{}}` and `{{ a{b }}` are errors.
//! - `{{` without a closing `}}` is an error. Every parse error carries the
//!   byte position of the offending `{{`.
//! - `{{{{` is a literal `{{`. After those pairs are taken, a run of three
//!   braces is a literal `{` followed by a placeholder, so `{{{id}}}`
//!   renders `{42}`; a single `{` is literal.
//! - `}}` outside a placeholder is literal text.
//!
//! # Contexts
//!
//! The same value is dangerous in different ways in different places, so
//! rendering always names its [`Context`]:
//!
//! | context | property values | missing property |
//! |---|---|---|
//! | [`Context::Text`] | verbatim | empty string |
//! | [`Context::Value`] | verbatim (the caller escapes, e.g. `url`'s query serializer) | error |
//! | [`Context::PathSegment`] | percent-encoded as one path segment | error |
//! | [`Context::QueryComponent`] | `application/x-www-form-urlencoded` | error |
//! | [`Context::Header`] | verbatim; CR, LF, NUL and other controls refused | error |
//! | [`Context::Json`] | the whole rendered text as one JSON string | error |
//! | [`Context::Form`] | the whole rendered text form-urlencoded | error |
//!
//! A whole URL is rendered with [`UrlTemplate`], which keeps the scheme and
//! host literal and picks the path or query context for each placeholder
//! from where it stands.
//!
//! # Example
//!
//! ```
//! use chatflow_engine::Properties;
//! use chatflow_engine::template::{Context, Template, UrlTemplate};
//!
//! let props: Properties = [("id", "../admin"), ("name", "Zoë \"Z\"")].into_iter().collect();
//!
//! let text = Template::parse("Hi {{ name }}, your id is {{id}}.")?;
//! assert_eq!(text.render_text(&props), "Hi Zoë \"Z\", your id is ../admin.");
//!
//! let body = Template::parse("{{name}}")?;
//! assert_eq!(body.render(&props, Context::Json)?, r#""Zoë \"Z\"""#);
//!
//! let url = UrlTemplate::parse("https://api.example.com/users/{{id}}/orders")?;
//! assert_eq!(
//!     url.render(&props)?.as_str(),
//!     "https://api.example.com/users/..%2Fadmin/orders"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::ops::Range;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::Url;
use url::form_urlencoded::byte_serialize;

use crate::properties::{NameError, Properties, validate_name};

/// Bytes percent-encoded in a path segment: everything except RFC 3986
/// "unreserved" characters, so a value can never add a `/`, `?`, `#`, `%`
/// escape or `\` (which WHATWG URLs treat as `/`).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A parsed `{{Property Name}}` template.
///
/// Parse once with [`Template::parse`], render many times with
/// [`Template::render`] or [`Template::render_text`]. Serializes as its
/// source text; deserializing parses (and so validates) it.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Property { name: String, pos: usize },
}

/// One parsed piece of a [`Template`], in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Text copied as is (escapes such as `{{{{` already resolved).
    Literal(&'a str),
    /// A `{{Name}}` placeholder, with the trimmed name.
    Property(&'a str),
}

/// Where a rendered template is going to be used; decides the escaping and
/// whether a missing property is an error. See the [module docs](self) for
/// the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Context<'a> {
    /// Message text: values verbatim, a missing property renders as the
    /// empty string. Never fails.
    Text,
    /// Values verbatim, for a caller that escapes the result itself (query
    /// names and values handed to `url`'s query serializer). A missing
    /// property is an error.
    Value,
    /// Each property value is percent-encoded so that it stays inside one
    /// URL path segment (`/`, `?`, `#`, `%` and `\` are encoded). Literal
    /// text is kept as written. A path segment that a value turns into `.`
    /// or `..` is refused, since URL parsers remove such segments; segments
    /// are read as a URL parser reads them (a literal `\` separates them
    /// like `/`, tab, CR and LF are dropped, `%2e` is a dot).
    PathSegment,
    /// Each property value is `application/x-www-form-urlencoded`, for a
    /// placeholder standing inside a URL's query string (`&`, `=`, `#`
    /// cannot add parameters). Literal text is kept as written.
    QueryComponent,
    /// An HTTP header value for the named header. The whole value, literal
    /// and properties, is refused if it contains CR, LF, NUL or any other
    /// control character except horizontal tab, so no header can be injected.
    Header(&'a str),
    /// A JSON string: the whole rendered text is returned as a quoted,
    /// escaped JSON string literal, so a value cannot close the string or
    /// add keys.
    Json,
    /// A form body value: the whole rendered text is
    /// `application/x-www-form-urlencoded`.
    Form,
}

/// Why a template's text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// A `{{` has no closing `}}`.
    #[error("unclosed {{{{ at byte {pos}")]
    Unclosed {
        /// Byte offset of the unclosed `{{`.
        pos: usize,
    },
    /// The name between the braces is not a valid property name (empty,
    /// contains `{` or `}`, a control character, or is too long).
    #[error("invalid property name in {{{{…}}}} at byte {pos}: {source}")]
    BadName {
        /// Byte offset of the placeholder's `{{`.
        pos: usize,
        /// What is wrong with the name.
        #[source]
        source: NameError,
    },
    /// A URL template has a placeholder in its scheme or host. Only the
    /// path, query and fragment of a URL may use properties, so a flow's
    /// data can never choose which server is called.
    #[error(
        "{{{{…}}}} at byte {pos} is in the url's scheme or host; only the path, query and fragment may use properties"
    )]
    PlaceholderInHost {
        /// Byte offset of the placeholder's `{{`.
        pos: usize,
    },
}

/// Why a template could not be rendered in a strict context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The template uses a property that is not set. Only
    /// [`Context::Text`] renders a missing property (as the empty string).
    #[error("property {name:?} is not set")]
    Missing {
        /// The missing property's name.
        name: String,
    },
    /// A header value contains CR, LF, NUL or another control character.
    #[error("header {header:?}: value contains {ch:?}{}, which is not allowed in a header", from_property(.property))]
    HeaderChar {
        /// The header whose value was refused.
        header: String,
        /// The first offending character.
        ch: char,
        /// The property the character came from, or `None` when it is in
        /// the template's own text.
        property: Option<String>,
    },
    /// A property's value turned a URL path segment into `.` or `..`
    /// (possibly percent-encoded), which would move the request to another
    /// path.
    #[error(
        "property {name:?} makes the url path segment {segment:?}, which would change the path"
    )]
    DotSegment {
        /// The property whose value is in the segment.
        name: String,
        /// The refused segment as rendered.
        segment: String,
    },
    /// The rendered URL does not parse.
    #[error("the rendered url is invalid: {reason}")]
    InvalidUrl {
        /// What the URL parser said.
        reason: url::ParseError,
    },
}

fn from_property(property: &Option<String>) -> String {
    match property {
        Some(name) => format!(" (from property {name:?})"),
        None => String::new(),
    }
}

impl Template {
    /// Parses `source`. See the [module docs](self) for the syntax.
    ///
    /// Errors carry the byte position of the offending `{{`.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let bytes = source.as_bytes();
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while let Some(found) = source[i..].find("{{") {
            let run_start = i + found;
            literal.push_str(&source[i..run_start]);
            let run = bytes[run_start..]
                .iter()
                .take_while(|&&b| b == b'{')
                .count();
            // Each `{{{{` is an escaped, literal `{{`.
            for _ in 0..run / 4 {
                literal.push_str("{{");
            }
            let mut open = run_start + run / 4 * 4;
            match run % 4 {
                0 => {
                    i = open;
                    continue;
                }
                1 => {
                    literal.push('{');
                    i = open + 1;
                    continue;
                }
                3 => {
                    literal.push('{');
                    open += 1;
                }
                _ => {}
            }
            let name_start = open + 2;
            let Some(len) = source[name_start..].find("}}") else {
                return Err(TemplateError::Unclosed { pos: open });
            };
            let name = source[name_start..name_start + len].trim();
            validate_name(name).map_err(|source| TemplateError::BadName { pos: open, source })?;
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Property {
                name: name.to_string(),
                pos: open,
            });
            i = name_start + len + 2;
        }
        literal.push_str(&source[i..]);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The text this template was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The referenced property names, each once, in order of first use.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for part in &self.parts {
            if let Part::Property { name, .. } = part
                && !names.contains(&name.as_str())
            {
                names.push(name);
            }
        }
        names
    }

    /// Whether the template has no placeholders (renders the same always).
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// The parsed pieces, in order.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'_>> {
        self.parts.iter().map(|part| match part {
            Part::Literal(text) => Segment::Literal(text),
            Part::Property { name, .. } => Segment::Property(name),
        })
    }

    /// Renders plain text: values verbatim, a missing property as the empty
    /// string.
    pub fn render_text(&self, props: &Properties) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Property { name, .. } => out.push_str(props.get(name).unwrap_or("")),
            }
        }
        out
    }

    /// Renders for `ctx`, escaping as that context requires. Every context
    /// except [`Context::Text`] fails with [`RenderError::Missing`] when a
    /// referenced property is not set.
    pub fn render(&self, props: &Properties, ctx: Context<'_>) -> Result<String, RenderError> {
        match ctx {
            Context::Text => Ok(self.render_text(props)),
            Context::Value => self.render_strict(props, |out, value| out.push_str(value)),
            Context::PathSegment => {
                let mut spans = Vec::new();
                let out = self.render_spans(props, &mut spans)?;
                check_dot_segments(&out, 0..out.len(), &spans)?;
                Ok(out)
            }
            Context::QueryComponent => self.render_strict(props, |out, value| {
                out.extend(byte_serialize(value.as_bytes()))
            }),
            Context::Header(header) => self.render_header(props, header),
            Context::Json => {
                let text = self.render_strict(props, |out, value| out.push_str(value))?;
                Ok(serde_json::Value::String(text).to_string())
            }
            Context::Form => {
                let text = self.render_strict(props, |out, value| out.push_str(value))?;
                Ok(byte_serialize(text.as_bytes()).collect())
            }
        }
    }

    fn render_strict(
        &self,
        props: &Properties,
        mut push_value: impl FnMut(&mut String, &str),
    ) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Property { name, .. } => push_value(&mut out, lookup(props, name)?),
            }
        }
        Ok(out)
    }

    /// Renders with values percent-encoded as path segments, recording the
    /// output span of each value for the dot-segment check.
    fn render_spans<'t>(
        &'t self,
        props: &Properties,
        spans: &mut Vec<(Range<usize>, &'t str)>,
    ) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Property { name, .. } => {
                    let start = out.len();
                    out.extend(utf8_percent_encode(lookup(props, name)?, PATH_SEGMENT));
                    spans.push((start..out.len(), name));
                }
            }
        }
        Ok(out)
    }

    fn render_header(&self, props: &Properties, header: &str) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            let (text, property) = match part {
                Part::Literal(text) => (text.as_str(), None),
                Part::Property { name, .. } => (lookup(props, name)?, Some(name)),
            };
            if let Some(ch) = text.chars().find(|&c| c.is_control() && c != '\t') {
                return Err(RenderError::HeaderChar {
                    header: header.to_string(),
                    ch,
                    property: property.cloned(),
                });
            }
            out.push_str(text);
        }
        Ok(out)
    }
}

fn lookup<'p>(props: &'p Properties, name: &str) -> Result<&'p str, RenderError> {
    props.get(name).ok_or_else(|| RenderError::Missing {
        name: name.to_string(),
    })
}

/// Refuses a segment of `out[path]` that is `.` or `..` as a URL parser
/// reads it when a property value stands in it. A literal `..` written by
/// the template's author is the author's business.
///
/// Segments are read as WHATWG URL parsers read http(s) paths: `\\` ends a
/// segment like `/`; tab, CR and LF are dropped; `%2e` is a dot (ASCII
/// case-insensitively). Spaces and other C0 controls at either end of a
/// segment are ignored too, since a parser trims them from the end of the
/// whole URL (inside a path they would be percent-encoded; ignoring them
/// there refuses a little more than needed, never less).
fn check_dot_segments(
    out: &str,
    path: Range<usize>,
    spans: &[(Range<usize>, &str)],
) -> Result<(), RenderError> {
    let mut seg_start = path.start;
    for seg in out[path.clone()].split(['/', '\\']) {
        let seg_end = seg_start + seg.len();
        if is_dot_segment(seg)
            && let Some((_, name)) = spans
                .iter()
                .find(|(span, _)| span.start >= seg_start && span.start <= seg_end)
        {
            return Err(RenderError::DotSegment {
                name: name.to_string(),
                segment: seg.to_string(),
            });
        }
        seg_start = seg_end + 1;
    }
    Ok(())
}

fn is_dot_segment(seg: &str) -> bool {
    let read: String = seg
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let lower = read.to_ascii_lowercase().replace("%2e", ".");
    lower == "." || lower == ".."
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Template").field(&self.source).finish()
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Template {
    type Err = TemplateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::parse(s)
    }
}

impl TryFrom<String> for Template {
    type Error = TemplateError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Template::parse(&s)
    }
}

impl From<Template> for String {
    fn from(t: Template) -> String {
        t.source
    }
}

/// Which part of a URL a placeholder stands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlPart {
    Path,
    Query,
    Fragment,
}

/// A whole URL as a template, e.g. `https://api.example.com/users/{{id}}?v={{v}}`.
///
/// The scheme and host, as a WHATWG URL parser reads them, must be literal
/// and not empty: a placeholder there is
/// [`TemplateError::PlaceholderInHost`]. For `http`, `https` and the other
/// special schemes the parser skips every `/` and `\` after the colon and
/// ends the host at `/`, `\`, `?` or `#`, so `http:///{{h}}/x` is refused
/// (the value would be the host); text before the path with a control
/// character or space is refused too, since the parser drops or trims those.
/// Each placeholder in the path is
/// rendered as in [`Context::PathSegment`], each one after `?` (or `#`) as
/// in [`Context::QueryComponent`]. A missing property is an error.
#[derive(Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    template: Template,
    /// The part each placeholder stands in, in placeholder order.
    placement: Vec<UrlPart>,
    /// Byte offset where the path starts, inside the first literal (which is
    /// rendered verbatim, so the offset holds in the output too).
    path_start: usize,
    /// A template without placeholders, parsed once (rendering clones it).
    literal: Option<Url>,
}

impl UrlTemplate {
    /// Parses a URL template. Besides [`Template::parse`]'s errors, a
    /// placeholder in the scheme or host is
    /// [`TemplateError::PlaceholderInHost`].
    ///
    /// The result is not checked to be a valid URL here; see
    /// [`UrlTemplate::render`] (the REST block checks it at compile time by
    /// rendering with sample values).
    pub fn parse(source: &str) -> Result<UrlTemplate, TemplateError> {
        let template = Template::parse(source)?;
        let first = match template.parts.first() {
            Some(Part::Literal(text)) => text.as_str(),
            _ => "",
        };
        let path_start = path_start(first);
        if !template.is_literal() && path_start.is_none() {
            let pos = template
                .parts
                .iter()
                .find_map(|p| match p {
                    Part::Property { pos, .. } => Some(*pos),
                    Part::Literal(_) => None,
                })
                .unwrap_or(0);
            return Err(TemplateError::PlaceholderInHost { pos });
        }
        let path_start = path_start.unwrap_or(first.len());
        let mut placement = Vec::new();
        let mut state = UrlPart::Path;
        for (i, part) in template.parts.iter().enumerate() {
            match part {
                Part::Literal(text) => {
                    let text = if i == 0 { &text[path_start..] } else { text };
                    for ch in text.chars() {
                        state = match (state, ch) {
                            (UrlPart::Path, '?') => UrlPart::Query,
                            (UrlPart::Path | UrlPart::Query, '#') => UrlPart::Fragment,
                            (state, _) => state,
                        };
                    }
                }
                Part::Property { .. } => placement.push(state),
            }
        }
        let literal = if template.is_literal() {
            // (Parsed from the rendered text: an escaped `{{` is one `{{`
            // there.) An invalid one is reported by `render`, as for any
            // other.
            let text: String = template
                .parts
                .iter()
                .filter_map(|p| match p {
                    Part::Literal(text) => Some(text.as_str()),
                    Part::Property { .. } => None,
                })
                .collect();
            Url::parse(&text).ok()
        } else {
            None
        };
        Ok(UrlTemplate {
            template,
            placement,
            path_start,
            literal,
        })
    }

    /// The underlying template (its source, names, segments).
    pub fn template(&self) -> &Template {
        &self.template
    }

    /// The referenced property names, each once, in order of first use.
    pub fn names(&self) -> Vec<&str> {
        self.template.names()
    }

    /// Renders the URL and parses it.
    ///
    /// Fails with [`RenderError::Missing`] for a property that is not set,
    /// [`RenderError::DotSegment`] when a value would make a path segment
    /// `.` or `..`, and [`RenderError::InvalidUrl`] when the result does not
    /// parse as a URL.
    pub fn render(&self, props: &Properties) -> Result<Url, RenderError> {
        if let Some(url) = &self.literal {
            return Ok(url.clone());
        }
        let mut out = String::new();
        let mut spans = Vec::new();
        let mut path_end = None;
        let mut placement = self.placement.iter();
        let mut state = UrlPart::Path;
        for (i, part) in self.template.parts.iter().enumerate() {
            match part {
                Part::Literal(text) => {
                    let skip = if i == 0 { self.path_start } else { 0 };
                    for (at, ch) in text.char_indices().filter(|(at, _)| *at >= skip) {
                        if state == UrlPart::Path && (ch == '?' || ch == '#') {
                            path_end = Some(out.len() + at);
                        }
                        state = match (state, ch) {
                            (UrlPart::Path, '?') => UrlPart::Query,
                            (UrlPart::Path | UrlPart::Query, '#') => UrlPart::Fragment,
                            (state, _) => state,
                        };
                    }
                    out.push_str(text);
                }
                Part::Property { name, .. } => {
                    let value = lookup(props, name)?;
                    let start = out.len();
                    match placement.next().copied().unwrap_or(UrlPart::Query) {
                        UrlPart::Path => {
                            out.extend(utf8_percent_encode(value, PATH_SEGMENT));
                            spans.push((start..out.len(), name.as_str()));
                        }
                        UrlPart::Query | UrlPart::Fragment => {
                            out.extend(byte_serialize(value.as_bytes()));
                        }
                    }
                }
            }
        }
        let path_end = path_end.unwrap_or(out.len());
        check_dot_segments(&out, self.path_start..path_end, &spans)?;
        Url::parse(&out).map_err(|reason| RenderError::InvalidUrl { reason })
    }
}

/// Where the path (or the query, or the fragment) starts in `first`, the
/// literal text before a URL template's first placeholder, if that text
/// holds the whole scheme and host as a WHATWG URL parser reads them.
/// `None` if it does not, or might not: then a value could land in the host.
///
/// The parser's reading is not "up to the first `/` after `://`": for the
/// special schemes (`http`, `https`, `ws`, `wss`, `ftp`, `file`) it skips any
/// run of `/` and `\` after the colon and ends the host at `/`, `\`, `?` or
/// `#`, so in `http:///{{h}}/x` the host is the value. It also drops tabs and
/// newlines and trims spaces, so text with those (or any control
/// character) before the path is not trusted.
fn path_start(first: &str) -> Option<usize> {
    let colon = first.find(':')?;
    let scheme = &first[..colon];
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return None;
    }
    let special = ["http", "https", "ws", "wss", "ftp", "file"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s));
    let rest = &first[colon + 1..];
    let (host_start, ends): (usize, &[char]) = if special {
        let slashes = rest.len() - rest.trim_start_matches(['/', '\\']).len();
        (colon + 1 + slashes, &['/', '\\', '?', '#'])
    } else if rest.starts_with("//") {
        (colon + 3, &['/', '?', '#'])
    } else {
        return None;
    };
    let host_end = host_start + first[host_start..].find(ends)?;
    let trusted = host_end > host_start && !first[..host_end].contains(|c: char| c <= ' ');
    trusted.then_some(host_end)
}

impl fmt::Debug for UrlTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UrlTemplate")
            .field(&self.template.source)
            .finish()
    }
}

impl fmt::Display for UrlTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.template.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props() -> Properties {
        [
            ("id", "42"),
            ("API Response", "{\"ok\":true}"),
            ("name", "Zoë"),
            ("evil", "a/../b?x=1#f&y=2 %2F\\"),
            ("crlf", "v\r\nX-Injected: 1"),
            ("quote", "\"}, \"admin\": true, \"x\": {\""),
            ("dots", ".."),
            ("dot", "."),
            ("empty", ""),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn parse() {
        let cases: &[(&str, &[Segment<'_>])] = &[
            ("", &[]),
            ("plain", &[Segment::Literal("plain")]),
            ("{{id}}", &[Segment::Property("id")]),
            (
                "Hi {{ API Response }}!",
                &[
                    Segment::Literal("Hi "),
                    Segment::Property("API Response"),
                    Segment::Literal("!"),
                ],
            ),
            (
                "{{a}}{{b}}",
                &[Segment::Property("a"), Segment::Property("b")],
            ),
            ("{{{{", &[Segment::Literal("{{")]),
            ("{{{{id}}", &[Segment::Literal("{{id}}")]),
            (
                "{{{id}}}",
                &[
                    Segment::Literal("{"),
                    Segment::Property("id"),
                    Segment::Literal("}"),
                ],
            ),
            (
                "{{{{{{id}}",
                &[Segment::Literal("{{"), Segment::Property("id")],
            ),
            ("{ x } }}", &[Segment::Literal("{ x } }}")]),
            ("a{b", &[Segment::Literal("a{b")]),
            ("{{\tname  }}", &[Segment::Property("name")]),
        ];
        for (source, want) in cases {
            let t = Template::parse(source).unwrap_or_else(|e| panic!("{source:?}: {e}"));
            assert_eq!(&t.segments().collect::<Vec<_>>(), want, "{source:?}");
            assert_eq!(t.source(), *source);
        }
    }

    #[test]
    fn parse_bad() {
        let cases: &[(&str, TemplateError)] = &[
            ("{{", TemplateError::Unclosed { pos: 0 }),
            ("abc {{id", TemplateError::Unclosed { pos: 4 }),
            ("{{id}} {{x}", TemplateError::Unclosed { pos: 7 }),
            ("{{{id}", TemplateError::Unclosed { pos: 1 }),
            (
                "{{}}",
                TemplateError::BadName {
                    pos: 0,
                    source: NameError::Empty,
                },
            ),
            (
                "x {{   }}",
                TemplateError::BadName {
                    pos: 2,
                    source: NameError::Empty,
                },
            ),
            (
                "{{ a{b }}",
                TemplateError::BadName {
                    pos: 0,
                    source: NameError::BadChar {
                        name: "a{b".into(),
                        ch: '{',
                    },
                },
            ),
            (
                "{{a}b}}",
                TemplateError::BadName {
                    pos: 0,
                    source: NameError::BadChar {
                        name: "a}b".into(),
                        ch: '}',
                    },
                },
            ),
            (
                "é {{a\nb}}",
                TemplateError::BadName {
                    pos: 3,
                    source: NameError::BadChar {
                        name: "a\nb".into(),
                        ch: '\n',
                    },
                },
            ),
        ];
        for (source, want) in cases {
            assert_eq!(Template::parse(source).as_ref(), Err(want), "{source:?}");
        }
    }

    #[test]
    fn names_are_unique_in_order() {
        let t = Template::parse("{{b}} {{a}} {{ b }} {{c}}").unwrap();
        assert_eq!(t.names(), vec!["b", "a", "c"]);
        assert!(!t.is_literal());
        assert!(Template::parse("x {{{{ y").unwrap().is_literal());
    }

    #[test]
    fn render() {
        let p = props();
        let cases: &[(&str, Context<'_>, &str)] = &[
            ("Hi {{name}} #{{id}}", Context::Text, "Hi Zoë #42"),
            ("[{{missing}}]", Context::Text, "[]"),
            ("{{{{ {{id}} }}", Context::Text, "{{ 42 }}"),
            ("q={{evil}}", Context::Value, "q=a/../b?x=1#f&y=2 %2F\\"),
            (
                "{{evil}}",
                Context::PathSegment,
                "a%2F..%2Fb%3Fx%3D1%23f%26y%3D2%20%252F%5C",
            ),
            ("v{{dots}}", Context::PathSegment, "v.."),
            ("a/{{name}}", Context::PathSegment, "a/Zo%C3%AB"),
            (
                "{{evil}}",
                Context::QueryComponent,
                "a%2F..%2Fb%3Fx%3D1%23f%26y%3D2+%252F%5C",
            ),
            (
                "Bearer {{id}}",
                Context::Header("Authorization"),
                "Bearer 42",
            ),
            ("a\tb{{name}}", Context::Header("X"), "a\tbZoë"),
            (
                "{{quote}}",
                Context::Json,
                r#""\"}, \"admin\": true, \"x\": {\"""#,
            ),
            ("line\n{{name}}", Context::Json, r#""line\nZoë""#),
            ("{{empty}}", Context::Json, r#""""#),
            (
                "{{evil}}",
                Context::Form,
                "a%2F..%2Fb%3Fx%3D1%23f%26y%3D2+%252F%5C",
            ),
            ("a b&{{id}}", Context::Form, "a+b%2642"),
        ];
        for (source, ctx, want) in cases {
            let t = Template::parse(source).unwrap();
            assert_eq!(
                t.render(&p, *ctx).as_deref(),
                Ok(*want),
                "{source:?} in {ctx:?}"
            );
        }
    }

    #[test]
    fn render_bad() {
        let p = props();
        let missing = RenderError::Missing {
            name: "missing".into(),
        };
        let cases: Vec<(&str, Context<'_>, RenderError)> = vec![
            ("{{missing}}", Context::Value, missing.clone()),
            ("/x/{{missing}}", Context::PathSegment, missing.clone()),
            ("{{missing}}", Context::QueryComponent, missing.clone()),
            ("{{missing}}", Context::Header("X-Key"), missing.clone()),
            ("{{id}}{{missing}}", Context::Json, missing.clone()),
            ("{{missing}}", Context::Form, missing),
            (
                "ok {{crlf}}",
                Context::Header("X-Key"),
                RenderError::HeaderChar {
                    header: "X-Key".into(),
                    ch: '\r',
                    property: Some("crlf".into()),
                },
            ),
            (
                "a\0{{id}}",
                Context::Header("X-Key"),
                RenderError::HeaderChar {
                    header: "X-Key".into(),
                    ch: '\0',
                    property: None,
                },
            ),
            (
                "{{dots}}",
                Context::PathSegment,
                RenderError::DotSegment {
                    name: "dots".into(),
                    segment: "..".into(),
                },
            ),
            (
                "a/{{dot}}/b",
                Context::PathSegment,
                RenderError::DotSegment {
                    name: "dot".into(),
                    segment: ".".into(),
                },
            ),
            (
                "{{dot}}%2E",
                Context::PathSegment,
                RenderError::DotSegment {
                    name: "dot".into(),
                    segment: ".%2E".into(),
                },
            ),
            (
                "..{{empty}}",
                Context::PathSegment,
                RenderError::DotSegment {
                    name: "empty".into(),
                    segment: "..".into(),
                },
            ),
        ];
        for (source, ctx, want) in cases {
            let t = Template::parse(source).unwrap();
            assert_eq!(t.render(&p, ctx), Err(want), "{source:?} in {ctx:?}");
        }
    }

    #[test]
    fn url() {
        let p = props();
        let cases: &[(&str, &str)] = &[
            ("http://h/users/{{id}}", "http://h/users/42"),
            (
                "https://api.example.com:8443/u/{{evil}}/x",
                "https://api.example.com:8443/u/a%2F..%2Fb%3Fx%3D1%23f%26y%3D2%20%252F%5C/x",
            ),
            (
                "http://h/search?q={{evil}}&id={{id}}",
                "http://h/search?q=a%2F..%2Fb%3Fx%3D1%23f%26y%3D2+%252F%5C&id=42",
            ),
            ("http://h/{{name}}#{{id}}", "http://h/Zo%C3%AB#42"),
            ("http://h?x={{id}}", "http://h/?x=42"),
            ("http://h/a/../b", "http://h/b"),
            // The host ends where a URL parser ends it: `\`, or no slashes
            // at all after a special scheme.
            ("http://h\\{{id}}", "http://h/42"),
            ("http:h/{{id}}", "http://h/42"),
            ("ftp://h/{{id}}", "ftp://h/42"),
            ("foo://h/{{id}}", "foo://h/42"),
            ("http://h/a/{{dots}}x", "http://h/a/..x"),
            ("http://h/?p={{dots}}", "http://h/?p=.."),
            // Literal templates (parsed once, when the template is).
            ("http://h/plain?x=1#f", "http://h/plain?x=1#f"),
            ("http://h/{{{{x}}", "http://h/%7B%7Bx%7D%7D"),
        ];
        for (source, want) in cases {
            let t = UrlTemplate::parse(source).unwrap();
            assert_eq!(
                t.render(&p).map(String::from).as_deref(),
                Ok(*want),
                "{source:?}"
            );
        }
    }

    #[test]
    fn url_bad() {
        let parse_cases: &[(&str, TemplateError)] = &[
            (
                "{{base}}/users",
                TemplateError::PlaceholderInHost { pos: 0 },
            ),
            (
                "http://{{host}}/x",
                TemplateError::PlaceholderInHost { pos: 7 },
            ),
            (
                "http://api.{{domain}}/x",
                TemplateError::PlaceholderInHost { pos: 11 },
            ),
            (
                "http://h:{{port}}/x",
                TemplateError::PlaceholderInHost { pos: 9 },
            ),
            ("http:{{x}}", TemplateError::PlaceholderInHost { pos: 5 }),
            // A URL parser skips every `/` and `\` after a special scheme's
            // colon: in each of these the value would be the host (the
            // first found by the template fuzz target).
            (
                "http:////h.tes{{v}}/b",
                TemplateError::PlaceholderInHost { pos: 14 },
            ),
            (
                "http:///{{h}}/x",
                TemplateError::PlaceholderInHost { pos: 8 },
            ),
            (
                "https://\\/{{h}}/x",
                TemplateError::PlaceholderInHost { pos: 10 },
            ),
            (
                "http://\t/{{h}}",
                TemplateError::PlaceholderInHost { pos: 9 },
            ),
            (
                " http:///{{h}}",
                TemplateError::PlaceholderInHost { pos: 9 },
            ),
            ("foo:/{{x}}", TemplateError::PlaceholderInHost { pos: 5 }),
            ("file:///{{x}}", TemplateError::PlaceholderInHost { pos: 8 }),
            ("http://h/{{x", TemplateError::Unclosed { pos: 9 }),
        ];
        for (source, want) in parse_cases {
            assert_eq!(UrlTemplate::parse(source).as_ref(), Err(want), "{source:?}");
        }

        let p = props();
        let render_cases: &[(&str, RenderError)] = &[
            (
                "http://h/{{missing}}",
                RenderError::Missing {
                    name: "missing".into(),
                },
            ),
            (
                "http://h/a/{{dots}}/admin",
                RenderError::DotSegment {
                    name: "dots".into(),
                    segment: "..".into(),
                },
            ),
            (
                "http://h/a/{{dots}}?x=1",
                RenderError::DotSegment {
                    name: "dots".into(),
                    segment: "..".into(),
                },
            ),
            // A URL parser reads `\\` as `/` and drops tab, CR and LF, and
            // trims spaces at the end: each of these makes `..` a dot
            // segment there (found by the template fuzz target).
            (
                "http://h/a\\{{dots}}",
                RenderError::DotSegment {
                    name: "dots".into(),
                    segment: "..".into(),
                },
            ),
            (
                "http://h/a/{{dot}}\t.",
                RenderError::DotSegment {
                    name: "dot".into(),
                    segment: ".\t.".into(),
                },
            ),
            (
                "http://h/a/{{dot}}\n%2e/b",
                RenderError::DotSegment {
                    name: "dot".into(),
                    segment: ".\n%2e".into(),
                },
            ),
            (
                "http://h/a/{{dots}} ",
                RenderError::DotSegment {
                    name: "dots".into(),
                    segment: ".. ".into(),
                },
            ),
            (
                "http://h:99999/{{id}}",
                RenderError::InvalidUrl {
                    reason: url::ParseError::InvalidPort,
                },
            ),
            (
                "http://h:99999/literal",
                RenderError::InvalidUrl {
                    reason: url::ParseError::InvalidPort,
                },
            ),
        ];
        for (source, want) in render_cases {
            let t = UrlTemplate::parse(source).unwrap();
            assert_eq!(t.render(&p).as_ref(), Err(want), "{source:?}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let t: Template = serde_json::from_str(r#""Hi {{ name }}""#).unwrap();
        assert_eq!(t.names(), vec!["name"]);
        assert_eq!(serde_json::to_string(&t).unwrap(), r#""Hi {{ name }}""#);
        let bad = serde_json::from_str::<Template>(r#""Hi {{ name""#).unwrap_err();
        assert!(bad.to_string().contains("unclosed {{ at byte 3"), "{bad}");
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            Template::parse("abc {{id").unwrap_err().to_string(),
            "unclosed {{ at byte 4"
        );
        assert_eq!(
            Template::parse("{{}}").unwrap_err().to_string(),
            "invalid property name in {{…}} at byte 0: property name is empty"
        );
        let err = Template::parse("{{crlf}}")
            .unwrap()
            .render(&props(), Context::Header("X-Key"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "header \"X-Key\": value contains '\\r' (from property \"crlf\"), which is not allowed in a header"
        );
    }
}
