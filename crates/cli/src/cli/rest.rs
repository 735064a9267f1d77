//! `chatflow rest`: run one REST API block with the given properties and
//! print its outcome.

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use chatflow_engine::Properties;
use chatflow_engine::net::HttpClient;
use chatflow_engine::rest::{
    BodyEncoding, Param, RestConfig, RestMethod, RestOutcome, parse_method,
};

use super::{Status, parse_sets, runtime};
use chatflow_server::NetArgs;

const EXAMPLES: &str = "\
Examples:
  # GET with a path parameter and a header, against a server on this machine
  chatflow rest --method GET --url 'http://127.0.0.1:8080/users/{{id}}' \\
      --header 'X-Key: {{key}}' --query 'q={{q}}' \\
      --set id=42 --set key=abc --set q='shoes & bags' --allow-host 127.0.0.1

  # POST a JSON body ({\"name\":\"Zoë\",\"qty\":\"1\"}); continue on error; JSON output
  chatflow rest --method POST --url 'https://api.example.com/orders' \\
      --body 'name={{name}}' --body 'qty=1' --set name=Zoë --ignore-error --json

  # A value from a file
  chatflow rest --url 'https://api.example.com/echo' --body 'doc={{doc}}' \\
      --method PUT --set 'doc=@payload.txt'

Templates: {{Name}} is replaced by property Name (set with --set). A property
used in the URL, a header, the query or the body that is not set is an error.

Network policy: only public addresses are reachable unless allowed. An
--allow-host IP literal (127.0.0.1, [::1]:8080) permits that exact address;
--allow-loopback / --allow-private open those address classes; host names in
--allow-host (api.example.com, *.example.com) restrict the hosts allowed.

Exit status: 0 success or ignored error, 1 the block stops the conversation,
2 bad arguments or an invalid block.";

/// Run one REST API block and print its outcome.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// HTTP method: GET, POST, PUT, DELETE, PATCH or HEAD.
    #[arg(long, default_value = "GET", value_parser = parse_method)]
    method: RestMethod,
    /// The URL, a template; properties may appear in the path and query,
    /// not in the scheme or host.
    #[arg(long)]
    url: String,
    /// A request header, `Name: value` (the value is a template). Repeatable;
    /// a name may repeat.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// A query parameter appended to the URL, `name=value` (both templates).
    /// Repeatable.
    #[arg(long = "query", value_name = "NAME=VALUE")]
    query: Vec<String>,
    /// A body parameter, `name=value` (both templates), sent as a JSON
    /// string field or a form field. Repeatable.
    #[arg(long = "body", value_name = "NAME=VALUE")]
    body: Vec<String>,
    /// How body parameters are sent: json (an object of strings) or form.
    #[arg(long, default_value = "json", value_name = "json|form")]
    body_encoding: BodyEncoding,
    /// Set a property, `NAME=VALUE`, or `NAME=@file` to read the value from
    /// a file. Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    sets: Vec<String>,
    /// Follow `301 Moved Permanently` (only that status; at most 5 hops). A
    /// hop to another origin sends none of the --header headers (unless
    /// kept with --redirect-keep-header) and is refused for a request with
    /// a body; https to http is refused.
    #[arg(long)]
    follow_redirects: bool,
    /// A --header name sent again when a followed 301 leads to another
    /// origin (scheme, host or port). Repeatable; needs --follow-redirects.
    #[arg(long = "redirect-keep-header", value_name = "NAME")]
    redirect_keep_headers: Vec<String>,
    /// On error, continue (the response property is removed) instead of
    /// stopping.
    #[arg(long)]
    ignore_error: bool,
    /// The property that receives the response body.
    #[arg(long, value_name = "NAME", default_value = "API Response")]
    response_property: String,
    /// Also store the HTTP status code in this property.
    #[arg(long, value_name = "NAME")]
    status_property: Option<String>,
    /// The block's total timeout in milliseconds (default 10000, at most
    /// 60000).
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// The response body cap in bytes (default 1 MiB, at most 16 MiB).
    #[arg(long, value_name = "BYTES")]
    max_response_bytes: Option<u64>,
    #[command(flatten)]
    net: NetArgs,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<Status> {
    let props = parse_sets(&args.sets)?;
    let mut config = RestConfig::new(args.method, args.url.clone());
    config.headers = args
        .headers
        .iter()
        .map(|h| {
            let (name, value) = h
                .split_once(':')
                .with_context(|| format!("--header {h:?}: expected 'Name: value'"))?;
            Ok(Param::new(name.trim(), value.trim()))
        })
        .collect::<Result<_>>()?;
    config.query = name_values("--query", &args.query)?;
    config.body = name_values("--body", &args.body)?;
    config.body_encoding = args.body_encoding;
    config.follow_redirects = args.follow_redirects;
    config.redirect_keep_headers = args.redirect_keep_headers.clone();
    config.ignore_error = args.ignore_error;
    config.response_property = args.response_property.clone();
    config.status_property = args.status_property.clone();
    config.timeout_ms = args.timeout_ms;
    config.max_response_bytes = args.max_response_bytes;
    let block = match config.compile() {
        Ok(block) => block,
        Err(err) => {
            eprintln!("error: invalid REST block: {err}");
            return Ok(Status::Invalid);
        }
    };

    let policy = args.net.policy()?;

    let outcome = runtime()?.block_on(async {
        let client = HttpClient::new(policy)?;
        anyhow::Ok(block.execute(&client, &props).await)
    })?;

    let stop = outcome.stop;
    let mut after = props.clone();
    if !stop {
        after.apply(outcome.changes.clone());
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json_outcome(&outcome, &after))?
        );
    } else {
        print!("{}", human_outcome(&outcome, args.ignore_error));
    }
    Ok(if stop { Status::Stopped } else { Status::Ok })
}

