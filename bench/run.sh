#!/usr/bin/env bash
# Runs the benchmarks; `make bench` builds what they need first.
# BENCH_ROUNDS sets the rounds per measurement (default 5); arguments pick
# benchmarks: stream, exec, memory, thumbnails, postgres; or pgqueue alone.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(python3 -c 'import sys; print(sys.executable)')
# `pgqueue` runs bench/pg_bench.py (the queue table against pgbench) instead.
if [ "${1:-}" = pgqueue ]; then
	shift
	exec "$py" bench/pg_bench.py "$@"
fi
exec "$py" bench/bench.py "$@"
