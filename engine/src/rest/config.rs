//! The block as written in a flow file ([`RestConfig`], [`Param`],
//! [`BodyEncoding`]), and compiling it into a [`RestBlock`]: every check
//! that can be made before a request is sent, including every REST limit
//! check ([`RestConfig::compile_for`] checks `timeout_ms` and
//! `max_response_bytes` against the network policy).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::net::{InvalidRequest, NetPolicy, validate_header_name};
use crate::properties::{NameError, Properties, validate_name};
use crate::template::{Context, RenderError, Template, TemplateError, UrlTemplate};

use super::{RestBlock, RestMethod};

/// The default response property.
pub const DEFAULT_RESPONSE_PROPERTY: &str = "API Response";

/// A REST API block as written in a flow file.
///
/// ```json
/// {
///   "method": "POST",
///   "url": "https://api.example.com/users/{{user id}}/orders?source=bot",
///   "headers": [{"name": "Authorization", "value": "Bearer {{token}}"}],
///   "query": [{"name": "lang", "value": "{{language}}"}],
///   "body": [{"name": "item", "value": "{{item}}"}, {"name": "qty", "value": "1"}],
///   "body_encoding": "json",
///   "follow_redirects": true,
///   "redirect_keep_headers": [],
///   "ignore_error": false,
///   "response_property": "API Response",
///   "status_property": "API Response Status",
///   "timeout_ms": 5000,
///   "max_response_bytes": 262144
/// }
/// ```
///
/// Only `method` and `url` are required. Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RestConfig {
    /// `GET`, `POST`, `PUT`, `DELETE`, `PATCH` or `HEAD` (any case).
    #[serde(with = "super::method::serde_method")]
    pub method: RestMethod,
    /// The URL, a template. The scheme and host must be literal; each
    /// placeholder in the path is percent-encoded as one path segment, each
    /// one after `?` is form-urlencoded.
    pub url: String,
    /// Request headers, in order; a name may repeat. Names are literal,
    /// values are templates (CR, LF and other control characters refused).
    ///
    /// By default there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Param>,
    /// Query parameters appended, in order, to any query already in the
    /// URL. Names and values are templates, encoded by the URL library.
    ///
    /// By default there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<Param>,
    /// Body parameters. Names and values are templates; every value is
    /// sent as a string. With no body parameters no body is sent.
    ///
    /// By default there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub body: Vec<Param>,
    /// How body parameters are sent.
    ///
    /// By default this is [`BodyEncoding::Json`].
    #[serde(default)]
    pub body_encoding: BodyEncoding,
    /// Follow `301 Moved Permanently` (only that status), up to
    /// [`MAX_REDIRECTS`](super::MAX_REDIRECTS) hops. A hop within the
    /// request's origin keeps the method, headers and body. A hop to
    /// another origin (scheme, host or port differ) keeps the method, sends
    /// only the headers named in
    /// [`redirect_keep_headers`](Self::redirect_keep_headers), and is
    /// refused if the request has a body; a hop from `https` to `http` is
    /// refused.
    ///
    /// By default this is `false`.
    #[serde(default)]
    pub follow_redirects: bool,
    /// Names of the block's own `headers` (any case) that are sent again
    /// when a followed `301` leads to another origin. Every name must be a
    /// header the block sets, and `follow_redirects` must be on. Naming a
    /// credential here (`Authorization`, an API key) sends it to whatever
    /// origin the server redirects to, like curl's `--location-trusted`.
    ///
    /// By default there are none: a hop to another origin carries none of
    /// the block's headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_keep_headers: Vec<String>,
    /// On error, continue the conversation (the response property is
    /// removed) instead of stopping it.
    ///
    /// By default this is `false`.
    #[serde(default)]
    pub ignore_error: bool,
    /// The property that receives the response body on success, and is
    /// removed on an ignored error.
    ///
    /// By default this is `API Response`.
    #[serde(default = "default_response_property")]
    pub response_property: String,
    /// If set, the property that receives the HTTP status code as text
    /// (`"200"`, `"404"`): on success, and on an ignored error that has a
    /// status (a non-`2xx` answer); removed on an ignored error without
    /// one (connection failure, timeout, denial…).
    ///
    /// By default this is unset: no status property is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_property: Option<String>,
    /// The block's total timeout in milliseconds, across all redirect hops;
    /// clamped to the network policy's maximum.
    ///
    /// By default the network policy's timeout applies (10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The response body cap in bytes; clamped to the network policy's
    /// maximum.
    ///
    /// By default the network policy's cap applies (1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
}

