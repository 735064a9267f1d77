//! The matched native baseline (`native-matched`): the benches' walk code
//! built like a Code block, with the guest profile, the guests' LLVM flags
//! and the SDK's bump allocator design (`benches/matched`), run in a child
//! process. `sandbox` against `native-matched` is then the sandbox's own
//! cost; `sandbox` against `native` (this process: the bench profile, glibc
//! `malloc`) also counts build and allocator choices native code could
//! make too.
//!
//! [`MatchedNative::start`] builds the child (`cargo build --profile guest
//! -p chatflow-bench-matched` with `-Cllvm-args=-inline-threshold=1000`,
//! into `<target>/matched-native`, so the workspace's own build is not
//! invalidated) and starts it; `CHATFLOW_MATCHED_NATIVE=<path>` uses a
//! binary built by hand instead (say one with symbols, for `perf`).

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// The flags the guests are built with that apply natively too
/// (`chatflow_build_support::DEFAULT_RUSTFLAGS` less `+simd128`, a wasm
/// target feature).
pub const RUSTFLAGS: &[&str] = &["-Cllvm-args=-inline-threshold=1000"];

/// A running matched-native child.
pub struct MatchedNative {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// The child's binary: built now (a no-op when up to date), or
/// `$CHATFLOW_MATCHED_NATIVE`.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CHATFLOW_MATCHED_NATIVE") {
        return PathBuf::from(path);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = crate::report::out_dir()
        .parent()
        .expect("the bench output directory is inside the target directory")
        .join("matched-native");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .args(["--profile", "guest", "-p", "chatflow-bench-matched"])
        .arg("--target-dir")
        .arg(&target)
        .args(["--message-format", "json-render-diagnostics"])
        .env("CARGO_ENCODED_RUSTFLAGS", RUSTFLAGS.join("\x1f"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!("building the matched native baseline (chatflow-bench-matched, guest profile)");
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("running cargo to build chatflow-bench-matched: {e}"));
    assert!(
        output.status.success(),
        "building chatflow-bench-matched failed ({}); the compiler's messages are above",
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["target"]["name"] == "chatflow-bench-matched")
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported no executable for chatflow-bench-matched")
}

impl MatchedNative {
    /// Builds (if needed) and starts the child.
    pub fn start() -> MatchedNative {
        let path = binary();
        let mut child = Command::new(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
        let stdin = BufWriter::new(child.stdin.take().expect("piped stdin"));
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        MatchedNative {
            child,
            stdin,
            stdout,
        }
    }

    fn reply(&mut self) -> String {
        self.stdin.flush().expect("writing to the matched child");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("reading from the matched child");
        assert!(!line.is_empty(), "the matched child exited");
        let line = line.trim_end().to_string();
        if let Some(err) = line.strip_prefix("err ") {
            panic!("the matched child: {err}");
        }
        line
    }

    /// What the child's timings measure: the CPU time of its thread
    /// (`true`: user and system time, steadier when other work competes
    /// for the CPUs) or wall-clock time (`false`, the default).
    pub fn set_cpu_clock(&mut self, cpu: bool) {
        let clock = if cpu { "cpu" } else { "wall" };
        writeln!(self.stdin, "clock {clock}").expect("writing to the child");
        assert_eq!(self.reply(), "ok");
    }

    /// Gives the child a document under `name`.
    pub fn add_document(&mut self, name: &str, bytes: &[u8]) {
        writeln!(self.stdin, "doc {name} {}", bytes.len()).expect("writing to the child");
        self.stdin.write_all(bytes).expect("writing to the child");
        assert_eq!(self.reply(), "ok");
    }

    /// The answer of `workload` (`json_walk`, `json_typed`, `xml_walk`,
    /// `image_fields`, `empty`) on document `name`, as JSON text.
    pub fn answer(&mut self, workload: &str, name: &str) -> String {
        self.run(workload, name, 0).1
    }

    /// `iters` runs of `workload` on document `name`, timed together (for
    /// criterion's `iter_custom`), and the answer.
    pub fn run(&mut self, workload: &str, name: &str, iters: u64) -> (Duration, String) {
        writeln!(self.stdin, "run {workload} {name} {iters}").expect("writing to the child");
        let line = self.reply();
        let (ns, answer) = line.split_once(' ').expect("`NS ANSWER`");
        let ns: u64 = ns.parse().expect("nanoseconds");
        (Duration::from_nanos(ns), answer.to_string())
    }

    /// `n` runs of `workload` on document `name`, each timed alone.
    pub fn times(&mut self, workload: &str, name: &str, n: u64) -> Vec<Duration> {
        writeln!(self.stdin, "times {workload} {name} {n}").expect("writing to the child");
        self.reply()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|ns| Duration::from_nanos(ns.parse().expect("nanoseconds")))
            .collect()
    }
}

impl Drop for MatchedNative {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit").and_then(|()| self.stdin.flush());
        let _ = self.child.wait();
    }
}
