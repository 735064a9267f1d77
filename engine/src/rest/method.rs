//! The HTTP methods a REST API block can use. The table is the ABI's
//! ([`chatflow_abi::http::Method`], the methods a Code block's
//! `http_request` takes too), so both blocks accept the same six; what is
//! the REST block's own here is that a flow file may write a method in any
//! case, and its error message.

use serde::{Deserialize, Deserializer, Serializer};

use crate::net::Method;

/// The HTTP methods a REST API block can use: `GET`, `POST`, `PUT`,
/// `DELETE`, `PATCH` and `HEAD` (on success, `HEAD` sets the response
/// property to the empty string). The ABI's [`Method`](chatflow_abi::http::Method);
/// `RestMethod::Get` and the others name its variants.
pub use chatflow_abi::http::Method as RestMethod;

/// An unsupported method name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported method {0:?} (expected GET, POST, PUT, DELETE, PATCH or HEAD)")]
pub struct MethodError(pub String);

/// Parses a method as a flow file or the command line writes it: any case.
///
/// # Errors
///
/// [`MethodError`] naming `name` if it is not one of the six.
pub fn parse_method(name: &str) -> Result<RestMethod, MethodError> {
    RestMethod::from_name_ignore_case(name).ok_or_else(|| MethodError(name.to_string()))
}

/// The method sent.
pub(super) fn to_http(method: RestMethod) -> Method {
    crate::net::abi_method(method)
}

/// `#[serde(with = "…")]` for a [`RestMethod`] field: written in upper
/// case, read in any case.
pub(super) mod serde_method {
    use super::*;

    pub fn serialize<S: Serializer>(method: &RestMethod, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(method.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RestMethod, D::Error> {
        let name = String::deserialize(d)?;
        parse_method(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_in_any_case_and_are_sent_as_named() {
        for method in RestMethod::ALL {
            assert_eq!(parse_method(method.as_str()), Ok(method));
            assert_eq!(
                parse_method(&method.as_str().to_ascii_lowercase()),
                Ok(method)
            );
            assert_eq!(to_http(method).as_str(), method.as_str());
        }
    }

    #[test]
    fn methods_bad() {
        for bad in ["", "OPTIONS", "CONNECT", "TRACE", "GET ", "G\u{130}T"] {
            assert_eq!(
                parse_method(bad),
                Err(MethodError(bad.to_string())),
                "{bad:?}"
            );
        }
    }
}
