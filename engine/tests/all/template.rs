//! Golden files for template parse errors: each `tests/ui/templates/*.txt`
//! (parsed with `Template::parse`) and `tests/ui/url-templates/*.txt`
//! (parsed with `UrlTemplate::parse`) must fail with exactly the message in
//! the `.err` file beside it. Run with `BLESS=1` to (re)write the `.err`
//! files after an intended change, then review the diff.

use std::path::{Path, PathBuf};

use chatflow_engine::template::{Template, TemplateError, UrlTemplate};

fn ui_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ui")
        .join(name)
}

fn check_dir(name: &str, parse: fn(&str) -> Result<(), TemplateError>) {
    let dir = ui_dir(name);
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no golden files in {}", dir.display());
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for input in &inputs {
        let source = std::fs::read_to_string(input).unwrap();
        let got = match parse(&source) {
            Ok(()) => format!("(parsed without error: {source:?})"),
            Err(err) => err.to_string(),
        };
        let expected_path = input.with_extension("err");
        if bless {
            std::fs::write(&expected_path, format!("{got}\n")).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with BLESS=1)", expected_path.display()));
        if expected.trim_end() != got {
            failures.push(format!(
                "{}:\n  expected: {}\n  got:      {got}",
                input.display(),
                expected.trim_end()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn template_parse_errors() {
    check_dir("templates", |s| Template::parse(s).map(drop));
}

#[test]
fn url_template_parse_errors() {
    check_dir("url-templates", |s| UrlTemplate::parse(s).map(drop));
}
