"""Join and reduce state kept in PostgreSQL ("state"), against the same
stage kept in memory, in the same round, on a server the test harness
starts (tests/harness/postgres.py).

Reduce: 200,000 jsonl items ({"k": "c<i % 100>", "n": i}), op sum of /n by
/k, into a jsonl file. Join: 20,000 jsonl items, the 4 parts of 5,000 keys
({"g": key, "part": p, "total": 4}), shuffled, joined by /g counting
/total. Wall times of whole commands, start-up included; the CPU time is
hopper's alone (the server's work is not in it). Every run's results are
checked. No goal: the price of each part or count surviving the
coordinator, per item.
"""
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from harness.postgres import PostgresServer  # noqa: E402

REDUCE_ITEMS = 200_000
KEYS = 100
GROUPS = 5_000
PARTS = 4


def write_inputs(tmp):
    red = os.path.join(tmp, "state-reduce.jsonl")
    with open(red, "w") as f:
        for i in range(REDUCE_ITEMS):
            f.write(json.dumps({"k": f"c{i % KEYS}", "n": i}) + "\n")
    rows = [{"g": f"g{g}", "part": p, "total": PARTS}
            for g in range(GROUPS) for p in range(PARTS)]
    random.Random(1).shuffle(rows)
    join = os.path.join(tmp, "state-join.jsonl")
    with open(join, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return red, join


def pipeline(tmp, name, src, stage, state, table):
    if state:
        stage = dict(stage)
        key = "join" if "join" in stage else "reduce"
        stage[key] = dict(stage[key], state=state, state_table=table)
    out = os.path.join(tmp, f"{name}.out")
    doc = {"source": f"jsonl:{src}",
           "sinks": {"out": {"type": "jsonl", "path": out}},
           "stages": {"s": dict(stage, to="out")}}
    f = os.path.join(tmp, f"{name}.json")
    with open(f, "w") as fh:
        json.dump(doc, fh)
    return f, out


def timed(hopper, f, out):
    """Runs hopper on f; returns (wall s, hopper's CPU s, output lines)."""
    if os.path.exists(out):
        os.remove(out)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run([hopper, "run", "-f", f], capture_output=True,
                       text=True)
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"state bench: hopper failed: {p.stderr[-2000:]}")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    with open(out) as fh:
        lines = [json.loads(line) for line in fh if line.strip()]
    return wall, cpu, lines


def check_reduce(lines):
    got = {r["id"]: r["result"]["value"] for r in lines}
    want = {f"c{k}": sum(range(k, REDUCE_ITEMS, KEYS)) for k in range(KEYS)}
    if got != want:
        sys.exit("state bench: the reduce's sums are wrong")


def check_join(lines):
    if len(lines) != GROUPS or any(len(r["result"]["parts"]) != PARTS
                                   for r in lines):
        sys.exit("state bench: the join's groups are wrong")


def run(hopper, build, rounds, tmp):
    del build
    red, join = write_inputs(tmp)
    cases = [
        ("reduce", red, {"reduce": {"op": "sum", "field": "/n", "by": "/k"}},
         REDUCE_ITEMS, check_reduce),
        ("join", join, {"join": {"by": "/g", "count": "/total"}},
         GROUPS * PARTS, check_join),
    ]
    print(f"state: join and reduce kept in PostgreSQL against in memory, "
          f"medians of {rounds} rounds")
    with PostgresServer() as pg:
        for name, src, stage, n, check in cases:
            got = {"memory": [], "state": []}
            for rnd in range(rounds):
                for kind in ("memory", "state"):
                    table = f"bench_{name}_{rnd}"
                    f, out = pipeline(tmp, f"state-{name}-{kind}", src,
                                      stage, pg.url if kind == "state"
                                      else None, table)
                    wall, cpu, lines = timed(hopper, f, out)
                    check(lines)
                    got[kind].append((wall, cpu))
            med = {k: (statistics.median(w for w, _ in v),
                       statistics.median(c for _, c in v))
                   for k, v in got.items()}
            for kind in ("memory", "state"):
                wall, cpu = med[kind]
                print(f"  {name} {n:,} items, {kind:<6} {n / wall:>10,.0f} "
                      f"items/s   {wall * 1e6 / n:6.1f} us/item   hopper "
                      f"CPU {cpu * 1e6 / n:5.1f} us/item")
            print(f"  {name}: state / memory rate "
                  f"{med['memory'][0] / med['state'][0]:.2f}")