fn default_response_property() -> String {
    DEFAULT_RESPONSE_PROPERTY.to_string()
}

/// A name/value pair of a header, query or body parameter: `{"name": …,
/// "value": …}` in a flow file (only that form: no `[name, value]` arrays,
/// no other keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Param {
    /// The name.
    pub name: String,
    /// The value (a template).
    pub value: String,
}

impl Param {
    /// A parameter.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Param {
        Param {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl<'de> Deserialize<'de> for Param {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Param;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"an object {"name": "…", "value": "…"}"#)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Param, A::Error> {
                use serde::de::Error;
                let (mut name, mut value) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    let slot = match key.as_str() {
                        "name" => &mut name,
                        "value" => &mut value,
                        other => return Err(A::Error::unknown_field(other, &["name", "value"])),
                    };
                    if slot.is_some() {
                        return Err(A::Error::custom(format_args!("duplicate field `{key}`")));
                    }
                    *slot = Some(map.next_value::<String>()?);
                }
                Ok(Param {
                    name: name.ok_or_else(|| A::Error::missing_field("name"))?,
                    value: value.ok_or_else(|| A::Error::missing_field("value"))?,
                })
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// How body parameters are encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum BodyEncoding {
    /// A JSON object of strings, `Content-Type: application/json`.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`; a name may repeat.
    Form,
}

impl FromStr for BodyEncoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(BodyEncoding::Json),
            "form" => Ok(BodyEncoding::Form),
            _ => Err(format!(
                "unsupported body encoding {s:?} (expected json or form)"
            )),
        }
    }
}

/// Why a [`RestConfig`] could not be compiled: the field, as a path into
/// the config (`url`, `headers[1].value`), and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {kind}")]
#[non_exhaustive]
pub struct BlockConfigError {
    /// The offending field: `url`, `headers[1].name`, `query[0].value`,
    /// `body[2].name`, `response_property`, `timeout_ms`…
    pub field: String,
    /// What is wrong with it.
    pub kind: BlockConfigErrorKind,
}

/// What is wrong with a [`RestConfig`] field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlockConfigErrorKind {
    /// A template does not parse (unclosed `{{`, bad name, placeholder in
    /// the URL's host).
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The URL does not parse (checked with sample property values).
    #[error("invalid url: {0}")]
    Url(url::ParseError),
    /// The URL's scheme is not `http` or `https`.
    #[error("scheme {scheme:?} is not supported (only http and https)")]
    Scheme {
        /// The scheme.
        scheme: String,
    },
    /// An invalid or client-managed header name.
    #[error(transparent)]
    Header(InvalidRequest),
    /// A template's own text cannot be rendered: a header value's literal
    /// text contains a control character.
    #[error(transparent)]
    Render(RenderError),
    /// An invalid property name in `response_property` or
    /// `status_property`.
    #[error(transparent)]
    PropertyName(#[from] NameError),
    /// `status_property` is the same as `response_property`.
    #[error("must differ from response_property")]
    SameProperty,
    /// An empty query or body parameter name.
    #[error("the name is empty")]
    EmptyName,
    /// A JSON body field name appears twice.
    #[error("body field {name:?} appears more than once")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A zero `timeout_ms` or `max_response_bytes`.
    #[error("must be more than 0")]
    Zero,
    /// A `redirect_keep_headers` name that is none of the block's
    /// `headers`.
    #[error("header {name:?} is not one of the block's headers")]
    NotABlockHeader {
        /// The name as written.
        name: String,
    },
    /// `redirect_keep_headers` is set but `follow_redirects` is off.
    #[error("has no effect without follow_redirects")]
    KeepWithoutFollow,
}

fn config_err(field: impl Into<String>, kind: impl Into<BlockConfigErrorKind>) -> BlockConfigError {
    BlockConfigError {
        field: field.into(),
        kind: kind.into(),
    }
}

