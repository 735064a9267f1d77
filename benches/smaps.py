#!/usr/bin/env python3
"""Where a process's resident memory is, by kind of mapping.

Reads `/proc/PID/smaps` snapshots (the `concurrency` bench's memory child
writes them with `CHATFLOW_BENCH_SMAPS=<dir>`) and sums Rss by kind of
mapping (a wasmtime pool is one
reservation split into many mappings by guard pages and copy-on-write
images), so each mapping is named from its name, size and neighbours.

    python3 benches/smaps.py BEFORE.smaps WAITING.smaps [--per N]

prints, per kind, the Rss before and while waiting, how much of the latter
is pages shared with other mappings (a copy-on-write image's pages are
counted in RSS once per instance mapping them), and the difference divided
by N (the conversations, default 1000), in KiB.
"""

import re
import sys
from collections import defaultdict

HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) (\S+) (\S+) (\d+)\s*(.*)$")
KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


def parse(path):
    """The mappings of one smaps file: dicts with start, end, perms, name
    and the kB fields."""
    maps = []
    with open(path) as f:
        for line in f:
            m = HEADER.match(line)
            if m:
                maps.append(
                    {
                        "start": int(m.group(1), 16),
                        "end": int(m.group(2), 16),
                        "perms": m.group(3),
                        "inode": int(m.group(6)),
                        "name": m.group(7).strip(),
                    }
                )
                continue
            key, _, rest = line.partition(":")
            parts = rest.split()
            if maps and len(parts) == 2 and parts[1] == "kB":
                maps[-1][key] = int(parts[0])
    return maps


def kinds(maps, exe_hint):
    """A label for each mapping, from its name, its size and its
    neighbours."""
    sizes = defaultdict(int)
    for i, m in enumerate(maps):
        if m["perms"].startswith("rw") and m["name"] == "":
            prev = maps[i - 1] if i > 0 else None
            if prev and prev["end"] == m["start"] and prev["end"] - prev["start"] == 4 * KIB \
                    and prev["perms"].startswith("---"):
                sizes[m["end"] - m["start"]] += 1
    # A pool of fiber stacks: hundreds of same-size mappings, each after a
    # guard page.
    fiber = {size for size, n in sizes.items() if n >= 100}
    out = []
    for i, m in enumerate(maps):
        name, size = m["name"], m["end"] - m["start"]
        prev = maps[i - 1] if i > 0 and maps[i - 1]["end"] == m["start"] else None
        nxt = maps[i + 1] if i + 1 < len(maps) and maps[i + 1]["start"] == m["end"] else None
        if name == "[heap]":
            k = "malloc: main heap (brk)"
        elif name == "[stack]":
            k = "main thread stack"
        elif name.startswith("["):
            k = "kernel " + name
        elif name.startswith("/memfd:wasm-memory-image"):
            k = "wasm linear memory: data image (CoW, memfd)"
        elif name != "":
            k = "the binary (code, data)" if exe_hint in name else "shared libraries"
        elif m["perms"].startswith("---"):
            k = "guard / reserved (never resident)"
        elif nxt is not None and nxt["name"].startswith("/memfd:wasm-memory-image"):
            k = "wasm linear memory: below the image (shadow stack)"
        elif prev is not None and prev["name"].startswith("/memfd:wasm-memory-image"):
            k = "wasm linear memory: above the image (heap)"
        elif nxt is not None and nxt["perms"].startswith("---") and nxt["end"] - nxt["start"] >= GIB:
            k = "wasm linear memory: no image"
        elif size in fiber and prev is not None and prev["perms"].startswith("---"):
            k = "wasm fiber stacks (pool)"
        elif (m["start"] % (64 * MIB) == 0 and nxt is not None and nxt["perms"].startswith("---")
              and (size + nxt["end"] - nxt["start"]) == 64 * MIB) or size == 64 * MIB:
            k = "malloc: thread arenas"
        elif size >= 100 * MIB:
            k = "wasm tables (pool)"
        elif prev is not None and prev["perms"].startswith("---") and prev["end"] - prev["start"] == 4 * KIB:
            k = "thread stacks"
        else:
            k = "anonymous (other: large malloc chunks, wasm code, ...)"
        out.append((k, m))
    return out


def summarize(path, exe_hint, field="Rss"):
    totals = defaultdict(int)
    for k, m in kinds(parse(path), exe_hint):
        totals[k] += m.get(field, 0)
    return totals


def main():
    args = sys.argv[1:]
    per = 1000
    if "--per" in args:
        i = args.index("--per")
        per = int(args[i + 1])
        del args[i : i + 2]
    exe_hint = None
    if "--exe" in args:
        i = args.index("--exe")
        exe_hint = args[i + 1]
        del args[i : i + 2]
    else:
        exe_hint = "/deps/"
    before = summarize(args[0], exe_hint)
    waiting = summarize(args[1], exe_hint)
    shared = summarize(args[1], exe_hint, "Shared_Clean")
    for k, v in summarize(args[1], exe_hint, "Shared_Dirty").items():
        shared[k] += v
    kinds_seen = sorted(set(before) | set(waiting), key=lambda k: -waiting[k])
    print("| kind | RSS before (KiB) | RSS waiting (KiB) | of which shared (KiB) | per conversation (KiB) |")
    print("|---|---:|---:|---:|---:|")
    tb = tw = 0
    for k in kinds_seen:
        b, w = before[k], waiting[k]
        tb += b
        tw += w
        if b or w:
            print(f"| {k} | {b} | {w} | {shared[k]} | {(w - b) / per:.1f} |")
    print(f"| total | {tb} | {tw} | {sum(shared.values())} | {(tw - tb) / per:.1f} |")


if __name__ == "__main__":
    main()
