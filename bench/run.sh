#!/usr/bin/env bash
# Runs the benchmarks; `make bench` builds what they need first.
# BENCH_ROUNDS sets the rounds per measurement (default 5, 3 for stages);
# arguments pick benchmarks: stream, exec, memory, thumbnails, postgres,
# kafka, kafka_eos, autoscale, sheets, stages, gather, state,
# exec_source, console.
set -euo pipefail
cd "$(dirname "$0")/.."
export HOPPER=${HOPPER:-$PWD/build/hopper} HOPPER_BUILD=${HOPPER_BUILD:-$PWD/build}
py=$(python3 -c 'import sys; print(sys.executable)')
exec "$py" bench/bench.py "$@"
