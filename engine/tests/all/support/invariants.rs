//! What templates and flow loading promise for any input, as checks that
//! panic (naming the input) when a promise is broken. Two drivers share
//! this file: the proptest properties in `tests/all/invariants.rs` (cheap,
//! in CI) and the cargo-fuzz targets in `fuzz/fuzz_targets/` (long runs,
//! nightly only), which include it with `#[path]`. It uses only the
//! engine's public API and crates both sides depend on.

#![allow(dead_code)] // each driver uses part of it

use std::path::Path;

use chatflow_engine::Properties;
use chatflow_engine::flow::FlowError;
use chatflow_engine::properties::validate_name;
use chatflow_engine::template::{
    Context, RenderError, Segment, Template, TemplateError, UrlTemplate,
};
use chatflow_engine::{Engine, Flow};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::Url;
use url::form_urlencoded;

/// A header name for [`Context::Header`].
const HEADER: &str = "X-Fuzz";

/// What a path segment value may become: everything but RFC 3986
/// "unreserved" percent-encoded (the template module's promise, written out
/// again here rather than borrowed from it).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Parses `source` as a template and as a URL template and renders it in
/// every context, the `i`-th distinct property name taking
/// `values[i % values.len()]` (`None`: not set; no values: none set).
pub fn template(source: &str, values: &[Option<String>]) {
    let parsed = Template::parse(source);
    let url = UrlTemplate::parse(source);
    let template = match parsed {
        Ok(template) => template,
        Err(err) => {
            error_points_at_braces(source, &err);
            // A URL template is a template first: the same error.
            assert_eq!(url.err(), Some(err), "{source:?}");
            return;
        }
    };
    assert_eq!(template.source(), source);
    assert_eq!(template.to_string(), source);
    assert_eq!(
        Template::parse(source).as_ref(),
        Ok(&template),
        "{source:?}"
    );

    let names = template.names();
    for name in &names {
        assert!(validate_name(name).is_ok(), "{source:?}: name {name:?}");
        assert_eq!(*name, name.trim(), "{source:?}: names are trimmed");
    }
    let mut props = Properties::new();
    for (i, name) in names.iter().enumerate() {
        if let Some(Some(value)) = values.get(i % values.len().max(1)) {
            props.set(*name, value.clone());
        }
    }
    let all_set = names.iter().all(|n| props.contains(n));
    render_contexts(source, &template, &props, all_set);
    match url {
        Ok(url) => {
            assert_eq!(url.template(), &template);
            url_render(source, &template, &url, &props, all_set);
        }
        Err(err) => {
            assert!(
                matches!(err, TemplateError::PlaceholderInHost { .. }),
                "{source:?}: {err:?}"
            );
            error_points_at_braces(source, &err);
        }
    }
}

/// Every parse error's position is the `{{` of the offending placeholder.
fn error_points_at_braces(source: &str, err: &TemplateError) {
    let pos = match err {
        TemplateError::Unclosed { pos }
        | TemplateError::BadName { pos, .. }
        | TemplateError::PlaceholderInHost { pos } => *pos,
        other => panic!("{source:?}: unexpected error {other:?}"),
    };
    assert!(
        source.is_char_boundary(pos) && source[pos..].starts_with("{{"),
        "{source:?}: {err:?} does not point at a {{{{"
    );
    // The message names the position and never panics to format.
    assert!(err.to_string().contains(&pos.to_string()), "{err}");
}

