//! The "complex API call" a REST API block cannot make: get an OAuth token,
//! call an API with it, follow pagination over several pages, and
//! aggregate the result into properties. Build: `cargo build -p
//! complex-call --target wasm32-unknown-unknown --profile guest`; run:
//! `chatflow code target/wasm32-unknown-unknown/guest/complex_call.wasm --set
//! api_base_url=http://127.0.0.1:8080 --set client_id=demo --set
//! client_secret=demo-secret --set customer_id=cus_1042 --allow-host 127.0.0.1`.
//!
//! # The API
//!
//! 1. A client-credentials token (form body, as OAuth 2.0 specifies):
//!
//!    ```text
//!    POST {api_base_url}/oauth/token
//!    Content-Type: application/x-www-form-urlencoded
//!
//!    grant_type=client_credentials&client_id=demo&client_secret=demo-secret&scope=orders%3Aread
//!    ```
//!
//!    `200` → `{"access_token": "tok_…", "token_type": "Bearer", "expires_in": 3600}`;
//!    `401` → `{"error": "invalid_client"}`.
//!
//! 2. The customer's orders, page by page, with the token:
//!
//!    ```text
//!    GET {api_base_url}/orders?customer=cus_1042&page=1
//!    Authorization: Bearer tok_…
//!    ```
//!
//!    ```json
//!    {
//!      "orders": [
//!        {"id": "ord_1001", "status": "delivered", "total_cents": 2599,
//!         "currency": "GBP", "placed_at": "2024-04-01T10:00:00Z"}
//!      ],
//!      "page": 1,
//!      "pages": 3,
//!      "next": "/orders?customer=cus_1042&page=2"
//!    }
//!    ```
//!
//!    `next` is the path (or absolute URL) of the next page, `null` on the
//!    last one. A `401` means the token was refused.
//!
//! # Properties
//!
//! | property | read / written | value |
//! |---|---|---|
//! | `api_base_url` | read (required) | e.g. `https://api.example.com` |
//! | `client_id`, `client_secret` | read (required) | the API's client credentials (never logged) |
//! | `customer_id` | read (required) | whose orders |
//! | `order_count` | written | number of orders over all pages |
//! | `open_orders` | written | orders not `delivered`, `cancelled` or `refunded` |
//! | `order_total` | written | sum of `total_cents` as units with two decimals: `123.45` |
//! | `order_currency` | written | the orders' currency, `mixed` if they differ, removed with no orders |
//! | `latest_order_id` | written or removed | the most recently placed order; removed with no orders |
//! | `pages_fetched` | written | how many pages were read |
//!
//! It also sends one message: `You have 5 orders (2 open).`
//!
//! The run fails when a property is missing, the token is refused or is not
//! a bearer token, a page cannot be fetched or parsed, or pagination goes on
//! for more than [`MAX_PAGES`] pages or loops back to a page already read.

use std::collections::BTreeSet;
use std::time::Duration;

use chatflow_sdk::http::Request;
use chatflow_sdk::{Context, Error, Result, log};
use serde::Deserialize;

/// Pagination stops with an error after this many pages (a runaway `next`
/// would otherwise spend the run's HTTP calls and time).
pub const MAX_PAGES: usize = 20;

