#!/usr/bin/env python3
"""Runs the peers comparison and writes its tables and chart into
docs/benchmarks.md (between the `peers` and `breakdown` marker comments)
and docs/bench-peers.svg.

    python3 benches/peers/run.py              # build, 3 runs, report
    python3 benches/peers/run.py --runs 1 --rounds 5 --only twitter
    python3 benches/peers/run.py --report     # report on the saved runs

Each run is one process of `chatflow-peers` (benches/peers/host), which runs
every variant on every case round-robin and checks every answer against
native's first. Every figure below is the median over the runs; every
ratio is taken within a run (the variants measured minutes apart at most,
in one process) and then the median of those ratios. Standard library only.
"""

import argparse
import json
import math
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
RUNS = TARGET / "peers-runs"
DOC = ROOT / "docs" / "benchmarks.md"
SVG = ROOT / "docs" / "bench-peers.svg"

VARIANTS = [
    "native",
    "native-matched",
    "chatflow",
    "wasmtime",
    "wasmtime-nofuel",
    "wasmtime-reused",
    "extism",
    "extism-reused",
]
SANDBOXES = VARIANTS[2:]
THROUGHPUT = ["twitter.json", "citm_catalog.json", "canada.json", "github_events.json",
              "sample_rss.xml", "huge.xml", "gigantic.svg"]
PER_RUN = ["demo.json+set3", "empty", "copy-in/twitter.json"]
COLORS = {
    "native": "#7f7f7f",
    "chatflow": "#1f77b4",
    "wasmtime": "#2ca02c",
    "wasmtime-nofuel": "#98df8a",
    "wasmtime-reused": "#17becf",
    "extism": "#d62728",
    "extism-reused": "#ff9896",
}


def build():
    env = dict(os.environ)
    env.pop("RUST_BACKTRACE", None)
    subprocess.run(["cargo", "build", "--release", "--manifest-path", str(HERE / "Cargo.toml")],
                   env=env, check=True)
    return TARGET / "release" / "chatflow-peers"


def run(binary, runs, extra):
    env = dict(os.environ)
    env.pop("RUST_BACKTRACE", None)
    RUNS.mkdir(parents=True, exist_ok=True)
    existing = sorted(int(p.stem) for p in RUNS.glob("*.json") if p.stem.isdigit())
    first = (existing[-1] + 1) if existing else 1
    for n in range(first, first + runs):
        print(f"== peers run {n} ({n - first + 1} of {runs})", flush=True)
        subprocess.run([str(binary), "--out", str(RUNS / f"{n}.json"), *extra], env=env, check=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


class Runs:
    def __init__(self, runs):
        self.runs = runs

    def cell(self, run, case, variant):
        for c in run["cases"]:
            if c["case"] == case:
                return c["variants"].get(variant)
        return None

    def value(self, case, variant, key):
        return median((self.cell(r, case, variant) or {}).get(key) for r in self.runs)

    def ratio(self, case, variant, base):
        """Median over runs of base median time / variant median time."""
        ratios = []
        for r in self.runs:
            a, b = self.cell(r, case, base), self.cell(r, case, variant)
            if a and b:
                ratios.append(a["median_us"] / b["median_us"])
        return median(ratios)

    def geomean(self, cases, variant, base):
        means = []
        for r in self.runs:
            ratios = []
            for case in cases:
                a, b = self.cell(r, case, base), self.cell(r, case, variant)
                if a and b:
                    ratios.append(a["median_us"] / b["median_us"])
            if ratios and len(ratios) == len(cases):
                means.append(statistics.geometric_mean(ratios))
        return median(means)

    def cases(self, wanted):
        present = {c["case"] for r in self.runs for c in r["cases"]}
        return [c for c in wanted if c in present]

    def generated(self):
        return sorted({c["case"] for r in self.runs for c in r["cases"] if c["generated"]})


def us(v):
    if v is None:
        return "–"
    if v >= 1000:
        return f"{v / 1000:.2f} ms"
    return f"{v:.1f} µs" if v >= 10 else f"{v:.2f} µs"


def ratio(v):
    return "–" if v is None else f"{v:.2f}×"


def tables(rep):
    out = []
    big = rep.cases(THROUGHPUT)
    head = "| document | " + " | ".join(f"`{v}`" for v in VARIANTS) + " |"
    rule = "|---|" + "---:|" * len(VARIANTS)
    out += ["MB/s (median run), and in brackets speed relative to `native-matched` "
            "(its time ÷ the variant's):\n", head, rule]
    for case in big:
        cells = [f"`{case}`"]
        for v in VARIANTS:
            mbps = rep.value(case, v, "mbps")
            if mbps is None:
                cells.append("–")
            elif v == "native-matched":
                cells.append(f"{mbps:,.0f}")
            else:
                cells.append(f"{mbps:,.0f} ({ratio(rep.ratio(case, v, 'native-matched'))})")
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "Time per run, median / p99:\n", head, rule]
    for case in big + rep.cases(PER_RUN):
        cells = [f"`{case}`"]
        for v in VARIANTS:
            m, p = rep.value(case, v, "median_us"), rep.value(case, v, "p99_us")
            cells.append("–" if m is None else f"{us(m)} / {us(p)}")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def targets(rep):
    json_docs = rep.cases(THROUGHPUT[:4])
    xml_docs = rep.cases(THROUGHPUT[4:])
    lines = ["| target (fresh instance, fuel on; `chatflow` here) | measured | met |", "|---|---:|:---:|"]

    def row(what, v, ok, fmt=lambda v: f"{v:.2f}×"):
        if v is not None:
            lines.append(f"| {what} | {fmt(v)} | {'yes' if ok(v) else '**no**'} |")

    row("JSON ≥ 64 KB: geometric mean ≥ 0.8 × `native-matched`",
        rep.geomean(json_docs, "chatflow", "native-matched"), lambda v: v >= 0.8)
    for case in json_docs:
        row(f"`{case}` ≥ 0.7 × `native-matched`", rep.ratio(case, "chatflow", "native-matched"),
            lambda v: v >= 0.7)
    row("XML ≥ 64 KB: geometric mean ≥ 0.6 × `native-matched`",
        rep.geomean(xml_docs, "chatflow", "native-matched"), lambda v: v >= 0.6)
    row("`gigantic.svg` ≥ 0.4 × `native-matched`",
        rep.ratio("gigantic.svg", "chatflow", "native-matched"), lambda v: v >= 0.4)
    row("`demo.json` + 3 properties set, median ≤ 5 µs",
        rep.value("demo.json+set3", "chatflow", "median_us"), lambda v: v <= 5, us)
    row("empty block, median ≤ 4 µs", rep.value("empty", "chatflow", "median_us"),
        lambda v: v <= 4, us)
    for case in json_docs + xml_docs:
        # extism-reused time ÷ chatflow time: how many times faster chatflow is.
        row(f"`{case}`: `chatflow` ≥ 1.5 × as fast as `extism-reused`",
            rep.ratio(case, "chatflow", "extism-reused"), lambda v: v >= 1.5)
    return "\n".join(lines)