/// One output piece: a literal, or a property's value as the context
/// encodes it.
fn pieces<'t>(
    template: &'t Template,
    props: &'t Properties,
) -> impl Iterator<Item = (bool, &'t str)> + 't {
    template.segments().map(move |segment| match segment {
        Segment::Literal(text) => (false, text),
        Segment::Property(name) => (true, props.get(name).unwrap_or("")),
    })
}

fn render_contexts(source: &str, template: &Template, props: &Properties, all_set: bool) {
    let text: String = pieces(template, props).map(|(_, s)| s).collect();
    assert_eq!(template.render_text(props), text, "{source:?}");
    assert_eq!(template.render(props, Context::Text).as_ref(), Ok(&text));

    let strict = [
        Context::Value,
        Context::PathSegment,
        Context::QueryComponent,
        Context::Header(HEADER),
        Context::Json,
        Context::Form,
    ];
    if !all_set {
        for ctx in strict {
            match template.render(props, ctx) {
                Err(RenderError::Missing { name }) => {
                    assert!(!props.contains(&name), "{source:?}: {name:?} is set");
                }
                // A header's control character may come before the
                // missing property.
                Err(RenderError::HeaderChar { .. }) if matches!(ctx, Context::Header(_)) => {}
                other => panic!("{source:?} in {ctx:?} with a property missing: {other:?}"),
            }
        }
        return;
    }

    assert_eq!(template.render(props, Context::Value).as_ref(), Ok(&text));
    path_segment(source, template, props);

    let query = template.render(props, Context::QueryComponent).unwrap();
    let expected: String = pieces(template, props)
        .map(|(is_value, s)| {
            if is_value {
                let encoded: String = form_urlencoded::byte_serialize(s.as_bytes()).collect();
                assert!(
                    encoded
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"*-._+%".contains(&b)),
                    "{s:?} encodes to {encoded:?}"
                );
                encoded
            } else {
                s.to_string()
            }
        })
        .collect();
    assert_eq!(query, expected, "{source:?}");

    let header = template.render(props, Context::Header(HEADER));
    match text.chars().find(|&c| c.is_control() && c != '\t') {
        Some(bad) => assert!(
            matches!(&header, Err(RenderError::HeaderChar { header, ch, .. })
                if header == HEADER && *ch == bad),
            "{source:?}: {header:?}, first control {bad:?}"
        ),
        None => assert_eq!(header.as_ref(), Ok(&text), "{source:?}"),
    }

    let json = template.render(props, Context::Json).unwrap();
    assert_eq!(serde_json::from_str::<String>(&json).unwrap(), text);

    let form = template.render(props, Context::Form).unwrap();
    assert!(!form.contains(['&', '=', ' ', '#']), "{form:?}");
    let decoded: Vec<_> = form_urlencoded::parse(form.as_bytes()).collect();
    match decoded.as_slice() {
        [] => assert!(text.is_empty()),
        [(key, value)] => assert_eq!((key.as_ref(), value.as_ref()), (text.as_str(), "")),
        more => panic!("{source:?}: form {form:?} decodes to {more:?}"),
    }
}

/// Values are percent-encoded into one path segment, and a value never
/// makes a segment `.` or `..` as a URL parser reads it (`\\` separates
/// segments like `/`, `%2e` is a dot).
fn path_segment(source: &str, template: &Template, props: &Properties) {
    let mut expected = String::new();
    let mut spans = Vec::new();
    for (is_value, s) in pieces(template, props) {
        if is_value {
            let start = expected.len();
            expected.extend(utf8_percent_encode(s, UNRESERVED));
            spans.push(start..expected.len());
        } else {
            expected.push_str(s);
        }
    }
    // Each `/`-separated segment: its range, whether it is a dot segment,
    // whether a value's bytes are in it, whether a value starts in it (or
    // right at its end: an empty value there counts as standing in it).
    let mut segments = Vec::new();
    let mut start = 0;
    for seg in expected.split(['/', '\\']) {
        let end = start + seg.len();
        let dot = is_dot_segment(seg);
        let holds_value = spans
            .iter()
            .any(|s| !s.is_empty() && s.start >= start && s.end <= end);
        let touched = spans.iter().any(|s| s.start >= start && s.start <= end);
        segments.push((seg.to_string(), dot, holds_value, touched));
        start = end + 1;
    }
    match template.render(props, Context::PathSegment) {
        Ok(out) => {
            assert_eq!(out, expected, "{source:?}");
            for (seg, dot, holds_value, _) in &segments {
                assert!(
                    !(*dot && *holds_value),
                    "{source:?}: a value made the path segment {seg:?}"
                );
            }
        }
        Err(RenderError::DotSegment { segment, .. }) => {
            assert!(
                segments
                    .iter()
                    .any(|(seg, dot, _, touched)| *seg == segment && *dot && *touched),
                "{source:?}: refused {segment:?}, which no value made a dot segment"
            );
        }
        Err(other) => panic!("{source:?}: {other:?}"),
    }
}

