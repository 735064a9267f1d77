//! api_overhead: what a Code block run costs through exactly what an
//! operator calls, next to the path the `code_block` bench times, in one
//! process, interleaved round-robin (so the ratio is of one run on one
//! machine state).
//!
//! Paths, per case (`empty`: `bench_empty`; `demo.json+set3`: parse
//! `demo.json` and set three properties, `bench_parse_set3`):
//!
//! - `bench`: the `code_block` bench's loop: one `Sandbox` built by hand, a
//!   current-thread runtime, `block_on(sandbox.run(..))` with properties
//!   built once, the outcome dropped unread.
//! - `operator-blocking`: what a synchronous embedder writes: an `Engine`
//!   from `EngineConfig`, a default multi-thread `tokio::runtime::Runtime`,
//!   and per run: a fresh `Properties` holding the response (an `Arc<str>`
//!   the operator already has, so not copied), `block_on(engine.sandbox()
//!   .run(..))`, the result checked, the changes and messages read back into
//!   owned `String`s, and the changes committed to the properties.
//! - `operator-async`: the same per-run work inside an async task of the
//!   operator's runtime (`.await`, no `block_on` per run).
//!
//! Every path's answer is checked equal before anything is timed. Times are
//! single runs (median and p99 of `ROUNDS` × `PER_ROUND` runs per path).
//!
//! ```sh
//! env -u RUST_BACKTRACE cargo run --release -p chatflow-benches --example api_overhead [ROUNDS]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use chatflow_benches::json_documents;
use chatflow_benches::sandboxed::{Bench, Guard, loopback_policy};
use chatflow_engine::sandbox::{CodeModule, Limits};
use chatflow_engine::{Engine, EngineConfig, Properties};
use chatflow_test_artifacts::{BENCH_EMPTY, BENCH_PARSE_SET3};

const PER_ROUND: usize = 2_000;

/// What an operator keeps from a run: the changes and messages as owned
/// strings.
type Answer = (Vec<(String, Option<String>)>, Vec<String>);

struct Operator {
    engine: Arc<Engine>,
    module: CodeModule,
    limits: Limits,
    response: Option<Arc<str>>,
}

impl Operator {
    /// One run as an operator writes it; returns what it kept.
    async fn run(&self) -> Result<Answer> {
        let mut props = Properties::new();
        if let Some(response) = &self.response {
            props.set("API Response", Arc::clone(response));
        }
        let outcome = self
            .engine
            .sandbox()
            .run(&self.module, &props, &self.limits)
            .await;
        let output = match outcome.result {
            Ok(output) => output,
            Err(err) => bail!("the block failed: {err}"),
        };
        let changes = output
            .changes
            .iter()
            .map(|(name, value)| (name.to_owned(), value.map(str::to_owned)))
            .collect();
        let messages = output.messages.clone();
        props.apply(output.changes);
        Ok((changes, messages))
    }
}

fn main() -> Result<()> {
    let rounds: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("ROUNDS must be a number")?,
        None => 10,
    };
    let demo = json_documents()
        .into_iter()
        .find(|d| d.name == "demo.json")
        .context("demo.json is in the corpus list")?;
    let demo: Arc<str> = Arc::from(String::from_utf8(demo.bytes).context("demo.json is UTF-8")?);

    let bench = Bench::guarded(Guard::Fuel);
    let rt = tokio::runtime::Runtime::new().context("tokio runtime")?;
    let engine = {
        let _guard = rt.enter();
        Arc::new(Engine::new(
            EngineConfig::default().with_net(loopback_policy()),
        )?)
    };

    println!("| case | path | median | p99 | ratio to `bench` (median) |");
    println!("|---|---|---:|---:|---:|");
    for (case, guest, response) in [
        ("empty", BENCH_EMPTY, None),
        ("demo.json+set3", BENCH_PARSE_SET3, Some(Arc::clone(&demo))),
    ] {
        let wasm = std::fs::read(guest).with_context(|| format!("reading {guest}"))?;
        let bench_module = bench.sandbox.load(&wasm)?;
        let mut bench_props = Properties::new();
        if let Some(response) = &response {
            bench_props.set("API Response", Arc::clone(response));
        }
        let operator = Operator {
            module: engine.sandbox().load(&wasm)?,
            limits: engine.sandbox().default_limits(),
            engine: Arc::clone(&engine),
            response,
        };

        // Every path gives the same answer before anything is timed.
        let want = bench.run_ok(&bench_module, &bench_props);
        let want: Answer = (
            want.changes
                .iter()
                .map(|(n, v)| (n.to_owned(), v.map(str::to_owned)))
                .collect(),
            want.messages,
        );
        ensure!(
            rt.block_on(operator.run())? == want,
            "{case}: operator-blocking differs"
        );
        let operator = Arc::new(operator);
        ensure!(
            rt.block_on(rt.spawn({
                let op = Arc::clone(&operator);
                async move { op.run().await }
            }))??
                == want,
            "{case}: operator-async differs"
        );

        let mut times: [Vec<Duration>; 3] = Default::default();
        for _ in 0..rounds {
            let t = &mut times[0];
            for _ in 0..PER_ROUND {
                let start = Instant::now();
                std::hint::black_box(bench.run(&bench_module, &bench_props));
                t.push(start.elapsed());
            }
            let t = &mut times[1];
            for _ in 0..PER_ROUND {
                let start = Instant::now();
                std::hint::black_box(rt.block_on(operator.run())?);
                t.push(start.elapsed());
            }
            let op = Arc::clone(&operator);
            let async_times = rt.block_on(rt.spawn(async move {
                let mut t = Vec::with_capacity(PER_ROUND);
                for _ in 0..PER_ROUND {
                    let start = Instant::now();
                    std::hint::black_box(op.run().await?);
                    t.push(start.elapsed());
                }
                anyhow::Ok(t)
            }))??;
            times[2].extend(async_times);
        }
        let stats: Vec<(f64, f64)> = times.iter_mut().map(|t| median_p99(t)).collect();
        for (path, (median, p99)) in ["bench", "operator-blocking", "operator-async"]
            .iter()
            .zip(&stats)
        {
            println!(
                "| {case} | `{path}` | {median:.2} µs | {p99:.2} µs | {:.2}× |",
                median / stats[0].0
            );
        }
    }
    Ok(())
}

/// Median and 99th percentile in microseconds.
fn median_p99(times: &mut [Duration]) -> (f64, f64) {
    times.sort_unstable();
    let at = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    (at(0.5).as_secs_f64() * 1e6, at(0.99).as_secs_f64() * 1e6)
}
