//! Running a compiled block: rendering the request, sending it through the
//! [`HttpClient`], following `301`s by the redirect rules, and turning the
//! result into the response (and status) property changes of a
//! [`RestOutcome`].

use std::collections::HashSet;
use std::time::{Duration, Instant};

use url::Url;

use crate::net::{
    HeaderName, HeaderValue, HttpClient, InvalidRequest, NetError, Request, Response, StatusCode,
    TimeoutPhase, redact_url,
};
use crate::properties::{ChangeSet, Properties};
use crate::template::{Context, RenderError};

use super::{BodyEncoding, RestBlock};

/// The most `301` hops followed for one block; one more is
/// [`RestError::TooManyRedirects`].
pub const MAX_REDIRECTS: u32 = 5;

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

/// Names the field of a render error. The field's name is only built
/// when there is an error (a block's successful runs allocate none).
fn render_err(field: impl FnOnce() -> String) -> impl FnOnce(RenderError) -> RestError {
    move |reason| RestError::Render {
        field: field(),
        reason,
    }
}

impl RestBlock {
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
        let mut request = Request::new(super::method::to_http(self.method), url);
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
    use crate::rest::{Param, RestConfig, RestMethod};

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
