#!/usr/bin/env bash
# Runs one fuzz target for a while:
#
#   fuzz/run.sh TARGET SECONDS [libFuzzer options…]
#
# New inputs go to fuzz/corpus/TARGET (kept between runs, not committed);
# the committed seeds in fuzz/seeds/TARGET are read too, and the target's
# dictionary (fuzz/dicts/TARGET.dict) steers mutations. A crash, panic or an
# input that takes longer than 10 s is written to fuzz/artifacts/TARGET/ and
# stops the run with a non-zero exit. Needs ./setup.sh first (nightly +
# cargo-fuzz). On a shared machine, run it under `nice -n 10`.
set -euo pipefail
cd "$(dirname "$0")"

usage="usage: fuzz/run.sh TARGET SECONDS [libFuzzer options...]"
target=${1:?$usage}
seconds=${2:?$usage}
shift 2

mkdir -p "corpus/$target" "artifacts/$target"
dict=()
if [[ -f "dicts/$target.dict" ]]; then
  dict=("-dict=dicts/$target.dict")
fi
exec cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
  "${dict[@]}" "$@"