impl RestConfig {
    /// A config with the given method and URL and every other field at its
    /// default.
    pub fn new(method: RestMethod, url: impl Into<String>) -> RestConfig {
        RestConfig {
            method,
            url: url.into(),
            headers: Vec::new(),
            query: Vec::new(),
            body: Vec::new(),
            body_encoding: BodyEncoding::default(),
            follow_redirects: false,
            redirect_keep_headers: Vec::new(),
            ignore_error: false,
            response_property: default_response_property(),
            status_property: None,
            timeout_ms: None,
            max_response_bytes: None,
        }
    }

    /// Parses every template and checks every static part: the URL (with
    /// sample values: it must parse, with an `http` or `https` scheme),
    /// header names, literal header text, parameter names, property names,
    /// `redirect_keep_headers` (each one of the block's headers), limits.
    /// Errors name the field (`headers[1].value: unclosed {{ at byte 4`).
    ///
    /// The block's `timeout_ms` and `max_response_bytes` are not checked
    /// against a network policy here (at run time they are clamped to the
    /// policy's maximums); [`RestConfig::compile_for`] refuses them.
    pub fn compile(&self) -> Result<RestBlock, BlockConfigError> {
        let url = UrlTemplate::parse(&self.url).map_err(|e| config_err("url", e))?;
        let sample_url = url.render(&sample(url.names())).map_err(|e| match e {
            RenderError::InvalidUrl { reason } => {
                config_err("url", BlockConfigErrorKind::Url(reason))
            }
            other => config_err("url", BlockConfigErrorKind::Render(other)),
        })?;
        if !matches!(sample_url.scheme(), "http" | "https") {
            return Err(config_err(
                "url",
                BlockConfigErrorKind::Scheme {
                    scheme: sample_url.scheme().to_string(),
                },
            ));
        }
        if sample_url.host().is_none() {
            return Err(config_err(
                "url",
                BlockConfigErrorKind::Url(url::ParseError::EmptyHost),
            ));
        }

        let mut headers = Vec::with_capacity(self.headers.len());
        for (i, Param { name, value }) in self.headers.iter().enumerate() {
            let header = validate_header_name(name).map_err(|e| {
                config_err(
                    format!("headers[{i}].name"),
                    BlockConfigErrorKind::Header(e),
                )
            })?;
            let field = format!("headers[{i}].value");
            let value = Template::parse(value).map_err(|e| config_err(&field, e))?;
            value
                .render(&sample(value.names()), Context::Header(name))
                .map_err(|e| config_err(&field, BlockConfigErrorKind::Render(e)))?;
            headers.push((header, name.clone(), value));
        }
        let mut redirect_keep_headers = Vec::with_capacity(self.redirect_keep_headers.len());
        for (i, name) in self.redirect_keep_headers.iter().enumerate() {
            let field = || format!("redirect_keep_headers[{i}]");
            let header = validate_header_name(name)
                .map_err(|e| config_err(field(), BlockConfigErrorKind::Header(e)))?;
            if !headers.iter().any(|(set, _, _)| *set == header) {
                return Err(config_err(
                    field(),
                    BlockConfigErrorKind::NotABlockHeader { name: name.clone() },
                ));
            }
            redirect_keep_headers.push(header);
        }
        if !redirect_keep_headers.is_empty() && !self.follow_redirects {
            return Err(config_err(
                "redirect_keep_headers",
                BlockConfigErrorKind::KeepWithoutFollow,
            ));
        }
        let query = compile_params("query", &self.query)?;
        let body = compile_params("body", &self.body)?;
        if self.body_encoding == BodyEncoding::Json {
            let mut seen = HashSet::new();
            for (i, (name, _)) in body.iter().enumerate() {
                if name.is_literal() && !seen.insert(name.render_text(&Properties::new())) {
                    return Err(config_err(
                        format!("body[{i}].name"),
                        BlockConfigErrorKind::DuplicateName {
                            name: name.source().to_string(),
                        },
                    ));
                }
            }
        }

        validate_name(&self.response_property).map_err(|e| config_err("response_property", e))?;
        if let Some(status) = &self.status_property {
            validate_name(status).map_err(|e| config_err("status_property", e))?;
            if *status == self.response_property {
                return Err(config_err(
                    "status_property",
                    BlockConfigErrorKind::SameProperty,
                ));
            }
        }
        self.check_limits_nonzero()?;

        Ok(RestBlock {
            method: self.method,
            url,
            headers,
            query,
            body,
            body_encoding: self.body_encoding,
            follow_redirects: self.follow_redirects,
            redirect_keep_headers,
            ignore_error: self.ignore_error,
            response_property: self.response_property.clone(),
            status_property: self.status_property.clone(),
            timeout: self.timeout_ms.map(Duration::from_millis),
            max_response_bytes: self.max_response_bytes,
        })
    }
}

