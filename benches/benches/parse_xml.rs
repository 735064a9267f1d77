//! parse_xml: how fast an XML API response is walked inside a Code block,
//! next to the same code run natively.
//!
//! For each corpus document (`benches/src/lib.rs` says what each is like),
//! one group `parse_xml` with the variants side by side, all reporting
//! bytes/s of the document:
//!
//! - `native`: a quick-xml event walk decoding every element name,
//!   attribute value and text node (`chatflow_bench_walk::xml_walk`), in
//!   this process;
//! - `native-matched`: the same, built like the guests (guest profile, their
//!   LLVM flags, the SDK's bump allocator design reset per run) in a child
//!   process (`chatflow_benches::matched`);
//! - `sandbox`: `xml_walk` inside a Code block (`bench_xml_walk`, built with
//!   `+simd128` like every guest), default limits on (fuel, memory, epoch),
//!   a fresh instance per run, including copying the document in;
//! - `sandbox-epoch`: the same with fuel metering off;
//! - `host-selector`: a Code block pulling three values with `xml_select`
//!   (parsed natively by the host), default limits.
//!
//! Every sandboxed variant's answer is checked against native before
//! timing; compile and instantiation are measured in `code_block`.
//!
//! Run with `cargo bench -p chatflow-benches --bench parse_xml`.

use std::hint::black_box;
use std::time::Duration;

use chatflow_benches::matched::MatchedNative;
use chatflow_benches::sandboxed::{Bench, Guard, property, summary};
use chatflow_benches::walk::{self, XmlSummary};
use chatflow_benches::{xml_documents, xml_selectors};
use chatflow_engine::Properties;
use chatflow_test_artifacts::{BENCH_XML_SELECT, BENCH_XML_WALK};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn parse_xml(c: &mut Criterion) {
    let fueled = Bench::guarded(Guard::Fuel);
    let epoch = Bench::guarded(Guard::Epoch);
    let walk_fuel = fueled.load(BENCH_XML_WALK);
    let walk_epoch = epoch.load(BENCH_XML_WALK);
    let select = fueled.load(BENCH_XML_SELECT);
    let matched = std::cell::RefCell::new(MatchedNative::start());

    let mut group = c.benchmark_group("parse_xml");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(30);
    for doc in xml_documents() {
        let name = doc.name;
        let bytes = &doc.bytes[..];
        let text = std::str::from_utf8(bytes).expect("XML documents are UTF-8");
        group.throughput(Throughput::Bytes(bytes.len() as u64));

        let want = walk::xml_walk(bytes).expect("the document is well-formed");
        let paths = xml_selectors(name);
        let want_fields: Vec<Option<String>> = paths
            .iter()
            .map(|path| chatflow_sdk::xml::select(text, path).expect("selectable"))
            .collect();

        let mut props = Properties::new();
        props.set("API Response", text);
        for (i, path) in paths.iter().enumerate() {
            props.set(format!("select_{}", i + 1), *path);
        }

        // The same answers as native, or nothing is timed.
        matched.borrow_mut().add_document(name, bytes);
        let answer = matched.borrow_mut().answer("xml_walk", name);
        let got: XmlSummary = serde_json::from_str(&answer).expect("a summary");
        assert_eq!(got, want, "{name}: native-matched walk differs from native");
        for (bench, module) in [(&fueled, &walk_fuel), (&epoch, &walk_epoch)] {
            let got: XmlSummary = summary(&bench.run_ok(module, &props), "summary");
            assert_eq!(got, want, "{name}: sandbox walk differs from native");
        }
        let out = fueled.run_ok(&select, &props);
        for (i, want) in want_fields.iter().enumerate() {
            let got = property(&out, &format!("field_{}", i + 1));
            assert_eq!(got, want.as_deref(), "{name}: xml_select {}", paths[i]);
            assert!(want.is_some(), "{name}: {} selects nothing", paths[i]);
        }

        group.bench_with_input(BenchmarkId::new("native", name), bytes, |b, bytes| {
            b.iter(|| walk::xml_walk(black_box(bytes)).unwrap())
        });
        group.bench_function(BenchmarkId::new("native-matched", name), |b| {
            b.iter_custom(|iters| matched.borrow_mut().run("xml_walk", name, iters).0)
        });
        group.bench_function(BenchmarkId::new("sandbox", name), |b| {
            b.iter(|| fueled.run(&walk_fuel, &props).unwrap())
        });
        group.bench_function(BenchmarkId::new("sandbox-epoch", name), |b| {
            b.iter(|| epoch.run(&walk_epoch, &props).unwrap())
        });
        group.bench_function(BenchmarkId::new("host-selector", name), |b| {
            b.iter(|| fueled.run(&select, &props).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, parse_xml);
criterion_main!(benches);
