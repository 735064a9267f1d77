//! `json_select` and `xml_select` from a guest, on small documents and on
//! the shared corpus (skipped with a message when it is absent).

use std::path::PathBuf;

use chatflow_engine::Properties;
use chatflow_engine::sandbox::{CodeModule, RunError, Sandbox};

use super::{IMPORTS, failed, ok, sandbox};

/// A guest that selects `$sel` (json or xml) from property `doc` with the
/// selector text at 64.., writes the result to `out`, and returns the
/// select's code if it is negative. 32 pages of memory; the buffer is
/// 1 MiB at 1 MiB.
fn selector_module(sb: &Sandbox, which: &str, selector: &str) -> CodeModule {
    let escaped: String = selector.bytes().map(|b| format!("\\{b:02x}")).collect();
    let wasm = wat::parse_str(format!(
        r#"(module {IMPORTS}
          (import "chatflow" "json_select" (func $json_select (param i32 i32 i32 i32 i32 i32) (result i32)))
          (import "chatflow" "xml_select" (func $xml_select (param i32 i32 i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 32)
          (data (i32.const 0) "docout")
          (data (i32.const 64) "{escaped}")
          (func (export "chatflow_abi_v1"))
          (func (export "chatflow_run") (result i32)
            (local $n i32)
            (local.set $n (call ${which}_select (i32.const 0) (i32.const 3) (i32.const 64) (i32.const {len})
                                               (i32.const 1048576) (i32.const 1048576)))
            (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (local.get $n))))
            (drop (call $property_set (i32.const 3) (i32.const 3) (i32.const 1048576) (local.get $n)))
            (i32.const 0)))"#,
        len = selector.len(),
    ))
    .unwrap();
    sb.load(&wasm).unwrap()
}

async fn select(sb: &Sandbox, which: &str, doc: &str, selector: &str) -> Result<String, i32> {
    let module = selector_module(sb, which, selector);
    let props: Properties = [("doc", doc)].into_iter().collect();
    let outcome = sb.run(&module, &props, &sb.default_limits()).await;
    match outcome.result {
        Ok(output) => Ok(output
            .changes
            .get("out")
            .flatten()
            .unwrap_or_default()
            .to_string()),
        Err(RunError::GuestFailed {
            code: Some(code), ..
        }) => Err(code),
        Err(other) => panic!("{selector}: {other:?}"),
    }
}

