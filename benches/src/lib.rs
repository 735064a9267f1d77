//! Shared pieces of the chatflow benchmarks: the document corpus and the
//! summaries both the native and the sandboxed variants must agree on.
//!
//! The corpus directory comes from `CHATFLOW_CORPUS` (default
//! `../shared/corpus` next to the workspace). When it is absent (a fresh
//! clone has no `../shared`), every document is replaced by a generated one
//! of the same shape and about the same size, and the bench says so, so
//! `cargo bench` runs anywhere; figures in `docs/benchmarks.md` come from the
//! real files.

#![deny(missing_docs)]

use std::path::PathBuf;
use std::sync::Once;

pub use chatflow_bench_walk as walk;

mod generate;
pub mod matched;
pub mod report;
pub mod sandboxed;
pub mod server;

/// One benchmark input.
#[derive(Debug, Clone)]
pub struct Document {
    /// File name, e.g. `twitter.json`.
    pub name: &'static str,
    /// The document's bytes.
    pub bytes: Vec<u8>,
    /// Whether the bytes were generated because the corpus file was absent.
    pub generated: bool,
    /// What the document is like (said in the bench output and the report).
    pub about: &'static str,
}

/// The JSON inputs, in the order the report lists them.
pub const JSON_FILES: [(&str, &str); 5] = [
    (
        "twitter.json",
        "Twitter search API response, 632 KB: text heavy, much non-ASCII, deep objects",
    ),
    (
        "citm_catalog.json",
        "ticketing catalogue, 1.7 MB: many small objects and integer ids",
    ),
    (
        "canada.json",
        "GeoJSON outline of Canada, 2.2 MB: almost all floating-point numbers",
    ),
    (
        "github_events.json",
        "GitHub events API response, 65 KB: typical REST payload",
    ),
    (
        "demo.json",
        "the JSON spec's Image example, 387 B: a small API response",
    ),
];

/// The XML inputs, in the order the report lists them.
pub const XML_FILES: [(&str, &str); 4] = [
    (
        "sample_rss.xml",
        "podcast RSS 2.0 feed, 198 KB: namespaces, escaped HTML in text",
    ),
    (
        "huge.xml",
        "search API XML response, 835 KB: many elements with attributes",
    ),
    (
        "gigantic.svg",
        "SVG, 1.3 MB: few elements, very large attribute values",
    ),
    (
        "linescore.xml",
        "MLB gameday REST response, 3.7 KB: a small API response",
    ),
];

/// The corpus directory: `$CHATFLOW_CORPUS`, else `../shared/corpus` beside
/// the workspace.
pub fn corpus_dir() -> PathBuf {
    match std::env::var_os("CHATFLOW_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    }
}

fn load(kind: &str, files: &[(&'static str, &'static str)]) -> Vec<Document> {
    static WARN: Once = Once::new();
    let dir = corpus_dir().join(kind);
    files
        .iter()
        .map(|&(name, about)| match std::fs::read(dir.join(name)) {
            Ok(bytes) => Document {
                name,
                bytes,
                generated: false,
                about,
            },
            Err(_) => {
                WARN.call_once(|| {
                    eprintln!(
                        "note: corpus file {} not found (set CHATFLOW_CORPUS); \
                         using generated documents of the same shape",
                        dir.join(name).display()
                    )
                });
                Document {
                    name,
                    bytes: generate::document(name),
                    generated: true,
                    about,
                }
            }
        })
        .collect()
}

/// Says once on stderr when the environment skews the figures:
/// `RUST_BACKTRACE` makes every error (in wasmtime, in the engine) capture a
/// backtrace.
pub fn warn_about_environment() {
    static WARN: Once = Once::new();
    WARN.call_once(|| {
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            eprintln!(
                "note: RUST_BACKTRACE is set: errors capture backtraces, which slows \
                 error paths; unset it for reference figures"
            );
        }
    });
}

/// The JSON documents: corpus files, or generated stand-ins.
pub fn json_documents() -> Vec<Document> {
    load("json", &JSON_FILES)
}

/// The XML documents: corpus files, or generated stand-ins.
pub fn xml_documents() -> Vec<Document> {
    load("xml", &XML_FILES)
}

