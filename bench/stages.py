"""Stages: a chain of three echo workers in one hopper run, against the same
items through one stage and through Benthos v4.27.0 (the last MIT release)
with three `subprocess` processors in a row; and a splitter's memory.

The worker is the same binary on both sides, bench/echo_worker.c: it reads
a line, finds {"id":"...", answers {"id":"...","ok":true,"result":null}
and flushes. Benthos's `subprocess` writes each message as a line and reads
one line back, so Benthos is given hopper's own envelopes as its messages
({"id":"7","attempt":1,"payload":7}, as hopper writes them to a worker):
the first worker's answer, which still starts with the id, is the second's
message, and so on. What differs: hopper writes a fresh envelope to each
stage (the previous answer's result as the payload) and checks every
answer; Benthos passes the raw line on. Both write every output to a jsonl
file, and every run's lines are counted.

At prefetch 64 the chain is also run with bench/echo_batch.c, the same
answers written for all the lines one read gave, with one write: with 64
items queued, echo_worker's one write per answer is most of the run's CPU.
At prefetch 1 (and in Benthos, which sends one message at a time) the two
workers do the same, so the comparison with Benthos keeps echo_worker.

Benthos keeps one worker per processor and hands it one message at a time;
`pipeline.threads` sets how many messages are in the pipeline at once. It
is measured at 1 (lock-step, as hopper at prefetch 1) and at 8 (more than
4 gains nothing on two CPUs here), and the goals are read against the
faster. hopper runs one worker per stage, at prefetch 1 and 64.

The bare chain (bench/chain_floor.c) is the least any coordinator can do
with the same three workers at one item in flight each: one write and one
read per item per stage, nothing parsed but the id, nothing checked or
acknowledged. Its figures bound what hopper at prefetch 1 can reach here.

Rates are timed from outside, process start-up included. CPU time is user
+ system of the whole process tree (the coordinator and its reaped workers,
from wait4), divided by the items. Each round runs every configuration
once; the figures are medians of the rounds, the ratios medians of the
rounds' own ratios.

The splitter: one item whose worker emits 1,000,000 children, each through
a second stage (the echo worker) to a jsonl file; the coordinator's peak
resident memory (VmHWM, sampled) and the largest of the process tree (from
wait4) against the goal of 50 MB.

Benthos is built from the Go module proxy (bench/benthos: a main that
links only the `io` and `pure` components) into build/bench/benthos, once,
with the `go` on PATH; without Go its lines are left out."""
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENTHOS_SRC = os.path.join(ROOT, "bench", "benthos")
N_PEER = 50_000          # items per run against Benthos (lock-step: ~7 s)
N_CHAIN = 500_000        # items per run at prefetch 64
N_CHILDREN = 1_000_000   # the splitter's children
BENTHOS_THREADS = (1, 8)
LIMIT = 300              # seconds: a run still going then has hung


def note(msg):
    print(f"stages: {msg}", file=sys.stderr, flush=True)


def benthos_binary(build):
    """build/bench/benthos, built when missing or older than its sources;
    None (with a message) when Go is missing or the build fails."""
    path = os.path.join(build, "bench", "benthos")
    srcs = [os.path.join(BENTHOS_SRC, f) for f in ("main.go", "go.mod",
                                                   "go.sum")]
    if os.path.exists(path) and os.path.getmtime(path) >= max(
            os.path.getmtime(s) for s in srcs):
        return path
    go = shutil.which("go")
    if not go:
        print("stages: Benthos left out: `go` is not on PATH (Go 1.21 or "
              "newer builds it from the Go module proxy; "
              "https://go.dev/doc/install)")
        return None
    note(f"building Benthos v4.27.0 into {path} (once; a minute or two)")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    err = ""
    # Go 1.23 and later refuse the linkname pulls of some of Benthos's
    # dependencies unless told not to check; older linkers lack the flag.
    for extra in ([], ["-ldflags=-checklinkname=0"]):
        p = subprocess.run([go, "build", "-mod=readonly", "-trimpath",
                            "-buildvcs=false", *extra, "-o", path + ".tmp",
                            "."],
                           cwd=BENTHOS_SRC, capture_output=True, text=True)
        if p.returncode == 0:
            os.rename(path + ".tmp", path)
            return path
        err = p.stderr.strip()
    print("stages: Benthos left out: it did not build:\n" + err)
    return None


