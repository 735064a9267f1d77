//! probe: one bench case in a loop, for profilers and quick comparisons
//! (criterion's statistics get in the way of `perf record` and callgrind).
//!
//! ```sh
//! cargo run --release -p chatflow-benches --example probe -- VARIANT DOCUMENT [RUNS]
//! perf record -g target/release/examples/probe sandbox twitter.json 200
//! valgrind --tool=callgrind target/release/examples/probe sandbox-epoch canada.json 3
//! ```
//!
//! VARIANT is `native`, `native-typed`, `sandbox`, `sandbox-epoch`,
//! `sandbox-typed` or `host-selector` for a JSON document, and `native`,
//! `sandbox`, `sandbox-epoch` or `host-selector` for an XML one; DOCUMENT a
//! corpus file name (`twitter.json`, `huge.xml` …), or `empty` (the empty
//! Code block; VARIANT `sandbox` or `sandbox-epoch`). Prints the median,
//! mean and minimum time per run and the throughput.
//!
//! `CHATFLOW_KEEP_RESIDENT=BYTES` sets `linear_memory_keep_resident`,
//! `CHATFLOW_TABLE_KEEP_RESIDENT=BYTES` sets `table_keep_resident`,
//! `CHATFLOW_PAGEMAP_SCAN=0|1` sets `pagemap_scan`, `CHATFLOW_PERF_MAP=1`
//! writes `/tmp/perf-<pid>.map` for `perf` (`perf_map`),
//! `CHATFLOW_GUEST=PATH` runs another build of the guest module (it must
//! answer like the bench guest for that variant).

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use chatflow_benches::sandboxed::{Bench, Guard};
use chatflow_benches::walk::{self, Shape};
use chatflow_benches::{json_documents, json_selectors, xml_documents, xml_selectors};
use chatflow_engine::Properties;
use chatflow_test_artifacts as guests;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: probe VARIANT DOCUMENT [RUNS]";
    let variant = args.next().context(usage)?;
    let document = args.next().context(usage)?;
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(100);

    let doc = json_documents()
        .into_iter()
        .chain(xml_documents())
        .find(|d| d.name == document);
    let xml = document.ends_with(".xml") || document.ends_with(".svg");
    let bytes = doc.as_ref().map(|d| d.bytes.clone()).unwrap_or_default();
    if doc.is_none() && document != "empty" {
        bail!("unknown document {document:?}");
    }

    let mut run: Box<dyn FnMut()> = match variant.as_str() {
        "native" if xml => Box::new(|| {
            walk::xml_walk(std::hint::black_box(&bytes)).unwrap();
        }),
        "native" => Box::new(|| {
            walk::json_walk(std::hint::black_box(&bytes)).unwrap();
        }),
        "native-typed" => {
            let shape = Shape::from_file_name(&document).context("not a JSON document")?;
            let bytes = bytes.clone();
            Box::new(move || {
                walk::json_typed(shape, std::hint::black_box(&bytes)).unwrap();
            })
        }
        sandboxed => {
            let guard = match sandboxed {
                "sandbox-epoch" => Guard::Epoch,
                _ => Guard::Fuel,
            };
            let mut config = guard.config();
            if let Ok(bytes) = std::env::var("CHATFLOW_KEEP_RESIDENT") {
                config = config.with_linear_memory_keep_resident(bytes.parse()?);
            }
            if let Ok(bytes) = std::env::var("CHATFLOW_TABLE_KEEP_RESIDENT") {
                config = config.with_table_keep_resident(bytes.parse()?);
            }
            if std::env::var_os("CHATFLOW_PERF_MAP").is_some() {
                config = config.with_perf_map(true);
            }
            if let Ok(on) = std::env::var("CHATFLOW_PAGEMAP_SCAN") {
                config = config.with_pagemap_scan(on == "1");
            }
            let guest = match (sandboxed, xml) {
                _ if document == "empty" => guests::BENCH_EMPTY,
                ("sandbox" | "sandbox-epoch", false) => guests::BENCH_JSON_WALK,
                ("sandbox" | "sandbox-epoch", true) => guests::BENCH_XML_WALK,
                ("sandbox-typed", false) => guests::BENCH_JSON_TYPED,
                ("host-selector", false) => guests::BENCH_JSON_SELECT,
                ("host-selector", true) => guests::BENCH_XML_SELECT,
                _ => bail!("unknown variant {variant:?} for {document}"),
            };
            let guest = std::env::var("CHATFLOW_GUEST").unwrap_or_else(|_| guest.to_string());
            let bench = Bench::new(config);
            let module = bench.load(&guest);
            let mut props = Properties::new();
            if !bytes.is_empty() {
                props.set("API Response", String::from_utf8(bytes.clone())?);
                props.set("document", document.as_str());
                let selectors = if xml {
                    xml_selectors(&document)
                } else {
                    json_selectors(&document)
                };
                for (i, s) in selectors.iter().enumerate() {
                    props.set(format!("select_{}", i + 1), *s);
                }
            }
            bench.run_ok(&module, &props);
            Box::new(move || {
                bench.run(&module, &props).expect("the run succeeds");
            })
        }
    };

    for _ in 0..(runs / 10).max(1) {
        run();
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        run();
        times.push(start.elapsed());
    }
    times.sort_unstable();
    let median = times[runs / 2];
    let mean = times.iter().sum::<Duration>() / runs as u32;
    let len = doc.map_or(0, |d| d.bytes.len());
    let mbps = |d: Duration| len as f64 / d.as_secs_f64() / 1e6;
    println!(
        "{variant} {document}: median {:.1} us, mean {:.1} us, min {:.1} us; {:.1} MB/s (median)",
        median.as_secs_f64() * 1e6,
        mean.as_secs_f64() * 1e6,
        times[0].as_secs_f64() * 1e6,
        mbps(median)
    );
    Ok(())
}
