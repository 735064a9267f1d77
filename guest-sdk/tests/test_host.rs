//! The SDK against its in-process test host: the ABI semantics a Code block
//! relies on (docs/abi.md), checked natively. The same behaviour inside the
//! real sandbox is checked by the engine's integration tests with the
//! `test-guests` modules.

use chatflow_sdk::testing::{Failure, LimitKind, Reply, Stub, TestHost};
use chatflow_sdk::{Context, Error, Result, http, log};

#[test]
fn writes_are_visible_to_later_reads_and_committed_on_success() {
    let outcome = TestHost::new()
        .property("a", "1")
        .property("gone", "x")
        .run(|ctx| {
            assert_eq!(ctx.get("a").as_deref(), Some("1"));
            ctx.set("a", "2")?;
            assert_eq!(ctx.get("a").as_deref(), Some("2"));
            ctx.remove("gone")?;
            assert_eq!(ctx.get("gone"), None);
            assert!(!ctx.contains("gone"));
            ctx.remove("never-set")?; // fine, as the ABI says
            ctx.set("new", "ünïcødé ✓")?;
            assert_eq!(ctx.require("new")?, "ünïcødé ✓");
            Ok(())
        });
    outcome.assert_success();
    assert_eq!(outcome.property("a"), Some("2"));
    assert_eq!(outcome.property("gone"), None);
    assert!(outcome.removed("gone"));
    assert!(outcome.removed("never-set"));
    assert_eq!(outcome.property("new"), Some("ünïcødé ✓"));
    assert_eq!(
        outcome.properties().into_iter().collect::<Vec<_>>(),
        [("a", "2"), ("new", "ünïcødé ✓")]
    );
}

#[test]
fn large_values_take_the_retry_path_intact() {
    // Bigger than the SDK's 1 KiB first buffer, with multi-byte characters
    // straddling every boundary.
    let big: String = "é€𝄞a".repeat(40_000);
    let big2 = big.clone();
    let outcome = TestHost::new()
        .property("big", big.clone())
        .run(move |ctx| {
            assert_eq!(ctx.get("big").as_deref(), Some(big2.as_str()));
            let doubled = format!("{big2}{big2}");
            ctx.set("doubled", &doubled)?;
            assert_eq!(ctx.get("doubled").unwrap().len(), doubled.len());
            let value: serde_json::Value = ctx.json("json")?;
            assert_eq!(value.as_array().unwrap().len(), 10_000);
            Ok(())
        });
    // `json` is not set in this first run: missing property.
    assert!(
        matches!(outcome.failure(), Some(Failure::Returned { message, .. }) if message == "property `json` is not set")
    );
    let array = format!("[{}]", vec!["1"; 10_000].join(","));
    let outcome = TestHost::new()
        .property("big", big.clone())
        .property("json", array)
        .run(|ctx| {
            let value: serde_json::Value = ctx.json("json")?;
            ctx.set("count", value.as_array().unwrap().len().to_string())?;
            ctx.set("copy", ctx.get("big").unwrap())?;
            Ok(())
        });
    outcome.assert_success();
    assert_eq!(outcome.property("count"), Some("10000"));
    assert_eq!(outcome.property("copy"), Some(big.as_str()));
}

#[test]
fn nothing_is_committed_when_the_block_fails() {
    let outcome = TestHost::new().property("a", "1").run(|ctx| {
        ctx.set("a", "2")?;
        ctx.set("b", "3")?;
        ctx.remove("a")?;
        ctx.send_message("hello")?;
        log::info!("about to fail");
        Err(Error::msg("the CRM has no profile for +44 20"))
    });
    assert_eq!(
        outcome.failure(),
        Some(&Failure::Returned {
            code: 1,
            message: "the CRM has no profile for +44 20".into()
        })
    );
    assert_eq!(outcome.property("a"), Some("1"));
    assert_eq!(outcome.property("b"), None);
    assert!(outcome.changes().is_empty());
    assert!(outcome.messages().is_empty());
    // Logs are kept for failed runs.
    assert_eq!(outcome.logs()[0].message, "about to fail");
    assert_eq!(outcome.logs()[0].level, log::Level::Info);
}

