//! Parses a CRM profile (JSON, typed with serde) into the properties
//! `name`, `email` and `tier`. Build: `cargo build -p crm-profile --target
//! wasm32-unknown-unknown --profile guest`; run: `chatflow code
//! target/wasm32-unknown-unknown/guest/crm_profile.wasm --set 'API Response=@profile.json'`.
//!
//! # Where it sits in a flow
//!
//! After a REST API block that calls the CRM with the user's phone number:
//!
//! ```text
//! GET {{api_base_url}}/crm/profiles/{{phone}}
//! ```
//!
//! The demo API answers `200` with a profile, or `404` for an unknown number:
//!
//! ```json
//! {
//!   "id": "cus_1042",
//!   "phone": "+442079460000",
//!   "name": { "first": "Ada", "last": "Lovelace" },
//!   "email": "ada@example.com",
//!   "tier": "gold",
//!   "created_at": "2023-04-01T09:30:00Z"
//! }
//! ```
//!
//! ```json
//! { "error": "not_found", "message": "no profile for +15550100" }
//! ```
//!
//! `id` is required; every other field may be missing or `null`.
//!
//! # Properties
//!
//! | property | read / written | value |
//! |---|---|---|
//! | `API Response` | read | the CRM's JSON profile; absent when the REST API block failed with *Ignore error* on |
//! | `customer_id` | written | the profile's `id` |
//! | `name` | written or removed | `first last` (either part alone if the other is missing); removed when both are |
//! | `email` | written or removed | the email address; removed when missing or empty, so `{{email}} exists` is false |
//! | `tier` | written | `standard`, `silver`, `gold` or `platinum` (lower case); `standard` when missing |
//! | `profile_found` | written | `true`, or `false` when `API Response` is absent (then `name`, `email` and `tier` are removed) |
//!
//! A response that is not JSON, or JSON without an `id`, fails the run with
//! a message naming the property and the position of the problem.

use chatflow_sdk::{API_RESPONSE, Context, Error, Result, log};
use serde::Deserialize;

/// The CRM's profile. Optional fields are `Option`, so a profile without
/// them still parses.
#[derive(Debug, Deserialize)]
pub struct Profile {
    /// The CRM's customer id.
    pub id: String,
    /// First and last name.
    #[serde(default)]
    pub name: Option<Name>,
    /// Email address.
    #[serde(default)]
    pub email: Option<String>,
    /// Loyalty tier.
    #[serde(default)]
    pub tier: Option<String>,
}

/// A person's name as the CRM stores it.
#[derive(Debug, Deserialize)]
pub struct Name {
    /// Given name.
    #[serde(default)]
    pub first: Option<String>,
    /// Family name.
    #[serde(default)]
    pub last: Option<String>,
}

const TIERS: &[&str] = &["standard", "silver", "gold", "platinum"];

/// The Code block.
pub fn run(ctx: &mut Context) -> Result<()> {
    let profile: Profile = match ctx.json(API_RESPONSE) {
        Ok(profile) => profile,
        Err(Error::MissingProperty { .. }) => {
            // The CRM call failed (unknown number, CRM down) and the flow
            // chose to go on: say so, and leave no stale values behind.
            log::warn!("no CRM response; clearing the profile properties");
            ctx.set("profile_found", "false")?;
            for name in ["name", "email", "tier"] {
                ctx.remove(name)?;
            }
            return Ok(());
        }
        Err(err) => return Err(err),
    };

    ctx.set("customer_id", &profile.id)?;
    let full_name = profile.name.as_ref().map(full_name).unwrap_or_default();
    if full_name.is_empty() {
        ctx.remove("name")?;
    } else {
        ctx.set("name", &full_name)?;
    }
    match profile.email.as_deref().map(str::trim) {
        Some(email) if !email.is_empty() => ctx.set("email", email)?,
        _ => ctx.remove("email")?,
    }
    let tier = profile
        .tier
        .as_deref()
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| TIERS.contains(&t.as_str()));
    if tier.is_none() && profile.tier.is_some() {
        log::warn!("unknown tier {:?}; using standard", profile.tier);
    }
    ctx.set("tier", tier.as_deref().unwrap_or("standard"))?;
    ctx.set("profile_found", "true")?;
    log::info!("profile {} loaded", profile.id);
    Ok(())
}

