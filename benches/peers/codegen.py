#!/usr/bin/env python3
"""Code generation on the same wasm: Cranelift (wasmtime) against an
optimising C compiler (clang, LLVM's front end, when installed; else gcc)
compiling the same module translated to C by wasm2c, and against the
matched native build (LLVM on the Rust source, x86-64). Writes the table
between the `codegen` markers of docs/benchmarks.md.

    python3 benches/peers/codegen.py [--runs 30] [--rounds 3]

Needs wasm2c (Debian: `apt-get install wabt`; 1.0.32 cannot translate
SIMD, so the guests are built here without `+simd128`, otherwise with the
guest profile and flags) and the corpus (`CHATFLOW_CORPUS`, default
../shared/corpus beside the repository). Only the call of `chatflow_run`
is timed on each side (no instantiation), on warm memory, by the
thread's CPU time (the matched child too); every run's
summary must equal the matched build's. Standard library only.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", HERE / "target"))
WORK = TARGET / "codegen"
DOC = ROOT / "docs" / "benchmarks.md"
CORPUS = Path(os.environ.get("CHATFLOW_CORPUS", ROOT.parent / "shared" / "corpus"))
DOCS = [("json", "twitter.json"), ("json", "citm_catalog.json"), ("json", "canada.json"),
        ("json", "github_events.json"), ("xml", "sample_rss.xml"), ("xml", "huge.xml"),
        ("xml", "gigantic.svg")]
GUEST = {"json": "bench_json_walk", "xml": "bench_xml_walk"}
WORKLOAD = {"json": "json_walk", "xml": "xml_walk"}


def env():
    e = dict(os.environ)
    for k in ["RUST_BACKTRACE", "RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_TARGET_DIR"]:
        e.pop(k, None)
    return e


def cargo_build(args, rustflags, target_dir):
    e = env()
    e["CARGO_ENCODED_RUSTFLAGS"] = "\x1f".join(rustflags)
    subprocess.run(["cargo", "build", "--manifest-path", str(ROOT / "Cargo.toml"), *args,
                    "--target-dir", str(target_dir)], env=e, check=True)


def build():
    if not shutil.which("wasm2c"):
        sys.exit("wasm2c not found: apt-get install wabt")
    cc = shutil.which("clang") or shutil.which("gcc")
    if not cc:
        sys.exit("no C compiler (clang or gcc)")
    # The guests without +simd128 (wasm2c 1.0.32 has no SIMD), otherwise as built for the engine.
    flags = ["-Cllvm-args=-inline-threshold=1000"]
    cargo_build(["--target", "wasm32-unknown-unknown", "--profile", "guest", "-p", "chatflow-test-guests",
                 "--bin", GUEST["json"], "--bin", GUEST["xml"]], flags, WORK / "guests")
    cargo_build(["--profile", "guest", "-p", "chatflow-bench-matched"], flags, ROOT / "target" / "matched-native")
    subprocess.run(["cargo", "build", "--release", "--manifest-path", str(HERE / "Cargo.toml")], env=env(), check=True)
    rt = Path("/usr/share/wabt/wasm2c")
    harnesses = {}
    for kind, guest in GUEST.items():
        wasm = WORK / "guests" / "wasm32-unknown-unknown" / "guest" / f"{guest}.wasm"
        out = WORK / guest
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(["wasm2c", str(wasm), "-n", "guest", "-o", str(out / "guest.c")], check=True)
        exe = out / "harness"
        subprocess.run([cc, "-O3", "-w", "-I", str(out), "-I", str(rt), str(HERE / "wasm2c" / "harness.c"),
                        str(out / "guest.c"), str(rt / "wasm-rt-impl.c"), "-lm", "-o", str(exe)], check=True)
        harnesses[kind] = (wasm, exe)
    return Path(cc).name, harnesses


def matched_median(binary, name, data, workload, runs):
    p = subprocess.Popen([str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    p.stdin.write(f"doc {name} {len(data)}\n".encode() + data)
    p.stdin.write(f"clock cpu\nrun {workload} {name} 0\ntimes {workload} {name} {runs}\nquit\n".encode())
    out, _ = p.communicate()
    lines = out.decode().splitlines()
    assert lines[0] == "ok" and lines[1] == "ok", lines
    answer = lines[2].split(" ", 1)[1]
    times = [int(t) for t in lines[3].split()]
    return statistics.median(times), answer


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not (CORPUS / "json" / "twitter.json").exists():
        sys.exit(f"the corpus is not at {CORPUS}: set CHATFLOW_CORPUS")
    cc, harnesses = build()
    matched = ROOT / "target" / "matched-native" / "guest" / "chatflow-bench-matched"
    peers = TARGET / "release" / "chatflow-peers"
    results = {}
    for _ in range(args.rounds):
        for kind, name in DOCS:
            path = CORPUS / kind / name
            data = path.read_bytes()
            wasm, harness = harnesses[kind]
            m, want = matched_median(matched, name, data, WORKLOAD[kind], args.runs)
            row = results.setdefault(name, {"bytes": len(data)})
            row.setdefault("native-matched", []).append(m)
            for label, cmd in [
                (f"wasm2c+{cc}", [str(harness), str(path), str(args.runs)]),
                ("wasmtime-nofuel", [str(peers), "call-time", str(wasm), str(path), str(args.runs)]),
                ("wasmtime-fuel", [str(peers), "call-time", str(wasm), str(path), str(args.runs), "fuel"]),
            ]:
                out = subprocess.run(cmd, env=env(), check=True, capture_output=True, text=True).stdout
                ns, got = out.strip().split(" ", 1)
                if got != want:
                    sys.exit(f"{label} on {name}: {got} differs from the matched build's {want}")
                row.setdefault(label, []).append(int(ns))
    labels = ["native-matched", f"wasm2c+{cc}", "wasmtime-nofuel", "wasmtime-fuel"]
    lines = [
        f"Medians of {args.rounds} rounds of {args.runs} runs (`python3 benches/peers/codegen.py`), "
        "timed by CPU time; "
        "guests built without `+simd128` for all three wasm columns; MB/s of the document, and in "
        "brackets speed relative to the wasm2c build of the same module.\n",
        "| document | `native-matched` (LLVM, x86-64) | " + " | ".join(f"`{l}`" for l in labels[1:]) + " |",
        "|---|---:|---:|---:|---:|",
    ]
    for _, name in DOCS:
        row = results[name]
        med = {l: statistics.median(row[l]) for l in labels}
        base = med[f"wasm2c+{cc}"]
        cells = [f"`{name}`"]
        for l in labels:
            mbps = row["bytes"] / med[l] * 1e3
            cells.append(f"{mbps:,.0f} ({base / med[l]:.2f}×)")
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    text = DOC.read_text()
    begin, end = "<!-- codegen:begin -->", "<!-- codegen:end -->"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        sys.exit(f"{DOC} has no codegen markers")
    DOC.write_text(pattern.sub(lambda _: f"{begin}\n{table}\n{end}", text))
    print(f"\nwrote {DOC}")


if __name__ == "__main__":
    main()
