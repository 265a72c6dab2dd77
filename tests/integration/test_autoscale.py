"""The autoscaler, live: a burst into a watched folder, scaling to zero and
back, and saturation (a CPU-bound worker stops near the cores, an I/O-bound
one goes to max). Each run writes --trace, a CSV row every 250 ms, and the
assertions read it."""
import csv
import os
import re
import shutil
import subprocess
import time
import urllib.request

from conftest import PY, WORKERS, clean_env, start, stderr_of, wait_for

BURN = [PY, str(WORKERS / "burn.py")]


def trace(path):
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()}
                for row in csv.DictReader(f)]


def drop(inbox, n, prefix="f"):
    for i in range(n):
        tmp = inbox / f".{prefix}{i}.tmp"
        tmp.write_text('{"n": %d}' % i)
        os.rename(tmp, inbox / f"{prefix}{i:04d}.json")


def stop(p):
    p.terminate()
    assert p.wait(timeout=30) == 0
    return stderr_of(p)


def test_burst_scales_up_within_a_second_and_back_after_window(tmp):
    inbox, out, tr = tmp / "in", tmp / "out", tmp / "trace.csv"
    inbox.mkdir()
    p = start("run", "-s", f"dir:{inbox}", "-o", f"dir:{out}", "--watch",
              "--min-workers", 1, "--max-workers", 8, "--scale-window", "4s",
              "--drain-target", "3s", "--trace", tr, "--", *BURN,
              cwd=tmp, env=clean_env(SLEEP_MS=50))
    try:
        wait_for(lambda: tr.exists() and len(trace(tr)) >= 4,
                 what="trace rows")
        drop(inbox, 500)
        wait_for(lambda: out.exists() and len(os.listdir(out)) >= 500,
                 timeout=60, what="500 results")
        # After the window, back to min.
        wait_for(lambda: trace(tr)[-1]["desired"] == 1
                 and trace(tr)[-1]["workers"] == 1, timeout=15,
                 what="back to one worker")
    finally:
        err = stop(p)
    rows = trace(tr)
    first = next(r for r in rows if r["depth"] > 0)
    up = next(r for r in rows if r["workers"] > 1)
    peak = max(r["workers"] for r in rows)
    drained = next(r for r in rows if r["done"] >= 500)
    down = next(r for r in rows if r["t"] > drained["t"]
                and r["workers"] == 1)
    print(f"burst: up {up['t'] - first['t']:.2f} s after the depth rose, "
          f"peak {peak:.0f}, drained at +{drained['t'] - first['t']:.1f} s, "
          f"back to 1 at +{down['t'] - drained['t']:.1f} s after")
    assert up["t"] - first["t"] <= 1.5, rows[:20]
    assert 4 <= peak <= 8
    assert max(r["desired"] for r in rows) <= 8
    assert min(r["desired"] for r in rows) >= 1
    # Not before the window: the demand stays lower 4 s first.
    assert down["t"] - drained["t"] <= 4 + 3
    assert re.search(r"finished: 500 done, 0 dead, 0 retried", err), err
    # Scaling down retired only idle workers: no item was cut short.
    assert "while handling the item" not in err, err
    assert "scale 1 -> " in err and " -> 1 workers" in err


def test_scales_to_zero_and_the_first_item_starts_a_worker(tmp):
    inbox, out, tr = tmp / "in", tmp / "out", tmp / "trace.csv"
    inbox.mkdir()
    p = start("run", "-s", f"dir:{inbox}", "-o", f"dir:{out}", "--watch",
              "--min-workers", 0, "--max-workers", 2, "--scale-window", "2s",
              "--trace", tr, "--listen", "127.0.0.1:0", "--", *BURN,
              cwd=tmp, env=clean_env())
    try:
        wait_for(lambda: tr.exists() and len(trace(tr)) >= 4,
                 what="trace rows")
        assert all(r["workers"] == 0 for r in trace(tr))
        t0 = time.monotonic()
        drop(inbox, 1)
        wait_for(lambda: out.exists() and len(os.listdir(out)) == 1,
                 timeout=10, what="the first result")
        latency = time.monotonic() - t0
        wait_for(lambda: any(r["workers"] == 1 for r in trace(tr))
                 and trace(tr)[-1]["workers"] == 0, timeout=10,
                 what="one worker, then back to zero")
        port = re.search(r"on http://127\.0\.0\.1:(\d+)", stderr_of(p))[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
            metrics = r.read().decode()
    finally:
        err = stop(p)
    m = re.search(r"cold start: (\d+) ms", err)
    assert m, err
    print(f"cold start: {m.group(1)} ms logged, {latency * 1000:.0f} ms "
          "from the file to its result")
    assert latency < 3
    assert max(r["workers"] for r in trace(tr)) == 1
    # The decisions and the cold start are in /metrics too.
    assert 'hopper_scale_events_total{direction="up"} 1' in metrics
    assert 'hopper_scale_events_total{direction="down"} 1' in metrics
    assert "hopper_workers_desired 0" in metrics
    cold = float(re.search(r"^hopper_cold_start_seconds (\S+)", metrics,
                            re.M)[1])
    assert 0 < cold < 3
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"],
                               input=metrics, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def saturate(tmp, max_workers, seconds, **env):
    inbox, out, tr = tmp / "in", tmp / "out", tmp / "trace.csv"
    inbox.mkdir()
    drop(inbox, 4000)
    p = start("run", "-s", f"dir:{inbox}", "-o", f"dir:{out}", "--watch",
              "--min-workers", 1, "--max-workers", max_workers,
              "--trace", tr, "--", *BURN, cwd=tmp, env=clean_env(**env))
    try:
        time.sleep(seconds)
    finally:
        err = stop(p)
    return trace(tr), err


def test_cpu_bound_worker_settles_near_the_cores(tmp):
    cpus = len(os.sched_getaffinity(0))
    rows, err = saturate(tmp, 16, 14, BURN_MS=30)
    late = sorted(r["desired"] for r in rows if r["t"] > 8)
    settled = late[len(late) // 2]
    print(f"cpu-bound on {cpus} CPUs: settled at {settled:.0f}, "
          f"peak {max(r['workers'] for r in rows):.0f}")
    assert "saturated:" in err, err
    assert settled <= cpus + 1
    assert max(r["desired"] for r in rows) <= 2 * cpus + 2


def test_io_bound_worker_goes_to_max(tmp):
    rows, err = saturate(tmp, 16, 14, SLEEP_MS=100)
    peak = max(r["desired"] for r in rows)
    print(f"io-bound: peak {peak:.0f}")
    assert peak == 16, err
    # Before the SIGTERM at the end, all 16 were running.
    assert max(r["workers"] for r in rows if r["t"] > 8) == 16
