//! Figures criterion does not give: per-run latency distributions (median
//! and tail of single runs, where criterion times batches), runs per
//! second, memory. The benches print them and save them as JSON under
//! `target/chatflow-bench/` for `benches/report.py`, which builds the
//! tables of `docs/benchmarks.md`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The distribution of single-run times of one measured operation.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// What was measured, e.g. `code_block/sandbox/empty`.
    pub name: String,
    /// Runs timed (after the warm-up).
    pub runs: usize,
    /// Median, in microseconds.
    pub median_us: f64,
    /// 90th percentile, in microseconds.
    pub p90_us: f64,
    /// 99th percentile, in microseconds.
    pub p99_us: f64,
    /// 99.9th percentile, in microseconds.
    pub p999_us: f64,
    /// Mean, in microseconds.
    pub mean_us: f64,
}

/// Times `runs` single calls of `f` (after `runs / 10` untimed ones) and
/// prints the distribution.
pub fn latency(name: &str, runs: usize, mut f: impl FnMut()) -> Latency {
    for _ in 0..runs / 10 {
        f();
    }
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f();
        times.push(start.elapsed());
    }
    summarize(name, times)
}

/// The distribution of `times` (single runs of `name`), printed.
pub fn summarize(name: &str, mut times: Vec<Duration>) -> Latency {
    let runs = times.len();
    assert!(runs > 0, "no times for {name}");
    times.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let pct = |p: f64| us(times[((runs as f64 * p) as usize).min(runs - 1)]);
    let latency = Latency {
        name: name.to_string(),
        runs,
        median_us: pct(0.5),
        p90_us: pct(0.9),
        p99_us: pct(0.99),
        p999_us: pct(0.999),
        mean_us: us(times.iter().sum::<Duration>()) / runs as f64,
    };
    println!(
        "{name:<44} median {:>9.2} us   p90 {:>9.2} us   p99 {:>9.2} us   p99.9 {:>9.2} us   ({runs} runs)",
        latency.median_us, latency.p90_us, latency.p99_us, latency.p999_us
    );
    latency
}

/// Where the benches save their extra figures: `target/chatflow-bench/`
/// (or under `$CARGO_TARGET_DIR`).
pub fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("chatflow-bench")
}

/// Saves `value` as `<out_dir>/<file>.json` and says where.
pub fn save(file: &str, value: &impl Serialize) {
    let dir = out_dir();
    let path = dir.join(format!("{file}.json"));
    let result = std::fs::create_dir_all(&dir).and_then(|()| {
        let json = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
        std::fs::write(&path, json)
    });
    match result {
        Ok(()) => println!("saved {}", path.display()),
        Err(err) => eprintln!("warning: could not save {}: {err}", path.display()),
    }
}

/// Whether the bench binary was asked only to list or test its benchmarks
/// (`cargo test --benches`, `--list`): the extra measurements are skipped.
pub fn quick_mode() -> bool {
    std::env::args().any(|a| a == "--list" || a == "--test")
}

/// Whether the command line's filter (the first free argument, as
/// criterion reads it) lets the extra measurement `name` run. No filter
/// runs everything.
pub fn selected(name: &str) -> bool {
    let mut args = std::env::args().skip(1);
    let mut filter = None;
    while let Some(arg) = args.next() {
        if arg == "--bench" || arg == "--nocapture" || arg == "--exact" {
            continue;
        }
        if arg.starts_with("--") {
            // Options with a value (criterion's), e.g. `--save-baseline x`.
            if !arg.contains('=') && OPTIONS_WITH_VALUE.contains(&arg.as_str()) {
                args.next();
            }
            continue;
        }
        filter = Some(arg);
        break;
    }
    filter.is_none_or(|f| name.contains(&f))
}

const OPTIONS_WITH_VALUE: &[&str] = &[
    "--save-baseline",
    "--baseline",
    "--baseline-lenient",
    "--load-baseline",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--profile-time",
    "--output-format",
    "--color",
    "--format",
    "--plotting-backend",
];
