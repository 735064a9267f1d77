//! The REST API block: call a business API with `{{Property}}` values and
//! store the answer in a property.
//!
//! A [`RestConfig`] is the block as it appears in a flow file. It is
//! compiled once ([`RestConfig::compile`]) into a [`RestBlock`], with every
//! template parsed and every static part checked, and then executed any
//! number of times against the engine's [`HttpClient`] and a conversation's
//! [`Properties`]. Execution never writes to the properties: it returns a
//! [`RestOutcome`] whose [`ChangeSet`] the caller commits (or not).
//!
//! The outcome rules (the full behaviour is in `docs/rest-block.md`):
//!
//! - a `2xx` answer: the body, decoded by its charset, is stored in the
//!   response property (`API Response` by default);
//! - any error (a property missing from a template, a policy denial, a
//!   connection failure, a timeout, a body over the cap, a non-`2xx` status
//!   including a redirect that is not followed, too many redirects): with
//!   `ignore_error` the block succeeds with the error reported and the
//!   response property **removed**, so a stale value from an earlier call
//!   cannot make `{{API Response}} exists` true; without it the outcome
//!   stops the conversation and commits nothing.
//!
//! Only `301 Moved Permanently` is followed, and only with
//! `follow_redirects`: at most [`MAX_REDIRECTS`] hops, each checked against
//! the network policy again. A hop to another origin (scheme, host or port)
//! carries none of the block's headers except those named in
//! `redirect_keep_headers`, and is refused if the request has a body
//! ([`RestError::RedirectWithBody`]); a hop from `https` to `http` is
//! refused ([`RestError::InsecureRedirect`]). A hop within the origin keeps
//! everything.
//!
//! ```no_run
//! use chatflow_engine::Properties;
//! use chatflow_engine::net::{HttpClient, NetPolicy};
//! use chatflow_engine::rest::RestConfig;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config: RestConfig = serde_json::from_str(r#"{
//!     "method": "GET",
//!     "url": "https://api.example.com/users/{{user id}}",
//!     "headers": [{"name": "X-Key", "value": "{{api key}}"}],
//!     "ignore_error": true
//! }"#)?;
//! let block = config.compile()?;
//!
//! let client = HttpClient::new(NetPolicy::default())?;
//! let mut props: Properties = [("user id", "42"), ("api key", "k-123")].into_iter().collect();
//! let outcome = block.execute(&client, &props).await;
//! if let Some(err) = &outcome.error {
//!     eprintln!("REST block failed: {err}");
//! }
//! if !outcome.stop {
//!     props.apply(outcome.changes);
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::net::{
    HeaderName, HeaderValue, HttpClient, InvalidRequest, Method, NetError, Request, Response,
    StatusCode, TimeoutPhase, redact_url, validate_header_name,
};
use crate::properties::{ChangeSet, NameError, Properties, validate_name};
use crate::template::{Context, RenderError, Template, TemplateError, UrlTemplate};

