//! The peers comparison (issue 14): one workload natively, in chatflow
//! through its public API, in raw wasmtime 48 configured as chatflow
//! configures it, and in Extism, interleaved round-robin in one process,
//! every answer checked equal to native's before anything is timed.
//!
//! ```text
//! chatflow-peers [--rounds N] [--slice-ms MS] [--clock wall|cpu] [--only TEXT] [--out FILE.json]
//! ```
//!
//! Cases: the JSON and XML corpus documents of at least 64 KB (parse and
//! walk every node, `chatflow-bench-walk`), `demo.json+set3` (parse a
//! 387-byte response, set three properties) and `empty` (a block that does
//! nothing), plus `copy-in/twitter.json` (the guest copies the 632 KB
//! document in and does nothing else; chatflow and raw wasmtime only).
//! Variants (hosts):
//!
//! - `native`: the code in this process (release profile, glibc malloc);
//! - `native-matched`: the same code built like the guests (guest profile,
//!   `-inline-threshold=1000`, the SDK's bump allocator design), in a child
//!   process (`chatflow_benches::matched`);
//! - `chatflow`: chatflow's bench guests through the public API
//!   (`Engine` → `Sandbox::load` / `Sandbox::run` with `Properties`),
//!   default configuration (fuel metering, all limits), a fresh instance
//!   per run;
//! - `wasmtime`, `wasmtime-nofuel`: the same `.wasm` files on raw wasmtime
//!   48 with chatflow's engine settings (`raw.rs`), a fresh instance per
//!   run, with fuel and with no guard at all;
//! - `wasmtime-reused`: raw wasmtime calling one instance again and again
//!   (the guests' standard-allocator twins, which free memory), fuel on;
//! - `extism`, `extism-reused`: the same code as an Extism plug-in
//!   (`guest-extism`), Extism's default configuration; a new plug-in per
//!   run (from a precompiled `CompiledPlugin`) or one plug-in called again
//!   and again.
//!
//! Each round runs every variant for about `--slice-ms` (each run timed
//! alone, by wall-clock time or, with `--clock cpu`, by this thread's CPU
//! time), the variants in a rotating order; `--rounds` rounds per case.
//! Prints a table and writes every figure as JSON for `run.py`.

mod raw;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use chatflow_bench_walk as walk;
use chatflow_benches::matched::MatchedNative;
use chatflow_engine::sandbox::{CodeModule, Limits, Output};
use chatflow_engine::{Engine, EngineConfig, Properties};
use chatflow_test_artifacts as guests;
use serde_json::{Value, json};

/// What a case runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Json,
    Xml,
    Set3,
    Empty,
    CopyIn,
}

struct Case {
    name: String,
    kind: Kind,
    bytes: Vec<u8>,
    generated: bool,
}

impl Case {
    /// The document's name (the corpus file), for the matched child.
    fn doc(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }
}

/// The smallest document the throughput cases use (issue 14: ≥ 64 KB).
const LARGE: usize = 64_000;

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let json = chatflow_benches::json_documents();
    for doc in json.iter().filter(|d| d.bytes.len() >= LARGE) {
        cases.push(Case {
            name: doc.name.to_string(),
            kind: Kind::Json,
            bytes: doc.bytes.clone(),
            generated: doc.generated,
        });
    }
    for doc in chatflow_benches::xml_documents() {
        if doc.bytes.len() >= LARGE {
            cases.push(Case {
                name: doc.name.to_string(),
                kind: Kind::Xml,
                bytes: doc.bytes,
                generated: doc.generated,
            });
        }
    }
    let demo = json
        .iter()
        .find(|d| d.name == "demo.json")
        .expect("demo.json");
    cases.push(Case {
        name: "demo.json+set3".into(),
        kind: Kind::Set3,
        bytes: demo.bytes.clone(),
        generated: demo.generated,
    });
    cases.push(Case {
        name: "empty".into(),
        kind: Kind::Empty,
        bytes: Vec::new(),
        generated: false,
    });
    let twitter = json
        .iter()
        .find(|d| d.name == "twitter.json")
        .expect("twitter");
    cases.push(Case {
        name: "copy-in/twitter.json".into(),
        kind: Kind::CopyIn,
        bytes: twitter.bytes.clone(),
        generated: twitter.generated,
    });
    cases
}

