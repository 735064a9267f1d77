//! `chatflow bench MODULE`: run one Code block many times, as production
//! does (a fresh instance per run, the default limits), and report what it
//! costs: time per run, fuel and memory, each per input byte, and how large
//! an input of the same shape fits in the fuel and memory limits.

use std::time::Duration;

use anyhow::{Context as _, Result};
use chatflow_engine::sandbox::Limits;
use serde::Serialize;

use super::Status;
use super::code::{BlockArgs, Loaded};

/// Arguments of `chatflow bench`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Every run gets a fresh instance and the engine's default limits, as in a flow;\n\
the first runs (a tenth, at least one) warm up and are not counted. The\n\
input is the total size of the --set values. The largest input that fits\n\
in the fuel and memory limits is extrapolated from the fuel and memory\n\
per input byte of this input (costs that do not grow with the input are\n\
counted as if they did, so the estimate errs on the small side); check\n\
it with a real input of that size.\n\n\
Exit codes: 0 every run succeeded, 1 a run failed, 2 bad arguments or\n\
invalid module.\n\n\
Example:\n  chatflow bench parse_order.wasm --set 'API Response=@reply.json' --runs 500"
)]
pub struct Args {
    #[command(flatten)]
    block: BlockArgs,
    /// Runs to time (after the warm-up runs).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    runs: u32,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The report, as printed with `--json`.
#[derive(Debug, Serialize)]
struct Report {
    module: String,
    ok: bool,
    runs: u32,
    warmup_runs: u32,
    input_bytes: u64,
    time_us: TimeStats,
    fuel: FuelStats,
    memory: MemoryStats,
    /// The smaller of the two extrapolations, and the limit that sets it.
    max_input_bytes: Option<u64>,
    bound_by: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorReport>,
}

#[derive(Debug, Serialize)]
struct TimeStats {
    median: f64,
    p99: f64,
    min: f64,
    max: f64,
    mean: f64,
}

#[derive(Debug, Serialize)]
struct FuelStats {
    /// The run's fuel limit.
    limit: u64,
    /// Fuel used by a run (median over the timed runs).
    used: u64,
    /// The most fuel one timed run used.
    used_max: u64,
    /// `used / input_bytes`; `null` without input.
    per_input_byte: Option<f64>,
    /// `limit / per_input_byte`, rounded down; `null` without input.
    max_input_bytes: Option<u64>,
    /// Always `true`: `max_input_bytes` is an extrapolation.
    max_input_bytes_extrapolated: bool,
}

#[derive(Debug, Serialize)]
struct MemoryStats {
    /// The run's linear memory limit, in bytes.
    limit: u64,
    /// The module's initial linear memory, in bytes.
    initial: u64,
    /// Linear memory at its largest in a run (median over the timed runs).
    used: u64,
    /// The most memory one timed run used.
    used_max: u64,
    /// `(used - initial) / input_bytes`; `null` without input or when
    /// the run did not grow its memory.
    per_input_byte: Option<f64>,
    /// `(limit - initial) / per_input_byte`, rounded down; `null` when
    /// `per_input_byte` is.
    max_input_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
struct ErrorReport {
    /// The run that failed (1-based, warm-up runs included).
    run: u32,
    kind: &'static str,
    message: String,
    fuel_used: u64,
}

pub fn run(args: Args) -> Result<Status> {
    // A current-thread runtime: runs go one at a time, on this thread, with
    // nothing else scheduled in between.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let Loaded {
        props,
        sandbox,
        limits,
        module,
    } = match args.block.load(&runtime)? {
        Ok(loaded) => loaded,
        Err(status) => return Ok(status),
    };

    let input_bytes: u64 = props.iter().map(|(_, value)| value.len() as u64).sum();
    let warmup = (args.runs / 10).max(1);
    let mut times = Vec::with_capacity(args.runs as usize);
    let mut fuel = Vec::with_capacity(args.runs as usize);
    let mut memory = Vec::with_capacity(args.runs as usize);
    let mut failure = None;
    for i in 0..warmup + args.runs {
        let outcome = runtime.block_on(sandbox.run(&module, &props, &limits));
        if let Err(err) = &outcome.result {
            failure = Some(ErrorReport {
                run: i + 1,
                kind: err.kind(),
                message: err.to_string(),
                fuel_used: outcome.fuel_used,
            });
            break;
        }
        if i >= warmup {
            times.push(outcome.duration);
            fuel.push(outcome.fuel_used);
            memory.push(outcome.memory_bytes);
        }
    }

