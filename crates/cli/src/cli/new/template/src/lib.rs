//! A chatflow Code block: turns the customer profile that a REST API block
//! stored in `API Response` into the properties `first_name` and `tier`, and
//! greets the customer. Replace it with your own block; keep the tests.
//!
//! | property | read / written | value |
//! |---|---|---|
//! | `API Response` | read | the CRM's JSON profile (like `sample/api-response.json`); absent when the REST API block failed with *Ignore error* on |
//! | `first_name` | written | the profile's `first_name` |
//! | `tier` | written | the profile's `tier`; `standard` when it has none |
//!
//! `cargo test` runs the tests below against the SDK's test host;
//! `chatflow build` builds the module and checks it; `chatflow code
//! MODULE --set 'API Response=@sample/api-response.json'` runs it in the
//! sandbox (see README.md).

use chatflow_sdk::{API_RESPONSE, Context, Error, Result, log};
use serde::Deserialize;

/// The part of the CRM's profile this block uses; other fields are ignored.
#[derive(Debug, Deserialize)]
pub struct Profile {
    /// The customer's first name.
    pub first_name: String,
    /// The loyalty tier, if the CRM has one.
    #[serde(default)]
    pub tier: Option<String>,
}

/// The Code block: runs each time the flow reaches it.
///
/// `Ok(())` commits what it set and the messages it sent; `Err` (or a
/// panic) fails the run with that message and commits nothing.
pub fn run(ctx: &mut Context) -> Result<()> {
    let profile: Profile = match ctx.json(API_RESPONSE) {
        Ok(profile) => profile,
        // The CRM call failed and the flow went on (Ignore error): no greeting.
        Err(Error::MissingProperty { .. }) => {
            log::warn!("no profile to read: the CRM call failed");
            return Ok(());
        }
        // Not JSON, or no `first_name`: fail with a message naming the
        // property and the position of the problem.
        Err(err) => return Err(err),
    };
    let tier = profile.tier.as_deref().unwrap_or("standard");
    log::info!("greeting a {tier} customer");
    ctx.set("first_name", &profile.first_name)?;
    ctx.set("tier", tier)?;
    ctx.send_message(format!("Welcome back, {}!", profile.first_name))?;
    Ok(())
}

// Exports the module's entry point (`chatflow_run`), calling `run`.
chatflow_sdk::code_block!(run);

#[cfg(test)]
mod tests {
    use super::*;
    use chatflow_sdk::testing::TestHost;

    #[test]
    fn greets_the_customer_of_the_sample() {
        let outcome = TestHost::new()
            .api_response(include_str!("../sample/api-response.json"))
            .run(run);
        outcome.assert_success();
        assert_eq!(outcome.property("first_name"), Some("Ada"));
        assert_eq!(outcome.property("tier"), Some("gold"));
        assert_eq!(outcome.messages(), ["Welcome back, Ada!"]);
    }

    #[test]
    fn a_profile_without_tier_is_standard() {
        let outcome = TestHost::new()
            .api_response(r#"{"first_name": "Grace"}"#)
            .run(run);
        outcome.assert_success();
        assert_eq!(outcome.property("tier"), Some("standard"));
    }

    #[test]
    fn no_response_sets_nothing() {
        let outcome = TestHost::new().run(run);
        outcome.assert_success();
        assert!(outcome.changes().is_empty());
        assert!(outcome.messages().is_empty());
    }

    #[test]
    fn bad_json_fails_and_writes_nothing_bad() {
        let outcome = TestHost::new().api_response("<html>502</html>").run(run);
        let message = outcome.assert_failure().message();
        assert!(
            message.starts_with("property `API Response` is not valid JSON"),
            "{message}"
        );
        assert!(outcome.changes().is_empty());
        assert!(outcome.messages().is_empty());
    }
}
