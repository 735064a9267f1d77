//! The HTTP methods a REST API block can use: the names a flow file may
//! write, and the method sent. The one table of them in this crate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::net::Method;

/// The HTTP methods a REST API block can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RestMethod {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
    /// `PATCH`.
    Patch,
    /// `HEAD`: the response property is set to the empty string on success.
    Head,
}

impl RestMethod {
    /// The method's name in upper case.
    pub fn as_str(self) -> &'static str {
        match self {
            RestMethod::Get => "GET",
            RestMethod::Post => "POST",
            RestMethod::Put => "PUT",
            RestMethod::Delete => "DELETE",
            RestMethod::Patch => "PATCH",
            RestMethod::Head => "HEAD",
        }
    }

    pub(super) fn to_http(self) -> Method {
        match self {
            RestMethod::Get => Method::GET,
            RestMethod::Post => Method::POST,
            RestMethod::Put => Method::PUT,
            RestMethod::Delete => Method::DELETE,
            RestMethod::Patch => Method::PATCH,
            RestMethod::Head => Method::HEAD,
        }
    }
}

impl fmt::Display for RestMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unsupported method name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported method {0:?} (expected GET, POST, PUT, DELETE, PATCH or HEAD)")]
pub struct MethodError(pub String);

impl FromStr for RestMethod {
    type Err = MethodError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "GET" => RestMethod::Get,
            "POST" => RestMethod::Post,
            "PUT" => RestMethod::Put,
            "DELETE" => RestMethod::Delete,
            "PATCH" => RestMethod::Patch,
            "HEAD" => RestMethod::Head,
            _ => return Err(MethodError(s.to_string())),
        })
    }
}

impl Serialize for RestMethod {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RestMethod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