/// Whether runs are timed by the CPU time of this thread (`--clock cpu`)
/// rather than by wall-clock time: every host runs on this thread (the
/// matched child times itself the same way), so CPU time counts the same
/// work, user and system, and not the time other processes held the CPUs.
static CPU_CLOCK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Times `f` on the chosen clock.
fn timed(f: impl FnOnce() -> Result<()>) -> Result<Duration> {
    if CPU_CLOCK.load(std::sync::atomic::Ordering::Relaxed) {
        let start = thread_cpu_time();
        f()?;
        Ok(thread_cpu_time().saturating_sub(start))
    } else {
        let start = Instant::now();
        f()?;
        Ok(start.elapsed())
    }
}

/// One way of running the workload.
trait Host {
    fn name(&self) -> &'static str;
    /// Whether this host runs `case` (not every host has every guest).
    fn supports(&self, case: &Case) -> bool;
    /// Gets ready for `case` (documents, properties, instances).
    fn setup(&mut self, case: &Case) -> Result<()>;
    /// The answer, as JSON, to compare with native's.
    fn answer(&mut self, case: &Case) -> Result<Value>;
    /// One run, as fast as it goes (the answer is not looked at).
    fn run(&mut self, case: &Case) -> Result<()>;
    /// `n` runs, each timed alone.
    fn times(&mut self, case: &Case, n: usize) -> Result<Vec<Duration>> {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            times.push(timed(|| self.run(case))?);
        }
        Ok(times)
    }
}

/// The JSON answer of native code, the reference.
fn native_answer(case: &Case) -> Result<Value> {
    Ok(match case.kind {
        Kind::Json => serde_json::to_value(walk::json_walk(&case.bytes)?)?,
        Kind::Xml => serde_json::to_value(walk::xml_walk(&case.bytes)?)?,
        Kind::Set3 => serde_json::to_value(walk::image_fields(&case.bytes)?)?,
        Kind::Empty => Value::Null,
        Kind::CopyIn => json!(case.bytes.len()),
    })
}

/// The answer a chatflow guest left in the properties it set.
fn guest_answer(kind: Kind, get: impl Fn(&str) -> Option<String>) -> Result<Value> {
    let prop = |name: &str| get(name).ok_or_else(|| anyhow!("the guest did not set {name:?}"));
    Ok(match kind {
        Kind::Json | Kind::Xml => serde_json::from_str(&prop("summary")?)?,
        Kind::Set3 => json!([prop("title")?, prop("thumbnail_url")?, prop("first_id")?]),
        Kind::Empty => Value::Null,
        Kind::CopyIn => json!(prop("bytes")?.parse::<u64>()?),
    })
}

struct Native;

impl Host for Native {
    fn name(&self) -> &'static str {
        "native"
    }
    fn supports(&self, case: &Case) -> bool {
        case.kind != Kind::CopyIn
    }
    fn setup(&mut self, _: &Case) -> Result<()> {
        Ok(())
    }
    fn answer(&mut self, case: &Case) -> Result<Value> {
        native_answer(case)
    }
    fn run(&mut self, case: &Case) -> Result<()> {
        let bytes = black_box(&case.bytes[..]);
        match case.kind {
            Kind::Json => drop(black_box(walk::json_walk(bytes)?)),
            Kind::Xml => drop(black_box(walk::xml_walk(bytes)?)),
            Kind::Set3 => drop(black_box(walk::image_fields(bytes)?)),
            Kind::Empty | Kind::CopyIn => {}
        }
        Ok(())
    }
}

