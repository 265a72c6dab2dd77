"""The autoscaling benchmark: bursts of files into a watched folder for a
worker that takes 50 ms an item, run two ways in the same run: autoscaled
(1 to 8 workers) and a fixed pool of 8 (the ceiling for draining). Prints
how fast the autoscaled pool reacts, how long it takes to drain each burst
against the fixed pool, and how many worker-seconds each spent, and plots the autoscaled run's queue depth and workers over time
(docs/autoscale.png, with gnuplot)."""
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "..", "tests", "integration", "workers",
                      "burn.py")
BURSTS = ((2.0, 400), (22.0, 800))  # (seconds into the run, files)
LENGTH = 60.0


def one(hopper, tmp, flags):
    inbox, out, tr = (os.path.join(tmp, d) for d in ("in", "out",
                                                      "trace.csv"))
    for d in (inbox, out):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    env = dict(os.environ, SLEEP_MS="50")
    p = subprocess.Popen([hopper, "run", "-s", f"dir:{inbox}", "-o",
                          f"dir:{out}", "--watch", "--trace", tr, *flags,
                          "--", sys.executable, WORKER],
                         stderr=subprocess.DEVNULL, env=env)
    t0 = time.monotonic()
    n = 0
    try:
        for at, count in BURSTS:
            time.sleep(max(0, at - (time.monotonic() - t0)))
            for i in range(count):
                name = f"f{n:05d}.json"
                tmp = os.path.join(inbox, "." + name)
                with open(tmp, "w") as f:
                    f.write("{}")
                os.rename(tmp, os.path.join(inbox, name))
                n += 1
        time.sleep(max(0, LENGTH - (time.monotonic() - t0)))
    finally:
        p.terminate()
        p.wait(timeout=60)
    with open(tr) as f:
        rows = [{k: float(v) for k, v in r.items()}
                for r in csv.DictReader(f)]
    assert rows[-1]["done"] == n, (rows[-1], n)
    return rows


def figures(rows):
    """Per burst: seconds from the depth rising to more workers, and to
    the burst drained; and worker-seconds over the run."""
    react, drain = [], []
    total = 0
    for at, count in BURSTS:
        total += count
        start = next(r for r in rows if r["t"] >= at and r["depth"] > 0)
        up = next((r for r in rows if r["t"] >= start["t"]
                   and r["desired"] > rows[0]["desired"]), None)
        done = next(r for r in rows if r["done"] >= total)
        react.append(up["t"] - start["t"] if up else float("nan"))
        drain.append(done["t"] - start["t"])
    ws = sum(r["workers"] for r in rows) * 0.25
    return react, drain, ws


def plot(rows, png):
    if not shutil.which("gnuplot"):
        print("  (no gnuplot: apt-get install gnuplot-nox for the picture)")
        return
    data = png + ".dat"
    with open(data, "w") as f:
        for r in rows:
            f.write(f"{r['t']} {r['depth']} {r['workers']}\n")
    script = f"""
set terminal pngcairo size 900,420 font ",11"
set output "{png}"
set title "hopper autoscaling: bursts of files for a 50 ms worker"
set xlabel "seconds"
set ylabel "items waiting"
set y2label "workers"
set ytics nomirror
set y2tics
set y2range [0:9]
set key top right
set grid
plot "{data}" using 1:2 with lines lw 2 title "queue depth", \\
     "{data}" using 1:3 axes x1y2 with steps lw 2 title "workers"
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    os.unlink(data)
    print(f"  plot: {os.path.relpath(png)}")


def run(hopper, build, rounds):
    tmp = tempfile.mkdtemp(prefix="hopper-bench-scale-")
    runs = {"auto": [], "fixed8": []}
    flags = {"auto": ["--min-workers", "1", "--max-workers", "8",
                      "--scale-window", "10s"],
             "fixed8": ["-j", "8"]}
    rows = None
    for _ in range(max(1, rounds)):
        for name in runs:
            r = one(hopper, tmp, flags[name])
            runs[name].append(figures(r))
            if name == "auto":
                rows = r
    shutil.rmtree(tmp)

    def med(name, k, i=None):
        vals = [f[k][i] if i is not None else f[k] for f in runs[name]]
        return statistics.median(vals)

    for i, (at, count) in enumerate(BURSTS):
        a, f8 = med("auto", 1, i), med("fixed8", 1, i)
        up = med("auto", 0, i)
        up = f"{up:.2f} s" if up > 0 else "at the first tick (250 ms)"
        print(f"autoscale, burst of {count:>4} x 50 ms: workers up {up} "
              f"after the depth rose; drained in "
              f"{a:4.1f} s vs {f8:4.1f} s with 8 fixed workers (ratio "
              f"{f8 / a:.2f}; {count * 0.05:.0f} s of work alone)")
    a, f8 = med("auto", 2), med("fixed8", 2)
    print(f"autoscale, worker-seconds over {LENGTH:.0f} s: {a:.0f} vs "
          f"{f8:.0f} with 8 fixed ({a / f8:.2f} of it)")
    plot(rows, os.path.join(HERE, "..", "docs", "autoscale.png"))
