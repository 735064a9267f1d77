//! rest_layers: where the REST API block's time goes over a bare `reqwest`
//! request, layer by layer, on a loopback server. The variants take turns
//! request by request (round-robin), so drift on a shared machine hits them
//! alike; the criterion bench `rest_block` times only the two ends.
//!
//! ```sh
//! cargo run --release -p chatflow-benches --example rest_layers [ROUNDS]
//! ONLY=http-client perf record -g target/release/examples/rest_layers 5000
//! ```
//!
//! `ONLY=VARIANT` runs one variant alone (for a profiler).
//!
//! - `bare`: `reqwest::Client` (no proxy), `send` + `text`;
//! - `bare+timeout`: the same inside `tokio::time::timeout`;
//! - `bare+chunks`: the body read chunk by chunk (as the engine does, to cap
//!   it);
//! - `like-engine`: a bare client built with the engine's settings
//!   (redirects off, no referer, connect timeout, user agent);
//! - `http-client`: the engine's `HttpClient::send` (policy checks, timeout,
//!   capped body, custom resolver);
//! - `rest-block`: a compiled REST API block (templates rendered, URL built,
//!   body decoded by charset, outcome with the `API Response` change).

use std::time::{Duration, Instant};

use chatflow_benches::sandboxed::loopback_policy;
use chatflow_benches::server::LoopbackServer;
use chatflow_engine::Properties;
use chatflow_engine::net::{HttpClient, Method, Request};
use chatflow_engine::rest::RestConfig;

const VARIANTS: [&str; 6] = [
    "bare",
    "bare+timeout",
    "bare+chunks",
    "like-engine",
    "http-client",
    "rest-block",
];

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(10_000);
    let server = LoopbackServer::start(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let base = server.base_url();
    let url = format!("{base}/image?customer=42");
    let parsed: url::Url = url.parse()?;
    let bare = reqwest::Client::builder().no_proxy().build()?;
    let like = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .connect_timeout(Duration::from_secs(5))
        .user_agent("chatflow/0.1.0")
        .build()?;
    let client = rt.block_on(async { HttpClient::new(loopback_policy()) })?;
    let config: RestConfig = serde_json::from_value(serde_json::json!({
        "method": "GET",
        "url": format!("{base}/image"),
        "query": [{"name": "customer", "value": "{{customer_id}}"}],
        "headers": [{"name": "X-Api-Key", "value": "{{api key}}"}],
    }))?;
    let block = config.compile()?;
    let props: Properties = [("customer_id", "42"), ("api key", "k-123")]
        .into_iter()
        .collect();

    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); VARIANTS.len()];
    for _ in 0..rounds {
        for (i, variant) in VARIANTS.iter().enumerate() {
            if std::env::var("ONLY").is_ok_and(|o| o != *variant) {
                continue;
            }
            let start = Instant::now();
            let body_len = rt.block_on(async {
                match *variant {
                    "bare" => {
                        let r = bare.get(&url).header("X-Api-Key", "k-123").send().await?;
                        anyhow::Ok(r.text().await?.len())
                    }
                    "bare+timeout" => {
                        let get = async {
                            let r = bare.get(&url).header("X-Api-Key", "k-123").send().await?;
                            anyhow::Ok(r.text().await?.len())
                        };
                        tokio::time::timeout(Duration::from_secs(10), get).await?
                    }
                    "bare+chunks" | "like-engine" => {
                        let c = if *variant == "bare+chunks" {
                            &bare
                        } else {
                            &like
                        };
                        let mut r = c.get(&url).header("X-Api-Key", "k-123").send().await?;
                        let mut body = Vec::new();
                        while let Some(chunk) = r.chunk().await? {
                            body.extend_from_slice(&chunk);
                        }
                        Ok(body.len())
                    }
                    "http-client" => {
                        let request = Request::new(Method::GET, parsed.clone())
                            .header("X-Api-Key", "k-123")?;
                        Ok(client.send(request).await?.text().len())
                    }
                    _ => {
                        let outcome = block.execute(&client, &props).await;
                        anyhow::ensure!(outcome.error.is_none(), "{:?}", outcome.error);
                        Ok(outcome
                            .changes
                            .get("API Response")
                            .flatten()
                            .map_or(0, str::len))
                    }
                }
            })?;
            times[i].push(start.elapsed());
            anyhow::ensure!(body_len > 1000, "{variant}: short body");
        }
    }
    let median = |t: &mut Vec<Duration>| {
        if t.is_empty() {
            return f64::NAN;
        }
        t.sort_unstable();
        t[t.len() / 2].as_secs_f64() * 1e6
    };
    let base_median = median(&mut times[0]);
    for (variant, t) in VARIANTS.iter().zip(&mut times) {
        let m = median(t);
        println!(
            "{variant:<14} median {m:7.1} us  ({:+.1} % over bare)",
            (m / base_median - 1.0) * 100.0
        );
    }
    Ok(())
}
