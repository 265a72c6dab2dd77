"""Exactly once against at least once, topic to topic: hopper consuming a
topic through a trivial worker and producing each result to a topic, with
-S exactly_once=true (a transaction per batch, committing the results and
the input offsets together) and without, interleaved in the same run on
one broker, as medians of several rounds. The goal is at least half the
at-least-once rate."""
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, HERE)
from harness.kafka import KafkaBroker  # noqa: E402
from kafka import fill  # noqa: E402


def hopper_rate(k, hopper, echo, topic, out, group, n, *eos):
    t0 = time.monotonic()
    p = subprocess.run([hopper, "run", "-s", f"kafka://{k.bootstrap}/{topic}",
                        "-S", f"group={group}", *eos, "-o",
                        f"kafka://{k.bootstrap}/{out}", "-j", "2",
                        "--prefetch", "64", "--", echo],
                       capture_output=True, text=True)
    dt = time.monotonic() - t0
    m = re.search(r"finished: (\d+) done", p.stderr)
    assert p.returncode == 0 and m and int(m[1]) == n, p.stderr[-2000:]
    assert sum(k.topic_offsets(out).values()) >= n
    return n / dt


def run(hopper, hopper_build, rounds, n=None, batch=None):
    """n messages (EOS_MESSAGES, 300,000 unless set); batch: the
    source's batch (EOS_BATCH, its default unless set)."""
    n = n or int(os.environ.get("EOS_MESSAGES", "300000"))
    batch = batch or os.environ.get("EOS_BATCH")
    echo = os.path.join(hopper_build, "bench", "echo_worker")
    eos = ["-S", "exactly_once=true"]
    if batch:
        eos += ["-S", f"batch={batch}"]
    with KafkaBroker(full_jit=True, heap="1g") as k:
        fill(k, "eos-in", n)
        alo, exo = [], []
        for r in range(rounds):
            a, e = f"eos-alo-{r}", f"eos-exo-{r}"
            for t in (a, e):
                k.create_topic(t, partitions=3)
            alo.append(hopper_rate(k, hopper, echo, "eos-in", a,
                                   f"alo-{r}", n))
            exo.append(hopper_rate(k, hopper, echo, "eos-in", e,
                                   f"exo-{r}", n, *eos))
            for t in (a, e):
                k.delete_topic(t)
        h, x = statistics.median(alo), statistics.median(exo)
        print(f"kafka, topic to topic, {n:,} messages  exactly once "
              f"{x:>9,.0f} msgs/s   at least once {h:>9,.0f}   ratio "
              f"{x / h:.2f}  (goal >= 0.50; {' '.join(eos)})")


if __name__ == "__main__":
    run(os.environ.get("HOPPER", "build/hopper"),
        os.environ.get("HOPPER_BUILD", "build"),
        int(os.environ.get("BENCH_ROUNDS", "3")))
