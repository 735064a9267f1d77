//! `Context::select_json` / `Context::select_xml` (the host's selectors)
//! from a Rust guest, checked against the ABI's cases and the corpus, and
//! against the SDK's own parse of the same document inside the guest
//! (`sdk_selectors` with `compare_in_guest`).

use chatflow_engine::Properties;
use chatflow_engine::sandbox::{CodeModule, Limits, Output, Sandbox};
use chatflow_test_artifacts::SDK_SELECTORS;
use serde_json::Value;

use super::{corpus, load, ok, sandbox, set};

/// `test-guests/tests/selector_cases.json`: the same cases the native test
/// host must pass (`test-guests/tests/native.rs`).
const CASES: &str = include_str!("../../../../test-guests/tests/selector_cases.json");

#[derive(serde::Deserialize)]
struct Case {
    about: String,
    doc: Option<String>,
    #[serde(default)]
    json: Vec<(String, String)>,
    #[serde(default)]
    xml: Vec<(String, String)>,
}

/// Runs `sdk_selectors` on `doc` with the selectors of each kind, comparing
/// in the guest too, with room for corpus-sized values.
async fn select(
    sb: &Sandbox,
    module: &CodeModule,
    doc: Option<&str>,
    json: &[&str],
    xml: &[&str],
) -> Output {
    let mut props = Properties::new();
    props.set("compare_in_guest", "true");
    if let Some(doc) = doc {
        props.set("doc", doc);
    }
    if !json.is_empty() {
        props.set("json_pointers", json.join("\n"));
    }
    if !xml.is_empty() {
        props.set("xml_paths", xml.join("\n"));
    }
    let limits = Limits::default()
        .with_fuel(5_000_000_000)
        .with_written_bytes(64 << 20)
        .with_property_value_bytes(16 << 20);
    ok(sb.run(module, &props, &limits).await)
}

fn get<'o>(out: &'o Output, kind: &str, i: usize, suffix: &str) -> &'o str {
    set(out, &format!("{kind}_{i}{suffix}")).unwrap_or_else(|| panic!("{kind}_{i}{suffix} not set"))
}

/// The ABI's open corners (line endings, entities, undeclared prefixes,
/// namespace declarations, one element per step, path syntax, JSON values
/// as written, the order of checks) in the real host selectors, and for
/// XML in the SDK's guest-side parse: exactly the results the native test
/// host gives for the same file.
#[tokio::test]
async fn selector_cases_agree_with_the_abi() {
    let sb = sandbox();
    let module = load(&sb, SDK_SELECTORS);
    let cases: Vec<Case> = serde_json::from_str(CASES).unwrap();
    assert!(cases.len() >= 15);
    for case in &cases {
        let json: Vec<&str> = case.json.iter().map(|(s, _)| s.as_str()).collect();
        let xml: Vec<&str> = case.xml.iter().map(|(s, _)| s.as_str()).collect();
        let out = select(&sb, &module, case.doc.as_deref(), &json, &xml).await;
        for (kind, list) in [("json", &case.json), ("xml", &case.xml)] {
            for (i, (selector, want)) in list.iter().enumerate() {
                let host = get(&out, kind, i, "");
                assert_eq!(host, want, "{}: host {kind} {selector:?}", case.about);
                if kind == "xml" && case.doc.is_some() {
                    let guest = get(&out, kind, i, "_guest");
                    assert_eq!(guest, want, "{}: guest {selector:?}", case.about);
                }
            }
        }
    }
}

/// Host JSON selection and the guest's serde_json agree: strings exactly,
/// other values as JSON values (the host returns the text as written, the
/// guest re-serializes).
fn assert_json_agrees(host: &str, guest: &str, what: &str) {
    if host == guest {
        return;
    }
    let parsed = (
        serde_json::from_str::<Value>(host),
        serde_json::from_str::<Value>(guest),
    );
    match parsed {
        (Ok(h), Ok(g)) => assert_eq!(h, g, "{what}"),
        _ => panic!("{what}: host {host:?}, guest {guest:?}"),
    }
}

