//! Golden files for template parse errors: each `tests/ui/templates/*.txt`
//! (parsed with `Template::parse`) and `tests/ui/url-templates/*.txt`
//! (parsed with `UrlTemplate::parse`) must fail with exactly the message in
//! the `.err` file beside it. Run with `BLESS=1` to (re)write the `.err`
//! files after an intended change, then review the diff.

use chatflow_engine::template::{Template, TemplateError, UrlTemplate};

use crate::support::golden;

fn check_dir(name: &str, parse: fn(&str) -> Result<(), TemplateError>) {
    golden::check(name, "txt", |_, source| match parse(source) {
        Ok(()) => format!("(parsed without error: {source:?})"),
        Err(err) => err.to_string(),
    });
}

#[test]
fn template_parse_errors() {
    check_dir("templates", |s| Template::parse(s).map(drop));
}

#[test]
fn url_template_parse_errors() {
    check_dir("url-templates", |s| UrlTemplate::parse(s).map(drop));
}
