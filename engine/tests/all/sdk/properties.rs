//! Properties through the SDK in the sandbox: reads, writes, removals, a
//! run's own writes visible to its later reads, and values far larger than
//! the SDK's first read buffer (the length protocol's retry path), with
//! multi-byte characters straddling every buffer boundary.

use chatflow_engine::sandbox::RunError;
use chatflow_test_artifacts::{SDK_LARGE_VALUES, SDK_ROUNDTRIP};

use super::{failed, ok, props, run, sandbox, set};

#[tokio::test]
async fn roundtrip() {
    let sb = sandbox();
    let input = "Grüße, 世界 🌍 \"quoted\" {{not a template}}";
    let out = ok(run(
        &sb,
        SDK_ROUNDTRIP,
        &props([("input", input), ("to_remove", "x")]),
    )
    .await);
    assert_eq!(set(&out, "output"), Some(input));
    assert_eq!(
        set(&out, "input_len"),
        Some(input.len().to_string().as_str())
    );
    assert_eq!(out.changes.get("to_remove"), Some(None), "removed");
    assert_eq!(set(&out, "read_back"), Some("written by sdk_roundtrip ✓"));
    let mut names: Vec<&str> = out.changes.iter().map(|(n, _)| n).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["input_len", "output", "read_back", "to_remove", "written"],
        "nothing else is written"
    );
    assert!(out.messages.is_empty());

    // Removing a property that is not set is fine too.
    let out = ok(run(&sb, SDK_ROUNDTRIP, &props([("input", "")])).await);
    assert_eq!(set(&out, "output"), Some(""));
    assert_eq!(out.changes.get("to_remove"), Some(None));
}

#[tokio::test]
async fn a_missing_property_fails_with_its_name() {
    let sb = sandbox();
    let outcome = run(&sb, SDK_ROUNDTRIP, &props([("to_remove", "x")])).await;
    match failed(&outcome) {
        RunError::GuestFailed { message, code } => {
            assert_eq!(message, "property `input` is not set");
            assert_eq!(*code, Some(1));
        }
        other => panic!("{other:?}"),
    }
}

/// 1.4 MB in (1.2 million two-byte characters), 1 MiB built in the guest
/// of characters of 2, 3 and 4 bytes, written, read back and compared.
#[tokio::test]
async fn large_non_ascii_values_take_the_retry_path_intact() {
    let sb = sandbox();
    let big = "Ωmega-".repeat(200_000);
    let out = ok(run(&sb, SDK_LARGE_VALUES, &props([("big", big.as_str())])).await);
    assert_eq!(set(&out, "big_copy"), Some(big.as_str()));
    assert_eq!(set(&out, "big_len"), Some(big.len().to_string().as_str()));
    assert_eq!(set(&out, "big_chars"), Some("1200000"));
    let made = set(&out, "made").unwrap();
    let made_len: usize = set(&out, "made_len").unwrap().parse().unwrap();
    assert_eq!(made.len(), made_len);
    assert!(((1 << 20) - 3..=1 << 20).contains(&made_len), "{made_len}");
    let unit = "é€𝄞a";
    assert!(unit.repeat(made_len / unit.len() + 1).starts_with(made));

    // Sizes around the SDK's 1 KiB first buffer, each written and read back.
    for make_len in ["1023", "1024", "1025", "4096", "70000"] {
        let p = props([("big", "€"), ("make_len", make_len)]);
        let out = ok(run(&sb, SDK_LARGE_VALUES, &p).await);
        let n: usize = make_len.parse().unwrap();
        let made_len: usize = set(&out, "made_len").unwrap().parse().unwrap();
        assert!((n - 3..=n).contains(&made_len), "{make_len}: {made_len}");
        assert_eq!(set(&out, "big_chars"), Some("1"));
    }
}