struct Matched(MatchedNative);

impl Matched {
    fn workload(kind: Kind) -> &'static str {
        match kind {
            Kind::Json => "json_walk",
            Kind::Xml => "xml_walk",
            Kind::Set3 => "image_fields",
            Kind::Empty | Kind::CopyIn => "empty",
        }
    }
}

impl Host for Matched {
    fn name(&self) -> &'static str {
        "native-matched"
    }
    fn supports(&self, case: &Case) -> bool {
        case.kind != Kind::CopyIn
    }
    fn setup(&mut self, case: &Case) -> Result<()> {
        self.0.add_document(case.doc(), &case.bytes);
        Ok(())
    }
    fn answer(&mut self, case: &Case) -> Result<Value> {
        let text = self.0.answer(Self::workload(case.kind), case.doc());
        Ok(serde_json::from_str(&text)?)
    }
    fn run(&mut self, case: &Case) -> Result<()> {
        self.0.run(Self::workload(case.kind), case.doc(), 1);
        Ok(())
    }
    fn times(&mut self, case: &Case, n: usize) -> Result<Vec<Duration>> {
        Ok(self
            .0
            .times(Self::workload(case.kind), case.doc(), n as u64))
    }
}

/// The bench guest for a case (`std`: the standard-allocator twin).
fn guest(kind: Kind, std: bool) -> Option<&'static str> {
    Some(match (kind, std) {
        (Kind::Json, false) => guests::BENCH_JSON_WALK,
        (Kind::Json, true) => guests::BENCH_JSON_WALK_DLMALLOC,
        (Kind::Xml, false) => guests::BENCH_XML_WALK,
        (Kind::Xml, true) => guests::BENCH_XML_WALK_DLMALLOC,
        (Kind::Set3, false) => guests::BENCH_PARSE_SET3,
        (Kind::Set3, true) => guests::BENCH_PARSE_SET3_DLMALLOC,
        (Kind::Empty, _) => guests::BENCH_EMPTY,
        (Kind::CopyIn, false) => guests::BENCH_GET_BYTES,
        (Kind::CopyIn, true) => return None,
    })
}

fn read(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {path}"))
}

/// chatflow, exactly as an operator calls it.
struct Chatflow {
    rt: tokio::runtime::Runtime,
    engine: Engine,
    limits: Limits,
    modules: HashMap<&'static str, CodeModule>,
    module: Option<CodeModule>,
    props: Properties,
}

impl Chatflow {
    fn new() -> Result<Chatflow> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let engine = rt.block_on(async { Engine::new(EngineConfig::default()) })?;
        let limits = engine.sandbox().default_limits();
        Ok(Chatflow {
            rt,
            engine,
            limits,
            modules: HashMap::new(),
            module: None,
            props: Properties::new(),
        })
    }

    fn once(&self) -> Result<Output> {
        let module = self.module.as_ref().context("no module")?;
        let outcome =
            self.rt
                .block_on(self.engine.sandbox().run(module, &self.props, &self.limits));
        outcome.result.map_err(|e| anyhow!("chatflow run: {e}"))
    }
}

impl Host for Chatflow {
    fn name(&self) -> &'static str {
        "chatflow"
    }
    fn supports(&self, _: &Case) -> bool {
        true
    }
    fn setup(&mut self, case: &Case) -> Result<()> {
        let path = guest(case.kind, false).context("no guest")?;
        if !self.modules.contains_key(path) {
            let module = self.engine.sandbox().load(&read(path)?)?;
            self.modules.insert(path, module);
        }
        self.module = self.modules.get(path).cloned();
        self.props = Properties::new();
        if case.kind != Kind::Empty {
            self.props
                .set("API Response", std::str::from_utf8(&case.bytes)?);
        }
        Ok(())
    }
    fn answer(&mut self, case: &Case) -> Result<Value> {
        let out = self.once()?;
        guest_answer(case.kind, |name| {
            out.changes.get(name).flatten().map(str::to_string)
        })
    }
    fn run(&mut self, _: &Case) -> Result<()> {
        drop(black_box(self.once()?));
        Ok(())
    }
}

