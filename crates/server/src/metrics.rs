//! `/metrics`: counters and histograms in Prometheus' (OpenMetrics) text
//! format. Each server has its own registry, so several servers in one
//! process (the tests) do not mix their figures.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `chatflow_turns_total` | `status` | turns committed (`waiting_for_input`, `completed`, `stopped`) |
//! | `chatflow_turn_duration_seconds` | | a turn's run, from the engine's start to its end |
//! | `chatflow_turns_in_flight` | | turns running now on this replica |
//! | `chatflow_block_runs_total` | `type`, `outcome` | blocks run (`rest_api`, `code`, …; `ok`, `ignored_error`, `stopped`, `waiting`) |
//! | `chatflow_block_duration_seconds` | `type` | a block's wall time |
//! | `chatflow_fuel_used_total` | | fuel used by Code blocks |
//! | `chatflow_http_calls_total` | `type` | outgoing HTTP requests by REST API blocks (each hop) and Code blocks |
//! | `chatflow_store_duration_seconds` | `op` | store operations (`lease`, `commit`, `create`, …) |
//! | `chatflow_errors_total` | `kind` | error responses by `kind` |

use std::sync::Arc;
use std::time::Duration;

use chatflow_engine::flow::{Step, StepOutcome};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

fn seconds_histogram() -> Histogram {
    // 50 µs to about 26 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

/// The server's metrics.
#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Arc<Registry>,
    turns: Family<Labels, Counter>,
    turn_duration: Histogram,
    in_flight: Gauge,
    block_runs: Family<Labels, Counter>,
    block_duration: Family<Labels, Histogram, fn() -> Histogram>,
    fuel: Counter,
    http_calls: Family<Labels, Counter>,
    store_duration: Family<Labels, Histogram, fn() -> Histogram>,
    errors: Family<Labels, Counter>,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::default();
        let turns = Family::<Labels, Counter>::default();
        registry.register(
            "chatflow_turns",
            "Turns committed, by status",
            turns.clone(),
        );
        let turn_duration = seconds_histogram();
        registry.register(
            "chatflow_turn_duration_seconds",
            "Time a turn ran in the engine",
            turn_duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "chatflow_turns_in_flight",
            "Turns running on this replica",
            in_flight.clone(),
        );
        let block_runs = Family::<Labels, Counter>::default();
        registry.register(
            "chatflow_block_runs",
            "Blocks run, by type and outcome",
            block_runs.clone(),
        );
        let block_duration: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(seconds_histogram);
        registry.register(
            "chatflow_block_duration_seconds",
            "Wall time of a block, by type",
            block_duration.clone(),
        );
        let fuel = Counter::default();
        registry.register(
            "chatflow_fuel_used",
            "Fuel used by Code blocks",
            fuel.clone(),
        );
        let http_calls = Family::<Labels, Counter>::default();
        registry.register(
            "chatflow_http_calls",
            "Outgoing HTTP requests, by block type",
            http_calls.clone(),
        );
        let store_duration: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(seconds_histogram);
        registry.register(
            "chatflow_store_duration_seconds",
            "Time of store operations, by operation",
            store_duration.clone(),
        );
        let errors = Family::<Labels, Counter>::default();
        registry.register(
            "chatflow_errors",
            "Error responses, by kind",
            errors.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            turns,
            turn_duration,
            in_flight,
            block_runs,
            block_duration,
            fuel,
            http_calls,
            store_duration,
            errors,
        }
    }

    /// The registry in the text format.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub(crate) fn turn(&self, status: &'static str, duration: Duration, trace: &[Step]) {
        self.turns.get_or_create(&vec![("status", status)]).inc();
        self.turn_duration.observe(duration.as_secs_f64());
        for step in trace {
            let block_type = step.block_type.as_str();
            let outcome = match step.outcome {
                StepOutcome::Ok => "ok",
                StepOutcome::IgnoredError => "ignored_error",
                StepOutcome::Stopped => "stopped",
                StepOutcome::Waiting => "waiting",
            };
            self.block_runs
                .get_or_create(&vec![("type", block_type), ("outcome", outcome)])
                .inc();
            self.block_duration
                .get_or_create(&vec![("type", block_type)])
                .observe(step.duration.as_secs_f64());
            if let Some(fuel) = step.fuel_used {
                self.fuel.inc_by(fuel);
            }
            let calls = match (step.http_calls, step.http_status) {
                (Some(calls), _) => u64::from(calls),
                (None, Some(_)) => 1 + u64::from(step.redirects.unwrap_or(0)),
                (None, None) => 0,
            };
            if calls > 0 {
                self.http_calls
                    .get_or_create(&vec![("type", block_type)])
                    .inc_by(calls);
            }
        }
    }

    pub(crate) fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    pub(crate) fn store(&self, op: &'static str, duration: Duration) {
        self.store_duration
            .get_or_create(&vec![("op", op)])
            .observe(duration.as_secs_f64());
    }

    pub(crate) fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&vec![("kind", kind)]).inc();
    }
}

/// Times a store call into [`Metrics::store`].
pub(crate) async fn timed<T>(
    metrics: &Metrics,
    op: &'static str,
    fut: impl std::future::Future<Output = T>,
) -> T {
    let started = std::time::Instant::now();
    let out = fut.await;
    metrics.store(op, started.elapsed());
    out
}
