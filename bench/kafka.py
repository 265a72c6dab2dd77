"""The Kafka benchmark: hopper consuming a topic of a million messages
through a trivial worker and producing each result to a topic, against kcat
only consuming the same topic (the ceiling for reading), kcat only
producing the same messages as hopper does, idempotent with acks=all (the
ceiling for writing: the broker shares the machine), and kcat consuming
piped into kcat producing (moving the messages with no worker between and
no acknowledgement after the write), on one broker in the same run; hopper
reading alone (to /dev/null); and hopper's memory over the topic, which the
in-flight bound keeps flat. The broker runs with the JVM's full compiler, as
in production (the tests start it with the first tier only, to start
sooner)."""
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from harness.kafka import KafkaBroker  # noqa: E402


def messages(n):
    return "".join(f"{i}\t{json.dumps({'n': i})}\n" for i in range(n))


def fill(k, topic, n, partitions=3):
    """n keyed JSON messages, written by kcat (the harness's client is
    made for tests, not for millions)."""
    k.create_topic(topic, partitions=partitions)
    k.create_topic(f"{topic}.dead")  # the source wants its dead letters
    subprocess.run(["kcat", "-P", "-b", k.bootstrap, "-t", topic, "-K",
                    "\t", "-X", "linger.ms=50"], input=messages(n),
                   text=True, check=True)
    assert sum(k.topic_offsets(topic).values()) == n


def kcat_write_rate(k, topic, n):
    """kcat producing n messages the way hopper's sink does: idempotent,
    acks=all, linger.ms=5."""
    data = messages(n)
    t0 = time.monotonic()
    subprocess.run(["kcat", "-P", "-b", k.bootstrap, "-t", topic, "-K",
                    "\t", "-X", "enable.idempotence=true", "-X", "acks=all",
                    "-X", "linger.ms=5"], input=data, text=True, check=True)
    return n / (time.monotonic() - t0)


def kcat_rate(k, topic, n, *settings):
    """kcat reading the topic. librdkafka 2.0 stops fetching for a second
    whenever its queue reaches queued.min.messages (100,000 by default), so
    plain kcat reads at anything from 0.6 to 1.1 million a second here;
    with settings of a larger queue it reads at its best."""
    t0 = time.monotonic()
    p = subprocess.run(["kcat", "-C", "-b", k.bootstrap, "-t", topic, "-o",
                        "beginning", "-e", "-q", "-f", "%s\n", *settings],
                       capture_output=True, text=True)
    dt = time.monotonic() - t0
    got = p.stdout.count("\n")
    assert got == n, (got, p.stderr[-500:])
    return n / dt


def kcat_pipe_rate(k, topic, out, n):
    """kcat reading the topic (at its best) piped into kcat producing to
    out as kcat_write_rate does: what moving the messages costs here."""
    t0 = time.monotonic()
    reader = subprocess.Popen(["kcat", "-C", "-b", k.bootstrap, "-t", topic,
                               "-o", "beginning", "-e", "-q", "-K", "\t",
                               "-f", "%k\t%s\n", "-X",
                               "queued.min.messages=1000000"],
                              stdout=subprocess.PIPE)
    subprocess.run(["kcat", "-P", "-b", k.bootstrap, "-t", out, "-K", "\t",
                    "-X", "enable.idempotence=true", "-X", "acks=all", "-X",
                    "linger.ms=5"], stdin=reader.stdout, check=True)
    reader.stdout.close()
    assert reader.wait() == 0
    dt = time.monotonic() - t0
    assert sum(k.topic_offsets(out).values()) == n
    return n / dt


def hopper_rate(k, hopper, echo, topic, out, group, n):
    """out: a topic, or None for reading alone (results to /dev/null)."""
    t0 = time.monotonic()
    sink = f"kafka://{k.bootstrap}/{out}" if out else "jsonl:/dev/null"
    p = subprocess.run([hopper, "run", "-s", f"kafka://{k.bootstrap}/{topic}",
                        "-S", f"group={group}", "-o", sink, "-j", "2",
                        "--prefetch", "64", "--", echo],
                       capture_output=True, text=True)
    dt = time.monotonic() - t0
    m = re.search(r"finished: (\d+) done", p.stderr)
    assert p.returncode == 0 and m and int(m[1]) == n, p.stderr[-2000:]
    return n / dt