/// Sample values for checking a template's own text: `x` for each property.
fn sample(names: Vec<&str>) -> Properties {
    names.into_iter().map(|n| (n, "x")).collect()
}

fn compile_params(
    list: &str,
    params: &[Param],
) -> Result<Vec<(Template, Template)>, BlockConfigError> {
    params
        .iter()
        .enumerate()
        .map(|(i, Param { name, value })| {
            let name_field = format!("{list}[{i}].name");
            if name.trim().is_empty() {
                return Err(config_err(name_field, BlockConfigErrorKind::EmptyName));
            }
            let name = Template::parse(name).map_err(|e| config_err(name_field, e))?;
            let value =
                Template::parse(value).map_err(|e| config_err(format!("{list}[{i}].value"), e))?;
            Ok((name, value))
        })
        .collect()
}

/// Why [`RestConfig::compile_for`] refused a block.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// A field is invalid whatever the policy (what
    /// [`RestConfig::compile`] refuses).
    #[error(transparent)]
    Config(#[from] BlockConfigError),
    /// The block's timeout or response cap is outside the network policy's
    /// range: one entry per field that is (at least one).
    #[error("{}", join(.0))]
    Limits(Vec<PolicyLimitError>),
}

fn join(errors: &[PolicyLimitError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {e}", e.field()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A REST API block's `timeout_ms` or `max_response_bytes` outside the
/// network policy's range (1 to the policy's maximum), found by
/// [`RestConfig::compile_for`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyLimitError {
    /// `timeout_ms` is over [`NetPolicy::max_timeout`].
    #[error("{ms} ms is outside the network policy's range (1 to {max_ms} ms)")]
    Timeout {
        /// The block's `timeout_ms`.
        ms: u64,
        /// The policy's maximum, in milliseconds.
        max_ms: u128,
    },
    /// `max_response_bytes` is over [`NetPolicy::max_response_bytes`].
    #[error("{bytes} bytes is outside the network policy's range (1 to {max} bytes)")]
    ResponseBytes {
        /// The block's `max_response_bytes`.
        bytes: u64,
        /// The policy's maximum.
        max: u64,
    },
}

impl PolicyLimitError {
    /// The field of the config: `timeout_ms` or `max_response_bytes`.
    pub fn field(&self) -> &'static str {
        match self {
            PolicyLimitError::Timeout { .. } => "timeout_ms",
            PolicyLimitError::ResponseBytes { .. } => "max_response_bytes",
        }
    }
}

/// The REST limits, `timeout_ms` and `max_response_bytes`: every check on
/// them is here. Each must be more than 0 (whatever the policy, in
/// [`RestConfig::compile`]) and at most the network policy's maximum (in
/// [`RestConfig::compile_for`], which a flow loader calls). At run time
/// the client applies the policy's maximums again
/// ([`NetPolicy::effective_timeout`], the policy's response cap).
impl RestConfig {
    /// [`RestConfig::compile`], then the block's `timeout_ms` and
    /// `max_response_bytes` against `policy`'s maximums: what loading a
    /// flow checks, so that a block that loads is never refused or
    /// silently clamped for its limits when it runs. A field error comes
    /// alone (the limits are not checked then); otherwise every limit
    /// outside the policy's range is reported.
    pub fn compile_for(&self, policy: &NetPolicy) -> Result<RestBlock, CompileError> {
        let block = self.compile()?;
        let over = self.check_limits_within(policy);
        if over.is_empty() {
            Ok(block)
        } else {
            Err(CompileError::Limits(over))
        }
    }

    fn check_limits_nonzero(&self) -> Result<(), BlockConfigError> {
        if self.timeout_ms == Some(0) {
            return Err(config_err("timeout_ms", BlockConfigErrorKind::Zero));
        }
        if self.max_response_bytes == Some(0) {
            return Err(config_err("max_response_bytes", BlockConfigErrorKind::Zero));
        }
        Ok(())
    }