#[derive(Debug, Deserialize)]
struct Token {
    access_token: String,
    token_type: String,
    #[serde(default)]
    #[allow(dead_code)] // documented shape; a single run never outlives it
    expires_in: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Page {
    orders: Vec<Order>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Order {
    id: String,
    status: String,
    total_cents: i64,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    placed_at: Option<String>,
}

/// The Code block.
pub fn run(ctx: &mut Context) -> Result<()> {
    let base = ctx.require("api_base_url")?;
    let base = base.trim_end_matches('/');
    let token = fetch_token(
        base,
        &ctx.require("client_id")?,
        &ctx.require("client_secret")?,
    )?;

    let customer = ctx.require("customer_id")?;
    let mut url = format!("{base}/orders");
    let mut first = true;
    let mut seen = BTreeSet::new();
    let mut orders = Vec::new();
    let mut pages = 0;
    loop {
        if pages == MAX_PAGES {
            return Err(Error::msg(format!(
                "the orders API has more than {MAX_PAGES} pages; stopping"
            )));
        }
        if !seen.insert(url.clone()) {
            return Err(Error::msg(format!(
                "the orders API's `next` link loops back to a page already read (page {})",
                pages + 1
            )));
        }
        let mut request = Request::get(url.as_str())
            .bearer_auth(&token)
            .timeout(Duration::from_secs(5));
        if first {
            request = request.query("customer", &customer).query("page", "1");
            first = false;
        }
        let response = request.send()?;
        if response.status() == 401 {
            return Err(Error::msg(
                "the orders API refused the access token (HTTP 401)",
            ));
        }
        let page: Page = response.error_for_status()?.json()?;
        pages += 1;
        log::debug!("page {pages}: {} orders", page.orders.len());
        orders.extend(page.orders);
        match page.next {
            Some(next) if !next.is_empty() => url = resolve(base, &next),
            _ => break,
        }
    }

    let open = orders
        .iter()
        .filter(|o| !matches!(o.status.as_str(), "delivered" | "cancelled" | "refunded"))
        .count();
    let total_cents: i64 = orders.iter().map(|o| o.total_cents).sum();
    ctx.set("order_count", orders.len().to_string())?;
    ctx.set("open_orders", open.to_string())?;
    ctx.set("order_total", format_cents(total_cents))?;
    ctx.set("pages_fetched", pages.to_string())?;
    let currencies: BTreeSet<&str> = orders
        .iter()
        .filter_map(|o| o.currency.as_deref())
        .collect();
    match currencies.len() {
        0 => ctx.remove("order_currency")?,
        1 => ctx.set("order_currency", *currencies.first().unwrap())?,
        _ => ctx.set("order_currency", "mixed")?,
    }
    // RFC 3339 timestamps in one format sort as text; orders without one
    // come first.
    match orders.iter().max_by(|a, b| a.placed_at.cmp(&b.placed_at)) {
        Some(latest) => ctx.set("latest_order_id", &latest.id)?,
        None => ctx.remove("latest_order_id")?,
    }
    let noun = if orders.len() == 1 { "order" } else { "orders" };
    ctx.send_message(format!("You have {} {noun} ({open} open).", orders.len()))?;
    Ok(())
}

fn fetch_token(base: &str, client_id: &str, client_secret: &str) -> Result<String> {
    let response = Request::post(format!("{base}/oauth/token"))
        .timeout(Duration::from_secs(5))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("scope", "orders:read"),
        ])
        .send()?;
    if matches!(response.status(), 400 | 401) {
        return Err(Error::msg(format!(
            "the token endpoint refused the client credentials (HTTP {})",
            response.status()
        )));
    }
    let token: Token = response.error_for_status()?.json()?;
    if !token.token_type.eq_ignore_ascii_case("bearer") {
        return Err(Error::msg(format!(
            "the token endpoint returned a {:?} token; only Bearer tokens are supported",
            token.token_type
        )));
    }
    log::info!("got an access token"); // never the token itself
    Ok(token.access_token)
}

/// `next` may be a path (`/orders?page=2`) or an absolute URL.
fn resolve(base: &str, next: &str) -> String {
    if next.starts_with("http://") || next.starts_with("https://") {
        next.to_string()
    } else if next.starts_with('/') {
        // Paths are relative to the API's origin, like a browser resolves them.
        let origin_end = base
            .find("://")
            .and_then(|s| base[s + 3..].find('/').map(|p| s + 3 + p))
            .unwrap_or(base.len());
        format!("{}{next}", &base[..origin_end])
    } else {
        format!("{base}/{next}")
    }
}

fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

chatflow_sdk::code_block!(run);

#[cfg(test)]
mod tests {
    use super::*;
    use chatflow_sdk::testing::{Failure, Reply, Stub, TestHost};

