//! sdk_http: the HTTP builder against a real server.
//!
//! Sends one request (or `repeat` requests) built from properties:
//! `url` (required), `method` (default `GET`), `query` (`key=value`, appended
//! and encoded by the SDK), `header` (`Name: value`), `json_body` (sent with
//! `.json()`, so it must be JSON), `body` (sent as text), `timeout_ms`.
//!
//! On a response it sets `status`, `body` (the response text),
//! `content_type`, `headers` (the host's `name: value` lines, joined with
//! `\n`) and `header_count`. On an error it sets `error_kind` (`denied`,
//! `timeout`, `connection`, `invalid`) and `error_message`, and succeeds,
//! unless `fail_on_error` is `true`: then the error fails the run (for the
//! engine's HttpDenied root-cause test).

#![cfg_attr(target_arch = "wasm32", no_main)]

use std::time::Duration;

use chatflow_sdk::http::{self, Method, Request};
use chatflow_sdk::{Context, Error, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    let url = ctx.require("url")?;
    let method = match ctx.get("method").as_deref().unwrap_or("GET") {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        other => return Err(Error::msg(format!("sdk_http: unknown method {other:?}"))),
    };
    let mut request = Request::new(method, url);
    if let Some(query) = ctx.get("query") {
        let (key, value) = query.split_once('=').unwrap_or((&query, ""));
        request = request.query(key, value);
    }
    if let Some(header) = ctx.get("header") {
        let (name, value) = header.split_once(':').unwrap_or((&header, ""));
        request = request.header(name.trim(), value.trim());
    }
    if let Some(json) = ctx.get("json_body") {
        request = request.json(&serde_json::from_str::<serde_json::Value>(&json)?)?;
    } else if let Some(body) = ctx.get("body") {
        request = request
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body);
    }
    if let Some(ms) = ctx.get("timeout_ms") {
        let ms: u64 = ms
            .parse()
            .map_err(|_| Error::msg("timeout_ms is not a number"))?;
        request = request.timeout(Duration::from_millis(ms));
    }
    let repeat: u32 = ctx.get("repeat").and_then(|n| n.parse().ok()).unwrap_or(1);
    let fail_on_error = ctx.get("fail_on_error").as_deref() == Some("true");

    let mut last = None;
    for _ in 0..repeat {
        last = Some(request.send());
    }
    match last.expect("repeat is at least 1 or nothing was sent") {
        Ok(response) => {
            ctx.set("status", response.status().to_string())?;
            ctx.set(
                "content_type",
                response.header("content-type").unwrap_or(""),
            )?;
            let lines: Vec<String> = response
                .headers()
                .iter()
                .map(|(name, value)| format!("{name}: {value}"))
                .collect();
            ctx.set("header_count", lines.len().to_string())?;
            ctx.set("headers", lines.join("\n"))?;
            ctx.set("body", response.text()?)?;
        }
        Err(err) if fail_on_error => return Err(err.into()),
        Err(err) => {
            let kind = match &err {
                http::Error::Denied { .. } => "denied",
                http::Error::Timeout { .. } => "timeout",
                http::Error::Connection { .. } => "connection",
                http::Error::Invalid { .. } => "invalid",
                _ => "other",
            };
            ctx.set("error_kind", kind)?;
            ctx.set("error_message", err.to_string())?;
        }
    }
    Ok(())
}

chatflow_sdk::code_block!(run);

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
