"""The autoscaler, live: a burst into a watched folder, scaling to zero and
back, and saturation (a CPU-bound worker holds below max, an I/O-bound one
goes to max). Each run writes --trace, a CSV row every 250 ms, and the
assertions read it. These runs share the machine with whatever else runs,
so they assert what the scaler does, not how fast: its timing and the
levels it settles at are in tests/unit/test_scaler.c, on a fake clock."""
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


def test_burst_scales_up_and_back_to_min_after_the_window(tmp):
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
                 timeout=120, what="500 results")
        # After the window, back to min.
        wait_for(lambda: trace(tr)[-1]["desired"] == 1
                 and trace(tr)[-1]["workers"] == 1, timeout=60,
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
    # Up because of the burst; the second within which it happens is the
    # unit test's (burst_scales_up_within_a_second_then_back_after_window).
    assert up["t"] >= first["t"], rows[:20]
    assert 4 <= peak <= 8
    assert max(r["desired"] for r in rows) <= 8
    assert min(r["desired"] for r in rows) >= 1
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
                 timeout=60, what="the first result")
        latency = time.monotonic() - t0
        wait_for(lambda: any(r["workers"] == 1 for r in trace(tr))
                 and trace(tr)[-1]["workers"] == 0, timeout=60,
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
    assert max(r["workers"] for r in trace(tr)) == 1
    # The decisions and the cold start are in /metrics too.
    assert 'hopper_scale_events_total{direction="up"} 1' in metrics
    assert 'hopper_scale_events_total{direction="down"} 1' in metrics
    assert "hopper_workers_desired 0" in metrics
    cold = float(re.search(r"^hopper_cold_start_seconds (\S+)", metrics,
                            re.M)[1])
    assert cold > 0
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"],
                               input=metrics, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def saturate(tmp, max_workers, until, what, **env):
    """A deep backlog for BURN workers autoscaled from 1 to max_workers;
    stops the run once until(rows of the trace, stderr) holds."""
    inbox, out, tr = tmp / "in", tmp / "out", tmp / "trace.csv"
    inbox.mkdir()
    drop(inbox, 4000)
    p = start("run", "-s", f"dir:{inbox}", "-o", f"dir:{out}", "--watch",
              "--min-workers", 1, "--max-workers", max_workers,
              "--trace", tr, "--", *BURN, cwd=tmp, env=clean_env(**env))
    try:
        wait_for(lambda: tr.exists() and until(trace(tr), stderr_of(p)),
                 timeout=120, what=what)
    finally:
        err = stop(p)
    return trace(tr), err


def test_cpu_bound_worker_holds_below_max(tmp):
    """A CPU-bound worker with 4,000 items waiting and max 16: the scaler
    finds that a step up added little, holds at a ceiling below max, and
    never asks for more than that ceiling afterwards. Where it settles on
    an idle machine, and beside other jobs, is the unit test's
    (cpu_bound_settles_near_the_cores and ..._beside_other_jobs): here the
    machine's other load is whatever it is."""
    cpus = len(os.sched_getaffinity(0))
    held = {}

    def holding(rows, err):
        # The ceiling, then the pool at it and four more rows (a second)
        # in which nothing asks for more.
        m = re.findall(r"saturated: .*: holding at (\d+)", err)
        if not m:
            return False
        if "at" not in held:
            held.update(at=int(m[-1]), rows=len(rows))
        return rows[-1]["workers"] <= held["at"] and \
            len(rows) >= held["rows"] + 4
    rows, err = saturate(tmp, 16, holding, "a ceiling, held", BURN_MS=30)
    ceilings = [int(c) for c in
                re.findall(r"saturated: .*: holding at (\d+)", err)]
    peak = max(r["desired"] for r in rows)
    print(f"cpu-bound on {cpus} CPUs: held at {ceilings}, peak {peak:.0f}")
    assert ceilings and max(ceilings) < 16, err
    # Never to max, and no step up past the ceiling once it was found.
    assert peak < 16, err
    after = err[err.index("saturated:"):]
    ups = [int(b) for a, b in re.findall(r"scale (\d+) -> (\d+) workers",
                                         after) if int(b) > int(a)]
    assert all(u <= max(ceilings) for u in ups), after
    assert rows[-1]["desired"] <= max(ceilings), rows[-8:]


def test_io_bound_worker_goes_to_max(tmp):
    rows, err = saturate(
        tmp, 16, lambda rows, _: any(r["workers"] == 16 for r in rows),
        "16 workers running", SLEEP_MS=100)
    peak = max(r["desired"] for r in rows)
    print(f"io-bound: peak {peak:.0f}")
    assert peak == 16, err
    assert "saturated:" not in err, err