fn full_name(name: &Name) -> String {
    [name.first.as_deref(), name.last.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

chatflow_sdk::code_block!(run);

#[cfg(test)]
mod tests {
    use super::*;
    use chatflow_sdk::testing::{Failure, TestHost};

    const ADA: &str = r#"{
        "id": "cus_1042",
        "phone": "+442079460000",
        "name": { "first": "Ada", "last": "Lovelace" },
        "email": "ada@example.com",
        "tier": "Gold",
        "created_at": "2023-04-01T09:30:00Z"
    }"#;

    #[test]
    fn full_profile() {
        let outcome = TestHost::new().api_response(ADA).run(run);
        outcome.assert_success();
        assert_eq!(outcome.property("customer_id"), Some("cus_1042"));
        assert_eq!(outcome.property("name"), Some("Ada Lovelace"));
        assert_eq!(outcome.property("email"), Some("ada@example.com"));
        assert_eq!(outcome.property("tier"), Some("gold"));
        assert_eq!(outcome.property("profile_found"), Some("true"));
    }

    #[test]
    fn missing_fields_are_handled_gracefully() {
        let cases = [
            // (profile, name, email, tier)
            (r#"{"id": "c1"}"#, None, None, "standard"),
            (
                r#"{"id": "c2", "name": {"first": "Grace"}, "email": "", "tier": null}"#,
                Some("Grace"),
                None,
                "standard",
            ),
            (
                r#"{"id": "c3", "name": {"last": "Hopper", "first": " "}, "email": " g@example.com ", "tier": "diamond"}"#,
                Some("Hopper"),
                Some("g@example.com"),
                "standard",
            ),
            (
                r#"{"id": "c4", "name": null, "tier": "PLATINUM"}"#,
                None,
                None,
                "platinum",
            ),
        ];
        for (profile, name, email, tier) in cases {
            let outcome = TestHost::new()
                .api_response(profile)
                .property("name", "stale name")
                .property("email", "stale@example.com")
                .run(run);
            outcome.assert_success();
            assert_eq!(outcome.property("name"), name, "{profile}");
            assert_eq!(outcome.property("email"), email, "{profile}");
            assert_eq!(outcome.property("tier"), Some(tier), "{profile}");
        }
    }

    #[test]
    fn no_api_response_clears_stale_values() {
        let outcome = TestHost::new()
            .property("name", "stale")
            .property("tier", "gold")
            .run(run);
        outcome.assert_success();
        assert_eq!(outcome.property("profile_found"), Some("false"));
        assert!(outcome.removed("name"));
        assert!(outcome.removed("tier"));
        assert_eq!(outcome.property("email"), None);
    }

    #[test]
    fn bad_json_fails_with_its_position() {
        let outcome = TestHost::new()
            .api_response("<html>502 Bad Gateway</html>")
            .run(run);
        assert_eq!(
            outcome.failure(),
            Some(&Failure::Returned {
                code: 1,
                message: "property `API Response` is not valid JSON for the expected shape: \
                          expected value at line 1 column 1"
                    .into()
            })
        );
        assert!(outcome.changes().is_empty());
    }

    #[test]
    fn json_that_is_not_a_profile_fails() {
        for (body, want) in [
            (r#"{"error": "not_found"}"#, "missing field `id`"),
            (r#""just text""#, "expected struct Profile"),
            (
                r#"{"id": 42}"#,
                "invalid type: integer `42`, expected a string",
            ),
        ] {
            let outcome = TestHost::new().api_response(body).run(run);
            let message = outcome.assert_failure().message();
            assert!(message.contains(want), "{body}: {message}");
        }
    }
}