def run_tree(cmd, err_path, sample=False):
    """Runs cmd to its end; returns (wall s, CPU s of the tree, wait4's
    ru_maxrss in MB, the largest VmHWM sampled in MB or None)."""
    hwm = [None]
    with open(err_path, "w") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    timer = threading.Timer(LIMIT, os.kill, (p.pid, signal.SIGKILL))
    timer.start()
    try:
        if sample:
            while True:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                try:
                    with open(f"/proc/{p.pid}/status") as f:
                        m = re.search(r"VmHWM:\s+(\d+)", f.read())
                    if m:
                        hwm[0] = max(hwm[0] or 0, int(m[1]) / 1024)
                except OSError:
                    pass
                time.sleep(0.01)
        else:
            _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
    finally:
        timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        with open(err_path) as f:
            raise RuntimeError(f"{cmd[0]} exited {p.returncode}:\n"
                               f"{f.read()[-3000:]}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, hwm[0]


def count_lines(path):
    n = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                return n
            n += block.count(b"\n")


class Bench:
    def __init__(self, hopper, build, tmp):
        self.hopper = hopper
        self.echo = os.path.join(build, "bench", "echo_worker")
        self.echo_batch = os.path.join(build, "bench", "echo_batch")
        self.floor = os.path.join(build, "bench", "chain_floor")
        self.split = os.path.join(build, "bench", "split_worker")
        self.tmp = tmp
        self.out = os.path.join(tmp, "stages-out.jsonl")
        self.err = os.path.join(tmp, "stages-err.txt")

    def items(self, n):
        """The same n items for both: numbers for hopper's jsonl source,
        hopper's envelopes of them for Benthos."""
        plain = os.path.join(self.tmp, f"stages-{n}.jsonl")
        env = os.path.join(self.tmp, f"stages-{n}-envelopes.jsonl")
        if not os.path.exists(plain):
            with open(plain, "w") as f:
                f.writelines(f"{i}\n" for i in range(n))
            with open(env, "w") as f:
                f.writelines(f'{{"id":"{i}","attempt":1,"payload":{i}}}\n'
                             for i in range(n))
        return plain, env

    def measured(self, cmd, n):
        """(items/s, CPU us per item) of one run that must write n lines."""
        if os.path.exists(self.out):
            os.unlink(self.out)
        wall, cpu, _, _ = run_tree(cmd, self.err)
        got = count_lines(self.out)
        if got != n:
            with open(self.err) as f:
                raise RuntimeError(f"{cmd[0]}: {got} of {n} lines written:"
                                   f"\n{f.read()[-3000:]}")
        os.unlink(self.out)
        return n / wall, cpu / n * 1e6

    def pipeline(self, name, n, prefetch, stages, worker=None):
        """A pipeline file of one stage (stages=1: today's file) or of a
        chain of echo workers (bench/echo_worker.c unless worker names
        another), one worker each."""
        worker = worker or self.echo
        doc = {"source": {"type": "jsonl", "path": self.items(n)[0]},
               "sink": {"type": "jsonl", "path": self.out},
               "workers": 1, "prefetch": prefetch}
        if stages == 1:
            doc["command"] = [worker]
        else:
            names = [f"echo{k + 1}" for k in range(stages)]
            doc["stages"] = {
                s: dict({"command": [worker]},
                        **({"to": names[k + 1]} if k + 1 < stages else {}))
                for k, s in enumerate(names)}
        path = os.path.join(self.tmp, f"stages-{name}.json")
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
        return path

    def hopper_cmd(self, path):
        return [self.hopper, "run", "-f", path, "--no-progress"]

    def hopper_run(self, n, prefetch, stages, worker=None):
        name = os.path.basename(worker or self.echo)
        path = self.pipeline(f"{stages}x-p{prefetch}-{n}-{name}", n,
                             prefetch, stages, worker)
        return self.measured(self.hopper_cmd(path), n)

    def benthos_run(self, benthos, n, threads):
        proc = "\n".join(f"    - subprocess: {{name: {json.dumps(self.echo)}}}"
                         for _ in range(3))
        conf = os.path.join(self.tmp, f"stages-benthos-{threads}.yaml")
        with open(conf, "w") as f:
            f.write(f"""logger: {{level: error}}
http: {{enabled: false}}
input:
  file: {{paths: [{json.dumps(self.items(n)[1])}], codec: lines}}
pipeline:
  threads: {threads}
  processors:
{proc}
output:
  file: {{path: {json.dumps(self.out)}, codec: lines}}
""")
        return self.measured([benthos, "-c", conf], n)

    def floor_run(self, n):
        """bench/chain_floor.c: the least any coordinator does at one item
        in flight per worker, through the same three workers."""
        return self.measured([self.floor, str(n), "3", self.out, self.echo],
                             n)

    def splitter_file(self, children):
        one = os.path.join(self.tmp, "stages-one.jsonl")
        with open(one, "w") as f:
            f.write("0\n")
        path = os.path.join(self.tmp, f"stages-splitter-{children}.json")
        with open(path, "w") as f:
            json.dump({"source": {"type": "jsonl", "path": one},
                       "sink": {"type": "jsonl", "path": self.out},
                       "stages": {
                           "split": {"command": [self.split, str(children)],
                                     "workers": 1, "to": "echo"},
                           "echo": {"command": [self.echo], "workers": 1,
                                    "prefetch": 64}}}, f, indent=1)
        return path

    def can_run(self, path, expect):
        """None when this hopper runs the pipeline file and writes the
        results expected (a sorted list), else why not."""
        if os.path.exists(self.out):
            os.unlink(self.out)
        try:
            run_tree(self.hopper_cmd(path), self.err)
        except RuntimeError as e:
            return str(e).strip().split("\n")[-1]
        with open(self.out) as f:
            got = sorted(json.dumps([a["id"], a["result"]])
                         for a in map(json.loads, f))
        os.unlink(self.out)
        if got != sorted(json.dumps(x) for x in expect):
            want = ", ".join(json.dumps(x) for x in expect[:4])
            return f"wrote {', '.join(got[:4])}, not {want}"
        return None

    def probes(self):
        """Whether this hopper runs a chain of stages, and a splitter: None
        for yes, else why not. Tried on a few items first, so that a hopper
        without stages, or with stages but no emits yet, prints what it
        can: three stages that each add one to the payload, and one item
        split in ten through the echo worker."""
        path = self.pipeline("probe", 3, 1, 3)
        with open(path) as f:
            doc = json.load(f)
        add = ("import json, sys\n"
               "for line in sys.stdin:\n"
               "    m = json.loads(line)\n"
               "    print(json.dumps({'id': m['id'], 'ok': True,\n"
               "                      'result': m['payload'] + 1}),\n"
               "          flush=True)\n")
        for stage in doc["stages"].values():
            stage["command"] = [sys.executable, "-c", add]
        with open(path, "w") as f:
            json.dump(doc, f)
        chain = self.can_run(path, [[str(i + 1), i + 3] for i in range(3)])
        if chain is not None:
            return chain, chain
        split = self.can_run(self.splitter_file(10),
                             [[f"1/{k}", None] for k in range(10)])
        return None, split


def line(name, rate, cpu):
    print(f"  {name:<34} {rate:>10,.0f} items/s   CPU {cpu:6.1f} us/item")


def peer(b, benthos, multi, rounds):
    n = N_PEER
    keys = [f"Benthos, pipeline.threads {t}" for t in BENTHOS_THREADS] \
        if benthos else []
    keys += ["hopper, 3 stages, prefetch 1"] if multi is None else []
    keys += ["bare chain, 3 stages (chain_floor)"]
    keys += ["hopper, 1 stage, prefetch 1"]
    res = {k: [] for k in keys}
    for _ in range(rounds):
        for k in keys:
            if k.startswith("Benthos"):
                r = b.benthos_run(benthos, n, int(k.split()[-1]))
            elif k.startswith("bare"):
                r = b.floor_run(n)
            else:
                r = b.hopper_run(n, 1, 3 if "3 stages" in k else 1)
            res[k].append(r)
    print(f"stages, {n:,} items through three echo workers in a row, "
          f"medians of {rounds} rounds")
    for k in keys:
        line(k, statistics.median(r[0] for r in res[k]),
             statistics.median(r[1] for r in res[k]))

    def ratio(k, other):
        return (statistics.median(x[0] / y[0]
                                  for x, y in zip(res[k], res[other])),
                statistics.median(x[1] / y[1]
                                  for x, y in zip(res[k], res[other])))
    floor = "bare chain, 3 stages (chain_floor)"
    if multi is None:
        rate, cpu = ratio("hopper, 3 stages, prefetch 1", floor)
        print(f"  hopper 3 stages, prefetch 1 / bare chain: rate "
              f"{rate:4.2f}x, CPU per item {cpu:.2f}")
    if not benthos:
        return
    best = max(BENTHOS_THREADS, key=lambda t: statistics.median(
        r[0] for r in res[f"Benthos, pipeline.threads {t}"]))
    for k in keys:
        if k.startswith("Benthos"):
            continue
        for t in BENTHOS_THREADS:
            rate, cpu = ratio(k, f"Benthos, pipeline.threads {t}")
            goal = ("  (goals: >= 3x, <= 0.20)"
                    if t == best and k.startswith("hopper, 3") else "")
            who = k.replace(",", "", 1)
            print(f"  {who} / Benthos threads {t}: rate {rate:4.2f}x, "
                  f"CPU per item {cpu:.2f}{goal}")


def chain(b, rounds):
    """Three stages against one at prefetch 64, with each of the two echo
    workers: echo_worker writes each answer as it makes it, echo_batch
    writes the answers to all it has read with one write before it reads
    again. With 64 items queued on its stdin, a worker that makes one
    system call per answer spends most of the run's CPU on them; but one
    stage alone may run slower with the batching worker, which answers its
    64 at once and then sleeps until the coordinator refills it. The goal
    is read with each side at its faster worker."""
    n = N_CHAIN
    workers = (("echo_batch", "answers what it has read with one write",
                b.echo_batch),
               ("echo_worker", "one write per answer", b.echo))
    res = {w[0]: ([], []) for w in workers}
    for _ in range(rounds):
        for name, _, path in workers:
            res[name][0].append(b.hopper_run(n, 64, 3, path))
            res[name][1].append(b.hopper_run(n, 64, 1, path))
    print(f"stages, {n:,} items, prefetch 64, medians of {rounds} rounds")
    for name, what, _ in workers:
        three, one = res[name]
        print(f"  worker bench/{name}.c ({what}):")
        for label, v in (("hopper, 3 stages, prefetch 64", three),
                         ("hopper, 1 stage, prefetch 64", one)):
            line(label, statistics.median(r[0] for r in v),
                 statistics.median(r[1] for r in v))
        ratio = statistics.median(x[0] / y[0] for x, y in zip(three, one))
        print(f"  3 stages / 1 stage: rate {ratio:.2f}")
    # Each side with the worker that is faster for it in that round: one
    # stage alone can be slower with echo_batch (see docs/performance.md),
    # and a ratio over a slower one stage would flatter three.
    best = statistics.median(
        max(res[w][0][i][0] for w in res) / max(res[w][1][i][0] for w in res)
        for i in range(rounds))
    print(f"  3 stages / 1 stage, each with its faster worker in the round: "
          f"rate {best:.2f}  (goal >= 0.50)")


def splitter(b, rounds):
    n = N_CHILDREN
    path = b.splitter_file(n)
    hwm, tree, rate = [], [], []
    for _ in range(max(1, min(rounds, 3))):
        if os.path.exists(b.out):
            os.unlink(b.out)
        wall, _, maxrss, peak = run_tree(b.hopper_cmd(path), b.err,
                                         sample=True)
        got = count_lines(b.out)
        if got != n:
            with open(b.err) as f:
                raise RuntimeError(f"splitter: {got} of {n} children "
                                   f"written:\n{f.read()[-3000:]}")
        os.unlink(b.out)
        hwm.append(peak or 0.0)
        tree.append(maxrss)
        rate.append(n / wall)
    print(f"splitter, 1 item -> {n:,} children -> echo stage -> jsonl file:"
          f" coordinator peak RSS {max(hwm):.1f} MB (goal < 50; VmHWM, "
          f"highest of {len(hwm)} runs), largest process of the tree "
          f"{max(tree):.1f} MB, {statistics.median(rate):,.0f} children/s")


def run(hopper, build, rounds, tmp):
    b = Bench(hopper, build, tmp)
    benthos = benthos_binary(build)
    multi, split = b.probes()
    if multi is not None:
        print(f"stages: the three-stage and splitter figures are left out: "
              f"this hopper does not run a three-stage pipeline file "
              f"({multi})")
    peer(b, benthos, multi, rounds)
    if multi is None:
        chain(b, rounds)
        if split is None:
            splitter(b, rounds)
        else:
            print(f"splitter: left out: this hopper does not run a "
                  f"splitter ({split})")
