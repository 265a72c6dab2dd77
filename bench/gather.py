"""Join and reduce.

Count by key: 1,000,000 jsonl items ({"k": "key<i % 1000>", "n": i}) through
one reduce stage (op count, by /k) into a jsonl file, against the fastest
of `mawk` (an associative array over the line split at quotes) and
`cut | sort | uniq -c` doing the same count in the same round. Times are
wall times of whole commands, start-up included; the goal: hopper at least
as fast as the faster peer. Every run's 1,000 counts are checked.

Join memory: 100,000 items, each split into 10 parts (bench/split_worker)
that meet in a join. So that every group waits at once, each item is also
copied to a gate stage whose two workers answer nothing until no item has
come for a second (they hold all 100,000 then), and the gate's answer is
each group's last part. The join's cost
is the peak resident memory of that run less the peak of the same run with
the parts written to a file instead of joined, divided by the 1,000,000
parts held: bytes per pending part. Each round checks 100,000 joined
items of 11 parts.

Join by key memory: 1,000,000 jsonl items, the 10 parts of 100,000 keys
({"g": key, "n": 10}), the first part of every key, then the second, ...,
so that 900,000 parts wait at once before the last ones come; each is its
own source item, held until its group's item is written. The cost is the
peak resident memory of that run less the peak of the same run with every
item its own group of one (never pending), divided by the 900,000 parts
that waited: bytes per pending part, its source item included. Each round
checks 100,000 joined items of 10 parts.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

N_COUNT = 1_000_000
KEYS = 1000
N_GROUPS = 100_000
PARTS = 10

GATE = r"""
import os, select, sys
ids, buf = [], b""
while True:
    ready, _, _ = select.select([0], [], [], 1.0)
    if not ready:
        sys.stdout.write("".join('{"id":"%s","ok":true,"result":"gate"}\n'
                                 % x for x in ids))
        sys.stdout.flush()
        ids = []
        continue
    data = os.read(0, 1 << 16)
    if not data:
        break
    lines = (buf + data).split(b"\n")
    buf = lines.pop()
    for line in lines:
        i = line.index(b'"id":"') + 6
        ids.append(line[i:line.index(b'"', i)].decode())
