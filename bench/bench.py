"""hopper's benchmarks: each prints hopper's rate next to a ceiling or a
peer measured in the same run, interleaved, as medians of several rounds.
The machines are shared and noisy: read the ratios, not the rates.

usage: bench.py [stream] [exec] [memory] [thumbnails] [postgres] [kafka]
                [kafka_eos] [autoscale] [sheets] [stages] [exec_source]
                [console]
(default: all; BENCH_ROUNDS rounds, 5 unless set, 3 for stages)"""
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
    """Timed from outside for all three, process start-up included, as xargs
    is. Each round runs them back to back, and the ratios are medians of the
    rounds' own ratios: a shared machine's load changes between rounds more
    than within one."""
    items = items_file(n)
    ceiling = os.path.join(BIN, "spawn_ceiling")
    hopper = [HOPPER, "run", "-s", f"jsonl:{items}", "-o", "jsonl:/dev/null",
              "-m", "exec", "-j", "2", "--", EXEC_ECHO]
    h, x, c = [], [], []
    for _ in range(ROUNDS):
        t0 = time.monotonic()
        p = subprocess.run(hopper, capture_output=True, text=True, check=True)
        h.append(n / (time.monotonic() - t0))
        assert f"finished: {n} done" in p.stderr, p.stderr
        x.append(n / timed(["xargs", "-P2", "-n1", EXEC_ECHO], items))
        c.append(float(subprocess.run([ceiling, str(n), "2", EXEC_ECHO],
                                      capture_output=True, text=True,
                                      check=True).stdout))
    hx = statistics.median(a / b for a, b in zip(h, x))
    hc = statistics.median(a / b for a, b in zip(h, c))
    xc = statistics.median(a / b for a, b in zip(x, c))
    h, x, c = (statistics.median(v) for v in (h, x, c))
    line = (f"exec, 2 at a time    hopper {h:>10,.0f} items/s   "
            f"xargs -P2 {x:>10,.0f}            ratio {hx:.2f}  "
            f"(goal >= 1.50)\n"
            f"                      two bare spawner threads {c:,.0f}/s: "
            f"hopper at {hc:.2f} of that ceiling, xargs at {xc:.2f}")
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


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THUMB = os.path.join(os.environ["HOPPER_BUILD"], "hopper-thumbnail")
FF = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]


def thumb_corpus(n):
    """n paths to 720p H.264 videos, 10 s, a keyframe every 2 s (as web
    video is usually cut): six distinct encodes, linked under n names.
    Kept between runs."""
    base = os.path.join(ROOT, "build", "bench-corpus")
    os.makedirs(base, exist_ok=True)
    sources = ["testsrc2", "smptehdbars", "rgbtestsrc", "testsrc",
               "pal100bars", "yuvtestsrc"]
    for k, src in enumerate(sources):
        out = os.path.join(base, f"base{k}.mp4")
        if not os.path.exists(out):
            subprocess.run(FF + ["-f", "lavfi", "-i",
                                 f"{src}=size=1280x720:rate=25", "-t", "10",
                                 "-c:v", "libx264", "-preset", "veryfast",
                                 "-g", "50", "-pix_fmt", "yuv420p",
                                 out + ".tmp.mp4"], check=True)
            os.rename(out + ".tmp.mp4", out)
    paths = []
    for i in range(n):
        link = os.path.join(tmp, f"video{i:03d}.mp4")
        os.link(os.path.join(base, f"base{i % len(sources)}.mp4"), link)
        paths.append(link)
    return paths