#[tokio::test]
async fn json_select_good_and_bad() {
    let sb = sandbox();
    let doc =
        r#"{"user": {"name": "Zoë", "id": 42}, "items": [{"id": 1}, {"id": 2}], "a/b": true}"#;
    let cases: &[(&str, Result<&str, i32>)] = &[
        ("/user/name", Ok("Zoë")),
        ("/user/id", Ok("42")),
        ("/items/1", Ok(r#"{"id":2}"#)),
        ("/a~1b", Ok("true")),
        ("/user/nope", Err(-1)),
        ("/items/5", Err(-1)),
        ("user", Err(-2)),
        ("/a~5", Err(-2)),
    ];
    for (pointer, want) in cases {
        let got = select(&sb, "json", doc, pointer).await;
        assert_eq!(got.as_deref().map_err(|c| *c), *want, "{pointer}");
    }
    assert_eq!(select(&sb, "json", "{not json", "/a").await, Err(-3));
    assert_eq!(select(&sb, "json", "<a/>", "").await, Err(-3));
}

#[tokio::test]
async fn xml_select_good_and_bad() {
    let sb = sandbox();
    let doc = r#"<order id="7"><items><item><name>Tea</name></item><item><name>Jam &amp; toast</name></item></items></order>"#;
    let cases: &[(&str, Result<&str, i32>)] = &[
        ("/order/@id", Ok("7")),
        ("/order/items/item[2]/name", Ok("Jam & toast")),
        ("/order/items/item[3]/name", Err(-1)),
        ("order", Err(-2)),
        ("/order/items[0]", Err(-2)),
    ];
    for (path, want) in cases {
        let got = select(&sb, "xml", doc, path).await;
        assert_eq!(got.as_deref().map_err(|c| *c), *want, "{path}");
    }
    assert_eq!(select(&sb, "xml", "<a><b></a>", "/a").await, Err(-3));
}

#[tokio::test]
async fn selector_on_a_missing_property_and_oob_buffers() {
    let sb = sandbox();
    let module = selector_module(&sb, "json", "/a");
    let outcome = sb
        .run(&module, &Properties::new(), &sb.default_limits())
        .await;
    assert!(matches!(
        outcome.result,
        Err(RunError::GuestFailed { code: Some(-1), .. })
    ));

    for which in ["json", "xml"] {
        let wasm = wat::parse_str(format!(
            r#"(module
                 (import "chatflow" "{which}_select" (func $sel (param i32 i32 i32 i32 i32 i32) (result i32)))
                 (memory (export "memory") 1)
                 (func (export "chatflow_abi_v1"))
                 (func (export "chatflow_run") (result i32)
                   (call $sel (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 65000) (i32.const 1000))))"#
        ))
        .unwrap();
        let module = sb.load(&wasm).unwrap();
        let err = failed(
            &sb,
            sb.run(&module, &Properties::new(), &sb.default_limits())
                .await,
        )
        .await;
        let import = format!("{which}_select");
        assert!(
            matches!(&err, RunError::GuestMemory { import: got, .. } if *got == import),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn parse_is_charged_per_byte() {
    let sb = sandbox();
    let doc = format!(r#"{{"pad": "{}", "x": 1}}"#, "p".repeat(100_000));
    let module = selector_module(&sb, "json", "/x");
    let props: Properties = [("doc", doc.as_str())].into_iter().collect();
    let outcome = sb.run(&module, &props, &sb.default_limits()).await;
    assert!(
        outcome.fuel_used >= 100_000,
        "fuel used {}",
        outcome.fuel_used
    );
    ok(outcome);
    let limits = sb.default_limits().with_fuel(50_000);
    let err = failed(&sb, sb.run(&module, &props, &limits).await).await;
    assert!(matches!(err, RunError::FuelExhausted { .. }), "{err:?}");
}

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("CHATFLOW_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            [env!("CARGO_MANIFEST_DIR"), "..", "..", "shared", "corpus"]
                .iter()
                .collect()
        });
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: no corpus at {} (set CHATFLOW_CORPUS)",
            dir.display()
        );
        None
    }
}

/// Pointers into a document: every top-level member, and the first element
/// of every top-level array, down two more levels.
fn pointers(value: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, at: String, depth: usize, out: &mut Vec<String>) {
        out.push(at.clone());
        if depth == 0 {
            return;
        }
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map.iter().take(5) {
                    let token = k.replace('~', "~0").replace('/', "~1");
                    walk(child, format!("{at}/{token}"), depth - 1, out);
                }
            }
            serde_json::Value::Array(items) => {
                if let Some(first) = items.first() {
                    walk(first, format!("{at}/0"), depth - 1, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, String::new(), 3, &mut out);
    out
}

#[tokio::test]
async fn json_select_on_the_corpus_agrees_with_serde_json() {
    let Some(dir) = corpus() else { return };
    let sb = sandbox();
    for file in [
        "demo.json",
        "github_events.json",
        "twitter.json",
        "citm_catalog.json",
        "canada.json",
    ] {
        let text = std::fs::read_to_string(dir.join("json").join(file)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        for pointer in pointers(&value).into_iter().skip(1).take(12) {
            let want = value.pointer(&pointer).unwrap();
            if want.to_string().len() >= 1 << 20 {
                continue; // larger than the guest's buffer
            }
            let got = select(&sb, "json", &text, &pointer).await.unwrap();
            match want {
                serde_json::Value::String(s) => assert_eq!(&got, s, "{file} {pointer}"),
                other => {
                    let got_value: serde_json::Value = serde_json::from_str(&got).unwrap();
                    assert_eq!(&got_value, other, "{file} {pointer}");
                }
            }
        }
    }
}

#[tokio::test]
async fn xml_select_on_the_corpus() {
    let Some(dir) = corpus() else { return };
    let sb = sandbox();
    let read = |name: &str| std::fs::read_to_string(dir.join("xml").join(name)).unwrap();
    let rss = read("sample_rss.xml");
    assert_eq!(
        select(&sb, "xml", &rss, "/rss/channel/title")
            .await
            .unwrap(),
        "The Linux Action Show! OGG"
    );
    assert_eq!(
        select(&sb, "xml", &rss, "/rss/@version").await.unwrap(),
        "2.0"
    );
    assert_eq!(
        select(&sb, "xml", &rss, "/rss/@atom").await,
        Err(-1),
        "namespace declarations are not attributes"
    );
    let score = read("linescore.xml");
    assert_eq!(
        select(&sb, "xml", &score, "/game/@venue").await.unwrap(),
        "Generic"
    );
    for big in ["huge.xml", "gigantic.svg"] {
        let text = read(big);
        // Well-formed: the root's first attribute or element is reachable,
        // and a path that matches nothing is -1 (not -3).
        assert_eq!(
            select(&sb, "xml", &text, "/definitely-not-the-root").await,
            Err(-1),
            "{big}"
        );
    }
}