/// The most `301` hops followed for one block; one more is
/// [`RestError::TooManyRedirects`].
pub const MAX_REDIRECTS: u32 = 5;

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
    /// [`MAX_REDIRECTS`] hops. A hop within the request's origin keeps the
    /// method, headers and body. A hop to another origin (scheme, host or
    /// port differ) keeps the method, sends only the headers named in
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

    fn to_http(self) -> Method {
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
pub struct ConfigError {
    /// The offending field: `url`, `headers[1].name`, `query[0].value`,
    /// `body[2].name`, `response_property`, `timeout_ms`…
    pub field: String,
    /// What is wrong with it.
    pub kind: ConfigErrorKind,
}

/// What is wrong with a [`RestConfig`] field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigErrorKind {
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

fn config_err(field: impl Into<String>, kind: impl Into<ConfigErrorKind>) -> ConfigError {
    ConfigError {
        field: field.into(),
        kind: kind.into(),
    }
}

/// Why an executed block failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestError {
    /// A template could not be rendered: a property it uses is not set, a
    /// value would inject a header or change the URL path.
    #[error("{field}: {reason}")]
    Render {
        /// The field: `url`, `headers[0].value`, `query[1].name`, …
        field: String,
        /// What went wrong.
        reason: RenderError,
    },
    /// The request failed in the HTTP client: denied by the network policy,
    /// connection failure, timeout, body over the cap, invalid request.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The server answered with a status outside `2xx` (including a 3xx
    /// that was not followed).
    #[error("{url} answered {status}")]
    Status {
        /// The URL that answered, redacted.
        url: String,
        /// The status.
        status: StatusCode,
    },
    /// More than [`MAX_REDIRECTS`] `301` hops.
    #[error("{url} redirected more than {limit} times")]
    TooManyRedirects {
        /// The URL that sent the last redirect, redacted.
        url: String,
        /// [`MAX_REDIRECTS`].
        limit: u32,
    },
    /// A `301` with a `Location` that is not a valid URL.
    #[error("{url} answered 301 with an invalid location")]
    BadRedirect {
        /// The URL that sent the redirect, redacted.
        url: String,
    },
    /// A `301` from an `https` URL to an `http` one: not followed, nothing
    /// is sent to the `http` URL.
    #[error("{from} redirected to {to}: a redirect from https to http is not followed")]
    InsecureRedirect {
        /// The URL that sent the redirect, redacted.
        from: String,
        /// Where it pointed, redacted.
        to: String,
    },
    /// A `301` to another origin (scheme, host or port) for a request with
    /// a body: not followed, so the body is never sent to an origin the
    /// block did not name. Point the block at the new URL instead.
    #[error(
        "{from} redirected to another origin ({to}); a request with a body is not sent to another origin"
    )]
    RedirectWithBody {
        /// The URL that sent the redirect, redacted.
        from: String,
        /// Where it pointed, redacted.
        to: String,
    },
    /// Two JSON body field names rendered to the same text.
    #[error("body field {name:?} appears more than once")]
    DuplicateBodyName {
        /// The repeated name.
        name: String,
    },
}

impl RestError {
    /// A short, stable name for the error (`render`, `status`,
    /// `too_many_redirects`, `bad_redirect`, `insecure_redirect`,
    /// `redirect_with_body`, `duplicate_body_name`, or the
    /// [`NetError::kind`]: `denied`, `timeout`, `connect`, …), for logs and
    /// machine-readable output.
    pub fn kind(&self) -> &'static str {
        match self {
            RestError::Render { .. } => "render",
            RestError::Net(e) => e.kind(),
            RestError::Status { .. } => "status",
            RestError::TooManyRedirects { .. } => "too_many_redirects",
            RestError::BadRedirect { .. } => "bad_redirect",
            RestError::InsecureRedirect { .. } => "insecure_redirect",
            RestError::RedirectWithBody { .. } => "redirect_with_body",
            RestError::DuplicateBodyName { .. } => "duplicate_body_name",
        }
    }
}

/// What one execution of a [`RestBlock`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct RestOutcome {
    /// The property writes to commit: on success the response property
    /// (and the status property, if configured); on an ignored error the
    /// response property's removal (and the status property's update);
    /// empty when the block stops the conversation.
    pub changes: ChangeSet,
    /// The last HTTP status received, if any response arrived.
    pub status: Option<StatusCode>,
    /// Wall time of the whole block: rendering, every hop, reading bodies.
    pub duration: Duration,
    /// How many `301` hops were followed.
    pub redirects: u32,
    /// The error, if the block failed (ignored or not).
    pub error: Option<RestError>,
    /// Whether the conversation stops here: an error without
    /// `ignore_error`. When `true`, `changes` is empty.
    pub stop: bool,
}

