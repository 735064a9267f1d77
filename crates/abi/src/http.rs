//! The request `http_request` takes: a UTF-8 JSON object (`docs/abi.md`,
//! "HTTP").
//!
//! ```json
//! {"method": "POST", "url": "https://api.example.com/v1/check?x=1",
//!  "headers": [["Content-Type", "application/json"], ["X-Key", "abc"]],
//!  "body": "{\"phone\":\"+44 20 7946 0000\"}",
//!  "timeout_ms": 2000}
//! ```
//!
//! [`field::METHOD`] (one of [`Method`], upper case) and [`field::URL`] are
//! required; [`field::HEADERS`] (a list of `[name, value]` pairs, names may
//! repeat), [`field::BODY`] (text) and [`field::TIMEOUT_MS`] (more than 0)
//! are optional. Any other field, a header name that is not an HTTP token
//! or [is forbidden](is_forbidden_header), or a header value with a control
//! character other than tab makes the request `INVALID`, and nothing is
//! sent.

use alloc::string::String;
use core::fmt;
use core::str::FromStr;

/// The field names of the request object.
pub mod field {
    /// `"method"`: required, a [`Method`](super::Method) name.
    pub const METHOD: &str = "method";
    /// `"url"`: required, an absolute `http` or `https` URL.
    pub const URL: &str = "url";
    /// `"headers"`: optional list of `[name, value]` string pairs.
    pub const HEADERS: &str = "headers";
    /// `"body"`: optional text.
    pub const BODY: &str = "body";
    /// `"timeout_ms"`: optional whole milliseconds, more than 0 (capped by
    /// the network policy's total timeout).
    pub const TIMEOUT_MS: &str = "timeout_ms";

    /// Every field, required ones first.
    pub const ALL: [&str; 5] = [METHOD, URL, HEADERS, BODY, TIMEOUT_MS];
    /// The fields a request must have.
    pub const REQUIRED: [&str; 2] = [METHOD, URL];
}

/// An HTTP method a request may use.
///
/// On the wire (the request's [`field::METHOD`]) a method is written in
/// upper case, and [`FromStr`] accepts exactly that: `"GET"` parses,
/// `"get"` does not (HTTP method names are case-sensitive). A caller that
/// accepts other spellings, such as the REST API block reading a flow
/// file, uses [`Method::from_name_ignore_case`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `PATCH`
    Patch,
    /// `HEAD`
    Head,
}

impl Method {
    /// Every method, in `docs/abi.md` order.
    pub const ALL: [Method; 6] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Patch,
        Method::Head,
    ];

    /// The method as sent on the wire, e.g. `"GET"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Head => "HEAD",
        }
    }

    /// The method named `name` in any case (`"get"`, `"Get"`, `"GET"`).
    pub fn from_name_ignore_case(name: &str) -> Option<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = UnknownMethod;

    /// Parses a method as the wire writes it: upper case only.
    fn from_str(s: &str) -> Result<Method, UnknownMethod> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMethod { name: s.into() })
    }
}

/// A method name that is not one of [`Method`] as the wire writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnknownMethod {
    /// The name as given.
    pub name: String,
}

impl fmt::Display for UnknownMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "http method {:?} is not one of GET, POST, PUT, DELETE, PATCH, HEAD",
            self.name
        )
    }
}

impl core::error::Error for UnknownMethod {}

/// The request headers a guest (or a REST API block) may not set, in lower
/// case: framing and connection management belong to the host's HTTP
/// client, and `host` must stay the URL's host, the one the network policy
/// checked.
pub const FORBIDDEN_HEADERS: [&str; 10] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
    "proxy-authorization",
];

/// Whether `name` is one of [`FORBIDDEN_HEADERS`], in any case
/// (`"Content-Length"` is).
pub fn is_forbidden_header(name: &str) -> bool {
    FORBIDDEN_HEADERS
        .iter()
        .any(|forbidden| forbidden.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn methods_round_trip() {
        for method in Method::ALL {
            assert_eq!(method.as_str().parse(), Ok(method));
            assert_eq!(method.to_string(), method.as_str());
            let lower = method.as_str().to_ascii_lowercase();
            assert_eq!(Method::from_name_ignore_case(&lower), Some(method));
        }
    }

    #[test]
    fn methods_bad() {
        for bad in ["get", "Post", "", "FETCH", "GET ", "CONNECT", "OPTIONS"] {
            let err = bad.parse::<Method>().unwrap_err();
            assert_eq!(err.name, bad);
            assert_eq!(
                err.to_string(),
                alloc::format!(
                    "http method {bad:?} is not one of GET, POST, PUT, DELETE, PATCH, HEAD"
                )
            );
        }
        for bad in ["", "FETCH", "GET ", "GETT"] {
            assert_eq!(Method::from_name_ignore_case(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn forbidden_headers_in_any_case() {
        for name in FORBIDDEN_HEADERS {
            assert_eq!(name, name.to_ascii_lowercase());
            assert!(is_forbidden_header(name));
            assert!(is_forbidden_header(&name.to_ascii_uppercase()));
        }
        assert!(is_forbidden_header("Transfer-Encoding"));
    }

    #[test]
    fn forbidden_headers_bad() {
        for allowed in [
            "x-host",
            "hosts",
            "content-type",
            "authorization",
            "",
            "te ",
        ] {
            assert!(!is_forbidden_header(allowed), "{allowed:?}");
        }
    }

    #[test]
    fn fields() {
        assert_eq!(&field::ALL[..2], &field::REQUIRED);
    }
}