    fn check_limits_within(&self, policy: &NetPolicy) -> Vec<PolicyLimitError> {
        let mut over = Vec::new();
        let max_ms = policy.max_timeout.as_millis();
        if let Some(ms) = self.timeout_ms
            && (ms == 0 || u128::from(ms) > max_ms)
        {
            over.push(PolicyLimitError::Timeout { ms, max_ms });
        }
        let max = policy.max_response_bytes;
        if let Some(bytes) = self.max_response_bytes
            && (bytes == 0 || bytes > max)
        {
            over.push(PolicyLimitError::ResponseBytes { bytes, max });
        }
        over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> RestConfig {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    #[test]
    fn config_defaults() {
        let c = config(r#"{"method": "get", "url": "http://h/"}"#);
        assert_eq!(c, RestConfig::new(RestMethod::Get, "http://h/"));
        assert_eq!(c.response_property, "API Response");
        assert_eq!(c.body_encoding, BodyEncoding::Json);
        assert!(!c.follow_redirects && !c.ignore_error);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"method":"GET","url":"http://h/","body_encoding":"json","follow_redirects":false,"ignore_error":false,"response_property":"API Response"}"#
        );
    }

    #[test]
    fn config_bad() {
        for bad in [
            r#"{"url": "http://h/"}"#,
            r#"{"method": "TRACE", "url": "http://h/"}"#,
            r#"{"method": "GET", "url": "http://h/", "body_encoding": "xml"}"#,
            r#"{"method": "GET", "url": "http://h/", "headers": [["a", "b"]]}"#,
            r#"{"method": "GET", "url": "http://h/", "follow_redirect": true}"#,
            r#"{"method": "GET", "url": "http://h/", "headers": [{"name": "a", "value": "b", "x": 1}]}"#,
            r#"{"method": "GET", "url": "http://h/", "headers": [{"name": "a"}]}"#,
            r#"{"method": "GET", "url": "http://h/", "query": [{"name": "a", "value": 1}]}"#,
        ] {
            assert!(serde_json::from_str::<RestConfig>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn compiles() {
        let c = config(
            r#"{"method": "POST", "url": "https://api.example.com/u/{{id}}?a=1",
                "headers": [{"name": "X-Key", "value": "{{key}}"}, {"name": "X-Key", "value": "2"}],
                "query": [{"name": "{{qn}}", "value": "{{qv}}"}],
                "body": [{"name": "n", "value": "{{id}}"}],
                "status_property": "API Response Status"}"#,
        );
        let block = c.compile().unwrap();
        assert_eq!(block.names(), vec!["id", "key", "qn", "qv"]);
        assert_eq!(block.response_property(), "API Response");
    }

    fn variant_name(kind: &BlockConfigErrorKind) -> &'static str {
        match kind {
            BlockConfigErrorKind::Template(_) => "Template",
            BlockConfigErrorKind::Url(_) => "Url",
            BlockConfigErrorKind::Scheme { .. } => "Scheme",
            BlockConfigErrorKind::Header(_) => "Header",
            BlockConfigErrorKind::Render(_) => "Render",
            BlockConfigErrorKind::PropertyName(_) => "PropertyName",
            BlockConfigErrorKind::SameProperty => "SameProperty",
            BlockConfigErrorKind::EmptyName => "EmptyName",
            BlockConfigErrorKind::DuplicateName { .. } => "DuplicateName",
            BlockConfigErrorKind::Zero => "Zero",
            BlockConfigErrorKind::NotABlockHeader { .. } => "NotABlockHeader",
            BlockConfigErrorKind::KeepWithoutFollow => "KeepWithoutFollow",
        }
    }

    #[test]
    fn compiles_bad() {
        let base = RestConfig::new(RestMethod::Get, "http://h/");
        let cases: Vec<(RestConfig, &str, &str)> = vec![
            (
                RestConfig::new(RestMethod::Get, "http://h/{{id"),
                "url",
                "url: unclosed {{ at byte 9",
            ),
            (
                RestConfig::new(RestMethod::Get, "http://{{host}}/"),
                "url",
                "url: {{…}} at byte 7 is in the url's scheme or host; only the path, query and fragment may use properties",
            ),
            (
                RestConfig::new(RestMethod::Get, "ftp://h/{{x}}"),
                "url",
                "url: scheme \"ftp\" is not supported (only http and https)",
            ),
            (
                RestConfig::new(RestMethod::Get, "not a url"),
                "url",
                "url: invalid url: relative URL without a base",
            ),
            (
                RestConfig::new(RestMethod::Get, "http://h:99999/{{x}}"),
                "url",
                "url: invalid url: invalid port number",
            ),
            (
                RestConfig {
                    headers: vec![Param::new("X-Ok", "1"), Param::new("X-Key", "ab{{id")],
                    ..base.clone()
                },
                "headers[1].value",
                "headers[1].value: unclosed {{ at byte 2",
            ),
            (
                RestConfig {
                    headers: vec![Param::new("Bad Name", "1")],
                    ..base.clone()
                },
                "headers[0].name",
                "headers[0].name: invalid header name \"Bad Name\"",
            ),
            (
                RestConfig {
                    headers: vec![Param::new("Host", "internal")],
                    ..base.clone()
                },
                "headers[0].name",
                "headers[0].name: header \"Host\" is set by the client and cannot be set by a block",
            ),
            (
                RestConfig {
                    headers: vec![Param::new("X-A", "a\r\nX-B: {{id}}")],
                    ..base.clone()
                },
                "headers[0].value",
                "headers[0].value: header \"X-A\": value contains '\\r', which is not allowed in a header",
            ),
            (
                RestConfig {
                    query: vec![Param::new(" ", "1")],
                    ..base.clone()
                },
                "query[0].name",
                "query[0].name: the name is empty",
            ),
            (
                RestConfig {
                    query: vec![Param::new("q", "{{}}")],
                    ..base.clone()
                },
                "query[0].value",
                "query[0].value: invalid property name in {{…}} at byte 0: property name is empty",
            ),
            (
                RestConfig {
                    body: vec![Param::new("a", "1"), Param::new("a", "2")],
                    ..base.clone()
                },
                "body[1].name",
                "body[1].name: body field \"a\" appears more than once",
            ),
            (
                RestConfig {
                    response_property: "".into(),
                    ..base.clone()
                },
                "response_property",
                "response_property: property name is empty",
            ),
            (
                RestConfig {
                    status_property: Some("API Response".into()),
                    ..base.clone()
                },
                "status_property",
                "status_property: must differ from response_property",
            ),
            (
                RestConfig {
                    timeout_ms: Some(0),
                    ..base.clone()
                },
                "timeout_ms",
                "timeout_ms: must be more than 0",
            ),
            (
                RestConfig {
                    max_response_bytes: Some(0),
                    ..base.clone()
                },
                "max_response_bytes",
                "max_response_bytes: must be more than 0",
            ),
            (
                RestConfig {
                    headers: vec![Param::new("X-Api-Key", "k")],
                    follow_redirects: true,
                    redirect_keep_headers: vec!["X-Api-Key".into(), "X-Other".into()],
                    ..base.clone()
                },
                "redirect_keep_headers[1]",
                "redirect_keep_headers[1]: header \"X-Other\" is not one of the block's headers",
            ),
            (
                RestConfig {
                    headers: vec![Param::new("X-Api-Key", "k")],
                    follow_redirects: true,
                    redirect_keep_headers: vec!["Host".into()],
                    ..base.clone()
                },
                "redirect_keep_headers[0]",
                "redirect_keep_headers[0]: header \"Host\" is set by the client and cannot be set by a block",
            ),
            (
                RestConfig {
                    headers: vec![Param::new("X-Api-Key", "k")],
                    follow_redirects: true,
                    redirect_keep_headers: vec!["X Api Key".into()],
                    ..base.clone()
                },
                "redirect_keep_headers[0]",
                "redirect_keep_headers[0]: invalid header name \"X Api Key\"",
            ),
            (
                RestConfig {
                    headers: vec![Param::new("X-Api-Key", "k")],
                    redirect_keep_headers: vec!["x-api-key".into()],
                    ..base.clone()
                },
                "redirect_keep_headers",
                "redirect_keep_headers: has no effect without follow_redirects",
            ),
        ];
        // The typed variant of each case above, in order.
        let variants = [
            "Template",
            "Template",
            "Scheme",
            "Url",
            "Url",
            "Template",
            "Header",
            "Header",
            "Render",
            "EmptyName",
            "Template",
            "DuplicateName",
            "PropertyName",
            "SameProperty",
            "Zero",
            "Zero",
            "NotABlockHeader",
            "Header",
            "Header",
            "KeepWithoutFollow",
        ];
        assert_eq!(cases.len(), variants.len());
        for ((c, field, message), variant) in cases.into_iter().zip(variants) {
            let err = c.compile().unwrap_err();
            assert_eq!(err.field, field, "{c:?}");
            assert_eq!(variant_name(&err.kind), variant, "{c:?}");
            assert_eq!(err.to_string(), message);
        }
        // Names match the block's headers in any case.
        let kept = RestConfig {
            headers: vec![Param::new("X-Api-Key", "{{key}}")],
            follow_redirects: true,
            redirect_keep_headers: vec!["x-API-key".into()],
            ..base.clone()
        };
        assert!(kept.compile().is_ok());
        // A repeated name is fine in a form body.
        let form = RestConfig {
            body: vec![Param::new("a", "1"), Param::new("a", "2")],
            body_encoding: BodyEncoding::Form,
            ..base
        };
        assert!(form.compile().is_ok());
    }

    /// Limits at the policy's maximums compile; the policy is the one
    /// given (a smaller policy refuses what the default allows).
    #[test]
    fn compiles_for_policy() {
        let policy = NetPolicy::default();
        let max_ms = u64::try_from(policy.max_timeout.as_millis()).unwrap();
        let at_max = RestConfig {
            timeout_ms: Some(max_ms),
            max_response_bytes: Some(policy.max_response_bytes),
            ..RestConfig::new(RestMethod::Get, "http://h/")
        };
        let block = at_max.compile_for(&policy).unwrap();
        assert_eq!(block.timeout, Some(policy.max_timeout));
        assert_eq!(block.max_response_bytes, Some(policy.max_response_bytes));
        assert!(
            RestConfig::new(RestMethod::Get, "http://h/")
                .compile_for(&policy)
                .is_ok()
        );

        let mut small = NetPolicy::default();
        small.max_timeout = Duration::from_millis(max_ms - 1);
        match at_max.compile_for(&small) {
            Err(CompileError::Limits(over)) => assert_eq!(
                over,
                [PolicyLimitError::Timeout {
                    ms: max_ms,
                    max_ms: u128::from(max_ms - 1)
                }]
            ),
            other => panic!("expected the timeout over the policy, got {other:?}"),
        }
    }

    #[test]
    fn compiles_for_policy_bad() {
        let policy = NetPolicy::default();
        let base = RestConfig::new(RestMethod::Get, "http://h/");
        // Both limits over: both reported, each naming its field, with the
        // messages a flow's problems show.
        let both = RestConfig {
            timeout_ms: Some(600_000),
            max_response_bytes: Some(1 << 30),
            ..base.clone()
        };
        let Err(CompileError::Limits(over)) = both.compile_for(&policy) else {
            panic!("expected both limits over the policy");
        };
        let fields: Vec<_> = over.iter().map(|e| (e.field(), e.to_string())).collect();
        assert_eq!(
            fields,
            [
                (
                    "timeout_ms",
                    "600000 ms is outside the network policy's range (1 to 60000 ms)".to_string()
                ),
                (
                    "max_response_bytes",
                    "1073741824 bytes is outside the network policy's range (1 to 16777216 bytes)"
                        .to_string()
                ),
            ]
        );
        // A zero limit is a field error whatever the policy, as from
        // `compile`; a field error comes alone, limits unchecked.
        for (config, message) in [
            (
                RestConfig {
                    timeout_ms: Some(0),
                    ..base.clone()
                },
                "timeout_ms: must be more than 0",
            ),
            (
                RestConfig {
                    max_response_bytes: Some(0),
                    timeout_ms: Some(600_000),
                    ..base.clone()
                },
                "max_response_bytes: must be more than 0",
            ),
            (
                RestConfig {
                    response_property: "".into(),
                    timeout_ms: Some(600_000),
                    ..base.clone()
                },
                "response_property: property name is empty",
            ),
        ] {
            match config.compile_for(&policy) {
                Err(CompileError::Config(e)) => assert_eq!(e.to_string(), message),
                other => panic!("{config:?}: expected a field error, got {other:?}"),
            }
        }
    }
}