    let samples = Samples {
        times,
        fuel,
        memory,
    };
    let initial_memory = module.initial_memory_bytes();
    let report = summarize(
        &args,
        &limits,
        input_bytes,
        initial_memory,
        warmup,
        samples,
        failure,
    );
    if args.json {
        println!(
            "{:#}",
            serde_json::to_value(&report).context("serializing the report")?
        );
    } else {
        print_human(&report);
    }
    Ok(if report.ok {
        Status::Ok
    } else {
        Status::Stopped
    })
}

/// What the timed runs measured, one entry per run.
struct Samples {
    times: Vec<Duration>,
    fuel: Vec<u64>,
    memory: Vec<u64>,
}

/// `(median, max)` of sorted values.
fn median_max(sorted: &[u64]) -> (u64, u64) {
    (
        sorted.get(sorted.len() / 2).copied().unwrap_or(0),
        sorted.last().copied().unwrap_or(0),
    )
}

/// `used / input` and `limit / (used / input)`: the extrapolation.
fn per_byte(used: u64, input: u64, limit: u64) -> (Option<f64>, Option<u64>) {
    if input == 0 || used == 0 {
        return (None, None);
    }
    let per = used as f64 / input as f64;
    (Some(per), Some((limit as f64 / per).floor() as u64))
}

fn summarize(
    args: &Args,
    limits: &Limits,
    input_bytes: u64,
    initial_memory: u64,
    warmup: u32,
    samples: Samples,
    failure: Option<ErrorReport>,
) -> Report {
    let Samples {
        mut times,
        mut fuel,
        mut memory,
    } = samples;
    times.sort_unstable();
    fuel.sort_unstable();
    memory.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let pct = |p: f64| {
        // Nearest rank: the smallest time at or above `p` of the runs.
        let rank = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len().max(1));
        times.get(rank - 1).copied().map_or(0.0, us)
    };
    let time_us = TimeStats {
        median: pct(0.5),
        p99: pct(0.99),
        min: times.first().copied().map_or(0.0, us),
        max: times.last().copied().map_or(0.0, us),
        mean: if times.is_empty() {
            0.0
        } else {
            us(times.iter().sum::<Duration>()) / times.len() as f64
        },
    };
    let (fuel_used, fuel_max) = median_max(&fuel);
    let (fuel_per_byte, fuel_fits) = per_byte(fuel_used, input_bytes, limits.fuel);
    let (memory_used, memory_max) = median_max(&memory);
    // Memory beyond the module's initial memory is what the input costs.
    let (memory_per_byte, memory_fits) = per_byte(
        memory_used.saturating_sub(initial_memory),
        input_bytes,
        limits.memory_bytes.saturating_sub(initial_memory),
    );
    let (max_input_bytes, bound_by) = match (fuel_fits, memory_fits) {
        (Some(f), Some(m)) if m < f => (Some(m), Some("memory")),
        (Some(f), _) => (Some(f), Some("fuel")),
        (None, Some(m)) => (Some(m), Some("memory")),
        (None, None) => (None, None),
    };
    Report {
        module: args.block.module.display().to_string(),
        ok: failure.is_none(),
        runs: times.len() as u32,
        warmup_runs: warmup,
        input_bytes,
        time_us,
        fuel: FuelStats {
            limit: limits.fuel,
            used: fuel_used,
            used_max: fuel_max,
            per_input_byte: fuel_per_byte,
            max_input_bytes: fuel_fits,
            max_input_bytes_extrapolated: true,
        },
        memory: MemoryStats {
            limit: limits.memory_bytes,
            initial: initial_memory,
            used: memory_used,
            used_max: memory_max,
            per_input_byte: memory_per_byte,
            max_input_bytes: memory_fits,
        },
        max_input_bytes,
        bound_by,
        error: failure,
    }
}

fn print_human(report: &Report) {
    if let Some(err) = &report.error {
        println!(
            "{}: run {} failed ({}, fuel used {}): {}",
            report.module, err.run, err.kind, err.fuel_used, err.message
        );
        println!("nothing to report: every run must succeed");
        return;
    }
    let t = &report.time_us;
    let f = &report.fuel;
    let m = &report.memory;
    println!(
        "{}: {} runs (after {} warm-up), fresh instance each",
        report.module, report.runs, report.warmup_runs
    );
    println!(
        "  time:   median {:.1} us, p99 {:.1} us (min {:.1}, max {:.1}, mean {:.1})",
        t.median, t.p99, t.min, t.max, t.mean
    );
    if f.used == f.used_max {
        println!("  fuel:   {} per run (limit {})", f.used, f.limit);
    } else {
        println!(
            "  fuel:   median {} per run, max {} (limit {})",
            f.used, f.used_max, f.limit
        );
    }
    println!(
        "  memory: {} at most, {} of it initial (limit {})",
        human_bytes(m.used_max),
        human_bytes(m.initial),
        human_bytes(m.limit)
    );
    println!("  input:  {} bytes (the --set values)", report.input_bytes);
    let Some(fuel_per) = f.per_input_byte else {
        println!("  per input byte: n/a (no input given with --set)");
        return;
    };
    println!("  fuel per input byte:   {fuel_per:.1}");
    match m.per_input_byte {
        Some(per) => println!("  memory per input byte: {per:.1} (beyond the initial memory)"),
        None => println!("  memory per input byte: n/a (the run did not grow its memory)"),
    }
    if let (Some(max), Some(bound)) = (report.max_input_bytes, report.bound_by) {
        println!(
            "  largest input of this shape within the limits: about {} ({bound} runs out \
             first; extrapolated from this input, check with a real one)",
            human_bytes(max)
        );
    }
}

/// `1.5 MiB`, `320 KiB`, `900 B`.
fn human_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB * KIB {
        format!("{:.1} GiB", b / (KIB * KIB * KIB))
    } else if b >= KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else if b >= KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(900), "900 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
    }
}
