"""hopper's benchmarks: each prints hopper's rate next to a ceiling or a
peer measured in the same run, interleaved, as medians of several rounds.
The machines are shared and noisy: read the ratios, not the rates."""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HOPPER = os.environ["HOPPER"]
BIN = os.path.join(os.environ["HOPPER_BUILD"], "bench")
ECHO = os.path.join(BIN, "echo_worker")
DRIVER = os.path.join(BIN, "driver")
EXEC_ECHO = os.path.join(BIN, "exec_echo")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
tmp = tempfile.mkdtemp(prefix="hopper-bench.")


def items_file(n):
    path = os.path.join(tmp, f"items-{n}.jsonl")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.writelines(f"{i}\n" for i in range(n))
    return path


def hopper_rate(n, *flags, worker=(ECHO,)):
    p = subprocess.run([HOPPER, "run", "-s", f"jsonl:{items_file(n)}",
                        "-o", "jsonl:/dev/null", *flags, "--", *worker],
                       capture_output=True, text=True, check=True)
    m = re.search(r"finished: (\d+) done.*\(([\d.]+) items/s\)", p.stderr)
    assert m and int(m[1]) == n, p.stderr
    return float(m[2])


def driver_rate(n, window):
    out = subprocess.run([DRIVER, str(n), str(window), ECHO],
                         capture_output=True, text=True, check=True).stdout
    return float(out)


def timed(cmd, stdin_path):
    with open(stdin_path) as f:
        t0 = time.monotonic()
        subprocess.run(cmd, stdin=f, stdout=subprocess.DEVNULL, check=True)
        return time.monotonic() - t0


def median_pair(a, b):
    ra, rb = [], []
    for _ in range(ROUNDS):
        ra.append(a())
        rb.append(b())
    return statistics.median(ra), statistics.median(rb)


def stream(window, n, goal):
    h, c = median_pair(lambda: hopper_rate(n, "-j", "1", "--prefetch",
                                           str(window)),
                       lambda: driver_rate(n, window))
    print(f"stream, prefetch {window:<3} hopper {h:>10,.0f} items/s   "
          f"ceiling (C driver) {c:>10,.0f}   ratio {h / c:.2f}  "
          f"(goal >= {goal:.2f})")


def exec_mode(n, n_parallel):
    items = items_file(n)
    ceiling = os.path.join(BIN, "spawn_ceiling")
    h, x, c = [], [], []
    for _ in range(ROUNDS):
        h.append(hopper_rate(n, "-m", "exec", "-j", "2", worker=(EXEC_ECHO,)))
        x.append(n / timed(["xargs", "-P2", "-n1", EXEC_ECHO], items))
        c.append(float(subprocess.run([ceiling, str(n), "2", EXEC_ECHO],
                                      capture_output=True, text=True,
                                      check=True).stdout))
    h, x, c = (statistics.median(v) for v in (h, x, c))
    line = (f"exec, 2 at a time    hopper {h:>10,.0f} items/s   "
            f"xargs -P2 {x:>10,.0f}            ratio {h / x:.2f}  "
            f"(goal >= 1.50)\n"
            f"                      two bare spawner threads {c:,.0f}/s: "
            f"hopper at {h / c:.2f} of that ceiling, xargs at {x / c:.2f}")
    if shutil.which("parallel"):
        small = items_file(n_parallel)
        par = statistics.median(
            n_parallel / timed(["parallel", "-j2", "--will-cite", EXEC_ECHO],
                               small) for _ in range(3))
        line += f"\n                      GNU parallel -j2 {par:,.0f} items/s" \
                f"   hopper/parallel {h / par:.1f}x"
    print(line)


def memory(n):
    items = items_file(n)
    p = subprocess.Popen([HOPPER, "run", "-s", f"jsonl:{items}", "-o",
                          "jsonl:/dev/null", "-j", "1", "--prefetch", "64",
                          "--", ECHO], stderr=subprocess.PIPE, text=True)
    samples = []
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                rss = re.search(r"VmRSS:\s+(\d+)", f.read())
            if rss:
                samples.append(int(rss[1]) / 1024)
        except OSError:
            pass
        time.sleep(0.05)
    err = p.stderr.read()
    assert p.returncode == 0 and f"finished: {n} done" in err, err
    mid = samples[len(samples) // 10: max(len(samples) * 9 // 10, 1)] or samples
    print(f"memory, {n:,} items   peak RSS {max(samples):.1f} MB (goal < 20); "
          f"from 10% to 90% of the run {min(mid):.1f}..{max(mid):.1f} MB "
          f"over {len(samples)} samples")


def main():
    which = sys.argv[1:] or ["stream", "exec", "memory"]
    print(f"hopper benchmarks, medians of {ROUNDS} rounds, "
          f"{os.cpu_count()} CPUs")
    if "stream" in which:
        stream(1, 50_000, 0.70)
        stream(64, 500_000, 0.50)
    if "exec" in which:
        exec_mode(1000, 200)
    if "memory" in which:
        memory(1_000_000)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
