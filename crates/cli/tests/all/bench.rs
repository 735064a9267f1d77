//! `chatflow bench`: exit codes and the `--json` report.

use std::process::Output;

use serde_json::Value;

use chatflow_test_artifacts::BENCH_PARSE_SET3;

fn chatflow(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_chatflow"))
        .args(args)
        .env_remove("CHATFLOW_LOG")
        .output()
        .unwrap()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?}, stderr {:?}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn response_file(dir: &tempfile::TempDir, body: &str) -> String {
    let path = dir.path().join("response.json");
    std::fs::write(&path, body).unwrap();
    format!("API Response=@{}", path.display())
}

const IMAGE: &str =
    r#"{"Image": {"Title": "View", "Thumbnail": {"Url": "http://x/1"}, "IDs": [116, 943]}}"#;

#[test]
fn reports_time_fuel_memory_and_the_largest_input() {
    let dir = tempfile::tempdir().unwrap();
    let set = response_file(&dir, IMAGE);
    let output = chatflow(&[
        "bench",
        BENCH_PARSE_SET3,
        "--set",
        &set,
        "--runs",
        "30",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let report = json(&output);
    assert_eq!(report["ok"], true);
    assert_eq!(report["runs"], 30);
    assert_eq!(report["warmup_runs"], 3);
    assert_eq!(report["input_bytes"], IMAGE.len());
    let time = &report["time_us"];
    for key in ["median", "p99", "min", "max", "mean"] {
        assert!(time[key].as_f64().unwrap() > 0.0, "{key}: {time}");
    }
    assert!(time["min"].as_f64() <= time["median"].as_f64());
    assert!(time["median"].as_f64() <= time["p99"].as_f64());
    let fuel = &report["fuel"];
    let used = fuel["used"].as_u64().unwrap();
    assert!(used > 0 && fuel["used_max"].as_u64().unwrap() >= used);
    assert_eq!(fuel["limit"], 1_000_000_000u64);
    let per_byte = fuel["per_input_byte"].as_f64().unwrap();
    assert!((per_byte - used as f64 / IMAGE.len() as f64).abs() < 1e-6);
    let fits = fuel["max_input_bytes"].as_u64().unwrap();
    assert_eq!(fits, (1e9 / per_byte).floor() as u64);
    assert_eq!(fuel["max_input_bytes_extrapolated"], true);
    // A small response does not grow the memory: only fuel bounds it.
    let memory = &report["memory"];
    assert_eq!(memory["used"], memory["initial"]);
    assert!(memory["per_input_byte"].is_null());
    assert_eq!(report["max_input_bytes"], fits);
    assert_eq!(report["bound_by"], "fuel");
    assert!(report.get("error").is_none());
}

#[test]
fn a_lower_fuel_limit_lowers_the_estimate_and_the_text_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let set = response_file(&dir, IMAGE);
    let output = chatflow(&[
        "bench",
        BENCH_PARSE_SET3,
        "--set",
        &set,
        "--runs",
        "5",
        "--fuel",
        "1000000",
    ]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("5 runs (after 1 warm-up)"), "{text}");
    assert!(text.contains("limit 1000000"), "{text}");
    assert!(text.contains("fuel runs out first"), "{text}");
    assert!(text.contains("extrapolated"), "{text}");
}

#[test]
fn a_failing_block_exits_1_with_the_error() {
    // No `API Response`: the block fails on its first run.
    let output = chatflow(&["bench", BENCH_PARSE_SET3, "--runs", "5", "--json"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report = json(&output);
    assert_eq!(report["ok"], false);
    assert_eq!(report["runs"], 0);
    assert_eq!(report["error"]["run"], 1);
    assert_eq!(report["error"]["kind"], "guest_failed");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API Response"),
        "{report}"
    );

    // Running out of fuel on the way is a failure too.
    let dir = tempfile::tempdir().unwrap();
    let set = response_file(&dir, IMAGE);
    let output = chatflow(&[
        "bench",
        BENCH_PARSE_SET3,
        "--set",
        &set,
        "--fuel",
        "500",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(json(&output)["error"]["kind"], "fuel_exhausted");
}

#[test]
fn bad_arguments_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let not_wasm = dir.path().join("x.wasm");
    std::fs::write(&not_wasm, b"not wasm").unwrap();
    let not_wasm = not_wasm.to_str().unwrap();
    let missing = dir.path().join("missing.wasm");
    let missing = missing.to_str().unwrap();
    for args in [
        vec!["bench", BENCH_PARSE_SET3, "--runs", "0"],
        vec!["bench", BENCH_PARSE_SET3, "--runs", "many"],
        vec!["bench", BENCH_PARSE_SET3, "--fuel", "99999999999999"],
        vec!["bench", BENCH_PARSE_SET3, "--set", "novalue"],
        vec![
            "bench",
            BENCH_PARSE_SET3,
            "--set",
            "x=@/definitely/not/here",
        ],
        vec!["bench", BENCH_PARSE_SET3, "--allow-host", "*."],
        vec!["bench", not_wasm],
        vec!["bench", missing],
        vec!["bench"],
    ] {
        let output = chatflow(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert!(output.stdout.is_empty(), "{args:?}: {output:?}");
        assert!(!output.stderr.is_empty(), "{args:?}");
    }
}