/// A compiled REST API block: templates parsed, names checked. Cheap to
/// share (`Clone`, `Send`, `Sync`); execute it any number of times.
#[derive(Debug, Clone)]
pub struct RestBlock {
    method: RestMethod,
    url: UrlTemplate,
    /// The checked name, the name as written (for errors), the value.
    headers: Vec<(HeaderName, String, Template)>,
    query: Vec<(Template, Template)>,
    body: Vec<(Template, Template)>,
    body_encoding: BodyEncoding,
    follow_redirects: bool,
    /// Headers sent again on a hop to another origin.
    redirect_keep_headers: Vec<HeaderName>,
    ignore_error: bool,
    response_property: String,
    status_property: Option<String>,
    timeout: Option<Duration>,
    max_response_bytes: Option<u64>,
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
    pub fn compile(&self) -> Result<RestBlock, ConfigError> {
        let url = UrlTemplate::parse(&self.url).map_err(|e| config_err("url", e))?;
        let sample: Properties = url.names().into_iter().map(|n| (n, "x")).collect();
        let sample_url = url.render(&sample).map_err(|e| match e {
            RenderError::InvalidUrl { reason } => config_err("url", ConfigErrorKind::Url(reason)),
            other => config_err("url", ConfigErrorKind::Render(other)),
        })?;
        if !matches!(sample_url.scheme(), "http" | "https") {
            return Err(config_err(
                "url",
                ConfigErrorKind::Scheme {
                    scheme: sample_url.scheme().to_string(),
                },
            ));
        }
        if sample_url.host().is_none() {
            return Err(config_err(
                "url",
                ConfigErrorKind::Url(url::ParseError::EmptyHost),
            ));
        }

        let mut headers = Vec::with_capacity(self.headers.len());
        for (i, Param { name, value }) in self.headers.iter().enumerate() {
            let header = validate_header_name(name).map_err(|e| {
                config_err(format!("headers[{i}].name"), ConfigErrorKind::Header(e))
            })?;
            let field = format!("headers[{i}].value");
            let value = Template::parse(value).map_err(|e| config_err(&field, e))?;
            let sample: Properties = value.names().into_iter().map(|n| (n, "x")).collect();
            value
                .render(&sample, Context::Header(name))
                .map_err(|e| config_err(&field, ConfigErrorKind::Render(e)))?;
            headers.push((header, name.clone(), value));
        }
        let mut redirect_keep_headers = Vec::with_capacity(self.redirect_keep_headers.len());
        for (i, name) in self.redirect_keep_headers.iter().enumerate() {
            let field = || format!("redirect_keep_headers[{i}]");
            let header = validate_header_name(name)
                .map_err(|e| config_err(field(), ConfigErrorKind::Header(e)))?;
            if !headers.iter().any(|(set, _, _)| *set == header) {
                return Err(config_err(
                    field(),
                    ConfigErrorKind::NotABlockHeader { name: name.clone() },
                ));
            }
            redirect_keep_headers.push(header);
        }
        if !redirect_keep_headers.is_empty() && !self.follow_redirects {
            return Err(config_err(
                "redirect_keep_headers",
                ConfigErrorKind::KeepWithoutFollow,
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
                        ConfigErrorKind::DuplicateName {
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
                return Err(config_err("status_property", ConfigErrorKind::SameProperty));
            }
        }
        if self.timeout_ms == Some(0) {
            return Err(config_err("timeout_ms", ConfigErrorKind::Zero));
        }
        if self.max_response_bytes == Some(0) {
            return Err(config_err("max_response_bytes", ConfigErrorKind::Zero));
        }

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

fn compile_params(list: &str, params: &[Param]) -> Result<Vec<(Template, Template)>, ConfigError> {
    params
        .iter()
        .enumerate()
        .map(|(i, Param { name, value })| {
            let name_field = format!("{list}[{i}].name");
            if name.trim().is_empty() {
                return Err(config_err(name_field, ConfigErrorKind::EmptyName));
            }
            let name = Template::parse(name).map_err(|e| config_err(name_field, e))?;
            let value =
                Template::parse(value).map_err(|e| config_err(format!("{list}[{i}].value"), e))?;
            Ok((name, value))
        })
        .collect()
}

/// Names the field of a render error. The field's name is only built
/// when there is an error (a block's successful runs allocate none).
fn render_err(field: impl FnOnce() -> String) -> impl FnOnce(RenderError) -> RestError {
    move |reason| RestError::Render {
        field: field(),
        reason,
    }
}

impl RestBlock {
    /// Every property the block reads, each once.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.url.names();
        let templates = self
            .headers
            .iter()
            .map(|(_, _, v)| v)
            .chain(self.query.iter().flat_map(|(n, v)| [n, v]))
            .chain(self.body.iter().flat_map(|(n, v)| [n, v]));
        for t in templates {
            for name in t.names() {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// Every property the block reads, with the field that reads it
    /// (`url`, `headers[0]`, `query[1].name`…), in field order.
    pub(crate) fn uses(&self) -> Vec<(String, &str)> {
        let mut uses: Vec<(String, &str)> = self
            .url
            .names()
            .into_iter()
            .map(|n| ("url".to_string(), n))
            .collect();
        for (i, (_, _, value)) in self.headers.iter().enumerate() {
            uses.extend(
                value
                    .names()
                    .into_iter()
                    .map(|n| (format!("headers[{i}]"), n)),
            );
        }
        for (list, params) in [("query", &self.query), ("body", &self.body)] {
            for (i, (name, value)) in params.iter().enumerate() {
                uses.extend(
                    name.names()
                        .into_iter()
                        .map(|n| (format!("{list}[{i}].name"), n)),
                );
                uses.extend(
                    value
                        .names()
                        .into_iter()
                        .map(|n| (format!("{list}[{i}].value"), n)),
                );
            }
        }
        uses
    }

    /// The property the HTTP status goes to, if any.
    pub fn status_property(&self) -> Option<&str> {
        self.status_property.as_deref()
    }

    /// Whether errors are ignored (the conversation continues).
    pub fn ignore_error(&self) -> bool {
        self.ignore_error
    }

    /// The property the response body goes to.
    pub fn response_property(&self) -> &str {
        &self.response_property
    }

    /// Runs the block once. Never fails: every error is in the outcome,
    /// with [`RestOutcome::stop`] saying whether the conversation stops.
    pub async fn execute(&self, client: &HttpClient, props: &Properties) -> RestOutcome {
        let started = Instant::now();
        let mut last_status = None;
        let mut redirects = 0;
        let result = self
            .run(client, props, started, &mut last_status, &mut redirects)
            .await;
        let mut changes = ChangeSet::new();
        let (error, stop) = match result {
            Ok(body) => {
                changes.set(&self.response_property, body);
                (None, false)
            }
            Err(error) if self.ignore_error => {
                changes.remove(&self.response_property);
                (Some(error), false)
            }
            Err(error) => (Some(error), true),
        };
        if let Some(status_property) = &self.status_property
            && !stop
        {
            match last_status {
                Some(status) => changes.set(status_property, status.as_u16().to_string()),
                None => changes.remove(status_property),
            }
        }
        let outcome = RestOutcome {
            changes,
            status: last_status,
            duration: started.elapsed(),
            redirects,
            error,
            stop,
        };
        match &outcome.error {
            None => {
                tracing::debug!(status = ?outcome.status, duration = ?outcome.duration, "rest block succeeded")
            }
            Some(e) => tracing::info!(error = %e, stop = outcome.stop, "rest block failed"),
        }
        outcome
    }

    async fn run(
        &self,
        client: &HttpClient,
        props: &Properties,
        started: Instant,
        last_status: &mut Option<StatusCode>,
        redirects: &mut u32,
    ) -> Result<String, RestError> {
        let mut request = self.build(props)?;
        let timeout = client
            .policy()
            .effective_timeout(self.timeout)
            .map_err(NetError::from)?;
        loop {
            let remaining = timeout.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                return Err(NetError::Timeout {
                    url: redact_url(request.url()),
                    phase: TimeoutPhase::Total,
                    limit: timeout,
                }
                .into());
            }
            // Only a block that follows redirects needs the request again.
            let kept = self.follow_redirects.then(|| request.clone());
            let response = client.send(request.timeout(remaining)).await;
            let response = response.map_err(|e| match e {
                // Report the block's timeout, not what was left of it.
                NetError::Timeout {
                    url,
                    phase: TimeoutPhase::Total,
                    ..
                } => NetError::Timeout {
                    url,
                    phase: TimeoutPhase::Total,
                    limit: timeout,
                },
                other => other,
            })?;
            *last_status = Some(response.status);
            if let Some(mut again) = kept
                && response.status == StatusCode::MOVED_PERMANENTLY
                && let Some(next) = redirect_target(&response)?
            {
                if *redirects == MAX_REDIRECTS {
                    return Err(RestError::TooManyRedirects {
                        url: redact_url(&response.url),
                        limit: MAX_REDIRECTS,
                    });
                }
                match redirect_hop(again.url(), &next, again.body_bytes().is_some())? {
                    Hop::SameOrigin => {}
                    Hop::OtherOrigin => {
                        // What the block wrote was meant for the origin it
                        // named: only the headers it says may travel do.
                        // Once dropped, a header stays dropped for the
                        // following hops, even back at the first origin.
                        let names: Vec<HeaderName> = again.headers().keys().cloned().collect();
                        for name in names {
                            if !self.redirect_keep_headers.contains(&name) {
                                again.headers_mut().remove(&name);
                            }
                        }
                    }
                }
                tracing::debug!(to = %redact_url(&next), "following 301");
                again.set_url(next);
                request = again;
                *redirects += 1;
                continue;
            }
            if !response.status.is_success() {
                return Err(RestError::Status {
                    url: redact_url(&response.url),
                    status: response.status,
                });
            }
            return Ok(response.into_text());
        }
    }

    /// Renders every template into one request.
    fn build(&self, props: &Properties) -> Result<Request, RestError> {
        let mut url = self
            .url
            .render(props)
            .map_err(render_err(|| "url".into()))?;
        if !self.query.is_empty() {
            let mut pairs = Vec::with_capacity(self.query.len());
            for (i, (name, value)) in self.query.iter().enumerate() {
                let name = name
                    .render(props, Context::Value)
                    .map_err(render_err(|| format!("query[{i}].name")))?;
                let value = value
                    .render(props, Context::Value)
                    .map_err(render_err(|| format!("query[{i}].value")))?;
                pairs.push((name, value));
            }
            url.query_pairs_mut().extend_pairs(pairs);
        }
        let mut request = Request::new(self.method.to_http(), url);
        if let Some(limit) = self.max_response_bytes {
            request = request.max_response_bytes(limit);
        }
        for (i, (name, written, value)) in self.headers.iter().enumerate() {
            let value = value
                .render(props, Context::Header(written))
                .map_err(render_err(|| format!("headers[{i}].value")))?;
            // The header context already refused every byte a header value
            // cannot hold; this cannot fail, but is not worth a panic.
            let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
                NetError::from(InvalidRequest::HeaderValue {
                    name: written.clone(),
                })
            })?;
            request.headers_mut().append(name.clone(), value);
        }
        if !self.body.is_empty() {
            let (body, content_type) = self.render_body(props)?;
            if !request.headers().contains_key("content-type") {
                request
                    .headers_mut()
                    .insert("content-type", HeaderValue::from_static(content_type));
            }
            request = request.body(body);
        }
        Ok(request)
    }

    fn render_body(&self, props: &Properties) -> Result<(String, &'static str), RestError> {
        let mut out = String::new();
        let mut seen = HashSet::new();
        let (ctx, open, sep, kv, close, content_type) = match self.body_encoding {
            BodyEncoding::Json => (Context::Json, "{", ",", ":", "}", "application/json"),
            BodyEncoding::Form => (
                Context::Form,
                "",
                "&",
                "=",
                "",
                "application/x-www-form-urlencoded",
            ),
        };
        out.push_str(open);
        for (i, (name, value)) in self.body.iter().enumerate() {
            let name = name
                .render(props, ctx)
                .map_err(render_err(|| format!("body[{i}].name")))?;
            let value = value
                .render(props, ctx)
                .map_err(render_err(|| format!("body[{i}].value")))?;
            if self.body_encoding == BodyEncoding::Json && !seen.insert(name.clone()) {
                let name = serde_json::from_str(&name).unwrap_or(name);
                return Err(RestError::DuplicateBodyName { name });
            }
            if i > 0 {
                out.push_str(sep);
            }
            out.push_str(&name);
            out.push_str(kv);
            out.push_str(&value);
        }
        out.push_str(close);
        Ok((out, content_type))
    }
}

/// Where a followed `301` goes, relative to the request that received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hop {
    /// Same scheme, host and port: the request is sent again as it is.
    SameOrigin,
    /// Another origin: only the headers the block lets travel are sent.
    OtherOrigin,
}

/// The redirect rules for one `301` hop from `from` to `to`, for a request
/// that has a body or not:
///
/// 1. `https` to `http` is refused ([`RestError::InsecureRedirect`]): the
///    request would leave TLS, whatever it carries.
/// 2. Within the origin, everything is kept ([`Hop::SameOrigin`]).
/// 3. To another origin, a request with a body is refused
///    ([`RestError::RedirectWithBody`]; `docs/rest-block.md` says why this
///    rather than turning it into a `GET`); one without goes on
///    ([`Hop::OtherOrigin`]).
fn redirect_hop(from: &Url, to: &Url, has_body: bool) -> Result<Hop, RestError> {
    if from.scheme() == "https" && to.scheme() == "http" {
        return Err(RestError::InsecureRedirect {
            from: redact_url(from),
            to: redact_url(to),
        });
    }
    if from.origin() == to.origin() {
        return Ok(Hop::SameOrigin);
    }
    if has_body {
        return Err(RestError::RedirectWithBody {
            from: redact_url(from),
            to: redact_url(to),
        });
    }
    Ok(Hop::OtherOrigin)
}

/// The URL a `301` points to, resolved against the URL that sent it; `None`
/// when there is no `Location` (the 301 is then returned as is).
fn redirect_target(response: &Response) -> Result<Option<Url>, RestError> {
    let Some(location) = response.headers.get("location") else {
        return Ok(None);
    };
    let bad = || RestError::BadRedirect {
        url: redact_url(&response.url),
    };
    let location = location.to_str().map_err(|_| bad())?;
    response.url.join(location).map(Some).map_err(|_| bad())
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

    fn variant_name(kind: &ConfigErrorKind) -> &'static str {
        match kind {
            ConfigErrorKind::Template(_) => "Template",
            ConfigErrorKind::Url(_) => "Url",
            ConfigErrorKind::Scheme { .. } => "Scheme",
            ConfigErrorKind::Header(_) => "Header",
            ConfigErrorKind::Render(_) => "Render",
            ConfigErrorKind::PropertyName(_) => "PropertyName",
            ConfigErrorKind::SameProperty => "SameProperty",
            ConfigErrorKind::EmptyName => "EmptyName",
            ConfigErrorKind::DuplicateName { .. } => "DuplicateName",
            ConfigErrorKind::Zero => "Zero",
            ConfigErrorKind::NotABlockHeader { .. } => "NotABlockHeader",
            ConfigErrorKind::KeepWithoutFollow => "KeepWithoutFollow",
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

    /// The redirect decision for one hop: from, to, with a body, result.
    #[test]
    fn redirect_hops() {
        let cases = [
            ("http://a/x", "http://a/y", false, Hop::SameOrigin),
            ("http://a/x", "http://a/y", true, Hop::SameOrigin),
            ("http://a/x", "http://a:80/y", true, Hop::SameOrigin),
            ("https://a/x", "https://A:443/y?q", true, Hop::SameOrigin),
            ("http://a/x", "http://b/x", false, Hop::OtherOrigin),
            ("http://a/x", "http://a:8080/x", false, Hop::OtherOrigin),
            (
                "http://127.0.0.1:1/",
                "http://localhost:1/",
                false,
                Hop::OtherOrigin,
            ),
            // An upgrade to https is another origin, but allowed.
            ("http://a/x", "https://a/x", false, Hop::OtherOrigin),
            ("https://a/x", "https://b/x", false, Hop::OtherOrigin),
        ];
        for (from, to, body, want) in cases {
            let (from, to) = (Url::parse(from).unwrap(), Url::parse(to).unwrap());
            assert_eq!(
                redirect_hop(&from, &to, body).unwrap(),
                want,
                "{from} -> {to}"
            );
        }
    }

    #[test]
    fn redirect_hops_bad() {
        let hop = |from: &str, to: &str, body| {
            redirect_hop(&Url::parse(from).unwrap(), &Url::parse(to).unwrap(), body)
        };
        for body in [false, true] {
            for (from, to) in [
                ("https://a/x", "http://a/x"),
                ("https://a/x", "http://b/x"),
                ("https://a:8443/x?k=1", "http://a:8443/x?k=1"),
            ] {
                match hop(from, to, body) {
                    Err(RestError::InsecureRedirect { from: f, to: t }) => {
                        assert!(!f.contains('?') && !t.contains('?'), "{f} {t}");
                    }
                    other => panic!("{from} -> {to}: expected insecure, got {other:?}"),
                }
            }
        }
        for (from, to) in [
            ("http://a/x", "http://b/x"),
            ("http://a/x", "https://a/x"),
            ("https://a/x?key=s", "https://b/y?key=s"),
            ("http://127.0.0.1:1/", "http://127.0.0.1:2/"),
        ] {
            match hop(from, to, true) {
                Err(e @ RestError::RedirectWithBody { .. }) => {
                    assert_eq!(e.kind(), "redirect_with_body");
                    assert!(!e.to_string().contains("key="), "{e}");
                }
                other => panic!("{from} -> {to}: expected a body refusal, got {other:?}"),
            }
        }
    }

    #[test]
    fn builds_requests() {
        let props: Properties = [
            ("id", "7/../x"),
            ("key", "k 1"),
            ("q", "a&b=c"),
            ("name", "\"}, \"admin\": true"),
        ]
        .into_iter()
        .collect();
        let c = RestConfig {
            headers: vec![Param::new("X-Key", "{{key}}"), Param::new("x-key", "two")],
            query: vec![Param::new("q", "{{q}}"), Param::new("q", "2")],
            body: vec![Param::new("name", "{{name}}"), Param::new("id", "{{id}}")],
            ..RestConfig::new(RestMethod::Post, "http://h/u/{{id}}?z=1")
        };
        let request = c.compile().unwrap().build(&props).unwrap();
        assert_eq!(
            request.url().as_str(),
            "http://h/u/7%2F..%2Fx?z=1&q=a%26b%3Dc&q=2"
        );
        let keys: Vec<_> = request.headers().get_all("x-key").iter().collect();
        assert_eq!(keys, ["k 1", "two"]);
        assert_eq!(request.headers()["content-type"], "application/json");
        let body: serde_json::Value =
            serde_json::from_slice(request.body_bytes().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"name": "\"}, \"admin\": true", "id": "7/../x"})
        );

        let form = RestConfig {
            body_encoding: BodyEncoding::Form,
            headers: vec![Param::new("Content-Type", "text/plain")],
            ..c
        };
        let request = form.compile().unwrap().build(&props).unwrap();
        assert_eq!(
            request.body_bytes().unwrap(),
            b"name=%22%7D%2C+%22admin%22%3A+true&id=7%2F..%2Fx"
        );
        assert_eq!(
            request.headers()["content-type"],
            "text/plain",
            "the author's type wins"
        );
    }

    #[test]
    fn builds_requests_bad() {
        let props: Properties = [("a", "x"), ("crlf", "1\r\nX-Evil: 1"), ("dots", "..")]
            .into_iter()
            .collect();
        let cases: Vec<(RestConfig, &str)> = vec![
            (
                RestConfig::new(RestMethod::Get, "http://h/{{missing}}"),
                "url",
            ),
            (
                RestConfig::new(RestMethod::Get, "http://h/a/{{dots}}/b"),
                "url",
            ),
            (
                RestConfig {
                    headers: vec![Param::new("X-A", "{{crlf}}")],
                    ..RestConfig::new(RestMethod::Get, "http://h/")
                },
                "headers[0].value",
            ),
            (
                RestConfig {
                    query: vec![Param::new("{{missing}}", "1")],
                    ..RestConfig::new(RestMethod::Get, "http://h/")
                },
                "query[0].name",
            ),
            (
                RestConfig {
                    body: vec![Param::new("b", "{{a}}"), Param::new("c", "{{missing}}")],
                    ..RestConfig::new(RestMethod::Post, "http://h/")
                },
                "body[1].value",
            ),
        ];
        for (c, want_field) in cases {
            match c.compile().unwrap().build(&props) {
                Err(RestError::Render { field, .. }) => assert_eq!(field, want_field, "{c:?}"),
                other => panic!("{c:?}: expected a render error, got {other:?}"),
            }
        }
        let dup = RestConfig {
            body: vec![Param::new("{{a}}", "1"), Param::new("x", "2")],
            ..RestConfig::new(RestMethod::Post, "http://h/")
        };
        match dup.compile().unwrap().build(&props) {
            Err(RestError::DuplicateBodyName { name }) => assert_eq!(name, "x"),
            other => panic!("expected a duplicate name, got {other:?}"),
        }
    }
}
