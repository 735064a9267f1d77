//! Every test guest run natively against the SDK's test host.
//!
//! These are the expectations the engine's integration tests check again
//! with the same guests built for wasm32 and run in the real sandbox: if a
//! guest behaves differently there, the engine or the SDK's wasm path is
//! wrong, not the guest.

#![allow(dead_code)]
// each guest's host `main`
#![allow(
    clippy::duplicate_mod,
    reason = "a guest and its other-allocator twin share one body file (src/blocks/); each guest is included whole"
)]

#[path = "../src/bin/bench_empty.rs"]
mod bench_empty;
#[path = "../src/bin/bench_empty_no_panic_hook.rs"]
mod bench_empty_no_panic_hook;
#[path = "../src/bin/bench_get_bytes.rs"]
mod bench_get_bytes;
#[path = "../src/bin/bench_http.rs"]
mod bench_http;
#[path = "../src/bin/bench_json_select.rs"]
mod bench_json_select;
#[path = "../src/bin/bench_json_typed.rs"]
mod bench_json_typed;
#[path = "../src/bin/bench_json_walk.rs"]
mod bench_json_walk;
#[path = "../src/bin/bench_json_walk_dlmalloc.rs"]
mod bench_json_walk_dlmalloc;
#[path = "../src/bin/bench_parse_set3.rs"]
mod bench_parse_set3;
#[path = "../src/bin/bench_parse_set3_dlmalloc.rs"]
mod bench_parse_set3_dlmalloc;
#[path = "../src/bin/bench_xml_select.rs"]
mod bench_xml_select;
#[path = "../src/bin/bench_xml_walk.rs"]
mod bench_xml_walk;
#[path = "../src/bin/bench_xml_walk_dlmalloc.rs"]
mod bench_xml_walk_dlmalloc;
#[path = "../src/bin/sdk_alloc.rs"]
mod sdk_alloc;
#[path = "../src/bin/sdk_alloc_std.rs"]
mod sdk_alloc_std;
#[path = "../src/bin/sdk_err.rs"]
mod sdk_err;
#[path = "../src/bin/sdk_http.rs"]
mod sdk_http;
#[path = "../src/bin/sdk_json_parse.rs"]
mod sdk_json_parse;
#[path = "../src/bin/sdk_large_values.rs"]
mod sdk_large_values;
#[path = "../src/bin/sdk_messages.rs"]
mod sdk_messages;
#[path = "../src/bin/sdk_panic.rs"]
mod sdk_panic;
#[path = "../src/bin/sdk_roundtrip.rs"]
mod sdk_roundtrip;
#[path = "../src/bin/sdk_selectors.rs"]
mod sdk_selectors;

use chatflow_sdk::testing::{Failure, Stub, TestHost};

/// The corpus (`../shared/corpus`, or `CHATFLOW_CORPUS`), if present.
fn corpus(file: &str) -> Option<String> {
    let dir = std::env::var_os("CHATFLOW_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
        });
    match std::fs::read_to_string(dir.join(file)) {
        Ok(text) => Some(text),
        Err(_) => {
            eprintln!(
                "skipping: corpus file {file} not found under {}",
                dir.display()
            );
            None
        }
    }
}

#[test]
fn roundtrip() {
    let input = "Grüße, 世界 🌍 \"quoted\" {{not a template}}";
    let outcome = TestHost::new()
        .property("input", input)
        .property("to_remove", "x")
        .run(sdk_roundtrip::run);
    outcome.assert_success();
    assert_eq!(outcome.property("output"), Some(input));
    assert_eq!(
        outcome.property("input_len"),
        Some(input.len().to_string().as_str())
    );
    assert!(outcome.removed("to_remove"));
    assert_eq!(
        outcome.property("read_back"),
        Some("written by sdk_roundtrip ✓")
    );

    let outcome = TestHost::new().run(sdk_roundtrip::run);
    assert_eq!(
        outcome.failure_message(),
        Some("property `input` is not set")
    );
}