/// A dot segment as a URL parser reads it: tab, CR and LF dropped, spaces
/// and controls at the ends trimmed, `%2e` a dot.
fn is_dot_segment(seg: &str) -> bool {
    let read: String = seg
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let lower = read.to_ascii_lowercase().replace("%2e", ".");
    lower == "." || lower == ".."
}

/// A rendered URL has the template's own scheme, host and port, and as
/// many path segments and query pairs as the same template with every
/// value `x`: no value adds a segment, a parameter or a fragment.
fn url_render(
    source: &str,
    template: &Template,
    url: &UrlTemplate,
    props: &Properties,
    all_set: bool,
) {
    let rendered = url.render(props);
    if !all_set {
        assert!(
            matches!(rendered, Err(RenderError::Missing { .. })),
            "{source:?}: {rendered:?}"
        );
        return;
    }
    let Ok(rendered) = rendered else { return };
    // Other schemes have their own path rules (in `file:` an empty value
    // between slashes collapses them) and the engine requests only these.
    if !matches!(rendered.scheme(), "http" | "https") {
        return;
    }
    let plain: Properties = template.names().into_iter().map(|n| (n, "x")).collect();
    let plain = url
        .render(&plain)
        .unwrap_or_else(|e| panic!("{source:?}: renders with its values but not with x: {e}"));
    // A `..` or `.` the author wrote removes segments, and which ones may
    // depend on the values: url 2.5 does not remove a segment that looks
    // like a Windows drive letter (`c:`) even in http URLs, so in
    // `http://h/{{v}}:/..` the value `c` keeps a segment that `d1` would
    // not. Segment counts are compared only without such literal segments.
    let with_x: String = template
        .segments()
        .map(|s| match s {
            Segment::Literal(text) => text,
            Segment::Property(_) => "x",
        })
        .collect();
    let literal_dots = with_x.split(['/', '\\']).any(is_dot_segment);
    let shape = |u: &Url| {
        (
            u.scheme().to_string(),
            u.host_str().map(str::to_string),
            u.port_or_known_default(),
            u.path_segments()
                .map(Iterator::count)
                .filter(|_| !literal_dots),
            u.query().map(|q| q.split('&').count()),
            u.fragment().is_some(),
        )
    };
    assert_eq!(
        shape(&rendered),
        shape(&plain),
        "{source:?}: {rendered} against {plain}"
    );
    // The scheme and host are the template's literal prefix's.
    if let Some(Segment::Literal(first)) = template.segments().next()
        && let Some(authority) = first.find("://").map(|i| i + 3)
    {
        let end = first[authority..]
            .find(['/', '?', '#'])
            .map_or(first.len(), |i| authority + i);
        if let Ok(prefix) = Url::parse(&first[..end]) {
            assert_eq!(
                (
                    prefix.scheme(),
                    prefix.host_str(),
                    prefix.port_or_known_default()
                ),
                (
                    rendered.scheme(),
                    rendered.host_str(),
                    rendered.port_or_known_default()
                ),
                "{source:?}: {rendered}"
            );
        }
    }
}

/// Text that the fuzzers' module directory holds in a file that is not
/// wasm: no flow error may show it (unless the flow itself contains it).
pub const SECRET: &str = "sk-live-fuzz-7f3a9c0d2e1b";