#[test]
fn a_panic_fails_the_run_with_message_and_location() {
    let outcome = TestHost::new().run(|ctx| {
        ctx.set("a", "1")?;
        let v: Vec<u32> = Vec::new();
        let _ = v[3];
        Ok(())
    });
    let Some(Failure::Panic { message }) = outcome.failure() else {
        panic!("expected a panic, got {:?}", outcome.failure());
    };
    assert!(
        message.starts_with("panicked at guest-sdk/tests/test_host.rs:"),
        "{message}"
    );
    assert!(
        message.ends_with("index out of bounds: the len is 0 but the index is 3"),
        "{message}"
    );
    assert!(outcome.changes().is_empty());
}

#[test]
fn error_messages_reach_the_flow_unchanged() {
    fn bad_json(ctx: &mut Context) -> Result<()> {
        let _: serde_json::Value = ctx.json("API Response")?;
        Ok(())
    }
    let outcome = TestHost::new().api_response("{not json").run(bad_json);
    assert_eq!(
        outcome.failure_message(),
        Some(
            "property `API Response` is not valid JSON for the expected shape: key must be a string at line 1 column 2"
        )
    );
    let outcome = TestHost::new().run(|ctx| {
        ctx.require("phone")?;
        Ok(())
    });
    assert_eq!(
        outcome.failure_message(),
        Some("property `phone` is not set")
    );
}

#[test]
fn invalid_property_names_are_typed_errors_bad() {
    let outcome = TestHost::new().run(|ctx| {
        for name in ["", " padded ", "{x}", "new\nline", &"n".repeat(257)] {
            match ctx.set(name, "v") {
                Err(Error::InvalidArgument {
                    call: "set",
                    message,
                }) => {
                    assert!(!message.is_empty())
                }
                other => panic!("set({name:?}) gave {other:?}"),
            }
            assert!(matches!(
                ctx.remove(name),
                Err(Error::InvalidArgument { call: "remove", .. })
            ));
        }
        Ok(())
    });
    outcome.assert_success();
    assert!(outcome.changes().is_empty());
}