#[test]
fn large_values() {
    let big = "Ωmega-".repeat(200_000); // 1.4 MB
    let outcome = TestHost::new()
        .property("big", big.clone())
        .property("make_len", "300001")
        .run(sdk_large_values::run);
    outcome.assert_success();
    assert_eq!(outcome.property("big_copy"), Some(big.as_str()));
    assert_eq!(
        outcome.property("big_len"),
        Some(big.len().to_string().as_str())
    );
    assert_eq!(outcome.property("big_chars"), Some("1200000"));
    let made_len: usize = outcome.property("made_len").unwrap().parse().unwrap();
    assert!((299_998..=300_001).contains(&made_len), "{made_len}");
    assert_eq!(outcome.property("made").unwrap().len(), made_len);
}

#[test]
fn panic() {
    let outcome = TestHost::new()
        .property("reason", "testing")
        .run(sdk_panic::run);
    let Some(Failure::Panic { message }) = outcome.failure() else {
        panic!("{:?}", outcome.failure());
    };
    assert!(
        message.starts_with("panicked at test-guests/tests/../src/bin/sdk_panic.rs:"),
        "{message}"
    );
    assert!(
        message.ends_with(": sdk_panic: deliberate panic: testing"),
        "{message}"
    );
    assert!(outcome.changes().is_empty());
    assert!(outcome.messages().is_empty());
}

#[test]
fn err_modes() {
    let cases = [
        (None, "sdk_err: deliberate failure with ünïcødé"),
        (Some("missing"), "property `does not exist` is not set"),
        (
            Some("json"),
            "property `API Response` is not valid JSON for the expected shape: expected value at line 1 column 1",
        ),
        (
            Some("invalid_name"),
            "set: property name \"{bad}\" contains '{', which is not allowed in names",
        ),
    ];
    for (mode, want) in cases {
        let mut host = TestHost::new().api_response("<xml/>");
        if let Some(mode) = mode {
            host = host.property("mode", mode);
        }
        let outcome = host.run(sdk_err::run);
        assert_eq!(
            outcome.failure(),
            Some(&Failure::Returned {
                code: 1,
                message: want.to_string()
            }),
            "{mode:?}"
        );
        assert!(outcome.changes().is_empty());
        assert!(outcome.messages().is_empty());
        assert_eq!(outcome.logs().len(), 1, "logs survive a failed run");
    }
}

