#!/usr/bin/env python3
"""Runs the chatflow benches and turns their results into the tables of
docs/benchmarks.md and the chart docs/bench-ratios.svg.

    python3 benches/report.py run --runs 3     # bench 3 times, then report
    python3 benches/report.py report           # report on the saved runs
    python3 benches/report.py run --runs 3 --bench rest_block   # add runs of one bench

`run` executes `cargo bench -p chatflow-benches` (every bench) the given
number of times, with RUST_BACKTRACE removed, and keeps each run's criterion
estimates and extra figures under target/chatflow-bench/runs/<n>/. `report`
reads every saved run and writes target/chatflow-bench/report.md (markdown
tables) and the SVG chart. Every figure is the median over the runs; every
ratio is computed within one run (native and sandbox measured in the same
process, minutes apart at most) and then the median of those ratios is
taken. Standard library only.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
OUT = TARGET / "chatflow-bench"
RUNS = OUT / "runs"

JSON_FILES = ["twitter.json", "citm_catalog.json", "canada.json", "github_events.json", "demo.json"]
XML_FILES = ["sample_rss.xml", "huge.xml", "gigantic.svg", "linescore.xml"]
JSON_VARIANTS = ["sandbox", "sandbox-epoch", "sandbox-dlmalloc", "sandbox-typed", "host-selector"]
XML_VARIANTS = ["sandbox", "sandbox-epoch", "host-selector"]
# JSON and XML documents of at least 64 KB (issue 14's targets).
LARGE_JSON = ["twitter.json", "citm_catalog.json", "canada.json", "github_events.json"]
LARGE_XML = ["sample_rss.xml", "huge.xml", "gigantic.svg"]
# The baseline each variant is compared with: the same code natively, in this
# process (`native`) and built like the guests (`native-matched`).
BASELINES = {
    "sandbox-typed": ("native-typed", "native-matched-typed"),
}
# Targets of issue 6 (ratio to native, higher is better), by variant.
TARGETS = {
    ("parse_json", "sandbox"): (0.75, ["twitter.json", "citm_catalog.json", "canada.json"]),
    ("parse_json", "sandbox-epoch"): (0.9, ["twitter.json", "citm_catalog.json", "canada.json"]),
    ("parse_json", "host-selector"): (1.0, ["twitter.json"]),
    ("parse_xml", "sandbox"): (0.6, ["sample_rss.xml", "huge.xml"]),
}


def run_benches(runs: int, benches) -> None:
    env = dict(os.environ)
    env.pop("RUST_BACKTRACE", None)
    existing = sorted(int(p.name) for p in RUNS.glob("*") if p.name.isdigit())
    first = (existing[-1] + 1) if existing else 1
    for n in range(first, first + runs):
        print(f"== bench run {n} ({n - first + 1} of {runs})", flush=True)
        criterion = TARGET / "criterion"
        shutil.rmtree(criterion, ignore_errors=True)
        criterion.mkdir(parents=True)
        for extra in OUT.glob("*.json"):
            extra.unlink()
        command = ["cargo", "bench", "-p", "chatflow-benches"]
        for bench in benches or []:
            command += ["--bench", bench]
        subprocess.run(command, cwd=ROOT, env=env, check=True)
        dest = RUNS / str(n)
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        shutil.copytree(criterion, dest / "criterion")
        for extra in OUT.glob("*.json"):
            shutil.copy(extra, dest / extra.name)


def load_run(run_dir: Path) -> dict:
    """{(group, function, value): {"ns": median ns, "throughput": (kind, n)}}"""
    results = {}
    for bench in (run_dir / "criterion").rglob("new/benchmark.json"):
        meta = json.loads(bench.read_text())
        estimates = json.loads((bench.parent / "estimates.json").read_text())
        key = (meta["group_id"], meta.get("function_id"), meta.get("value_str"))
        throughput = meta.get("throughput") or {}
        kind, amount = next(iter(throughput.items()), (None, None))
        results[key] = {"ns": estimates["median"]["point_estimate"], "throughput": (kind, amount)}
    extras = {}
    for name in ["latency", "rest_latency", "memory"]:
        path = run_dir / f"{name}.json"
        if path.exists():
            extras[name] = json.loads(path.read_text())
    return {"bench": results, "extras": extras}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_time(ns):
    if ns is None:
        return "–"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


def fmt_mbps(mbps):
    return "–" if mbps is None else f"{mbps:,.0f}"


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}×"


class Report:
    def __init__(self, runs):
        self.runs = runs

    def ns(self, group, function, value):
        return median(r["bench"].get((group, function, value), {}).get("ns") for r in self.runs)

    def ratio(self, group, function, value, base="native"):
        """Median over runs of (base time / variant time): speed relative to base."""
        ratios = []
        for r in self.runs:
            a = r["bench"].get((group, base, value))
            b = r["bench"].get((group, function, value))
            if a and b:
                ratios.append(a["ns"] / b["ns"])
        return median(ratios)

    def mbps(self, group, function, value):
        values = []
        for r in self.runs:
            b = r["bench"].get((group, function, value))
            if b and b["throughput"][0] == "Bytes":
                values.append(b["throughput"][1] / b["ns"] * 1e3)  # bytes/ns -> MB/s
        return median(values)

    def parse_table(self, group, files, variants):
        """MB/s per variant, with the ratio to native-matched and to native."""
        lines = [
            "| document | native MB/s | native-matched MB/s | "
            + " | ".join(f"{v} MB/s (÷ matched / ÷ native)" for v in variants)
            + " |",
            "|---|---:|---:|" + "---:|" * len(variants),
        ]
        for f in files:
            if self.ns(group, "native", f) is None:
                continue
            cells = [
                f"`{f}`",
                fmt_mbps(self.mbps(group, "native", f)),
                fmt_mbps(self.mbps(group, "native-matched", f)),
            ]
            for v in variants:
                plain, matched = BASELINES.get(v, ("native", "native-matched"))
                cells.append(
                    f"{fmt_mbps(self.mbps(group, v, f))} "
                    f"({fmt_ratio(self.ratio(group, v, f, matched))} / "
                    f"{fmt_ratio(self.ratio(group, v, f, plain))})"
                )
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def geomean_ratio(self, group, variant, files, base):
        """Median over runs of the geometric mean of the per-document
        ratios (base time / variant time) within that run."""
        means = []
        for r in self.runs:
            ratios = []
            for f in files:
                a = r["bench"].get((group, base, f))
                b = r["bench"].get((group, variant, f))
                if a and b:
                    ratios.append(a["ns"] / b["ns"])
            if len(ratios) == len(files):
                means.append(statistics.geometric_mean(ratios))
        return median(means)

    def matched_targets(self):
        """Issue 14's targets: the sandbox against the matched baseline."""
        lines = ["| target | measured | met |", "|---|---:|:---:|"]

        def row(what, value, ok, unit="×"):
            if value is not None:
                lines.append(f"| {what} | {value:.3f}{unit} | {'yes' if ok(value) else '**no**'} |")

        for group, files, goal, floor in [
            ("parse_json", LARGE_JSON, 0.8, 0.7),
            ("parse_xml", LARGE_XML, 0.6, None),
        ]:
            kind = "JSON" if group == "parse_json" else "XML"
            g = self.geomean_ratio(group, "sandbox", files, "native-matched")
            row(f"{kind} ≥ 64 KB: geometric mean of `sandbox` ÷ `native-matched` ≥ {goal}×", g, lambda v: v >= goal)
            if floor is not None:
                for f in files:
                    r = self.ratio(group, "sandbox", f, "native-matched")
                    row(f"`{f}`: `sandbox` ÷ `native-matched` ≥ {floor}×", r, lambda v: v >= floor)
        r = self.ratio("parse_xml", "sandbox", "gigantic.svg", "native-matched")
        row("`gigantic.svg`: `sandbox` ÷ `native-matched` ≥ 0.4×", r, lambda v: v >= 0.4)
        for name, goal in [("code_block/sandbox/demo.json+set3", 5.0), ("code_block/sandbox/empty", 4.0)]:
            values = [e["median_us"] for r in self.runs for e in r["extras"].get("latency", []) if e["name"] == name]
            row(f"`{name}` median ≤ {goal:g} µs", median(values), lambda v: v <= goal, " µs")
        return "\n".join(lines)

    def time_table(self, group, rows):
        lines = ["| case | variant | time per run (criterion median) |", "|---|---|---:|"]
        for function, value in rows:
            ns = self.ns(group, function, value)
            if ns is not None:
                lines.append(f"| {value} | `{function}` | {fmt_time(ns)} |")
        return "\n".join(lines)

    def latency_table(self, extra, prefix=""):
        by_name = {}
        for r in self.runs:
            for entry in r["extras"].get(extra, []):
                name = entry["name"].split("#")[0]
                by_name.setdefault(name, []).append(entry)
        lines = [
            "| what | median | p90 | p99 | p99.9 |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, entries in by_name.items():
            cells = [f"`{name}`"]
            for key in ["median_us", "p90_us", "p99_us", "p999_us"]:
                cells.append(f"{median(e[key] for e in entries):.1f} µs")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def targets(self):
        lines = ["| target | document | measured | met |", "|---|---|---:|:---:|"]
        for (group, variant), (goal, files) in TARGETS.items():
            for f in files:
                r = self.ratio(group, variant, f)
                if r is None:
                    continue
                ok = "yes" if r >= goal else "**no**"
                lines.append(f"| `{group}/{variant}` ≥ {goal}× native | `{f}` | {r:.3f}× | {ok} |")
        for name, goal in [("code_block/sandbox/empty", 5.0), ("code_block/sandbox/demo.json+set3", 10.0)]:
            values = [e["median_us"] for r in self.runs for e in r["extras"].get("latency", []) if e["name"] == name]
            m = median(values)
            if m is not None:
                ok = "yes" if m <= goal else "**no**"
                lines.append(f"| `{name}` median ≤ {goal:g} µs | | {m:.2f} µs | {ok} |")
        overhead = self.rest_overhead()
        if overhead is not None:
            lines.append(
                f"| REST block overhead over bare reqwest ≤ 5 % (median single requests, taking turns) | | "
                f"{overhead:.2f} % | {'yes' if overhead <= 5 else '**no**'} |"
            )
        for n in ["2", "64"]:
            ns = self.ns("concurrency", "sandbox", n)
            if ns:
                rate = 1024 / ns * 1e9
                lines.append(f"| ≥ 50 000 empty runs/s, {n} in flight | | {rate:,.0f}/s | {'yes' if rate >= 50000 else '**no**'} |")
        for entry in self.memory():
            mb = entry["rss_waiting_mib"] * 1.048576  # MiB to MB (10^6 bytes)
            ok = "yes" if mb < 100 else "**no**"
            lines.append(
                f"| 1 000 conversations waiting on HTTP < 100 MB RSS | {entry['scenario']} | "
                f"{mb:.1f} MB ({entry['rss_waiting_mib']:.1f} MiB) | {ok} |"
            )
        return "\n".join(lines)

    def rest_overhead(self):
        """Median over runs of (REST block median / bare reqwest median - 1), in %."""
        overheads = []
        for r in self.runs:
            medians = {}
            for e in r["extras"].get("rest_latency", []):
                medians.setdefault(e["name"].split("#")[0], []).append(e["median_us"])
            native = median(medians.get("rest_block/native/get-1k", []))
            block = median(medians.get("rest_block/rest-block/get-1k", []))
            if native and block:
                overheads.append((block / native - 1) * 100)
        return median(overheads)

    def memory(self):
        by_scenario = {}
        for r in self.runs:
            for entry in r["extras"].get("memory", []):
                by_scenario.setdefault(entry["scenario"], []).append(entry)
        out = []
        for scenario, entries in by_scenario.items():
            out.append(
                {
                    "scenario": scenario,
                    "conversations": entries[0]["conversations"],
                    "rss_before_mib": median(e["rss_before_mib"] for e in entries),
                    "rss_waiting_mib": median(e["rss_waiting_mib"] for e in entries),
                    "per_conversation_kib": median(e["per_conversation_kib"] for e in entries),
                }
            )
        return out

    def markdown(self):
        parts = [f"Medians over {len(self.runs)} run(s) of `cargo bench -p chatflow-benches`.\n"]
        parts += ["### Targets against the matched baseline (issue 14)\n", self.matched_targets(), ""]
        parts += ["### Targets (issue 6)\n", self.targets(), ""]
        parts += ["### JSON parsing (`parse_json`)\n", self.parse_table("parse_json", JSON_FILES, JSON_VARIANTS), ""]
        typed = [
            "`%s` %s MB/s" % (f, fmt_mbps(self.mbps("parse_json", "native-typed", f)))
            for f in JSON_FILES
            if self.mbps("parse_json", "native-typed", f)
        ]
        parts += [
            "`sandbox-typed` is compared with `native-typed` (%s) and "
            "`native-matched-typed`; every other variant with `native` and "
            "`native-matched`.\n" % ", ".join(typed)
        ]
        parts += ["### XML parsing (`parse_xml`)\n", self.parse_table("parse_xml", XML_FILES, XML_VARIANTS), ""]
        cases = ["empty", "empty-no-panic-hook", "demo.json+set3", "image-1k+set3", "http-get"]
        rows = [
            (v, c)
            for c in cases
            for v in ["native", "native-matched", "sandbox", "sandbox-epoch", "sandbox-dlmalloc"]
        ]
        parts += ["### Code block runs (`code_block`)\n", self.time_table("code_block", rows), ""]
        parts += ["Single runs, timed one by one:\n", self.latency_table("latency"), ""]
        setup_rows = [
            (f, g)
            for g in ["bench_empty", "bench_json_walk", "bench_xml_walk"]
            for f in ["compile", "load-cached"]
        ]
        parts += ["### Setup (`code_block_setup`)\n", self.time_table("code_block_setup", setup_rows), ""]
        parts += ["### REST API block (`rest_block`)\n", self.time_table("rest_block", [("native", "get-1k"), ("rest-block", "get-1k")]), ""]
        parts += ["Single requests, interleaved rounds:\n", self.latency_table("rest_latency"), ""]
        lines = ["| case | conversations/s |", "|---|---:|"]
        for function, n in [("sequential", 1), ("concurrent-64", 64)]:
            ns = self.ns("flow", function, "rest+code+branch+message")
            if ns:
                lines.append(f"| {function} | {n / ns * 1e9:,.0f} |")
        parts += ["### Whole conversations (`flow`)\n", "\n".join(lines), ""]
        lines = ["| in flight | empty runs/s |", "|---|---:|"]
        for n in ["2", "64"]:
            ns = self.ns("concurrency", "sandbox", n)
            if ns:
                lines.append(f"| {n} | {1024 / ns * 1e9:,.0f} |")
        parts += ["### Concurrency (`concurrency`)\n", "\n".join(lines), ""]
        lines = ["| scenario | RSS before | RSS with 1 000 waiting | per conversation |", "|---|---:|---:|---:|"]
        for e in self.memory():
            lines.append(
                f"| {e['scenario']} | {e['rss_before_mib']:.1f} MiB | {e['rss_waiting_mib']:.1f} MiB | {e['per_conversation_kib']:.1f} KiB |"
            )
        parts += ["### Memory (`concurrency`, child processes)\n", "\n".join(lines), ""]
        return "\n".join(parts)

    def svg(self):
        """Horizontal bars: variant speed relative to native-matched (the same
        code built like the guests), per corpus file and variant."""
        series = [("parse_json", f, JSON_VARIANTS) for f in JSON_FILES] + [
            ("parse_xml", f, XML_VARIANTS) for f in XML_FILES
        ]
        colors = {
            "sandbox": "#1f77b4",
            "sandbox-epoch": "#2ca02c",
            "sandbox-dlmalloc": "#9467bd",
            "sandbox-typed": "#ff7f0e",
            "host-selector": "#8c564b",
        }
        bar, gap, left, right, top = 11, 14, 150, 40, 60
        scale_max = 3.0
        width = 760
        plot = width - left - right
        rows = []
        y = top
        for group, f, variants in series:
            bars = []
            for v in variants:
                plain, matched = BASELINES.get(v, ("native", "native-matched"))
                r = self.ratio(group, v, f, matched)
                if r is None:
                    r = self.ratio(group, v, f, plain)
                if r is not None:
                    bars.append((v, r))
            if not bars:
                continue
            rows.append((f, y, bars))
            y += len(bars) * bar + gap
        height = y + 50
        x = lambda r: left + plot * min(r, scale_max) / scale_max
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="11">',
            f'<rect width="{width}" height="{height}" fill="white"/>',
            f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">'
            "Sandboxed parse speed relative to matched native (higher is better)</text>",
            f'<text x="{width / 2}" y="36" text-anchor="middle" fill="#555">'
            f"native-matched time / variant time, median of {len(self.runs)} run(s); "
            "fresh instance per run; typed vs matched typed</text>",
        ]
        for tick in [0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]:
            tx = x(tick)
            style = 'stroke="#333" stroke-width="1.5"' if tick == 1.0 else 'stroke="#ddd"'
            out.append(f'<line x1="{tx:.1f}" y1="{top - 8}" x2="{tx:.1f}" y2="{y - gap + 4}" {style}/>')
            out.append(f'<text x="{tx:.1f}" y="{y + 8}" text-anchor="middle">{tick:g}×</text>')
        for f, y0, bars in rows:
            out.append(
                f'<text x="{left - 8}" y="{y0 + len(bars) * bar / 2 + 4:.1f}" text-anchor="end">{f}</text>'
            )
            for i, (v, r) in enumerate(bars):
                by = y0 + i * bar
                out.append(
                    f'<rect x="{left}" y="{by}" width="{x(r) - left:.1f}" height="{bar - 2}" '
                    f'fill="{colors[v]}"><title>{f} {v}: {r:.2f}×</title></rect>'
                )
                label = f"{r:.2f}" + ("+" if r > scale_max else "")
                out.append(f'<text x="{x(r) + 3:.1f}" y="{by + bar - 3}" font-size="9">{label}</text>')
        lx = left
        for v, c in colors.items():
            out.append(f'<rect x="{lx}" y="{y + 22}" width="10" height="10" fill="{c}"/>')
            out.append(f'<text x="{lx + 14}" y="{y + 31}">{v}</text>')
            lx += 14 + 7 * len(v) + 18
        out.append("</svg>")
        return "\n".join(out) + "\n"


def report(svg_path: Path) -> None:
    run_dirs = sorted((p for p in RUNS.glob("*") if p.name.isdigit()), key=lambda p: int(p.name))
    if not run_dirs:
        sys.exit(f"no saved runs under {RUNS}: run `python3 benches/report.py run` first")
    rep = Report([load_run(d) for d in run_dirs])
    md = rep.markdown()
    (OUT / "report.md").write_text(md)
    svg_path.write_text(rep.svg())
    print(md)
    print(f"\nwrote {OUT / 'report.md'} and {svg_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the benches, then report")
    run.add_argument("--runs", type=int, default=3)
    run.add_argument("--fresh", action="store_true", help="forget earlier saved runs first")
    run.add_argument(
        "--bench", action="append", help="run only this bench (repeatable); its runs add to the saved ones"
    )
    for p in [run, sub.add_parser("report", help="report on the saved runs")]:
        p.add_argument("--svg", type=Path, default=ROOT / "docs" / "bench-ratios.svg")
    args = parser.parse_args()
    if args.command == "run":
        if args.fresh:
            shutil.rmtree(RUNS, ignore_errors=True)
        run_benches(args.runs, args.bench)
    report(args.svg)


if __name__ == "__main__":
    main()
