//! The matched native baseline: `chatflow-bench-walk` (what the bench
//! guests run) built the way the guests are built, the guest profile (opt-level 3, fat LTO,
//! one codegen unit, `panic = "abort"`) and `-Cllvm-args=-inline-threshold=1000`,
//! allocating from an arena of the SDK's bump allocator design
//! ([`arena`]) that is reset after every run. So `sandbox` against
//! `native-matched` is the sandbox's own cost, without the build and
//! allocator choices that native code could make too.
//!
//! The benches start it as a child process (`chatflow_benches::matched`)
//! and talk to it over stdin and stdout, one command per line:
//!
//! - `doc NAME LEN` followed by LEN bytes: keep a document; answers `ok`.
//! - `run WORKLOAD NAME ITERS`: runs WORKLOAD on document NAME ITERS times
//!   (each in a fresh arena) and answers `NS ANSWER`: the nanoseconds the
//!   ITERS runs took together, and the workload's answer as one line of
//!   JSON (from one more, untimed run).
//! - `times WORKLOAD NAME N`: N runs, each timed alone; answers the N
//!   times in nanoseconds, space-separated.
//! - `clock wall` or `clock cpu`: what `run` and `times` measure from then
//!   on: wall-clock time (the default) or the CPU time of the thread
//!   (`CLOCK_THREAD_CPUTIME_ID`, user and system: steadier on a machine
//!   busy with other work); answers `ok`.
//! - `quit`.
//!
//! An error answers `err MESSAGE`. WORKLOAD is `json_walk`, `json_typed`
//! (the document's shape from its name), `xml_walk`, `image_fields` (the
//! `…+set3` blocks' parse and three values) or `empty`.

mod arena;

use std::cell::Cell;
use std::collections::HashMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::time::{Duration, Instant};

use chatflow_bench_walk as walk;

#[global_allocator]
static ALLOC: arena::ArenaAlloc = arena::ArenaAlloc::new();

thread_local! {
    /// Whether `run` and `times` measure the thread's CPU time.
    static CPU_CLOCK: Cell<bool> = const { Cell::new(false) };
}

/// A point in time on the chosen clock.
enum Mark {
    Wall(Instant),
    Cpu(Duration),
}

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

impl Mark {
    fn now() -> Mark {
        if CPU_CLOCK.get() {
            Mark::Cpu(thread_cpu_time())
        } else {
            Mark::Wall(Instant::now())
        }
    }

    fn elapsed(&self) -> Duration {
        match self {
            Mark::Wall(start) => start.elapsed(),
            Mark::Cpu(start) => thread_cpu_time().saturating_sub(*start),
        }
    }
}

/// One workload, run on a document: its answer as JSON, or the error.
type Workload = fn(&str, &[u8]) -> Result<Answer, String>;

/// What a run produced, kept only until it is dropped (inside the arena).
enum Answer {
    Json(walk::JsonSummary),
    Typed(walk::TypedSummary),
    Xml(walk::XmlSummary),
    Fields([String; 3]),
    Empty,
}

impl Answer {
    fn to_json(&self) -> String {
        let text = match self {
            Answer::Json(s) => serde_json::to_string(s),
            Answer::Typed(s) => serde_json::to_string(s),
            Answer::Xml(s) => serde_json::to_string(s),
            Answer::Fields(f) => serde_json::to_string(f),
            Answer::Empty => Ok("null".to_string()),
        };
        text.expect("summaries serialize")
    }
}

fn workload(name: &str) -> Option<Workload> {
    Some(match name {
        "json_walk" => |_, b| {
            walk::json_walk(b)
                .map(Answer::Json)
                .map_err(|e| e.to_string())
        },
        "json_typed" => |doc, b| {
            let shape = walk::Shape::from_file_name(doc)
                .ok_or_else(|| format!("no typed parser for {doc:?}"))?;
            walk::json_typed(shape, b)
                .map(Answer::Typed)
                .map_err(|e| e.to_string())
        },
        "xml_walk" => |_, b| {
            walk::xml_walk(b)
                .map(Answer::Xml)
                .map_err(|e| e.to_string())
        },
        "image_fields" => |_, b| {
            walk::image_fields(b)
                .map(Answer::Fields)
                .map_err(|e| e.to_string())
        },
        "empty" => |_, _| Ok(Answer::Empty),
        _ => return None,
    })
}

/// One run in a fresh arena; the answer is dropped inside.
#[inline(never)]
fn once(work: Workload, doc: &str, bytes: &[u8]) -> bool {
    ALLOC.run(|| work(doc, black_box(bytes)), |r| r.is_ok())
}

fn serve() -> Result<(), String> {
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut docs: HashMap<String, Vec<u8>> = HashMap::new();
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Ok(());
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["quit"] => return Ok(()),
            ["clock", clock @ ("wall" | "cpu")] => {
                CPU_CLOCK.set(*clock == "cpu");
                "ok".to_string()
            }
            ["doc", name, len] => {
                let len: usize = len.parse().map_err(|_| format!("bad length {len:?}"))?;
                let mut bytes = vec![0; len];
                input.read_exact(&mut bytes).map_err(|e| e.to_string())?;
                docs.insert(name.to_string(), bytes);
                "ok".to_string()
            }
            [cmd @ ("run" | "times"), work, doc, n] => {
                match (workload(work), docs.get(*doc), n.parse::<u64>()) {
                    (Some(work), Some(bytes), Ok(n)) => run(*cmd == "run", work, doc, bytes, n),
                    (None, _, _) => format!("err unknown workload {work:?}"),
                    (_, None, _) => format!("err no document {doc:?}"),
                    (_, _, Err(_)) => format!("err bad count {n:?}"),
                }
            }
            _ => format!("err unknown command {:?}", line.trim()),
        };
        writeln!(out, "{reply}").map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
}

/// `run` (one time for all `n` runs, and the answer) or `times` (`n`
/// times).
fn run(together: bool, work: Workload, doc: &str, bytes: &[u8], n: u64) -> String {
    let answer = ALLOC.run(
        || work(doc, bytes),
        |r| r.as_ref().map(Answer::to_json).map_err(Clone::clone),
    );
    let answer = match answer {
        Ok(answer) => answer,
        Err(err) => return format!("err {doc}: {err}"),
    };
    if together {
        let start = Mark::now();
        for _ in 0..n {
            black_box(once(work, doc, bytes));
        }
        format!("{} {answer}", start.elapsed().as_nanos())
    } else {
        let mut times = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let start = Mark::now();
            black_box(once(work, doc, bytes));
            times.push(start.elapsed().as_nanos().to_string());
        }
        times.join(" ")
    }
}

fn main() {
    if let Err(err) = serve() {
        eprintln!("chatflow-bench-matched: {err}");
        std::process::exit(1);
    }
}