/// Three JSON pointers a Code block would pull out of each document with the
/// host selector (`json_select`).
pub fn json_selectors(name: &str) -> [&'static str; 3] {
    match name {
        "twitter.json" => [
            "/statuses/0/user/screen_name",
            "/statuses/50/text",
            "/search_metadata/count",
        ],
        "citm_catalog.json" => [
            "/performances/0/venueCode",
            "/events/138586341/name",
            "/performances/200/prices/0/amount",
        ],
        "canada.json" => [
            "/type",
            "/features/0/properties/name",
            "/features/0/geometry/coordinates/0/0/0",
        ],
        "github_events.json" => ["/0/type", "/0/actor/login", "/29/repo/name"],
        _ => ["/Image/Title", "/Image/Thumbnail/Url", "/Image/IDs/3"],
    }
}

/// What is at each pointer of a JSON document, from a native full parse:
/// the reference `json_select` answers are checked against.
pub fn native_json_select(bytes: &[u8], pointers: &[&str]) -> Vec<Option<serde_json::Value>> {
    let value: serde_json::Value = serde_json::from_slice(bytes).expect("the document is JSON");
    pointers.iter().map(|p| value.pointer(p).cloned()).collect()
}

/// Whether `answer`, what `json_select` returned, is `want`: a string's
/// text unquoted, any other value as JSON text (numbers as written in the
/// document, so they are compared as values).
pub fn json_select_matches(answer: Option<&str>, want: Option<&serde_json::Value>) -> bool {
    match (answer, want) {
        (None, None) => true,
        (Some(text), Some(serde_json::Value::String(s))) => text == s,
        (Some(text), Some(value)) => {
            serde_json::from_str::<serde_json::Value>(text).is_ok_and(|parsed| parsed == *value)
        }
        _ => false,
    }
}

/// Three simple XML paths a Code block would pull out of each document with
/// the host selector (`xml_select`).
pub fn xml_selectors(name: &str) -> [&'static str; 3] {
    match name {
        "sample_rss.xml" => [
            "/rss/channel/title",
            "/rss/channel/item[3]/title",
            "/rss/channel/item[10]/enclosure/@url",
        ],
        "huge.xml" => [
            "/response/@to",
            "/response/summary/@count",
            "/response/summary/types/type[3]/@label",
        ],
        "gigantic.svg" => ["/svg/@width", "/svg/@height", "/svg/linearGradient/@id"],
        _ => [
            "/game/@id",
            "/game/@home_team_name",
            "/game/linescore[2]/@away_inning_runs",
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_documents_parse_like_the_originals() {
        for (name, _) in JSON_FILES {
            let bytes = generate::document(name);
            let s = walk::json_walk(&bytes).unwrap();
            assert!(s.objects > 0, "{name}");
            let shape = walk::Shape::from_file_name(name).unwrap();
            let t = walk::json_typed(shape, &bytes).unwrap();
            assert!(t.records > 0, "{name}");
        }
        for (name, _) in XML_FILES {
            let s = walk::xml_walk(&generate::document(name)).unwrap();
            assert!(s.elements > 0 && s.attributes > 0, "{name}");
        }
    }

    #[test]
    fn json_select_answers_are_compared_as_values() {
        let doc = br#"{"a": "x", "n": -65.613616999999977, "o": {"k": [1, 2]}}"#;
        let want = native_json_select(doc, &["/a", "/n", "/o", "/missing"]);
        assert!(json_select_matches(Some("x"), want[0].as_ref()));
        assert!(json_select_matches(
            Some("-65.613616999999977"),
            want[1].as_ref()
        ));
        assert!(json_select_matches(
            Some(r#"{"k":[1,2]}"#),
            want[2].as_ref()
        ));
        assert!(json_select_matches(None, want[3].as_ref()));
        assert!(!json_select_matches(Some("\"x\""), want[0].as_ref()));
        assert!(!json_select_matches(Some("-65.6"), want[1].as_ref()));
        assert!(!json_select_matches(None, want[0].as_ref()));
    }

    #[test]
    fn generated_documents_are_about_the_right_size() {
        for (name, want) in [
            ("twitter.json", 631_515),
            ("citm_catalog.json", 1_727_204),
            ("canada.json", 2_251_051),
            ("github_events.json", 65_132),
            ("sample_rss.xml", 197_761),
            ("huge.xml", 834_666),
            ("gigantic.svg", 1_335_503),
        ] {
            let got = generate::document(name).len() as f64;
            let ratio = got / want as f64;
            assert!(
                (0.8..1.25).contains(&ratio),
                "{name}: {got} bytes vs {want}"
            );
        }
    }
}
