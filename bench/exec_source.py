"""The exec source: 200,000 items from a Python program reading a file
(sources/examples/file_source.py) against the same file through the jsonl
source, written in C, with the same echo worker (bench/echo_worker.c) at
prefetch 64 and the jsonl sink to /dev/null.

Rates are timed from outside, process start-up included. Each round runs
both once, back to back; the ratio is the median of the rounds' own ratios
(a shared machine's load changes between rounds more than within one).
The goal is 0.5: a source in a scripting language costs hopper at most half
its speed on the lightest possible work. When `go` is on PATH the Go example
(sources/examples/go/file_source) is measured too, in the same rounds: it
shows how much of the gap is the Python program's own time.

    python3 bench/exec_source.py              (or: bench/run.sh exec_source)
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 200_000
GOAL = 0.5


def rate(hopper, source, echo, n):
    t0 = time.monotonic()
    p = subprocess.run([hopper, "run", "-s", source, "-o", "jsonl:/dev/null",
                        "-j", "1", "--prefetch", "64", "--", echo],
                       capture_output=True, text=True, timeout=600)
    took = time.monotonic() - t0
    m = re.search(r"finished: (\d+) done", p.stderr)
    assert p.returncode == 0 and m and int(m[1]) == n, p.stderr[-2000:]
    return n / took


def run(hopper, build, rounds, tmp):
    echo = os.path.join(build, "bench", "echo_worker")
    items = os.path.join(tmp, f"exec-items-{N}.jsonl")
    with open(items, "w") as f:
        f.writelines(f'{{"n":{i}}}\n' for i in range(N))
    py = sys.executable
    example = os.path.join(ROOT, "sources", "examples", "file_source.py")
    exec_spec = f"exec:{py} {example} {items}"
    go_spec = go_example(tmp)
    ex, jl, gx = [], [], []
    for _ in range(rounds):
        ex.append(rate(hopper, exec_spec, echo, N))
        jl.append(rate(hopper, f"jsonl:{items}", echo, N))
        if go_spec:
            gx.append(rate(hopper, f"{go_spec} {items}", echo, N))
    ratio = statistics.median(a / b for a, b in zip(ex, jl))
    print(f"exec source, prefetch 64   Python file source "
          f"{statistics.median(ex):>9,.0f} items/s   jsonl source (C) "
          f"{statistics.median(jl):>9,.0f}   ratio {ratio:.2f}  "
          f"(goal >= {GOAL:.2f})")
    if gx:
        ratio = statistics.median(a / b for a, b in zip(gx, jl))
        print(f"                           Go file source     "
              f"{statistics.median(gx):>9,.0f} items/s"
              f"{'':35}ratio {ratio:.2f}")


def go_example(tmp):
    """exec:PATH of the Go example built into tmp, or None without Go."""
    go = shutil.which("go")
    if not go:
        return None
    exe = os.path.join(tmp, "go_file_source")
    env = dict(os.environ, CGO_ENABLED="0", GOTOOLCHAIN="local",
               GOFLAGS="-buildvcs=false")
    subprocess.run([go, "build", "-o", exe, "."], check=True, env=env,
                   cwd=os.path.join(ROOT, "sources", "examples", "go",
                                    "file_source"))
    return f"exec:{exe}"


if __name__ == "__main__":
    build = os.environ.get("HOPPER_BUILD", os.path.join(ROOT, "build"))
    with tempfile.TemporaryDirectory(prefix="hopper-bench.") as d:
        run(os.environ.get("HOPPER", os.path.join(build, "hopper")), build,
            int(os.environ.get("BENCH_ROUNDS", "5")), d)