"""


def note(msg):
    print(f"gather: {msg}", file=sys.stderr, flush=True)


def timed(cmd, out=None, shell=False):
    """Wall seconds and peak RSS (MB) of cmd run to its end."""
    t0 = time.monotonic()
    with open(out or os.devnull, "w") as f, tempfile.TemporaryFile("w+") as e:
        p = subprocess.Popen(cmd, stdout=f, stderr=e, shell=shell)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        e.seek(0)
        err = e.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{cmd} exited {code}: {err[-2000:]}")
    return wall, ru.ru_maxrss / 1024


def counts_of(path, parse):
    with open(path) as f:
        got = dict(parse(line) for line in f if line.strip())
    if len(got) != KEYS or set(got.values()) != {N_COUNT // KEYS}:
        raise RuntimeError(f"{path}: wrong counts ({len(got)} keys)")


def count_by_key(hopper, tmp, rounds):
    items = os.path.join(tmp, "gather-items.jsonl")
    with open(items, "w") as f:
        f.writelines('{"k":"key%d","n":%d}\n' % (i % KEYS, i)
                     for i in range(N_COUNT))
    out = os.path.join(tmp, "gather-out.jsonl")
    pipe = os.path.join(tmp, "gather-count.json")
    with open(pipe, "w") as f:
        json.dump({"source": {"type": "jsonl", "path": items},
                   "sinks": {"out": {"type": "jsonl", "path": out}},
                   "stages": {"count": {"reduce": {"op": "count",
                                                   "by": "/k"},
                                        "to": "out"}}}, f)
    peers = {
        "mawk": (["mawk", "-F", '"', '{c[$4]++} END {for (k in c) '
                  'print k, c[k]}', items],
                 lambda line: (line.split()[0], int(line.split()[1]))),
        "sort": (f"cut -d'\"' -f4 {items} | LC_ALL=C sort | uniq -c",
                 lambda line: (line.split()[1], int(line.split()[0]))),
    }
    rows = {"hopper": [], "mawk": [], "sort": []}
    mem = []
    for _ in range(rounds):
        if os.path.exists(out):
            os.unlink(out)
        wall, rss = timed([hopper, "run", "-f", pipe, "--log-level", "warn"])
        counts_of(out, lambda line: (json.loads(line)["id"],
                                     json.loads(line)["result"]["value"]))
        rows["hopper"].append(wall)
        mem.append(rss)
        for name, (cmd, parse) in peers.items():
            peer_out = os.path.join(tmp, f"gather-{name}.txt")
            wall, _ = timed(cmd, out=peer_out, shell=isinstance(cmd, str))
            counts_of(peer_out, parse)
            rows[name].append(wall)
    med = {k: statistics.median(v) for k, v in rows.items()}
    best = min(med["mawk"], med["sort"])
    ratios = [min(m, s) / h for h, m, s in
              zip(rows["hopper"], rows["mawk"], rows["sort"])]
    print(f"reduce count by key, {N_COUNT:,} jsonl items, {KEYS} keys:")
    for k in ("hopper", "mawk", "sort"):
        label = {"hopper": "hopper (reduce stage)", "mawk": "mawk",
                 "sort": "cut | sort | uniq -c"}[k]
        print(f"  {label:<24} {med[k]:6.2f} s  {N_COUNT / med[k]:>10,.0f} "
              "items/s")
    print(f"  hopper against the faster peer: {statistics.median(ratios):.2f}"
          f" of its rate (goal: at least 1.00); hopper's peak RSS "
          f"{statistics.median(mem):.0f} MB (what it keeps of the source "
          "items until the counts are written)")
    return best


def join_memory(hopper, build, tmp, rounds):
    items = os.path.join(tmp, "gather-groups.jsonl")
    with open(items, "w") as f:
        f.writelines(f"{i}\n" for i in range(N_GROUPS))
    gate = os.path.join(tmp, "gather-gate.py")
    with open(gate, "w") as f:
        f.write(GATE)
    split = os.path.join(build, "bench", "split_worker")
    out = os.path.join(tmp, "gather-joined.jsonl")
    parts = os.path.join(tmp, "gather-parts.jsonl")

    def pipeline(joined):
        stages = {
            "split": {"command": [split, str(PARTS)],
                      "to": "join" if joined else "parts"},
            "gate": {"command": [sys.executable, gate], "workers": 2,
                     "prefetch": 65536, "queue": N_GROUPS,
                     "to": "join" if joined else "parts"},
        }
        if joined:
            stages["join"] = {"join": {"max_parts": 2_000_000}, "to": "out"}
        path = os.path.join(tmp, f"gather-join-{int(joined)}.json")
        with open(path, "w") as f:
            json.dump({"sources": {"in": {"type": "jsonl", "path": items,
                                          "to": ["split", "gate"]}},
                       "sinks": {"out": {"type": "jsonl", "path": out},
                                 "parts": {"type": "jsonl", "path": parts}},
                       "stages": stages, "workers": 1, "prefetch": 64}, f)
        return path

    per_part, walls = [], []
    for _ in range(rounds):
        rss = {}
        for joined in (False, True):
            for p in (out, parts):
                if os.path.exists(p):
                    os.unlink(p)
            wall, rss[joined] = timed([hopper, "run", "-f",
                                       pipeline(joined), "--log-level",
                                       "warn"])
            if joined:
                walls.append(wall)
                n = 0
                with open(out) as f:
                    for line in f:
                        r = json.loads(line)
                        if len(r["result"]["parts"]) != PARTS + 1:
                            raise RuntimeError(f"group {r['id']}: "
                                               f"{len(r['result']['parts'])}"
                                               " parts")
                        n += 1
                if n != N_GROUPS:
                    raise RuntimeError(f"{n} of {N_GROUPS} groups joined")
        per_part.append((rss[True] - rss[False]) * 1024 * 1024 /
                        (N_GROUPS * PARTS))
    print(f"join, {N_GROUPS:,} groups of {PARTS} parts (+1 from a gate), all "
          "pending at once:")
    print(f"  {statistics.median(per_part):.0f} bytes of peak memory per "
          f"pending part (run: {statistics.median(walls):.1f} s, a second of "
          "it the gate's wait)")


def join_key_memory(hopper, tmp, rounds):
    items = {}
    for pending in (False, True):
        items[pending] = os.path.join(tmp, f"gather-keyed-{int(pending)}"
                                      ".jsonl")
        with open(items[pending], "w") as f:
            if pending:
                f.writelines('{"g":"g%d","n":%d,"p":%d}\n' % (g, PARTS, p)
                             for p in range(PARTS) for g in range(N_GROUPS))
            else:
                f.writelines('{"g":"g%d","n":1,"p":0}\n' % i
                             for i in range(N_GROUPS * PARTS))
    out = os.path.join(tmp, "gather-keyed-out.jsonl")

    def pipeline(pending):
        path = os.path.join(tmp, f"gather-keyed-{int(pending)}.json")
        with open(path, "w") as f:
            json.dump({"source": {"type": "jsonl", "path": items[pending]},
                       "sinks": {"out": {"type": "jsonl", "path": out}},
                       "stages": {"join": {"join": {
                           "by": "/g", "count": "/n",
                           "max_parts": 2_000_000}, "to": "out"}}}, f)
        return path

    per_part, walls = [], []
    for _ in range(rounds):
        rss = {}
        for pending in (False, True):
            if os.path.exists(out):
                os.unlink(out)
            wall, rss[pending] = timed([hopper, "run", "-f",
                                        pipeline(pending), "--log-level",
                                        "warn"])
            want = (N_GROUPS, PARTS) if pending else (N_GROUPS * PARTS, 1)
            n = 0
            with open(out) as f:
                for line in f:
                    if len(json.loads(line)["result"]["parts"]) != want[1]:
                        raise RuntimeError(f"{out}: a group of the wrong "
                                           "size")
                    n += 1
            if n != want[0]:
                raise RuntimeError(f"{n} of {want[0]} groups joined")
            if pending:
                walls.append(wall)
        per_part.append((rss[True] - rss[False]) * 1024 * 1024 /
                        (N_GROUPS * (PARTS - 1)))
    print(f"join by key, {N_GROUPS:,} keys of {PARTS} parts, each its own "
          f"source item, {N_GROUPS * (PARTS - 1):,} pending at once:")
    print(f"  {statistics.median(per_part):.0f} bytes of peak memory per "
          f"pending part, its source item included (run: "
          f"{statistics.median(walls):.1f} s)")


def run(hopper, build, rounds, tmp):
    if not shutil.which("mawk"):
        note("mawk is not installed: apt-get install mawk")
        return
    count_by_key(hopper, tmp, rounds)
    join_memory(hopper, build, tmp, rounds)
    join_key_memory(hopper, tmp, rounds)
