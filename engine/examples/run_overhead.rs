//! Measures the per-run cost of an empty Code block: a fresh pooled
//! instance per run, fuel and epoch on, default limits, median and p99 over
//! many runs (one at a time, on a current-thread runtime).
//!
//! Run with: `cargo run --release -p chatflow-engine --example run_overhead [RUNS]`
//!
//! Quick check only; the criterion benches (`benches/`) are the reference.

use std::time::{Duration, Instant};

use chatflow_engine::Properties;
use chatflow_engine::net::{HttpClient, NetPolicy};
use chatflow_engine::sandbox::{Sandbox, SandboxConfig};

const EMPTY: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "chatflow_abi_v1"))
  (func (export "chatflow_run") (result i32) (i32.const 0)))"#;

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for fuel in [true, false] {
        let http = HttpClient::new(NetPolicy::default())?;
        let sandbox = Sandbox::new(SandboxConfig::default().with_fuel_metering(fuel), http)?;
        let module = sandbox.load(&wat::parse_str(EMPTY)?)?;
        let props: Properties = [("API Response", "{}")].into_iter().collect();
        let limits = sandbox.default_limits();
        let mut times = Vec::with_capacity(runs);
        rt.block_on(async {
            for _ in 0..1_000 {
                assert!(sandbox.run(&module, &props, &limits).await.is_ok());
            }
            for _ in 0..runs {
                let start = Instant::now();
                let outcome = sandbox.run(&module, &props, &limits).await;
                times.push(start.elapsed());
                assert!(outcome.is_ok());
            }
        });
        times.sort();
        let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
        let total: Duration = times.iter().sum();
        println!(
            "empty run, fuel {}: median {:.2} us, p99 {:.2} us, mean {:.2} us over {runs} runs",
            if fuel { "on " } else { "off" },
            pct(0.5).as_secs_f64() * 1e6,
            pct(0.99).as_secs_f64() * 1e6,
            total.as_secs_f64() * 1e6 / runs as f64,
        );
    }
    Ok(())
}