def peak_rss(k, hopper, echo, topic, group, n):
    """Runs hopper over the topic; returns (peak, samples) of its RSS, MB.
    The read-ahead is 16 MB here, not its default 64 MB: at about 56 bytes
    a message the default would hold most of this topic, and the run would
    show the read-ahead filling rather than memory staying flat."""
    p = subprocess.Popen([hopper, "run", "-s",
                          f"kafka://{k.bootstrap}/{topic}", "-S",
                          f"group={group}", "-S", "buffer=16M",
                          "-o", "jsonl:/dev/null", "-j", "2",
                          "--prefetch", "64", "--", echo],
                         stderr=subprocess.PIPE, text=True)
    samples = []

    def sample():
        while p.poll() is None:
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            samples.append(int(line.split()[1]) / 1024)
            except OSError:
                break
            time.sleep(0.05)

    t = threading.Thread(target=sample)
    t.start()
    err = p.stderr.read()
    p.wait()
    t.join()
    m = re.search(r"finished: (\d+) done", err)
    assert p.returncode == 0 and m and int(m[1]) == n, err[-2000:]
    return max(samples), samples


def run(hopper, hopper_build, rounds):
    echo = os.path.join(hopper_build, "bench", "echo_worker")
    n = 1_000_000  # long enough that joining the group is a small part
    with KafkaBroker(full_jit=True, heap="1g") as k:
        fill(k, "bench-in", n)
        hs, cs, bs, ws, rs, ps = [], [], [], [], [], []
        for r in range(rounds):
            out, wout = f"bench-out-{r}", f"bench-kcat-{r}"
            pout = f"bench-pipe-{r}"
            for t in (out, wout, pout):
                k.create_topic(t, partitions=3)
            cs.append(kcat_rate(k, "bench-in", n))
            bs.append(kcat_rate(k, "bench-in", n, "-X",
                                "queued.min.messages=1000000"))
            hs.append(hopper_rate(k, hopper, echo, "bench-in", out,
                                  f"bench-{r}", n))
            ws.append(kcat_write_rate(k, wout, n))
            ps.append(kcat_pipe_rate(k, "bench-in", pout, n))
            rs.append(hopper_rate(k, hopper, echo, "bench-in", None,
                                  f"bench-read-{r}", n))
            for t in (out, wout, pout):
                k.delete_topic(t)
        h, c = statistics.median(hs), statistics.median(cs)
        best = statistics.median(bs)
        w, rd = statistics.median(ws), statistics.median(rs)
        pipe = statistics.median(ps)
        print(f"kafka, topic to topic  hopper {h:>9,.0f} msgs/s   "
              f"ceiling (kcat reading) {c:>9,.0f}   ratio {h / c:.2f}  "
              f"(goal >= 0.50)")
        print(f"kafka, topic to topic  hopper {h:>9,.0f} msgs/s   "
              f"kcat producing (acks=all) {w:>9,.0f}   ratio {h / w:.2f}")
        print(f"kafka, topic to topic  hopper {h:>9,.0f} msgs/s   "
              f"kcat reading, queue of 1M {best:>9,.0f}   ratio "
              f"{h / best:.2f}")
        print(f"kafka, topic to topic  hopper {h:>9,.0f} msgs/s   "
              f"kcat reading | kcat producing {pipe:>9,.0f}   ratio "
              f"{h / pipe:.2f}")
        print(f"kafka, reading alone   hopper {rd:>9,.0f} msgs/s   "
              f"ceiling (kcat reading) {c:>9,.0f}   ratio {rd / c:.2f}")
        print(f"kafka, reading alone   hopper {rd:>9,.0f} msgs/s   "
              f"kcat reading, queue of 1M {best:>9,.0f}   ratio "
              f"{rd / best:.2f}")
        peak, samples = peak_rss(k, hopper, echo, "bench-in", "bench-mem", n)
        # Flat: the second half of the run reaches no higher than the first
        # (the read-ahead fills and drains, so memory goes up and down).
        half = len(samples) // 2
        first, second = max(samples[:half]), max(samples[half:])
        print(f"kafka, {n:,} messages   peak RSS {peak:.1f} MB; highest in "
              f"the first half of the run {first:.1f} MB, in the second "
              f"{second:.1f} MB (read-ahead 16 MB)")