def breakdown(rep):
    """The sandbox's cost split into parts, from the same runs."""
    lines = ["| part | how it is measured | measured |", "|---|---|---:|"]
    e = lambda v: rep.value("empty", v, "median_us")
    if e("chatflow") is not None:
        lines.append(f"| a run of an empty block, all in | `chatflow` empty | {us(e('chatflow'))} |")
        lines.append(f"| instantiation and teardown | raw `wasmtime` empty (fresh) − `wasmtime-reused` empty | "
                     f"{us(e('wasmtime') - e('wasmtime-reused'))} |")
        lines.append(f"| chatflow's host around a run | `chatflow` empty − raw `wasmtime` empty | "
                     f"{us(e('chatflow') - e('wasmtime'))} |")
    c = lambda v: rep.value("copy-in/twitter.json", v, "median_us")
    if c("chatflow") is not None and e("chatflow") is not None:
        size = 631515
        for case in rep.runs[0]["cases"]:
            if case["case"] == "copy-in/twitter.json":
                size = case["bytes"]
        lines.append(f"| copying 632 KB in (`get_bytes`) | `chatflow` copy-in − `chatflow` empty | "
                     f"{us(c('chatflow') - e('chatflow'))} ({size / (c('chatflow') - e('chatflow')):,.0f} MB/s) |")
        if c("wasmtime") is not None:
            lines.append(f"| the same on raw wasmtime | `wasmtime` copy-in − `wasmtime` empty | "
                         f"{us(c('wasmtime') - e('wasmtime'))} |")
    for case in rep.cases(THROUGHPUT):
        f = rep.ratio(case, "wasmtime", "wasmtime-nofuel")
        g = rep.ratio(case, "wasmtime-nofuel", "native-matched")
        h = rep.ratio(case, "chatflow", "wasmtime")
        lines.append(f"| `{case}`: fuel metering | `wasmtime-nofuel` time ÷ `wasmtime` time | {ratio(f)} |")
        lines.append(f"| `{case}`: Cranelift and wasm32 vs LLVM natively | `native-matched` ÷ `wasmtime-nofuel` | {ratio(g)} |")
        lines.append(f"| `{case}`: chatflow's host | raw `wasmtime` ÷ `chatflow` | {ratio(h)} |")
    s = lambda v: rep.value("demo.json+set3", v, "median_us")
    if s("chatflow") is not None:
        lines.append(f"| host calls of `demo.json`+set3 (1 get, 3 sets) and the rest of chatflow's host | "
                     f"`chatflow` − raw `wasmtime` (a plain host) | {us(s('chatflow') - s('wasmtime'))} |")
    return "\n".join(lines)