#[test]
fn http_success_and_errors() {
    let outcome = TestHost::new()
        .property("url", "http://api.test/echo")
        .property("method", "POST")
        .property("query", "q=a b")
        .property("header", "X-Test: yes")
        .property("json_body", r#"{"n": 1}"#)
        .stub(
            Stub::post("http://api.test/echo?q=a%20b")
                .header("X-Echo", "1")
                .json(r#"{"ok":true}"#),
        )
        .run(sdk_http::run);
    outcome.assert_success();
    assert_eq!(outcome.property("status"), Some("200"));
    assert_eq!(outcome.property("body"), Some(r#"{"ok":true}"#));
    assert_eq!(outcome.property("content_type"), Some("application/json"));
    assert_eq!(
        outcome.property("headers"),
        Some("x-echo: 1\ncontent-type: application/json")
    );
    let request = &outcome.requests()[0];
    assert_eq!(request.header("x-test"), Some("yes"));
    assert_eq!(request.body(), Some(r#"{"n":1}"#));

    let cases = [
        ("https://denied.test/", "denied"),
        ("https://slow.test/", "timeout"),
        ("https://down.test/", "connection"),
        ("::not a url::", "invalid"),
    ];
    for (url, kind) in cases {
        let outcome = TestHost::new()
            .property("url", url)
            .deny_host("denied.test")
            .stub(Stub::get("https://slow.test/").timeout())
            .stub(Stub::get("https://down.test/").connection_error("connection refused"))
            .run(sdk_http::run);
        outcome.assert_success();
        assert_eq!(outcome.property("error_kind"), Some(kind), "{url}");
    }

    let outcome = TestHost::new()
        .property("url", "https://denied.test/x?secret=1")
        .property("fail_on_error", "true")
        .deny_host("denied.test")
        .run(sdk_http::run);
    assert!(
        matches!(outcome.failure(), Some(Failure::HttpDenied { .. })),
        "{:?}",
        outcome.failure()
    );
}

#[test]
fn selectors() {
    // A selected object is its text as written, whitespace removed: member
    // order and number spelling are kept (docs/abi.md), as in the engine.
    let doc = r#"{"user": {"name": "Ada", "age": 36, "roles": ["admin", "dev"], "score": 1.50e2}}"#;
    let outcome = TestHost::new()
        .property("doc", doc)
        .property(
            "json_pointers",
            "/user/name\n/user/roles/1\n/user/age\n/user/missing\nbad\n",
        )
        .run(sdk_selectors::run);
    outcome.assert_success();
    let got: Vec<_> = (0..6)
        .map(|i| outcome.property(&format!("json_{i}")).unwrap())
        .collect();
    assert_eq!(
        got,
        [
            "Ada",
            "dev",
            "36",
            "<none>",
            "<invalid>",
            &doc.replace(' ', "")
        ]
    );

    let xml = "<r><a x='1'>one</a><a>two &amp; three</a></r>";
    let outcome = TestHost::new()
        .property("doc", xml)
        .property("xml_paths", "/r/a[2]\n/r/a@x\n/r/b\nr")
        .property("compare_in_guest", "true")
        .run(sdk_selectors::run);
    outcome.assert_success();
    for i in 0..4 {
        assert_eq!(
            outcome.property(&format!("xml_{i}")),
            outcome.property(&format!("xml_{i}_guest"))
        );
    }
    let got: Vec<_> = (0..4)
        .map(|i| outcome.property(&format!("xml_{i}")).unwrap())
        .collect();
    assert_eq!(got, ["two & three", "1", "<none>", "<invalid>"]);

    let outcome = TestHost::new()
        .property("doc", "{not json")
        .property("json_pointers", "/a")
        .property("xml_paths", "/a")
        .run(sdk_selectors::run);
    outcome.assert_success();
    assert_eq!(outcome.property("json_0"), Some("<not parseable>"));
    assert_eq!(outcome.property("xml_0"), Some("<not parseable>"));
}

#[test]
fn selectors_on_the_corpus() {
    let Some(twitter) = corpus("json/twitter.json") else {
        return;
    };
    let native: serde_json::Value = serde_json::from_str(&twitter).unwrap();
    let pointers = [
        "/statuses/0/id_str",
        "/statuses/0/user/screen_name",
        "/search_metadata/count",
    ];
    let outcome = TestHost::new()
        .property("doc", twitter)
        .property("json_pointers", pointers.join("\n"))
        .run(sdk_selectors::run);
    outcome.assert_success();
    for (i, pointer) in pointers.iter().enumerate() {
        let want = match native.pointer(pointer).unwrap() {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(
            outcome.property(&format!("json_{i}")),
            Some(want.as_str()),
            "{pointer}"
        );
    }
    let Some(rss) = corpus("xml/sample_rss.xml") else {
        return;
    };
    let outcome = TestHost::new()
        .property("doc", rss)
        .property(
            "xml_paths",
            "/rss/channel/title\n/rss/channel/item[2]/title\n/rss/@version",
        )
        .property("compare_in_guest", "true")
        .run(sdk_selectors::run);
    outcome.assert_success();
    for i in 0..3 {
        let (host, guest) = (format!("xml_{i}"), format!("xml_{i}_guest"));
        assert_eq!(outcome.property(&host), outcome.property(&guest));
    }
    assert_eq!(outcome.property("xml_2"), Some("2.0"));
    assert!(!outcome.property("xml_0").unwrap().is_empty());
    assert!(!outcome.property("xml_1").unwrap().is_empty());
}

#[test]
fn messages_and_logs() {
    let outcome = TestHost::new()
        .property("count", "2")
        .property("log_lines", "3")
        .run(sdk_messages::run);
    outcome.assert_success();
    assert_eq!(outcome.messages(), ["message 1", "message 2"]);
    assert_eq!(outcome.logs().len(), 4 + 3);
    assert_eq!(outcome.logs_dropped(), 0);

    // The log budget, as the engine's sdk::messages test sets it: lines
    // that do not fit are dropped whole and counted, the run goes on.
    let outcome = TestHost::new()
        .property("count", "1")
        .property("log_lines", "100")
        .max_log_bytes(2_000)
        .run(sdk_messages::run);
    outcome.assert_success();
    // Each line takes its bytes and 64 more of the budget.
    let kept: usize = outcome.logs().iter().map(|l| l.message.len() + 64).sum();
    assert!(kept <= 2_000, "{kept}");
    assert_eq!(outcome.logs().len() as u64 + outcome.logs_dropped(), 104);
    assert_eq!(outcome.logs().len(), 4 + 10);
}

#[test]
fn json_parse_demo() {
    let Some(demo) = corpus("json/demo.json") else {
        return;
    };
    let outcome = TestHost::new().api_response(demo).run(sdk_json_parse::run);
    outcome.assert_success();
    assert_eq!(outcome.property("title"), Some("View from 15th Floor"));
    assert_eq!(outcome.property("width"), Some("800"));
    assert_eq!(
        outcome.property("thumbnail_url"),
        Some("http://www.example.com/image/481989943")
    );
}

#[test]
fn bench_guests() {
    use chatflow_bench_walk::{JsonSummary, Shape, TypedSummary, XmlSummary};

    TestHost::new().run(bench_empty::run).assert_success();
    TestHost::new()
        .run(bench_empty_no_panic_hook::run)
        .assert_success();

    let json = r#"{"a": [1, "xy", {"b": null}]}"#;
    for run in [bench_json_walk::run, bench_json_walk_dlmalloc::run] {
        let outcome = TestHost::new().api_response(json).run(run);
        outcome.assert_success();
        let got: JsonSummary = serde_json::from_str(outcome.property("summary").unwrap()).unwrap();
        assert_eq!(
            got,
            chatflow_bench_walk::json_walk(json.as_bytes()).unwrap()
        );
        assert_eq!(
            (got.objects, got.arrays, got.strings, got.nulls),
            (2, 1, 1, 1)
        );
    }

    let demo = r#"{"Image": {"Width": 800, "Height": 600, "Title": "T",
        "Thumbnail": {"Url": "http://x/1", "Height": 1, "Width": 2}, "IDs": [5, 6]}}"#;
    let outcome = TestHost::new()
        .api_response(demo)
        .property("document", "demo.json")
        .run(bench_json_typed::run);
    outcome.assert_success();
    let got: TypedSummary = serde_json::from_str(outcome.property("summary").unwrap()).unwrap();
    assert_eq!(
        got,
        chatflow_bench_walk::json_typed(Shape::Demo, demo.as_bytes()).unwrap()
    );
    let outcome = TestHost::new()
        .api_response(demo)
        .property("document", "nope.json")
        .run(bench_json_typed::run);
    assert!(outcome.failure_message().unwrap().contains("nope.json"));

    for run in [bench_parse_set3::run, bench_parse_set3_dlmalloc::run] {
        let outcome = TestHost::new().api_response(demo).run(run);
        outcome.assert_success();
        assert_eq!(outcome.property("title"), Some("T"));
        assert_eq!(outcome.property("thumbnail_url"), Some("http://x/1"));
        assert_eq!(outcome.property("first_id"), Some("5"));
    }

    let outcome = TestHost::new()
        .api_response(demo)
        .property("select_1", "/Image/Title")
        .property("select_2", "/Image/IDs/1")
        .property("select_3", "/Image/Nope")
        .run(bench_json_select::run);
    outcome.assert_success();
    assert_eq!(outcome.property("field_1"), Some("T"));
    assert_eq!(outcome.property("field_2"), Some("6"));
    assert!(outcome.removed("field_3"));

    let xml = "<a k='v'><b/>text<![CDATA[cd]]></a>";
    for run in [bench_xml_walk::run, bench_xml_walk_dlmalloc::run] {
        let outcome = TestHost::new().api_response(xml).run(run);
        outcome.assert_success();
        let got: XmlSummary = serde_json::from_str(outcome.property("summary").unwrap()).unwrap();
        assert_eq!(got, chatflow_bench_walk::xml_walk(xml.as_bytes()).unwrap());
        assert_eq!((got.elements, got.attributes, got.texts), (2, 1, 2));
    }

    let outcome = TestHost::new().api_response(xml).run(bench_get_bytes::run);
    outcome.assert_success();
    assert_eq!(
        outcome.property("bytes"),
        Some(xml.len().to_string().as_str())
    );
    let outcome = TestHost::new().run(bench_get_bytes::run);
    assert!(
        outcome
            .assert_failure()
            .message()
            .contains("`API Response` is not set"),
        "{:?}",
        outcome.failure_message()
    );

    let outcome = TestHost::new()
        .api_response(xml)
        .property("select_1", "/a/@k")
        .property("select_2", "/a")
        .property("select_3", "/a/c")
        .run(bench_xml_select::run);
    outcome.assert_success();
    assert_eq!(outcome.property("field_1"), Some("v"));
    assert_eq!(outcome.property("field_2"), Some("textcd"));
    assert!(outcome.removed("field_3"));

    let outcome = TestHost::new()
        .property("url", "https://api.example.com/ping")
        .stub(Stub::get("https://api.example.com/ping").body("pong"))
        .run(bench_http::run);
    outcome.assert_success();
    assert_eq!(outcome.property("status"), Some("200"));
    assert_eq!(outcome.property("body_bytes"), Some("4"));
}

#[test]
fn alloc_patterns() {
    // Natively both use the system allocator: every pattern succeeds. The
    // engine's tests run them in the sandbox, where the bump allocator's
    // `churn` hits a memory limit that the standard allocator does not.
    for run in [sdk_alloc::run, sdk_alloc_std::run] {
        for mode in ["hold", "lifo", "churn"] {
            let outcome = TestHost::new()
                .property("mode", mode)
                .property("chunks", "8")
                .property("chunk_kib", "64")
                .run(run);
            outcome.assert_success();
            assert_eq!(outcome.property("total_kib"), Some("512"), "{mode}");
        }
        let outcome = TestHost::new()
            .property("mode", "sideways")
            .property("chunks", "1")
            .property("chunk_kib", "1")
            .run(run);
        assert!(outcome.failure_message().unwrap().contains("sideways"));
        let outcome = TestHost::new().property("mode", "hold").run(run);
        assert!(outcome.failure_message().unwrap().contains("chunks"));
    }
}

/// The selector cases of `selector_cases.json` (the ABI's open corners: line
/// endings, entities, prefixes, namespace declarations, path syntax, JSON
/// text as written, the order of checks): the test host's selectors and the
/// SDK's own `xml::select` in the guest give exactly the expected results.
/// The engine's `sdk::selectors` test runs the same file in the sandbox.
#[test]
fn selector_cases_agree_with_the_abi() {
    #[derive(serde::Deserialize)]
    struct Case {
        about: String,
        doc: Option<String>,
        #[serde(default)]
        json: Vec<(String, String)>,
        #[serde(default)]
        xml: Vec<(String, String)>,
    }
    let cases: Vec<Case> = serde_json::from_str(include_str!("selector_cases.json")).unwrap();
    for case in cases {
        let lines = |list: &[(String, String)]| {
            list.iter()
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let mut host = TestHost::new().property("compare_in_guest", "true");
        if let Some(doc) = &case.doc {
            host = host.property("doc", doc.clone());
        }
        if !case.json.is_empty() {
            host = host.property("json_pointers", lines(&case.json));
        }
        if !case.xml.is_empty() {
            host = host.property("xml_paths", lines(&case.xml));
        }
        let outcome = host.run(sdk_selectors::run);
        outcome.assert_success();
        for (kind, list) in [("json", &case.json), ("xml", &case.xml)] {
            for (i, (selector, want)) in list.iter().enumerate() {
                let got = outcome.property(&format!("{kind}_{i}"));
                assert_eq!(
                    got,
                    Some(want.as_str()),
                    "{}: {kind} {selector:?}",
                    case.about
                );
                // The guest's own XML parse agrees with the host selector
                // (its JSON side is serde_json's Value, compared by the
                // engine's test semantically).
                if kind == "xml" && case.doc.is_some() {
                    let guest = outcome.property(&format!("{kind}_{i}_guest"));
                    assert_eq!(guest, got, "{}: in the guest, {selector:?}", case.about);
                }
            }
        }
    }
}
