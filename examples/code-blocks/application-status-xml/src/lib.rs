//! Reads an application's current status out of an XML document (quick-xml,
//! inside the sandbox) and sets `status` and `updated_at`, with namespaces
//! and entities handled. Build: `cargo build -p application-status-xml
//! --target wasm32-unknown-unknown --profile guest`; run: `chatflow code
//! target/wasm32-unknown-unknown/guest/application_status_xml.wasm --set
//! 'API Response=@status.xml'`.
//!
//! # Where it sits in a flow
//!
//! After a REST API block that asks for the status of the user's
//! application:
//!
//! ```text
//! GET {{api_base_url}}/applications/{{application_id}}/status
//! Accept: application/xml
//! ```
//!
//! The demo API answers `200` with
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <app:application xmlns:app="urn:example:applications:v1"
//!                  xmlns:h="urn:example:history:v1" id="APP-2024-0042">
//!   <app:applicant>Ada Lovelace &amp; Co.</app:applicant>
//!   <app:status code="IN_REVIEW">In review &#8211; documents received</app:status>
//!   <app:updated_at>2024-05-02T14:03:00Z</app:updated_at>
//!   <h:history>
//!     <h:event at="2024-04-28T09:00:00Z" code="SUBMITTED">Submitted</h:event>
//!     <h:event at="2024-05-02T14:03:00Z" code="IN_REVIEW">Documents received</h:event>
//!   </h:history>
//! </app:application>
//! ```
//!
//! and `404` with `<error code="NOT_FOUND">no application APP-1</error>`.
//! The prefixes are the document's choice: the block matches elements by
//! namespace URI and local name, so `<application
//! xmlns="urn:example:applications:v1">` works as well. `updated_at` may be
//! missing (then the latest history event's `at` is used), and so may
//! `history`.
//!
//! # Properties
//!
//! | property | read / written | value |
//! |---|---|---|
//! | `API Response` | read (required) | the XML above |
//! | `application_id` | written | the root's `id` attribute |
//! | `status` | written | the status text, entities decoded, whitespace trimmed: `In review – documents received` |
//! | `status_code` | written | the status's `code` attribute, or `UNKNOWN` |
//! | `updated_at` | written or removed | when the status last changed; removed if the document does not say |
//! | `history_count` | written | the number of history events |
//!
//! The run fails for a document that is not well-formed XML, an `<error>`
//! document (with its code and text), a root element from another
//! namespace, or an application without a `status`.

use chatflow_sdk::xml::Element;
use chatflow_sdk::{API_RESPONSE, Context, Error, Result, log};

/// The namespace of the application document.
pub const APPLICATIONS_NS: &str = "urn:example:applications:v1";
/// The namespace of the history elements.
pub const HISTORY_NS: &str = "urn:example:history:v1";

/// The Code block.
pub fn run(ctx: &mut Context) -> Result<()> {
    let root = ctx.xml(API_RESPONSE)?;
    if root.local_name() == "error" {
        return Err(Error::msg(format!(
            "application status API error {}: {}",
            root.attr("code").unwrap_or("UNKNOWN"),
            root.text().trim()
        )));
    }
    if root.local_name() != "application" || root.namespace() != Some(APPLICATIONS_NS) {
        return Err(Error::msg(format!(
            "unexpected document: root element <{}> in namespace {:?}, expected <application> in {APPLICATIONS_NS:?}",
            root.name(),
            root.namespace().unwrap_or("(none)")
        )));
    }

    let status = child_in(&root, APPLICATIONS_NS, "status")
        .ok_or_else(|| Error::msg("the application document has no <status> element"))?;
    ctx.set("status", status.text().trim())?;
    ctx.set("status_code", status.attr("code").unwrap_or("UNKNOWN"))?;
    if let Some(id) = root.attr("id") {
        ctx.set("application_id", id)?;
    }

    let events: Vec<&Element> = child_in(&root, HISTORY_NS, "history")
        .map(|history| {
            history
                .children()
                .filter(|e| e.local_name() == "event" && e.namespace() == Some(HISTORY_NS))
                .collect()
        })
        .unwrap_or_default();
    ctx.set("history_count", events.len().to_string())?;

    let updated_at = child_in(&root, APPLICATIONS_NS, "updated_at")
        .map(|e| e.text().trim().to_string())
        .filter(|t| !t.is_empty())
        .or_else(|| {
            // ISO 8601 timestamps in one format sort as text.
            events
                .iter()
                .filter_map(|e| e.attr("at"))
                .max()
                .map(str::to_string)
        });
    match updated_at {
        Some(at) => ctx.set("updated_at", at)?,
        None => {
            log::warn!("no updated_at and no history in the status document");
            ctx.remove("updated_at")?;
        }
    }
    Ok(())
}