def svg(rep):
    cases = rep.cases(THROUGHPUT)
    series = [v for v in VARIANTS if v != "native-matched"]
    bar, gap, left, right, top = 9, 12, 140, 50, 60
    scale_max = 1.6
    width = 780
    plot = width - left - right
    rows, y = [], top
    for case in cases:
        bars = [(v, rep.ratio(case, v, "native-matched")) for v in series]
        bars = [(v, r) for v, r in bars if r is not None]
        rows.append((case, y, bars))
        y += len(bars) * bar + gap
    height = y + 50
    x = lambda r: left + plot * min(r, scale_max) / scale_max
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">'
        "Parse speed relative to matched native code (higher is better)</text>",
        f'<text x="{width / 2}" y="36" text-anchor="middle" fill="#555">native-matched time / '
        f"variant time, median of {len(rep.runs)} run(s) of benches/peers/run.py</text>",
    ]
    for tick in [0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6]:
        tx = x(tick)
        style = 'stroke="#333" stroke-width="1.5"' if tick == 1.0 else 'stroke="#ddd"'
        out.append(f'<line x1="{tx:.1f}" y1="{top - 8}" x2="{tx:.1f}" y2="{y - gap + 4}" {style}/>')
        out.append(f'<text x="{tx:.1f}" y="{y + 8}" text-anchor="middle">{tick:g}×</text>')
    for case, y0, bars in rows:
        out.append(f'<text x="{left - 8}" y="{y0 + len(bars) * bar / 2 + 4:.1f}" text-anchor="end">{case}</text>')
        for i, (v, r) in enumerate(bars):
            by = y0 + i * bar
            out.append(f'<rect x="{left}" y="{by}" width="{x(r) - left:.1f}" height="{bar - 1}" '
                       f'fill="{COLORS[v]}"><title>{case} {v}: {r:.2f}×</title></rect>')
            label = f"{r:.2f}" + ("+" if r > scale_max else "")
            out.append(f'<text x="{x(r) + 3:.1f}" y="{by + bar - 1}" font-size="8">{label}</text>')
    lx = left
    for v in series:
        out.append(f'<rect x="{lx}" y="{y + 22}" width="10" height="10" fill="{COLORS[v]}"/>')
        out.append(f'<text x="{lx + 14}" y="{y + 31}">{v}</text>')
        lx += 14 + 6 * len(v) + 14
    out.append("</svg>")
    return "\n".join(out) + "\n"


def replace_section(text, name, body):
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        sys.exit(f"{DOC} has no `{begin}` … `{end}` markers")
    return pattern.sub(lambda _: block, text)


def report():
    files = sorted((p for p in RUNS.glob("*.json") if p.stem.isdigit()), key=lambda p: int(p.stem))
    if not files:
        sys.exit(f"no saved runs under {RUNS}: run `python3 benches/peers/run.py` first")
    rep = Runs([json.loads(p.read_text()) for p in files])
    loads = ", ".join(f"{r['load_before']} → {r['load_after']}" for r in rep.runs)
    generated = rep.generated()
    note = (f"\n\nGenerated stand-ins (no corpus): {', '.join(generated)}." if generated else "")
    clocks = sorted({r.get("clock", "wall") for r in rep.runs})
    clock = {"wall": "wall-clock time", "cpu": "the thread's CPU time (`--clock cpu`: the machine "
             "was busy with other work)"}
    peers = (f"Medians of {len(rep.runs)} run(s) of `python3 benches/peers/run.py` "
             f"({rep.runs[0]['rounds']} rounds of ~{rep.runs[0]['slice_ms']} ms per variant and case; "
             f"runs timed by {' and '.join(clock[c] for c in clocks)}; "
             f"load average before → after each run: {loads}).{note}\n\n"
             f"### Targets\n\n{targets(rep)}\n\n### All variants\n\n{tables(rep)}\n\n"
             "![parse speed relative to matched native, per host](bench-peers.svg)")
    text = DOC.read_text()
    text = replace_section(text, "peers", peers)
    text = replace_section(text, "breakdown", breakdown(rep))
    DOC.write_text(text)
    SVG.write_text(svg(rep))
    print(peers)
    print()
    print(breakdown(rep))
    print(f"\nwrote {DOC} and {SVG}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, help="rounds per case (chatflow-peers --rounds)")
    parser.add_argument("--slice-ms", type=int, help="time per variant per round")
    parser.add_argument("--only", help="only the cases whose name contains this")
    parser.add_argument("--clock", choices=["wall", "cpu", "auto"], default="auto",
                        help="time runs by wall-clock or by the thread's CPU time; auto: CPU time "
                             "when the load average is over the number of CPUs (other work running)")
    parser.add_argument("--fresh", action="store_true", help="forget earlier saved runs first")
    parser.add_argument("--report", action="store_true", help="only report on the saved runs")
    args = parser.parse_args()
    if not args.report:
        if args.fresh:
            shutil.rmtree(RUNS, ignore_errors=True)
        binary = build()
        extra = []
        if args.rounds:
            extra += ["--rounds", str(args.rounds)]
        if args.slice_ms:
            extra += ["--slice-ms", str(args.slice_ms)]
        if args.only:
            extra += ["--only", args.only]
        clock = args.clock
        if clock == "auto":
            clock = "cpu" if os.getloadavg()[0] > (os.cpu_count() or 1) else "wall"
        extra += ["--clock", clock]
        run(binary, args.runs, extra)
    report()


if __name__ == "__main__":
    main()