#[test]
fn api_response_and_contains() {
    TestHost::new()
        .api_response(r#"{"ok":true}"#)
        .run(|ctx| {
            assert_eq!(ctx.api_response().as_deref(), Some(r#"{"ok":true}"#));
            assert!(ctx.contains(chatflow_sdk::API_RESPONSE));
            assert!(!ctx.contains("nope"));
            Ok(())
        })
        .assert_success();
    TestHost::new()
        .run(|ctx| {
            assert_eq!(ctx.api_response(), None);
            Ok(())
        })
        .assert_success();
}

#[test]
fn messages_and_logs_are_recorded_in_order() {
    let outcome = TestHost::new().run(|ctx| {
        ctx.send_message("one")?;
        ctx.send_message(String::from("two"))?;
        log::debug!("d");
        log::warn!("w {}", 1);
        log::error!("e");
        ctx.log(log::Level::Info, "i");
        Ok(())
    });
    outcome.assert_success();
    assert_eq!(outcome.messages(), ["one", "two"]);
    let logs: Vec<_> = outcome
        .logs()
        .iter()
        .map(|r| (r.level, r.message.as_str()))
        .collect();
    use log::Level::*;
    assert_eq!(
        logs,
        [(Debug, "d"), (Warn, "w 1"), (Error, "e"), (Info, "i")]
    );
}

const ORDER: &str = r#"{"order": {"id": "A-1", "total": 12.5, "paid": true, "items": [{"sku": "tea"}, {"sku": "milk"}], "note": null, "a/b": 1, "m~n": 2}}"#;

#[test]
fn select_json_follows_rfc_6901() {
    let outcome = TestHost::new().property("doc", ORDER).run(|ctx| {
        let cases: &[(&str, Option<&str>)] = &[
            ("/order/id", Some("A-1")),
            ("/order/total", Some("12.5")),
            ("/order/paid", Some("true")),
            ("/order/note", Some("null")),
            ("/order/items/1/sku", Some("milk")),
            ("/order/items/0", Some(r#"{"sku":"tea"}"#)),
            ("/order/a~1b", Some("1")),
            ("/order/m~0n", Some("2")),
            ("/order/items/2", None),
            ("/order/missing", None),
        ];
        for (pointer, want) in cases {
            assert_eq!(
                ctx.select_json("doc", pointer)?.as_deref(),
                *want,
                "{pointer}"
            );
        }
        let whole: serde_json::Value = serde_json::from_str(&ctx.select_json("doc", "")?.unwrap())?;
        assert_eq!(whole["order"]["id"], "A-1");
        assert_eq!(ctx.select_json("unset", "/x")?, None);
        Ok(())
    });
    outcome.assert_success();
}

#[test]
fn select_json_bad() {
    let outcome = TestHost::new()
        .property("doc", ORDER)
        .property("text", "not json")
        .run(|ctx| {
            for bad in ["order/id", "/order/a~2b", "/order~"] {
                assert!(
                    matches!(
                        ctx.select_json("doc", bad),
                        Err(Error::InvalidArgument {
                            call: "select_json",
                            ..
                        })
                    ),
                    "{bad}"
                );
            }
            // A bad pointer is reported before a missing property.
            assert!(matches!(
                ctx.select_json("unset", "x"),
                Err(Error::InvalidArgument { .. })
            ));
            match ctx.select_json("text", "/x") {
                Err(Error::NotParseable { name, message }) => {
                    assert_eq!(name, "text");
                    assert!(message.contains("not JSON"), "{message}");
                }
                other => panic!("{other:?}"),
            }
            Ok(())
        });
    outcome.assert_success();
}

const STATUS_XML: &str = r#"<?xml version="1.0"?>
<s:application xmlns:s="urn:example:status" id="APP-7">
  <s:status code="OK">Approved &amp; signed &#8211; done</s:status>
  <s:item>a</s:item><s:item>b</s:item>
</s:application>"#;

#[test]
fn select_xml_follows_the_abi_paths() {
    let outcome = TestHost::new().property("doc", STATUS_XML).run(|ctx| {
        assert_eq!(
            ctx.select_xml("doc", "/application/status")?.as_deref(),
            Some("Approved & signed – done")
        );
        assert_eq!(
            ctx.select_xml("doc", "/application/@id")?.as_deref(),
            Some("APP-7")
        );
        assert_eq!(
            ctx.select_xml("doc", "/s:application/s:item[2]")?
                .as_deref(),
            Some("b")
        );
        assert_eq!(
            ctx.select_xml("doc", "/application/status@code")?
                .as_deref(),
            Some("OK")
        );
        assert_eq!(ctx.select_xml("doc", "/application/nothing")?, None);
        assert_eq!(ctx.select_xml("unset", "/a")?, None);
        Ok(())
    });
    outcome.assert_success();
}

#[test]
fn select_xml_bad() {
    let outcome = TestHost::new()
        .property("doc", STATUS_XML)
        .property("broken", "<a><b></a>")
        .run(|ctx| {
            assert!(matches!(
                ctx.select_xml("doc", "application/status"),
                Err(Error::InvalidArgument {
                    call: "select_xml",
                    ..
                })
            ));
            assert!(matches!(
                ctx.select_xml("doc", "/a[0]"),
                Err(Error::InvalidArgument { .. })
            ));
            assert!(matches!(
                ctx.select_xml("broken", "/a/b"),
                Err(Error::NotParseable { name, .. }) if name == "broken"
            ));
            Ok(())
        });
    outcome.assert_success();
}

#[test]
fn xml_in_the_guest() {
    let outcome = TestHost::new().property("doc", STATUS_XML).run(|ctx| {
        let root = ctx.xml("doc")?;
        assert_eq!(root.namespace(), Some("urn:example:status"));
        let items: Vec<String> = root.children_named("item").map(|e| e.text()).collect();
        ctx.set("items", items.join(","))?;
        let missing = ctx.xml("nope").unwrap_err();
        assert!(matches!(missing, Error::MissingProperty { .. }));
        Ok(())
    });
    outcome.assert_success();
    assert_eq!(outcome.property("items"), Some("a,b"));
    let outcome = TestHost::new()
        .property("doc", "<a>&bogus;</a>")
        .run(|ctx| {
            ctx.xml("doc")?;
            Ok(())
        });
    assert_eq!(
        outcome.failure_message(),
        Some("not well-formed XML: undeclared entity `&bogus;`")
    );
}

#[test]
fn http_round_trip_with_stubs() {
    let outcome = TestHost::new()
        .stub(
            Stub::post("https://api.example.com/v1/check?src=bot")
                .status(201)
                .header("X-Request-Id", "r-1")
                .json(r#"{"valid": true}"#),
        )
        .run(|ctx| {
            #[derive(serde::Deserialize)]
            struct Answer {
                valid: bool,
            }
            let response = http::Request::post("https://api.example.com/v1/check")
                .query("src", "bot")
                .header("X-Key", "abc")
                .json(&serde_json::json!({"phone": "+44 20 7946 0000"}))?
                .timeout(std::time::Duration::from_millis(1500))
                .send()?;
            assert_eq!(response.status(), 201);
            assert!(response.is_success());
            assert_eq!(response.header("x-request-id"), Some("r-1"));
            assert_eq!(
                response.headers()[0].0,
                "x-request-id",
                "names in lower case"
            );
            let answer: Answer = response.json()?;
            ctx.set("valid", answer.valid.to_string())?;
            Ok(())
        });
    outcome.assert_success();
    assert_eq!(outcome.property("valid"), Some("true"));
    let request = &outcome.requests()[0];
    assert_eq!(request.method(), "POST");
    assert_eq!(request.url(), "https://api.example.com/v1/check?src=bot");
    assert_eq!(request.query("src").as_deref(), Some("bot"));
    assert_eq!(request.header("x-key"), Some("abc"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.json().unwrap()["phone"], "+44 20 7946 0000");
    assert_eq!(request.timeout_ms(), Some(1500));
}

#[test]
fn http_errors_are_typed_bad() {
    let outcome = TestHost::new()
        .deny_host("evil.example.com")
        .stub(Stub::get("https://slow.example.com/").timeout())
        .stub(Stub::get("https://down.example.com/").connection_error("connection refused"))
        .stub(
            Stub::get("https://api.example.com/missing")
                .status(404)
                .body("nope"),
        )
        .run(|ctx| {
            let denied = http::Request::get("https://evil.example.com/x?token=s3cret").send();
            match denied {
                Err(http::Error::Denied {
                    method,
                    url,
                    message,
                }) => {
                    assert_eq!(method, http::Method::Get);
                    assert_eq!(
                        url, "https://evil.example.com/x",
                        "no query string in errors"
                    );
                    assert!(message.contains("evil.example.com"), "{message}");
                }
                other => panic!("{other:?}"),
            }
            assert!(matches!(
                http::Request::get("https://slow.example.com/").send(),
                Err(http::Error::Timeout { .. })
            ));
            assert!(matches!(
                http::Request::get("https://down.example.com/").send(),
                Err(http::Error::Connection { .. })
            ));
            assert!(matches!(
                http::Request::get("not a url").send(),
                Err(http::Error::Invalid { .. })
            ));
            assert!(matches!(
                http::Request::get("ftp://files.example.com/").send(),
                Err(http::Error::Denied { .. })
            ));
            // Refused as the engine refuses them, before anything is sent:
            // names that are not HTTP tokens or that the client manages,
            // values with control characters, a zero timeout, no host.
            for (name, value) in [
                ("bad name", "v"),
                ("bad:name", "v"),
                ("Host", "other.example.com"),
                ("content-length", "3"),
                ("Transfer-Encoding", "chunked"),
                ("x-ok", "line\nbreak"),
                ("x-ok", "bell\u{7}"),
            ] {
                let err = http::Request::get("https://a.example.com/")
                    .header(name, value)
                    .send()
                    .unwrap_err();
                assert!(
                    matches!(err, http::Error::Invalid { .. }),
                    "{name}: {err:?}"
                );
            }
            assert!(matches!(
                http::Request::get("https://a.example.com/")
                    .timeout(std::time::Duration::ZERO)
                    .send(),
                Err(http::Error::Invalid { .. })
            ));
            assert!(matches!(
                http::Request::get("mailto:ada@example.com").send(),
                Err(http::Error::Denied { .. })
            ));
            let unmatched = http::Request::get("https://nostub.example.com/")
                .send()
                .unwrap_err();
            assert!(
                unmatched
                    .to_string()
                    .contains("no stub matches GET https://nostub.example.com/")
            );
            let response = http::Request::get("https://api.example.com/missing").send()?;
            assert_eq!(response.status(), 404);
            assert_eq!(response.text()?, "nope");
            match response.error_for_status() {
                Err(http::Error::Status { status: 404, .. }) => {}
                other => panic!("{other:?}"),
            }
            ctx.set("done", "yes")?;
            Ok(())
        });
    outcome.assert_success();
    assert_eq!(
        outcome.requests().len(),
        16,
        "every request is recorded and counted"
    );
}

#[test]
fn a_denied_request_is_the_root_cause_of_a_failed_run() {
    let outcome = TestHost::new().allow_host("api.example.com").run(|_ctx| {
        http::Request::get("https://other.example.com/v1?key=secret").send()?;
        Ok(())
    });
    match outcome.failure() {
        Some(Failure::HttpDenied {
            request,
            guest_message,
        }) => {
            assert!(
                request.starts_with("https://other.example.com/v1:"),
                "{request}"
            );
            assert!(!request.contains("secret"));
            assert!(
                guest_message.starts_with("GET https://other.example.com/v1 was denied"),
                "{guest_message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn once_stubs_script_a_sequence_and_handlers_see_the_request() {
    let outcome = TestHost::new()
        .stub(
            Stub::get("https://api.example.com/flaky")
                .status(503)
                .once(),
        )
        .stub(Stub::get("https://api.example.com/flaky").json("{}"))
        .http_handler(|req| {
            let page: u32 = req.query("page")?.parse().ok()?;
            Some(Reply::json(format!(r#"{{"page": {page}}}"#)))
        })
        .run(|ctx| {
            let statuses: Vec<u16> = (0..3)
                .map(|_| {
                    http::Request::get("https://api.example.com/flaky")
                        .send()
                        .map(|r| r.status())
                })
                .collect::<std::result::Result<_, _>>()?;
            assert_eq!(statuses, [503, 200, 200]);
            let page: serde_json::Value = http::Request::get("https://api.example.com/list")
                .query("page", "7")
                .send()?
                .json()?;
            ctx.set("page", page["page"].to_string())?;
            Ok(())
        });
    outcome.assert_success();
    assert_eq!(outcome.property("page"), Some("7"));
}

#[test]
fn limits_end_the_run_at_once() {
    let cases: Vec<(TestHost, LimitKind, u64)> = vec![
        (TestHost::new().max_http_calls(1), LimitKind::HttpCalls, 1),
        (TestHost::new().max_messages(1), LimitKind::Messages, 1),
        (
            TestHost::new().max_property_value_bytes(4),
            LimitKind::PropertyValueBytes,
            4,
        ),
        (
            TestHost::new().max_written_bytes(10),
            LimitKind::WrittenBytes,
            10,
        ),
        (
            TestHost::new().max_http_response_bytes(2),
            LimitKind::HttpResponseBytes,
            2,
        ),
    ];
    for (host, which, value) in cases {
        let outcome = host
            .stub(Stub::get("https://a.example.com/").body("four"))
            .run(|ctx| {
                ctx.set("first", "ok")?;
                let _ = http::Request::get("https://a.example.com/").send();
                let _ = http::Request::get("https://a.example.com/").send();
                ctx.send_message("m1")?;
                ctx.send_message("m2")?;
                ctx.set("big", "12345")?;
                ctx.set("after", "never")?;
                Ok(())
            });
        assert_eq!(
            outcome.failure(),
            Some(&Failure::Limit { which, value }),
            "{which:?}"
        );
        assert!(outcome.changes().is_empty());
    }
}

#[test]
fn fail_without_error_does_not_end_the_run() {
    // `Error` is the only way to fail from Rust; a block that returns Ok
    // after a failed call succeeds, exactly as in the sandbox.
    let outcome = TestHost::new().run(|ctx| {
        let _ = ctx.set("{bad}", "x");
        ctx.set("ok", "1")?;
        Ok(())
    });
    outcome.assert_success();
    assert_eq!(outcome.property("ok"), Some("1"));
}

#[test]
#[should_panic(expected = "no Code block run is in progress on this thread")]
fn sdk_calls_outside_a_run_explain_themselves() {
    let _ = http::Request::get("https://a.example.com/").send();
}

#[test]
#[should_panic(
    expected = "TestHost::property: property name \" x\" has leading or trailing whitespace"
)]
fn test_host_rejects_invalid_starting_properties() {
    let _ = TestHost::new().property(" x", "1");
}

/// Response headers are listed as the engine lists them: names in lower
/// case, the values of a repeated name together where it first appeared.
#[test]
fn repeated_response_headers_are_listed_together() {
    let outcome = TestHost::new()
        .stub(
            Stub::get("https://api.example.com/h")
                .header("Set-Cookie", "a=1")
                .header("X-Later", "later")
                .header("set-cookie", "b=2"),
        )
        .run(|ctx| {
            let response = http::Request::get("https://api.example.com/h").send()?;
            let headers: Vec<String> = response
                .headers()
                .iter()
                .map(|(n, v)| format!("{n}: {v}"))
                .collect();
            ctx.set("headers", headers.join("\n"))?;
            Ok(())
        });
    outcome.assert_success();
    assert_eq!(
        outcome.property("headers"),
        Some("set-cookie: a=1\nset-cookie: b=2\nx-later: later")
    );
}