    const BASE: &str = "https://api.example.com";
    const TOKEN: &str =
        r#"{"access_token": "tok_abc", "token_type": "Bearer", "expires_in": 3600}"#;

    fn page(orders: &str, next: Option<&str>) -> String {
        let next = next.map_or("null".to_string(), |n| format!("{n:?}"));
        format!(r#"{{"orders": [{orders}], "page": 1, "pages": 3, "next": {next}}}"#)
    }

    fn host() -> TestHost {
        TestHost::new()
            .property("api_base_url", BASE)
            .property("client_id", "demo")
            .property("client_secret", "s3cret&=")
            .property("customer_id", "cus_1042")
            .stub(Stub::post(format!("{BASE}/oauth/token")).json(TOKEN))
    }

    const O1: &str = r#"{"id": "ord_1", "status": "delivered", "total_cents": 2599, "currency": "GBP", "placed_at": "2024-04-01T10:00:00Z"}"#;
    const O2: &str = r#"{"id": "ord_2", "status": "shipped", "total_cents": 1001, "currency": "GBP", "placed_at": "2024-05-03T10:00:00Z"}"#;
    const O3: &str = r#"{"id": "ord_3", "status": "processing", "total_cents": 400, "currency": "GBP", "placed_at": "2024-05-01T10:00:00Z"}"#;

    #[test]
    fn token_then_three_pages() {
        let outcome = host()
            .stub(
                Stub::get(format!("{BASE}/orders?customer=cus_1042&page=1")).json(page(
                    &format!("{O1}, {O2}"),
                    Some("/orders?customer=cus_1042&page=2"),
                )),
            )
            .stub(
                Stub::get(format!("{BASE}/orders?customer=cus_1042&page=2")).json(page(
                    O3,
                    Some("https://api.example.com/orders?customer=cus_1042&page=3"),
                )),
            )
            .stub(Stub::get(format!("{BASE}/orders?customer=cus_1042&page=3")).json(page("", None)))
            .run(run);
        outcome.assert_success();
        assert_eq!(outcome.property("order_count"), Some("3"));
        assert_eq!(outcome.property("open_orders"), Some("2"));
        assert_eq!(outcome.property("order_total"), Some("40.00"));
        assert_eq!(outcome.property("order_currency"), Some("GBP"));
        assert_eq!(outcome.property("latest_order_id"), Some("ord_2"));
        assert_eq!(outcome.property("pages_fetched"), Some("3"));
        assert_eq!(outcome.messages(), ["You have 3 orders (2 open)."]);

        let requests = outcome.requests();
        assert_eq!(requests.len(), 4);
        let token = &requests[0];
        assert_eq!(token.method(), "POST");
        assert_eq!(
            token.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            token.body(),
            Some(
                "grant_type=client_credentials&client_id=demo&client_secret=s3cret%26%3D&scope=orders%3Aread"
            )
        );
        for request in &requests[1..] {
            assert_eq!(request.header("authorization"), Some("Bearer tok_abc"));
        }
        // The secret never reaches the logs.
        assert!(
            outcome
                .logs()
                .iter()
                .all(|l| !l.message.contains("tok_abc") && !l.message.contains("s3cret"))
        );
    }

    #[test]
    fn no_orders() {
        let outcome = host()
            .property("latest_order_id", "stale")
            .stub(Stub::get(format!("{BASE}/orders?customer=cus_1042&page=1")).json(page("", None)))
            .run(run);
        outcome.assert_success();
        assert_eq!(outcome.property("order_count"), Some("0"));
        assert_eq!(outcome.property("order_total"), Some("0.00"));
        assert!(outcome.removed("latest_order_id"));
        assert!(outcome.removed("order_currency"));
        assert_eq!(outcome.messages(), ["You have 0 orders (0 open)."]);
    }

    #[test]
    fn pagination_is_bounded_bad() {
        // Every page points to a new next page.
        let outcome = host()
            .http_handler(|req| {
                let page_no: u32 = req.query("page")?.parse().ok()?;
                Some(Reply::json(page(
                    O1,
                    Some(&format!("/orders?page={}", page_no + 1)),
                )))
            })
            .run(run);
        assert_eq!(
            outcome.failure_message(),
            Some("the orders API has more than 20 pages; stopping")
        );
        assert_eq!(outcome.requests().len(), 1 + MAX_PAGES);
        assert!(outcome.changes().is_empty());
        assert!(outcome.messages().is_empty());

        // A `next` link that points back.
        let outcome = host()
            .stub(
                Stub::get(format!("{BASE}/orders?customer=cus_1042&page=1"))
                    .json(page(O1, Some("/orders?p=2"))),
            )
            .stub(Stub::get(format!("{BASE}/orders?p=2")).json(page(O2, Some("/orders?p=2"))))
            .run(run);
        assert_eq!(
            outcome.failure_message(),
            Some("the orders API's `next` link loops back to a page already read (page 3)")
        );
    }

    #[test]
    fn token_failures_bad() {
        let cases = [
            (
                Reply::status(401).body(r#"{"error":"invalid_client"}"#),
                "the token endpoint refused the client credentials (HTTP 401)",
            ),
            (
                Reply::json(r#"{"access_token": "x", "token_type": "mac"}"#),
                "the token endpoint returned a \"mac\" token; only Bearer tokens are supported",
            ),
            (
                Reply::status(500),
                "POST https://api.example.com/oauth/token answered HTTP 500",
            ),
            (
                Reply::timeout(),
                "POST https://api.example.com/oauth/token timed out",
            ),
        ];
        for (reply, want) in cases {
            let outcome = TestHost::new()
                .property("api_base_url", BASE)
                .property("client_id", "demo")
                .property("client_secret", "x")
                .property("customer_id", "c")
                .stub(Stub::post(format!("{BASE}/oauth/token")).reply(reply))
                .run(run);
            let message = outcome.assert_failure().message();
            assert!(message.starts_with(want), "{message}");
            assert_eq!(
                outcome.requests().len(),
                1,
                "no orders call without a token"
            );
        }
    }

    #[test]
    fn orders_failures_bad() {
        let outcome = host()
            .stub(Stub::get(format!("{BASE}/orders?customer=cus_1042&page=1")).status(401))
            .run(run);
        assert_eq!(
            outcome.failure_message(),
            Some("the orders API refused the access token (HTTP 401)")
        );

        let outcome = host()
            .stub(
                Stub::get(format!("{BASE}/orders?customer=cus_1042&page=1"))
                    .json(page(O1, Some("/orders?page=2"))),
            )
            .stub(Stub::get(format!("{BASE}/orders?page=2")).json(r#"{"orders": "oops"}"#))
            .run(run);
        let message = outcome.assert_failure().message();
        assert!(
            message.starts_with("json: invalid type: string \"oops\", expected a sequence"),
            "{message}"
        );
        assert!(
            outcome.changes().is_empty(),
            "nothing from page 1 is committed"
        );
    }

    #[test]
    fn a_denied_api_host_is_the_root_cause() {
        let outcome = host().allow_host("elsewhere.example.com").run(run);
        assert!(
            matches!(outcome.failure(), Some(Failure::HttpDenied { .. })),
            "{:?}",
            outcome.failure()
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(
            resolve("https://a.example/api", "/orders?p=2"),
            "https://a.example/orders?p=2"
        );
        assert_eq!(
            resolve("https://a.example/api", "orders?p=2"),
            "https://a.example/api/orders?p=2"
        );
        assert_eq!(resolve("https://a.example", "/x"), "https://a.example/x");
        assert_eq!(
            resolve("https://a.example", "http://b.example/y"),
            "http://b.example/y"
        );
        assert_eq!(format_cents(0), "0.00");
        assert_eq!(format_cents(4000), "40.00");
        assert_eq!(format_cents(-105), "-1.05");
    }
}
