//! Sends the input a flow collected to a validation API through the host's
//! HTTP, and sets `valid` and `validation_message` from its JSON answer.
//! Build: `cargo build -p validate-input --target wasm32-unknown-unknown
//! --profile guest`; run: `chatflow code
//! target/wasm32-unknown-unknown/guest/validate_input.wasm --set
//! api_base_url=http://127.0.0.1:8080 --set email=ada@example.com --set
//! 'phone=+44 20 7946 0000' --allow-host 127.0.0.1`.
//!
//! # The validation API
//!
//! ```text
//! POST {api_base_url}/validate
//! Content-Type: application/json
//!
//! {"name": "Ada Lovelace", "email": "ada@example", "phone": "+44 20 7946 0000", "date_of_birth": "1815-12-10"}
//! ```
//!
//! `email` and `phone` are always sent; `name` and `date_of_birth` only when
//! the flow collected them. The API answers `200` when the input is valid
//! and `422` when it is not, with the same body shape:
//!
//! ```json
//! {"valid": true, "errors": [], "normalized": {"phone": "+442079460000"}}
//! ```
//!
//! ```json
//! {"valid": false, "errors": [{"field": "email", "message": "email must contain a domain"}]}
//! ```
//!
//! `errors` and `normalized` may be missing. Any other status is an error.
//!
//! # Properties
//!
//! | property | read / written | value |
//! |---|---|---|
//! | `api_base_url` | read (required) | e.g. `https://api.example.com` (no trailing `/` needed) |
//! | `email`, `phone` | read (required) | collected input |
//! | `name`, `date_of_birth` | read (optional) | collected input |
//! | `valid` | written | `true` or `false` |
//! | `validation_message` | written | `All details look good.` or the API's messages joined with `; ` |
//! | `phone` | written when valid | the API's normalized phone number, if it sends one |
//!
//! The run fails (and the flow stops, unless *Ignore error* is on) when a
//! required property is missing, the API's host is not allowed by the
//! operator's network policy, the API times out or cannot be reached, or
//! answers another status or a body that is not the JSON above.

use std::time::Duration;

use chatflow_sdk::http::{self, Request};
use chatflow_sdk::{Context, Error, Result, log};
use serde::{Deserialize, Serialize};

/// What is sent to the API.
#[derive(Debug, Serialize)]
struct Input {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    email: String,
    phone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    date_of_birth: Option<String>,
}

/// The API's answer.
#[derive(Debug, Deserialize)]
struct Verdict {
    valid: bool,
    #[serde(default)]
    errors: Vec<FieldError>,
    #[serde(default)]
    normalized: Option<Normalized>,
}

#[derive(Debug, Deserialize)]
struct FieldError {
    #[serde(default)]
    field: Option<String>,
    message: String,
}

#[derive(Debug, Deserialize)]
struct Normalized {
    #[serde(default)]
    phone: Option<String>,
}