fn raw_props(case: &Case) -> raw::Props {
    let mut props = HashMap::new();
    if case.kind != Kind::Empty {
        props.insert("API Response".to_string(), case.bytes.clone());
    }
    Arc::new(props)
}

fn change(changes: &[(String, String)], name: &str) -> Option<String> {
    changes
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// Raw wasmtime, a fresh instance per run.
struct RawFresh {
    name: &'static str,
    raw: raw::Raw,
    pres: HashMap<&'static str, wasmtime::InstancePre<raw::State>>,
    pre: Option<wasmtime::InstancePre<raw::State>>,
    props: raw::Props,
}

impl RawFresh {
    fn new(fuel: bool) -> Result<RawFresh> {
        Ok(RawFresh {
            name: if fuel { "wasmtime" } else { "wasmtime-nofuel" },
            raw: raw::Raw::new(fuel)?,
            pres: HashMap::new(),
            pre: None,
            props: Arc::new(HashMap::new()),
        })
    }
}

impl Host for RawFresh {
    fn name(&self) -> &'static str {
        self.name
    }
    fn supports(&self, _: &Case) -> bool {
        true
    }
    fn setup(&mut self, case: &Case) -> Result<()> {
        let path = guest(case.kind, false).context("no guest")?;
        if !self.pres.contains_key(path) {
            let pre = self.raw.load(&read(path)?)?;
            self.pres.insert(path, pre);
        }
        self.pre = self.pres.get(path).cloned();
        self.props = raw_props(case);
        Ok(())
    }
    fn answer(&mut self, case: &Case) -> Result<Value> {
        let pre = self.pre.as_ref().context("no module")?;
        let changes = self.raw.run_fresh(pre, &self.props)?;
        guest_answer(case.kind, |name| change(&changes, name))
    }
    fn run(&mut self, _: &Case) -> Result<()> {
        let pre = self.pre.as_ref().context("no module")?;
        drop(black_box(self.raw.run_fresh(pre, &self.props)?));
        Ok(())
    }
}

/// Raw wasmtime, one instance called again and again.
struct RawReused {
    raw: raw::Raw,
    instance: Option<raw::Reused>,
}

impl Host for RawReused {
    fn name(&self) -> &'static str {
        "wasmtime-reused"
    }
    fn supports(&self, case: &Case) -> bool {
        guest(case.kind, true).is_some()
    }
    fn setup(&mut self, case: &Case) -> Result<()> {
        let path = guest(case.kind, true).context("no guest")?;
        let pre = self.raw.load(&read(path)?)?;
        self.instance = Some(self.raw.reused(&pre, &raw_props(case))?);
        Ok(())
    }
    fn answer(&mut self, case: &Case) -> Result<Value> {
        let changes = self.instance.as_mut().context("no instance")?.run()?;
        guest_answer(case.kind, |name| change(&changes, name))
    }
    fn run(&mut self, _: &Case) -> Result<()> {
        drop(black_box(
            self.instance.as_mut().context("no instance")?.run()?,
        ));
        Ok(())
    }
}

/// The Extism plug-in function for a case.
fn extism_function(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Json => "json_walk",
        Kind::Xml => "xml_walk",
        Kind::Set3 => "parse_set3",
        Kind::Empty => "empty",
        Kind::CopyIn => return None,
    })
}

fn extism_builder() -> extism::PluginBuilder<'static> {
    let wasm = std::fs::read(env!("PEERS_EXTISM_GUEST")).expect("the Extism guest");
    let manifest = extism::Manifest::new([extism::Wasm::data(wasm)]);
    extism::PluginBuilder::new(manifest)
        .with_wasi(false)
        .with_cache_disabled()
}