def thumbnails(n=60, pos=5.5):
    paths = thumb_corpus(n)
    lst = os.path.join(tmp, "videos.txt")
    with open(lst, "w") as f:
        f.writelines(p + "\n" for p in paths)
    jl = os.path.join(tmp, "videos.jsonl")
    with open(jl, "w") as f:
        f.writelines(f'"{p}"\n' for p in paths)
    decode = os.path.join(BIN, "decode_loop")
    rounds = max(1, min(ROUNDS, 3))
    for seek, goal in (("accurate", 3), ("keyframe", 6)):
        h, x, d = [], [], []
        for r in range(rounds):
            out = os.path.join(tmp, f"thumbs-{seek}-{r}")
            p = subprocess.run(
                [HOPPER, "run", "-s", f"jsonl:{jl}", "-o", "jsonl:/dev/null",
                 "-j", "2", "--", THUMB, "--out", out, "--width", "320",
                 "--position", str(pos), "--seek", seek],
                capture_output=True, text=True, check=True)
            m = re.search(r"finished: (\d+) done.*\(([\d.]+) items/s\)",
                          p.stderr)
            assert m and int(m[1]) == n, p.stderr
            h.append(float(m[2]))
            env = dict(os.environ, THUMB_OUT=out + "-cli", THUMB_POS=str(pos),
                       THUMB_SEEK=seek, THUMB_WIDTH="320")
            t0 = time.monotonic()
            subprocess.run(["xargs", "-P2", "-n1", "sh",
                            os.path.join(ROOT, "worker/examples/sh/"
                                               "thumbnail.sh")],
                           stdin=open(lst), env=env, check=True,
                           stdout=subprocess.DEVNULL)
            x.append(n / (time.monotonic() - t0))
            halves = [paths[0::2], paths[1::2]]
            procs = [subprocess.Popen([decode, seek, str(pos), *half],
                                      stdout=subprocess.PIPE, text=True)
                     for half in halves]
            secs = max(float(pr.communicate()[0]) for pr in procs)
            d.append(n / secs)
        h, x, d = (statistics.median(v) for v in (h, x, d))
        print(f"thumbnails, {seek:<8} hopper {h:>6.1f}/s   ffmpeg CLI via "
              f"xargs -P2 {x:>5.1f}/s   ratio {h / x:>4.1f}  (goal >= {goal})")
        print(f"                      bare libavcodec loop, same seeks, 2 "
              f"processes {d:.1f}/s: hopper at {h / d:.2f} of it, so decoding "
              f"is ~{min(100, 100 * h / d):.0f}% of hopper's time")


def main():
    which = sys.argv[1:] or ["stream", "exec", "memory", "thumbnails",
                             "postgres", "kafka", "kafka_eos", "autoscale",
                             "sheets",
                             "stages", "gather", "state", "exec_source",
                             "console"]
    print(f"hopper benchmarks, medians of {ROUNDS} rounds, "
          f"{os.cpu_count()} CPUs")
    if "stream" in which:
        stream(1, 50_000, 0.70)
        stream(64, 500_000, 0.50)
    if "exec" in which:
        exec_mode(1000, 200)
    if "memory" in which:
        memory(1_000_000)
    if "thumbnails" in which:
        thumbnails()
    if "postgres" in which:
        import pg
        pg.run(HOPPER, os.environ["HOPPER_BUILD"], ROUNDS)
    if "kafka" in which:
        import kafka
        kafka.run(HOPPER, os.environ["HOPPER_BUILD"], ROUNDS)
    if "kafka_eos" in which:
        import kafka_eos
        kafka_eos.run(HOPPER, os.environ["HOPPER_BUILD"], ROUNDS)
    if "autoscale" in which:
        import autoscale
        autoscale.run(HOPPER, os.environ["HOPPER_BUILD"], ROUNDS)
    if "sheets" in which:
        import sheets
        sheets.run(HOPPER, os.environ["HOPPER_BUILD"], ROUNDS, tmp)
    if "stages" in which:
        import stages
        stages.run(HOPPER, os.environ["HOPPER_BUILD"],
                   int(os.environ.get("BENCH_ROUNDS", "3")), tmp)
    if "gather" in which:
        import gather
        gather.run(HOPPER, os.environ["HOPPER_BUILD"], ROUNDS, tmp)
    if "state" in which:
        import state
        state.run(HOPPER, os.environ["HOPPER_BUILD"], ROUNDS, tmp)
    if "exec_source" in which:
        import exec_source
        exec_source.run(HOPPER, os.environ["HOPPER_BUILD"], ROUNDS, tmp)
    if "console" in which:
        import console
        console.run(HOPPER, os.environ["HOPPER_BUILD"], ROUNDS, tmp)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