/// The Code block.
pub fn run(ctx: &mut Context) -> Result<()> {
    let base = ctx.require("api_base_url")?;
    let input = Input {
        name: ctx.get("name"),
        email: ctx.require("email")?,
        phone: ctx.require("phone")?,
        date_of_birth: ctx.get("date_of_birth"),
    };
    let url = format!("{}/validate", base.trim_end_matches('/'));
    let request = Request::post(url)
        .header("X-Request-Source", "chatflow")
        .timeout(Duration::from_secs(5))
        .json(&input)?;

    let response = match request.send() {
        Ok(response) => response,
        Err(err @ http::Error::Denied { .. }) => {
            return Err(Error::msg(format!(
                "{err}; ask the operator to allow the validation API's host"
            )));
        }
        Err(err @ (http::Error::Timeout { .. } | http::Error::Connection { .. })) => {
            return Err(Error::msg(format!("validation service unreachable: {err}")));
        }
        Err(err) => return Err(err.into()),
    };
    if !matches!(response.status(), 200 | 422) {
        return Err(response
            .error_for_status()
            .err()
            .map_or_else(|| Error::msg("unexpected status"), Error::from));
    }
    let verdict: Verdict = response.json()?;
    log::info!(
        "validation: valid={} with {} error(s)",
        verdict.valid,
        verdict.errors.len()
    );

    ctx.set("valid", verdict.valid.to_string())?;
    let message = if verdict.valid {
        "All details look good.".to_string()
    } else if verdict.errors.is_empty() {
        "The details could not be validated.".to_string()
    } else {
        verdict
            .errors
            .iter()
            .map(|e| match &e.field {
                Some(field) if !e.message.contains(field.as_str()) => {
                    format!("{field}: {}", e.message)
                }
                _ => e.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    ctx.set("validation_message", message)?;
    if verdict.valid
        && let Some(phone) = verdict.normalized.and_then(|n| n.phone)
    {
        ctx.set("phone", phone)?;
    }
    Ok(())
}

chatflow_sdk::code_block!(run);

#[cfg(test)]
mod tests {
    use super::*;
    use chatflow_sdk::testing::{Failure, Reply, Stub, TestHost};

    const URL: &str = "https://api.example.com/validate";

    fn host() -> TestHost {
        TestHost::new()
            .property("api_base_url", "https://api.example.com/")
            .property("email", "ada@example.com")
            .property("phone", "+44 20 7946 0000")
            .property("name", "Ada Lovelace")
    }

    #[test]
    fn valid_input() {
        let outcome =
            host()
                .stub(Stub::post(URL).json(
                    r#"{"valid": true, "errors": [], "normalized": {"phone": "+442079460000"}}"#,
                ))
                .run(run);
        outcome.assert_success();
        assert_eq!(outcome.property("valid"), Some("true"));
        assert_eq!(
            outcome.property("validation_message"),
            Some("All details look good.")
        );
        assert_eq!(outcome.property("phone"), Some("+442079460000"));
        // What was sent.
        let request = &outcome.requests()[0];
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("x-request-source"), Some("chatflow"));
        assert_eq!(
            request.json().unwrap(),
            serde_json::json!({"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+44 20 7946 0000"})
        );
        assert_eq!(request.timeout_ms(), Some(5000));
    }

    #[test]
    fn invalid_input_is_not_a_failure() {
        let outcome = host()
            .property("date_of_birth", "1815-12-10")
            .stub(Stub::post(URL).status(422).json(
                r#"{"valid": false, "errors": [
                    {"field": "email", "message": "email must contain a domain"},
                    {"field": "phone", "message": "too short"},
                    {"message": "try again"}]}"#,
            ))
            .run(run);
        outcome.assert_success();
        assert_eq!(outcome.property("valid"), Some("false"));
        assert_eq!(
            outcome.property("validation_message"),
            Some("email must contain a domain; phone: too short; try again")
        );
        assert_eq!(
            outcome.property("phone"),
            Some("+44 20 7946 0000"),
            "unchanged"
        );
        assert_eq!(
            outcome.requests()[0].json().unwrap()["date_of_birth"],
            "1815-12-10"
        );
    }

    #[test]
    fn missing_input_fails_before_calling() {
        let outcome = TestHost::new()
            .property("api_base_url", "https://api.example.com")
            .property("phone", "1")
            .run(run);
        assert_eq!(
            outcome.failure_message(),
            Some("property `email` is not set")
        );
        assert!(outcome.requests().is_empty());
    }

    #[test]
    fn http_errors_fail_with_clear_messages() {
        let cases: Vec<(Reply, &str)> = vec![
            (
                Reply::status(503).body("busy"),
                "POST https://api.example.com/validate answered HTTP 503",
            ),
            (
                Reply::timeout(),
                "validation service unreachable: POST https://api.example.com/validate timed out",
            ),
            (
                Reply::connection_error("connection refused"),
                "validation service unreachable: POST https://api.example.com/validate failed",
            ),
            (
                Reply::json("not json"),
                "json: expected ident at line 1 column 2",
            ),
            (
                Reply::json(r#"{"errors": []}"#),
                "json: missing field `valid`",
            ),
        ];
        for (reply, want) in cases {
            let outcome = host().stub(Stub::post(URL).reply(reply)).run(run);
            let message = outcome.assert_failure().message();
            assert!(message.starts_with(want), "{message}");
            assert!(outcome.changes().is_empty());
        }
    }

    #[test]
    fn a_denied_host_is_reported_as_the_root_cause() {
        let outcome = host().allow_host("other.example.com").run(run);
        match outcome.failure() {
            Some(Failure::HttpDenied { guest_message, .. }) => {
                assert!(
                    guest_message.ends_with("ask the operator to allow the validation API's host")
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