fn extism_call(plugin: &mut extism::Plugin, kind: Kind, input: &[u8]) -> Result<Value> {
    let function = extism_function(kind).context("no function")?;
    if kind == Kind::Empty {
        plugin.call::<&[u8], &[u8]>(function, &[])?;
        return Ok(Value::Null);
    }
    let out: &str = plugin.call(function, input)?;
    Ok(serde_json::from_str(out)?)
}

/// Extism: a new plug-in per run (from the precompiled one), or one plug-in
/// called again and again.
struct Extism {
    compiled: extism::CompiledPlugin,
    reused: Option<extism::Plugin>,
}

impl Extism {
    fn new(reuse: bool) -> Result<Extism> {
        let compiled = extism::CompiledPlugin::new(extism_builder())?;
        let reused = if reuse {
            Some(extism::Plugin::new_from_compiled(&compiled)?)
        } else {
            None
        };
        Ok(Extism { compiled, reused })
    }
}

impl Host for Extism {
    fn name(&self) -> &'static str {
        if self.reused.is_some() {
            "extism-reused"
        } else {
            "extism"
        }
    }
    fn supports(&self, case: &Case) -> bool {
        extism_function(case.kind).is_some()
    }
    fn setup(&mut self, _: &Case) -> Result<()> {
        Ok(())
    }
    fn answer(&mut self, case: &Case) -> Result<Value> {
        match &mut self.reused {
            Some(plugin) => extism_call(plugin, case.kind, &case.bytes),
            None => {
                let mut plugin = extism::Plugin::new_from_compiled(&self.compiled)?;
                extism_call(&mut plugin, case.kind, &case.bytes)
            }
        }
    }
    fn run(&mut self, case: &Case) -> Result<()> {
        let function = extism_function(case.kind).context("no function")?;
        let mut fresh;
        let plugin = match &mut self.reused {
            Some(plugin) => plugin,
            None => {
                fresh = extism::Plugin::new_from_compiled(&self.compiled)?;
                &mut fresh
            }
        };
        let out: &[u8] = plugin.call(function, &case.bytes[..])?;
        black_box(out);
        Ok(())
    }
}

struct Args {
    cpu_clock: bool,
    rounds: usize,
    slice: Duration,
    only: Option<String>,
    out: Option<String>,
}

fn args() -> Result<Args> {
    let mut args = Args {
        cpu_clock: false,
        rounds: 20,
        slice: Duration::from_millis(10),
        only: None,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => args.rounds = value()?.parse()?,
            "--slice-ms" => args.slice = Duration::from_millis(value()?.parse()?),
            "--only" => args.only = Some(value()?),
            "--out" => args.out = Some(value()?),
            "--clock" => {
                args.cpu_clock = match value()?.as_str() {
                    "cpu" => true,
                    "wall" => false,
                    other => bail!("--clock is `cpu` or `wall`, not {other:?}"),
                }
            }
            other => bail!("unknown argument {other:?} (see the doc comment of main.rs)"),
        }
    }
    ensure!(args.rounds > 0, "--rounds must be at least 1");
    Ok(args)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `chatflow-peers call-time WASM DOC RUNS [fuel]`: a chatflow guest on
/// raw wasmtime, a fresh instance per run, only the call of
/// `chatflow_run` timed; prints `MEDIAN_NS SUMMARY` (the codegen
/// comparison's wasmtime side, `codegen.py`).
fn call_time(args: &[String]) -> Result<()> {
    let [wasm, doc, runs, rest @ ..] = args else {
        bail!("usage: chatflow-peers call-time WASM DOC RUNS [fuel]");
    };
    let raw = raw::Raw::new(rest.iter().any(|a| a == "fuel"))?;
    let pre = raw.load(&read(wasm)?)?;
    let mut props = HashMap::new();
    props.insert("API Response".to_string(), read(doc)?);
    let props = Arc::new(props);
    let runs: usize = runs.parse()?;
    let mut times = Vec::with_capacity(runs);
    let mut summary = String::new();
    for _ in 0..runs.max(1) {
        let (t, changes) = raw.time_call(&pre, &props)?;
        times.push(t);
        summary = change(&changes, "summary").context("no summary")?;
    }
    times.sort_unstable();
    println!("{} {summary}", times[times.len() / 2].as_nanos());
    Ok(())
}

