//! The SDK's one error type.

use crate::sys;

/// `Result` with the SDK's [`Error`] as the default error type: the return
/// type of a Code block's `run` function.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a Code block, as one type so `?` works on
/// every SDK call, on `serde_json` and on `quick-xml`.
///
/// When `run` returns `Err(error)`, the run fails and `error.to_string()` is
/// the failure message the flow sees, unchanged: every variant's message is
/// complete on its own (causes are included in the text).
///
/// ```no_run
/// use chatflow_sdk::{Context, Error, Result};
///
/// fn run(ctx: &mut Context) -> Result<()> {
///     match ctx.require("order_id") {
///         Ok(id) => ctx.set("order_ref", format!("#{id}"))?,
///         Err(Error::MissingProperty { .. }) => ctx.send_message("Which order do you mean?")?,
///         Err(other) => return Err(other),
///     }
///     if ctx.get("email").is_none() {
///         // Any text becomes an error with `Error::msg` (or `.into()`).
///         return Err(Error::msg("no email address was collected"));
///     }
///     Ok(())
/// }
/// # chatflow_sdk::code_block!(run);
/// # fn main() {}
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A property the block requires is not set ([`Context::require`],
    /// [`Context::json`], [`Context::xml`]).
    ///
    /// [`Context::require`]: crate::Context::require
    /// [`Context::json`]: crate::Context::json
    /// [`Context::xml`]: crate::Context::xml
    #[error("property `{name}` is not set")]
    MissingProperty {
        /// The property name.
        name: String,
    },

    /// The host refused an argument (ABI code `INVALID`): a property name
    /// that is empty, too long, has leading or trailing whitespace, or
    /// contains `{`, `}` or a control character; a JSON pointer that does not
    /// start with `/`; an XML path with bad syntax.
    #[error("{call}: {message}")]
    InvalidArgument {
        /// The SDK call that failed, e.g. `set`.
        call: &'static str,
        /// The host's message, naming the offending value.
        message: String,
    },

    /// A host-side selector ([`Context::select_json`],
    /// [`Context::select_xml`]) was asked to read a property that is not JSON
    /// or not well-formed XML (ABI code `NOT_PARSEABLE`).
    ///
    /// [`Context::select_json`]: crate::Context::select_json
    /// [`Context::select_xml`]: crate::Context::select_xml
    #[error("property `{name}` cannot be parsed: {message}")]
    NotParseable {
        /// The property name.
        name: String,
        /// The host's parse error.
        message: String,
    },

    /// A property read with [`Context::json`] is not valid JSON for the
    /// requested type.
    ///
    /// [`Context::json`]: crate::Context::json
    #[error("property `{name}` is not valid JSON for the expected shape: {source}")]
    PropertyJson {
        /// The property name.
        name: String,
        /// The parse error, with line and column.
        #[source]
        source: serde_json::Error,
    },

    /// A JSON error from `serde_json` (through `?`), or from serializing a
    /// request body or parsing a response body.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),

    /// An XML error: a document that is not well-formed, an undeclared entity,
    /// a bad path (see [`crate::xml`]).
    #[cfg(feature = "xml")]
    #[error(transparent)]
    Xml(#[from] crate::xml::Error),

    /// An HTTP request failed: denied by the network policy, timed out,
    /// could not connect, was invalid, or answered with an error status
    /// (see [`crate::http::Error`]).
    #[error(transparent)]
    Http(#[from] crate::http::Error),

    /// Text that should be UTF-8 is not (a response body read with
    /// [`Response::text`](crate::http::Response::text)).
    #[error("{what} is not valid UTF-8")]
    NotUtf8 {
        /// What was being read, e.g. `response body of GET https://api.example.com/v1`.
        what: String,
    },

    /// The host answered a call with an error code the call does not
    /// document. Seeing this means the host and the SDK disagree about
    /// ABI v1; please report it.
    #[error("{call}: unexpected host error {code}: {message}")]
    Host {
        /// The SDK call that failed.
        call: &'static str,
        /// The negative code the host returned.
        code: i32,
        /// The host's message (`last_error`).
        message: String,
    },

    /// An error raised by the block itself, with [`Error::msg`] or from a
    /// `String`/`&str`.
    #[error("{0}")]
    Message(String),
}

impl Error {
    /// An error carrying just a message: the block's own reason to fail.
    ///
    /// ```
    /// let err = chatflow_sdk::Error::msg("the CRM has no profile for this number");
    /// assert_eq!(err.to_string(), "the CRM has no profile for this number");
    /// ```
    pub fn msg(message: impl std::fmt::Display) -> Self {
        Error::Message(message.to_string())
    }

    /// The error for a negative code returned by a host call that documents
    /// only `INVALID` (and perhaps `NOT_FOUND`, handled by the caller).
    pub(crate) fn from_code(call: &'static str, code: i32) -> Self {
        let message = sys::last_error_message(code);
        match code {
            sys::INVALID => Error::InvalidArgument { call, message },
            _ => Error::Host {
                call,
                code,
                message,
            },
        }
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::Message(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::Message(message.to_string())
    }
}

#[cfg(feature = "xml")]
impl From<quick_xml::Error> for Error {
    fn from(err: quick_xml::Error) -> Self {
        Error::Xml(crate::xml::Error::Syntax(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_complete_on_their_own() {
        let json = serde_json::from_str::<u32>("x").unwrap_err();
        let cases: Vec<(Error, &str)> = vec![
            (
                Error::MissingProperty {
                    name: "phone".into(),
                },
                "property `phone` is not set",
            ),
            (
                Error::PropertyJson {
                    name: "API Response".into(),
                    source: json,
                },
                "property `API Response` is not valid JSON for the expected shape: expected value at line 1 column 1",
            ),
            ("plain".into(), "plain"),
            (Error::msg(format!("{} orders", 3)), "3 orders"),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }
}