/// Pointers into a document: members and first elements down to depth 3.
fn pointers(value: &Value) -> Vec<String> {
    fn walk(v: &Value, at: String, depth: usize, out: &mut Vec<String>) {
        out.push(at.clone());
        if depth == 0 {
            return;
        }
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter().take(4) {
                    let token = k.replace('~', "~0").replace('/', "~1");
                    walk(child, format!("{at}/{token}"), depth - 1, out);
                }
            }
            Value::Array(items) => {
                for i in [0, items.len().saturating_sub(1)] {
                    if let Some(item) = items.get(i) {
                        walk(item, format!("{at}/{i}"), depth - 1, out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, String::new(), 3, &mut out);
    out.dedup();
    out
}

#[tokio::test]
async fn json_corpus_host_and_guest_agree() {
    let Some(dir) = corpus() else { return };
    let sb = sandbox();
    let module = load(&sb, SDK_SELECTORS);
    for file in [
        "demo.json",
        "github_events.json",
        "twitter.json",
        "citm_catalog.json",
        "canada.json",
    ] {
        let text = std::fs::read_to_string(dir.join("json").join(file)).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        let mut list: Vec<String> = pointers(&value)
            .into_iter()
            .skip(1) // the whole document
            .filter(|p| value.pointer(p).unwrap().to_string().len() < 1 << 20)
            .take(16)
            .collect();
        list.push("/definitely/not/here".into());
        let refs: Vec<&str> = list.iter().map(String::as_str).collect();
        let out = select(&sb, &module, Some(&text), &refs, &[]).await;
        for (i, pointer) in list.iter().enumerate() {
            let what = format!("{file} {pointer}");
            let host = get(&out, "json", i, "");
            let guest = get(&out, "json", i, "_guest");
            assert_json_agrees(host, guest, &what);
            match value.pointer(pointer) {
                Some(Value::String(s)) => assert_eq!(host, s, "{what}"),
                Some(other) => {
                    assert_eq!(
                        &serde_json::from_str::<Value>(host).unwrap(),
                        other,
                        "{what}"
                    )
                }
                None => assert_eq!(host, "<none>", "{what}"),
            }
        }
    }
}

#[tokio::test]
async fn xml_corpus_host_and_guest_agree() {
    let Some(dir) = corpus() else { return };
    let sb = sandbox();
    let module = load(&sb, SDK_SELECTORS);
    let cases: &[(&str, &[&str])] = &[
        (
            "sample_rss.xml",
            &[
                "/rss/channel/title",
                "/rss/channel/item[2]/title",
                "/rss/channel/item[3]/description",
                "/rss/channel/item/enclosure/@url",
                "/rss/channel/itunes:author",
                "/rss/channel/author",
                "/rss/@version",
                "/rss/@atom",
                "/rss/@xmlns:atom",
                "/rss/channel/item[1000]",
            ],
        ),
        (
            "linescore.xml",
            &["/game/@venue", "/game/inning_line_score[3]@away", "/game"],
        ),
        ("huge.xml", &["/definitely-not-the-root"]),
        (
            "gigantic.svg",
            &["/svg/@width", "/svg/@viewBox", "/svg/g/@id"],
        ),
    ];
    for (file, paths) in cases {
        let text = std::fs::read_to_string(dir.join("xml").join(file)).unwrap();
        let out = select(&sb, &module, Some(&text), &[], paths).await;
        for (i, path) in paths.iter().enumerate() {
            let host = get(&out, "xml", i, "");
            let guest = get(&out, "xml", i, "_guest");
            assert_eq!(host, guest, "{file} {path}");
            assert!(
                !host.starts_with("<invalid>") && !host.starts_with("<not parseable>"),
                "{file} {path}: {host}"
            );
        }
        let first = get(&out, "xml", 0, "");
        match *file {
            "sample_rss.xml" => {
                assert_eq!(first, "The Linux Action Show! OGG");
                assert_eq!(get(&out, "xml", 6, ""), "2.0");
                assert_eq!(
                    get(&out, "xml", 7, ""),
                    "<none>",
                    "xmlns:atom is no attribute"
                );
                assert_eq!(get(&out, "xml", 8, ""), "<none>");
                assert_eq!(get(&out, "xml", 9, ""), "<none>");
            }
            "linescore.xml" => assert_eq!(first, "Generic"),
            "huge.xml" => assert_eq!(first, "<none>", "well-formed, root not matched"),
            _ => assert_ne!(first, "<none>"),
        }
    }
}