fn main() -> Result<()> {
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
        eprintln!("note: RUST_BACKTRACE is set: error paths capture backtraces; unset it");
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().is_some_and(|a| a == "call-time") {
        return call_time(&argv[1..]);
    }
    let args = args()?;
    CPU_CLOCK.store(args.cpu_clock, std::sync::atomic::Ordering::Relaxed);
    let load_before = loadavg();
    eprintln!("setting up (compiling the guests in each host)");
    let mut hosts: Vec<Box<dyn Host>> = vec![
        Box::new(Native),
        Box::new(Matched({
            let mut child = MatchedNative::start();
            child.set_cpu_clock(args.cpu_clock);
            child
        })),
        Box::new(Chatflow::new()?),
        Box::new(RawFresh::new(true)?),
        Box::new(RawFresh::new(false)?),
        Box::new(RawReused {
            raw: raw::Raw::new(true)?,
            instance: None,
        }),
        Box::new(Extism::new(false)?),
        Box::new(Extism::new(true)?),
    ];
    let mut results = Vec::new();
    for case in cases() {
        if args
            .only
            .as_ref()
            .is_some_and(|o| !case.name.contains(o.as_str()))
        {
            continue;
        }
        let want = native_answer(&case)?;
        let mut active: Vec<&mut Box<dyn Host>> =
            hosts.iter_mut().filter(|h| h.supports(&case)).collect();
        // Every answer equal to native's, or nothing is timed.
        let mut per_run = Vec::new();
        for host in active.iter_mut() {
            host.setup(&case)
                .with_context(|| format!("{}: {}", host.name(), case.name))?;
            let got = host
                .answer(&case)
                .with_context(|| format!("{}: {}", host.name(), case.name))?;
            ensure!(
                got == want,
                "{}: {} answered {got}, native {want}",
                host.name(),
                case.name
            );
            // Warm up, and estimate a run's time for the batch size.
            let t = host.times(&case, 3)?.into_iter().min().unwrap_or_default();
            per_run.push(t.max(Duration::from_nanos(100)));
        }
        let batches: Vec<usize> = per_run
            .iter()
            .map(|t| (args.slice.as_nanos() / t.as_nanos()).clamp(1, 20_000) as usize)
            .collect();
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); active.len()];
        for round in 0..args.rounds {
            for k in 0..active.len() {
                let i = (k + round) % active.len();
                times[i].extend(active[i].times(&case, batches[i])?);
            }
        }
        let mut row = serde_json::Map::new();
        for (host, t) in active.iter().zip(times) {
            let name = format!("{}/{}", host.name(), case.name);
            let l = chatflow_benches::report::summarize(&name, t);
            let mbps = (!case.bytes.is_empty() && case.kind != Kind::Set3)
                .then(|| case.bytes.len() as f64 / l.median_us);
            row.insert(
                host.name().to_string(),
                json!({"median_us": l.median_us, "p99_us": l.p99_us, "mean_us": l.mean_us,
                       "runs": l.runs, "mbps": mbps}),
            );
        }
        results.push(json!({
            "case": case.name, "bytes": case.bytes.len(), "generated": case.generated,
            "variants": row,
        }));
    }
    let report = json!({
        "load_before": load_before, "load_after": loadavg(),
        "rounds": args.rounds, "slice_ms": args.slice.as_millis() as u64,
        "clock": if args.cpu_clock { "cpu" } else { "wall" },
        "cases": results,
    });
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)?)?;
        eprintln!("wrote {out}");
    }
    Ok(())
}
