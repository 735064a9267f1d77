//! parse_json: how fast a JSON API response is parsed inside a Code block,
//! next to the same code run natively.
//!
//! For each corpus document (`benches/src/lib.rs` says what each is like),
//! one group `parse_json` with the variants side by side, all reporting
//! bytes/s of the document:
//!
//! - `native`: `serde_json::from_slice::<Value>` and a walk touching every
//!   node (`chatflow_bench_walk::json_walk`), in this process;
//! - `native-typed`: serde derive into structs (`json_typed`), natively;
//! - `native-matched`, `native-matched-typed`: the same two, built like the
//!   guests (guest profile, their LLVM flags, the SDK's bump allocator
//!   design reset per run) in a child process (`chatflow_benches::matched`);
//! - `sandbox`: `json_walk` inside a Code block (`bench_json_walk`), run by
//!   the engine with its default limits on (fuel, memory, epoch), a fresh
//!   instance per run, including copying the document into the guest;
//! - `sandbox-epoch`: the same with fuel metering off (the operator option;
//!   wall time and memory limits still on);
//! - `sandbox-dlmalloc`: `sandbox` with Rust's standard allocator in the
//!   guest (`code_block!(run, allocator = std)`) instead of the SDK's default
//!   bump allocator;
//! - `sandbox-typed`: `json_typed` inside a Code block (`bench_json_typed`),
//!   default limits;
//! - `host-selector`: a Code block pulling three fields with `json_select`
//!   (parsed natively by the host), default limits.
//!
//! Setup is not timed: every sandboxed variant's module is compiled first,
//! and its answer is checked against native before timing (a bench that
//! measures a failing or empty run would be worthless). Compile and
//! instantiation costs are measured in `code_block`.
//!
//! Run with `cargo bench -p chatflow-benches --bench parse_json`.

use std::hint::black_box;
use std::time::Duration;

use chatflow_benches::matched::MatchedNative;
use chatflow_benches::sandboxed::{Bench, Guard, property, summary};
use chatflow_benches::walk::{self, JsonSummary, Shape, TypedSummary};
use chatflow_benches::{json_documents, json_select_matches, json_selectors, native_json_select};
use chatflow_engine::Properties;
use chatflow_test_artifacts::{
    BENCH_JSON_SELECT, BENCH_JSON_TYPED, BENCH_JSON_WALK, BENCH_JSON_WALK_DLMALLOC,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn parse_json(c: &mut Criterion) {
    let fueled = Bench::guarded(Guard::Fuel);
    let epoch = Bench::guarded(Guard::Epoch);
    let walk_fuel = fueled.load(BENCH_JSON_WALK);
    let walk_epoch = epoch.load(BENCH_JSON_WALK);
    let walk_dlmalloc = fueled.load(BENCH_JSON_WALK_DLMALLOC);
    let typed = fueled.load(BENCH_JSON_TYPED);
    let select = fueled.load(BENCH_JSON_SELECT);
    let matched = std::cell::RefCell::new(MatchedNative::start());

    let mut group = c.benchmark_group("parse_json");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(30);
    for doc in json_documents() {
        let name = doc.name;
        let bytes = &doc.bytes[..];
        let shape = Shape::from_file_name(name).expect("every JSON document has a shape");
        let text = std::str::from_utf8(bytes).expect("JSON documents are UTF-8");
        group.throughput(Throughput::Bytes(bytes.len() as u64));

        let want = walk::json_walk(bytes).expect("the document is JSON");
        let want_typed = walk::json_typed(shape, bytes).expect("the document has its shape");
        let pointers = json_selectors(name);
        let want_fields = native_json_select(bytes, &pointers);

        let mut props = Properties::new();
        props.set("API Response", text);
        props.set("document", name);
        for (i, pointer) in pointers.iter().enumerate() {
            props.set(format!("select_{}", i + 1), *pointer);
        }

        // The same answers as native, or nothing is timed.
        matched.borrow_mut().add_document(name, bytes);
        let got: JsonSummary = json(&matched.borrow_mut().answer("json_walk", name));
        assert_eq!(got, want, "{name}: native-matched walk differs from native");
        let got: TypedSummary = json(&matched.borrow_mut().answer("json_typed", name));
        assert_eq!(
            got, want_typed,
            "{name}: native-matched typed parse differs"
        );
        for (bench, module) in [
            (&fueled, &walk_fuel),
            (&epoch, &walk_epoch),
            (&fueled, &walk_dlmalloc),
        ] {
            let got: JsonSummary = summary(&bench.run_ok(module, &props), "summary");
            assert_eq!(got, want, "{name}: sandbox walk differs from native");
        }
        let got: TypedSummary = summary(&fueled.run_ok(&typed, &props), "summary");
        assert_eq!(got, want_typed, "{name}: sandbox typed parse differs");
        let out = fueled.run_ok(&select, &props);
        for (i, want) in want_fields.iter().enumerate() {
            let got = property(&out, &format!("field_{}", i + 1));
            assert!(
                json_select_matches(got, want.as_ref()),
                "{name}: json_select {} gave {got:?}, native {want:?}",
                pointers[i]
            );
            assert!(want.is_some(), "{name}: {} selects nothing", pointers[i]);
        }

        group.bench_with_input(BenchmarkId::new("native", name), bytes, |b, bytes| {
            b.iter(|| walk::json_walk(black_box(bytes)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("native-typed", name), bytes, |b, bytes| {
            b.iter(|| walk::json_typed(shape, black_box(bytes)).unwrap())
        });
        group.bench_function(BenchmarkId::new("native-matched", name), |b| {
            b.iter_custom(|iters| matched.borrow_mut().run("json_walk", name, iters).0)
        });
        group.bench_function(BenchmarkId::new("native-matched-typed", name), |b| {
            b.iter_custom(|iters| matched.borrow_mut().run("json_typed", name, iters).0)
        });
        group.bench_function(BenchmarkId::new("sandbox", name), |b| {
            b.iter(|| fueled.run(&walk_fuel, &props).unwrap())
        });
        group.bench_function(BenchmarkId::new("sandbox-epoch", name), |b| {
            b.iter(|| epoch.run(&walk_epoch, &props).unwrap())
        });
        group.bench_function(BenchmarkId::new("sandbox-dlmalloc", name), |b| {
            b.iter(|| fueled.run(&walk_dlmalloc, &props).unwrap())
        });
        group.bench_function(BenchmarkId::new("sandbox-typed", name), |b| {
            b.iter(|| fueled.run(&typed, &props).unwrap())
        });
        group.bench_function(BenchmarkId::new("host-selector", name), |b| {
            b.iter(|| fueled.run(&select, &props).unwrap())
        });
    }
    group.finish();
}

/// An answer of the matched child, parsed.
fn json<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("matched answer {text}: {e}"))
}

criterion_group!(benches, parse_json);
criterion_main!(benches);
