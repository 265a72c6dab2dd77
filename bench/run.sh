#!/usr/bin/env bash
# Runs the benchmarks; `make bench` builds what they need first.
# BENCH_ROUNDS sets the rounds per measurement (default 5); arguments pick
# benchmarks: stream, exec, memory, thumbnails, postgres, kafka, autoscale,
# sheets.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(python3 -c 'import sys; print(sys.executable)')
exec "$py" bench/bench.py "$@"