/// The first child element with this namespace URI and local name.
fn child_in<'a>(parent: &'a Element, namespace: &str, local: &str) -> Option<&'a Element> {
    parent
        .children()
        .find(|e| e.local_name() == local && e.namespace() == Some(namespace))
}

chatflow_sdk::code_block!(run);

#[cfg(test)]
mod tests {
    use super::*;
    use chatflow_sdk::testing::TestHost;

    const STATUS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<app:application xmlns:app="urn:example:applications:v1"
                 xmlns:h="urn:example:history:v1" id="APP-2024-0042">
  <app:applicant>Ada Lovelace &amp; Co.</app:applicant>
  <app:status code="IN_REVIEW">In review &#8211; documents received</app:status>
  <app:updated_at>2024-05-02T14:03:00Z</app:updated_at>
  <h:history>
    <h:event at="2024-04-28T09:00:00Z" code="SUBMITTED">Submitted</h:event>
    <h:event at="2024-05-02T14:03:00Z" code="IN_REVIEW">Documents received</h:event>
  </h:history>
</app:application>
"#;

    #[test]
    fn status_document() {
        let outcome = TestHost::new().api_response(STATUS).run(run);
        outcome.assert_success();
        assert_eq!(
            outcome.property("status"),
            Some("In review – documents received")
        );
        assert_eq!(outcome.property("status_code"), Some("IN_REVIEW"));
        assert_eq!(outcome.property("updated_at"), Some("2024-05-02T14:03:00Z"));
        assert_eq!(outcome.property("application_id"), Some("APP-2024-0042"));
        assert_eq!(outcome.property("history_count"), Some("2"));
    }

    #[test]
    fn default_namespace_and_other_prefixes_work() {
        let doc = r#"<application xmlns="urn:example:applications:v1" xmlns:x="urn:example:history:v1">
            <status code="APPROVED"><![CDATA[Approved <final>]]> &amp; signed</status>
            <x:history><x:event at="2024-06-01T10:00:00Z"/><x:event at="2024-06-03T08:00:00Z"/></x:history>
        </application>"#;
        let outcome = TestHost::new().api_response(doc).run(run);
        outcome.assert_success();
        assert_eq!(
            outcome.property("status"),
            Some("Approved <final> & signed")
        );
        // No updated_at element: the latest history event.
        assert_eq!(outcome.property("updated_at"), Some("2024-06-03T08:00:00Z"));
        assert_eq!(outcome.property("application_id"), None);
    }

    #[test]
    fn missing_dates_remove_a_stale_updated_at() {
        let doc = r#"<a:application xmlns:a="urn:example:applications:v1"><a:status>Received</a:status></a:application>"#;
        let outcome = TestHost::new()
            .api_response(doc)
            .property("updated_at", "stale")
            .run(run);
        outcome.assert_success();
        assert!(outcome.removed("updated_at"));
        assert_eq!(outcome.property("status_code"), Some("UNKNOWN"));
        assert_eq!(outcome.property("history_count"), Some("0"));
    }

    #[test]
    fn failures_bad() {
        let cases = [
            (
                r#"<error code="NOT_FOUND">no application APP-1</error>"#,
                "application status API error NOT_FOUND: no application APP-1",
            ),
            (
                r#"<application xmlns="urn:other"><status>x</status></application>"#,
                "unexpected document: root element <application> in namespace \"urn:other\", expected <application> in \"urn:example:applications:v1\"",
            ),
            (
                r#"<application xmlns="urn:example:applications:v1"><state>x</state></application>"#,
                "the application document has no <status> element",
            ),
            (
                r#"<application xmlns="urn:example:applications:v1"><status>x</application>"#,
                "not well-formed XML: ",
            ),
            (
                r#"<application xmlns="urn:example:applications:v1"><status>&eacute;</status></application>"#,
                "not well-formed XML: undeclared entity `&eacute;`",
            ),
        ];
        for (doc, want) in cases {
            let outcome = TestHost::new().api_response(doc).run(run);
            let message = outcome.assert_failure().message();
            assert!(message.starts_with(want), "{doc}: {message}");
            assert!(outcome.changes().is_empty());
        }
        let outcome = TestHost::new().run(run);
        assert_eq!(
            outcome.failure_message(),
            Some("property `API Response` is not set")
        );
    }
}