fn name_values(flag: &str, values: &[String]) -> Result<Vec<Param>> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((name, value)) => Ok(Param::new(name, value)),
            None => bail!("{flag} {v:?}: expected name=value"),
        })
        .collect()
}

/// An error and its causes on one line, skipping a cause whose text the
/// line already holds.
fn error_chain(err: &dyn StdError) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            let _ = write!(line, ": {text}");
        }
        source = cause.source();
    }
    line
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn json_outcome(outcome: &RestOutcome, after: &Properties) -> serde_json::Value {
    serde_json::json!({
        "status": outcome.status.map(|s| s.as_u16()),
        "duration_ms": millis(outcome.duration),
        "redirects": outcome.redirects,
        "stop": outcome.stop,
        "error": outcome.error.as_ref().map(|e| serde_json::json!({
            "kind": e.kind(),
            "message": error_chain(e),
        })),
        "changes": outcome.changes,
        "properties": after,
    })
}

fn human_outcome(outcome: &RestOutcome, ignore_error: bool) -> String {
    let mut out = String::new();
    let took = millis(outcome.duration);
    match outcome.status {
        Some(status) => {
            let _ = write!(out, "{status} in {took} ms");
        }
        None => {
            let _ = write!(out, "no response after {took} ms");
        }
    }
    if outcome.redirects > 0 {
        let _ = write!(out, " after {} redirect(s)", outcome.redirects);
    }
    out.push('\n');
    if let Some(error) = &outcome.error {
        let ignored = if ignore_error { " (ignored)" } else { "" };
        let _ = writeln!(out, "error{ignored}: {}", error_chain(error));
    }
    if outcome.stop {
        out.push_str("the conversation stops here; no property was changed\n");
    }
    for (name, change) in outcome.changes.iter() {
        match change {
            Some(value) => {
                let _ = writeln!(out, "set {name} = {value}");
            }
            None => {
                let _ = writeln!(out, "removed {name}");
            }
        }
    }
    out
}