/// A valid ABI v1 module, as wasm bytes (hand-assembled, so the fuzz crate
/// needs no WAT parser): memory, `chatflow_abi_v1`, `chatflow_run`
/// returning 0.
pub const MINIMAL_MODULE: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    0x01, 0x08, 0x02, 0x60, 0x00, 0x00, 0x60, 0x00, 0x01, 0x7f, // types: ()->(), ()->i32
    0x03, 0x03, 0x02, 0x00, 0x01, // functions: type 0, type 1
    0x05, 0x03, 0x01, 0x00, 0x01, // memory: min 1
    0x07, 0x2b, 0x03, // exports: 3
    0x06, b'm', b'e', b'm', b'o', b'r', b'y', 0x02, 0x00, //
    0x0f, b'c', b'h', b'a', b't', b'f', b'l', b'o', b'w', b'_', b'a', b'b', b'i', b'_', b'v', b'1',
    0x00, 0x00, //
    0x0c, b'c', b'h', b'a', b't', b'f', b'l', b'o', b'w', b'_', b'r', b'u', b'n', 0x00,
    0x01, //
    0x0a, 0x09, 0x02, 0x02, 0x00, 0x0b, 0x04, 0x00, 0x41, 0x00, 0x0b, // code
];

/// Creates the module directory the flow-loading checks use: `m.wasm`
/// (valid), `blocks/m.wasm` (valid), `secret.wasm` (text holding
/// [`SECRET`]), `dir/` (a directory).
pub fn module_dir(dir: &Path) {
    std::fs::create_dir_all(dir.join("blocks")).unwrap();
    std::fs::create_dir_all(dir.join("dir")).unwrap();
    std::fs::write(dir.join("m.wasm"), MINIMAL_MODULE).unwrap();
    std::fs::write(dir.join("blocks/m.wasm"), MINIMAL_MODULE).unwrap();
    std::fs::write(dir.join("secret.wasm"), format!("token = {SECRET}\n")).unwrap();
}

/// Whether the flow text itself holds [`SECRET`], in any case (URL schemes
/// and hosts are lowercased in messages) or behind JSON escapes (`\u0073`),
/// so that an error quoting the flow is not taken for one showing a file.
/// (The fuzzer does find the marker: it learns it from the comparison.)
fn mentions_secret(json: &str) -> bool {
    let mut text = String::with_capacity(json.len());
    let mut chars = json.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let unit = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                text.push(unit.unwrap_or('\u{fffd}'));
            }
            Some('n') => text.push('\n'),
            Some('t') => text.push('\t'),
            Some('r') => text.push('\r'),
            Some('b') => text.push('\u{8}'),
            Some('f') => text.push('\u{c}'),
            Some(other) => text.push(other),
            None => {}
        }
    }
    text.to_ascii_lowercase().contains(SECRET) || json.to_ascii_lowercase().contains(SECRET)
}

/// Loads `json` as a flow with modules from `dir` (see [`module_dir`]) and
/// `supplied.wasm` supplied as bytes: it either loads, consistently, or
/// fails with at least one typed problem whose text shows no file's
/// contents; the same input gives the same answer twice.
pub fn flow_load(engine: &Engine, json: &str, dir: &Path) -> Result<Flow, FlowError> {
    let load = || {
        engine
            .flow_loader()
            .module("supplied.wasm", MINIMAL_MODULE.to_vec())
            .load_str("fuzz.json", json, dir)
    };
    let result = load();
    match &result {
        Ok(flow) => {
            let ids: Vec<&str> = flow.block_ids().collect();
            assert!(ids.contains(&flow.start()), "{json}");
            for id in ids {
                assert!(flow.block_type(id).is_some(), "{json}: {id}");
            }
            for warning in flow.warnings() {
                assert!(!warning.to_string().is_empty());
            }
            assert!(load().is_ok(), "{json}: loads once only");
        }
        Err(err) => {
            assert_eq!(err.origin, "fuzz.json");
            assert!(
                !err.problems.is_empty(),
                "{json}: an error without problems"
            );
            let text = err.to_string();
            for problem in &err.problems {
                assert!(text.contains(&problem.to_string()), "{json}");
            }
            if !mentions_secret(json) {
                assert!(
                    !text.to_ascii_lowercase().contains(SECRET),
                    "{json}: the error shows a file: {text}"
                );
            }
            let again = load().map(|_| ()).unwrap_err().to_string();
            assert_eq!(text, again, "{json}");
        }
    }
    result
}
