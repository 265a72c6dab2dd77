"""Lineage under faults, counted: a three-stage pipeline with a splitter
(a -> split -> c) over a folder and over a PostgreSQL queue, its
coordinator SIGKILLed mid-run and started again until done; its workers
killed at random in every stage; a slow last stage that must hold the
source back; and SIGTERM mid-run, which hands every unfinished root back.

Kills are paced by results written (files in the sink's folder, rows in
its table), never by the clock; each run's workers log what they ran
(stage.py's STAGE_LOG, a file per run), so the tests can tell which roots
each run took up again.
"""
import json
import os
import random
import re
import signal
import socket
import time
import urllib.request
import zlib
from collections import defaultdict

from conftest import (PY, WORKERS, assert_clean, by_id, clean_env,
                      http_port, hopper, pg_insert, read_jsonl, start,
                      stderr_of, wait_for, write_jsonl)
from test_chaos import kill, workers_of

STAGE = [PY, str(WORKERS / "stage.py")]
SEED = 17
SPLIT = 5  # the splitter's children per root


def three_stages(extra=None):
    """a -> split (SPLIT children each) -> c, with a stage's extra keys."""
    extra = extra or {}
    return {"a": {"command": STAGE + ["a"], "to": "split",
                  **extra.get("a", {})},
            "split": {"command": STAGE + ["split"], "to": "c",
                      **extra.get("split", {})},
            "c": {"command": STAGE + ["c"], **extra.get("c", {})}}


def root_payload(i):
    return {"n": i, "do": {"split": f"split:{SPLIT}"}}


def write_pipeline(tmp, source, sink, stages, queue=None, **top):
    for s in stages.values():
        if queue:
            s["queue"] = queue
    doc = {"source": source, "sink": sink, "stages": stages,
           "workers": 2, "backoff": "10ms", **top}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc, indent=1))
    return f


def log_lines(path):
    """[(stage, id, attempt)] of one run's log; none when it ran nothing."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        name, item, attempt, _ = line.split()
        out.append((name, item, int(attempt)))
    return out


def root_of(item):
    return item.split("/", 1)[0]


class Kills:
    """Runs `hopper run -f FILE` kills + 1 times. Each run but the last is
    SIGKILLed, its workers with it, once written() has grown by a number
    drawn from per_kill since the run started; after_kill(i) then looks at
    what run i left. The last run must end by itself. Run i's workers log
    to log-i."""

    def __init__(self, tmp, pipeline, kills, per_kill, written, after_kill,
                 env=None, deadline=300):
        self.tmp, self.pipeline = tmp, pipeline
        self.kills, self.per_kill = kills, per_kill
        self.written, self.after_kill = written, after_kill
        self.env = env or {}
        self.deadline = deadline
        self.rng = random.Random(SEED)
        self.procs = []

    def log(self, i):
        return self.tmp / f"log-{i}"

    def run(self):
        end = time.monotonic() + self.deadline
        try:
            for i in range(self.kills + 1):
                env = clean_env(STAGE_LOG=self.log(i), **self.env)
                p = start("run", "-f", self.pipeline, env=env, cwd=self.tmp)
                self.procs.append(p)
                if not self._one(p, i == self.kills, end):
                    break
                self.after_kill(i)
        finally:
            for p in self.procs:
                if p.poll() is None:
                    workers = workers_of(p.pid)
                    kill(p.pid)
                    p.wait()
                    for w in workers:
                        kill(w)
        for p in self.procs:
            assert_clean(stderr_of(p))
        return self.procs[-1]

    def _one(self, p, last, end):
        kill_at = self.written() + self.rng.randint(*self.per_kill)
        while p.poll() is None:
            if time.monotonic() > end:
                raise AssertionError("the run did not finish in time: " +
                                     stderr_of(p)[-3000:])
            if not last and self.written() >= kill_at:
                workers = workers_of(p.pid)
                kill(p.pid)
                p.wait()
                for w in workers:
                    kill(w)
                return True
            time.sleep(0.01)
        return False

    def runs_of(self):
        """{(stage, id): [run index, ...]} for everything any run ran."""
        runs = defaultdict(list)
        for i in range(len(self.procs)):
            for name, item, _ in log_lines(self.log(i)):
                runs[(name, item)].append(i)
        return runs


def assert_only_trees_in_flight_repeated(kills, roots, held, done_at):
    """Each root ran in the first stage again only after a kill that found
    it in flight (held[i]); none that a kill found acknowledged (done_at[i])
    ran after it; each child ran in c only in runs that ran its root."""
    runs = kills.runs_of()
    repeated = 0
    for root in roots:
        mine = runs[("a", root)]
        assert mine and mine == sorted(set(mine)), (root, mine)
        for i in mine[:-1]:
            assert root in held[i], (root, mine, i)
        for i, done in enumerate(done_at):
            assert root not in done or all(j <= i for j in mine), \
                (root, mine, i)
        repeated += len(mine) - 1
        for k in range(SPLIT):
            ran = runs[("c", f"{root}/{k}")]
            assert ran and set(ran) <= set(mine), (root, k, ran, mine)
    in_flight = sum(len(h) for h in held)
    print(f"{len(kills.procs)} runs, {repeated} trees repeated, "
          f"{in_flight} in flight at the kills")
    return repeated


def test_coordinator_killed_folder_source_dir_sink(tmp):
    """40 roots, 200 results; 4 coordinator kills, each after 15-35 more
    results are in the sink's folder."""
    n = 40
    inbox, out = tmp / "in", tmp / "out"
    inbox.mkdir()
    roots = [f"r{i:03d}.json" for i in range(n)]
    for i, name in enumerate(roots):
        (inbox / name).write_text(json.dumps(root_payload(i)))
    f = write_pipeline(tmp, {"type": "dir", "path": str(inbox)},
                       {"type": "dir", "path": str(out)}, three_stages(),
                       queue=4)
    held, done_at = [], []

    def written():
        try:
            return sum(1 for e in os.listdir(out) if not e.startswith("."))
        except FileNotFoundError:
            return 0

    def claimed():
        return {e for _, _, files in os.walk(inbox / "processing")
                for e in files}

    def after_kill(i):
        held.append(claimed())
        done_at.append(set(os.listdir(inbox / "done")))
    kills = Kills(tmp, f, 4, (15, 35), written, after_kill,
                  env={"STAGE_SLEEP": "c=0.01"})
    last = kills.run()
    assert last.returncode == 0, stderr_of(last)[-3000:]
    assert len(kills.procs) == 5

    # Every root acknowledged: in done, none left in the inbox or claimed.
    assert sorted(os.listdir(inbox / "done")) == roots
    assert [e for e in os.listdir(inbox) if e.endswith(".json")] == []
    assert claimed() == set()
    # Every root's outputs in the sink, once each (by their derived ids).
    want = {f"{r}%2F{k}.json": (r, k) for r in roots for k in range(SPLIT)}
    assert sorted(os.listdir(out)) == sorted(want)
    for name, (r, k) in want.items():
        res = json.loads((out / name).read_text())
        assert res["trail"] == ["a", "split", "c"] and res["part"] == k
        assert res["n"] == roots.index(r)
    repeated = assert_only_trees_in_flight_repeated(kills, roots, held,
                                                    done_at)
    assert repeated <= sum(len(h) for h in held)


def test_coordinator_killed_postgres_source_and_sink(pg, queue, tmp):
    """40 rows, 200 results upserted into a table keyed by id; 4
    coordinator kills, each after 15-35 more result rows. A killed
    coordinator's rows come back when their 2 s lease runs out."""
    n = 40
    results = "res_" + queue
    pg_insert(pg, queue, [root_payload(i) for i in range(n)])
    f = write_pipeline(
        tmp, {"type": "postgres", "url": pg.url, "table": queue,
              "lease": 2, "poll": 0.2},
        {"type": "postgres", "url": pg.url, "table": results,
         "create": True}, three_stages(), queue=4)
    held, done_at = [], []

    def written():
        try:
            return int(pg.psql(f"SELECT count(*) FROM {results}"))
        except Exception:  # the sink has not made its table yet
            return 0

    def after_kill(i):
        p = kills.procs[i]
        holder = f"{socket.gethostname()}:{p.pid}:%"
        held.append(set(pg.psql(f"SELECT id FROM {queue} WHERE state = "
                                f"'running' AND holder LIKE '{holder}'")
                        .split()))
        done_at.append(set(pg.psql(f"SELECT id FROM {queue} WHERE state = "
                                   "'done'").split()))
    kills = Kills(tmp, f, 4, (15, 35), written, after_kill,
                  env={"STAGE_SLEEP": "c=0.01"})
    last = kills.run()
    assert last.returncode == 0, stderr_of(last)[-3000:]
    assert len(kills.procs) == 5

    rows = dict(line.split("|") for line in pg.psql(
        f"SELECT id, state FROM {queue}").splitlines())
    roots = sorted(rows, key=int)
    assert len(roots) == n and set(rows.values()) == {"done"}
    got = {}
    for line in pg.psql(f"SELECT key, result FROM {results}").splitlines():
        key, result = line.split("|", 1)
        got[key] = json.loads(result)
    assert sorted(got) == sorted(f"{r}/{k}" for r in roots
                                 for k in range(SPLIT))
    for key, res in got.items():
        assert res["trail"] == ["a", "split", "c"]
        assert res["part"] == int(key.split("/")[1])
    repeated = assert_only_trees_in_flight_repeated(kills, roots, held,
                                                    done_at)
    assert repeated <= sum(len(h) for h in held)


def crashes(name, item, attempt, chance):
    """Whether stage.py's STAGE_CRASH makes this attempt die."""
    return zlib.crc32(f"{name} {item} {attempt}".encode()) % 1000 < \
        chance * 1000


def test_workers_killed_in_every_stage(tmp):
    """40 roots through a -> split -> c, each stage's worker killing itself
    in 20% of its attempts (a splitter half way through its emits): each
    output is written once, every root done, and each item's attempts in
    each stage are exactly those that died, plus one."""
    n, chance = 40, 0.2
    src = write_jsonl(tmp / "in.jsonl", [dict(root_payload(i), key=f"u{i}")
                                         for i in range(n)])
    out, log = tmp / "out.jsonl", tmp / "log"
    f = write_pipeline(tmp, {"type": "jsonl", "path": str(src), "id": "key"},
                       {"type": "jsonl", "path": str(out)},
                       three_stages(), attempts=30)
    code, _, err = hopper("run", "-f", f, timeout=300, env=clean_env(
        STAGE_LOG=log, STAGE_CRASH=chance))
    assert code == 0, err[-3000:]
    res = by_id(read_jsonl(out.read_text()))  # each id once
    assert sorted(res) == sorted(f"u{i}/{k}" for i in range(n)
                                 for k in range(SPLIT))
    assert all(r["ok"] and r["result"]["trail"] == ["a", "split", "c"]
               for r in res.values())

    attempts = defaultdict(list)
    for name, item, attempt in log_lines(log):
        attempts[(name, item)].append(attempt)
    items = {"a": [f"u{i}" for i in range(n)],
             "split": [f"u{i}" for i in range(n)],
             "c": list(res)}
    died = {}
    for name, ids in items.items():
        died[name] = 0
        for item in ids:
            want = 1
            while crashes(name, item, want, chance):
                want += 1
            assert attempts.pop((name, item)) == list(range(1, want + 1)), \
                (name, item)
            died[name] += want - 1
    assert attempts == {}  # nothing else ran
    print(f"attempts that died: {died}")
    assert all(died.values()), died
    assert f"finished: {n} done, 0 dead, {sum(died.values())} retried" \
        in err


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                timeout=10) as r:
        text = r.read().decode()
    m = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            m[key] = float(value)
    return m


def roots_in_run(m):
    """Roots taken from the source and not yet done, dead or handed back."""
    return m["hopper_items_fetched_total"] - sum(
        m[f'hopper_items_total{{outcome="{o}"}}']
        for o in ("done", "dead", "released"))


def held_back(tmp, stages, workers, queue, n, env):
    """Runs stages over n roots with --listen, sampling /metrics until the
    run ends; returns (the most roots in the run at once, the bound: the
    stages' queues and their workers' slots)."""
    src = write_jsonl(tmp / "in.jsonl", [dict(root_payload(i), key=f"u{i}")
                                         for i in range(n)])
    for s in stages.values():
        s.update(queue=queue, workers=workers)
    f = write_pipeline(tmp, {"type": "jsonl", "path": str(src), "id": "key"},
                       {"type": "jsonl", "path": str(tmp / "out.jsonl")},
                       stages)
    p = start("run", "-f", f, "--listen", "127.0.0.1:0",
              env=clean_env(**env), cwd=tmp)
    most, samples = 0, 0
    try:
        port = http_port(p)
        end = time.monotonic() + 300
        while p.poll() is None and time.monotonic() < end:
            try:
                m = metrics(port)
            except OSError:
                continue  # the run just ended
            most = max(most, roots_in_run(m))
            samples += 1
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
    err = stderr_of(p)
    assert_clean(err)
    assert p.returncode == 0, err[-3000:]
    assert f"finished: {n} done" in err
    bound = len(stages) * (queue + workers)
    print(f"{samples} samples: at most {most} roots in the run, bound "
          f"{bound}")
    assert samples >= 10
    return most, bound


def test_a_slow_last_stage_holds_the_source_back(tmp):
    stages = {"a": {"command": STAGE + ["a"], "to": "b"},
              "b": {"command": STAGE + ["b"], "to": "c"},
              "c": {"command": STAGE + ["c"]}}
    most, bound = held_back(tmp, stages, 2, 2, 60,
                            {"STAGE_SLEEP": "c=0.05"})
    assert 0 < most <= bound


def test_a_slow_stage_after_a_splitter_holds_the_source_back(tmp):
    most, bound = held_back(tmp, three_stages(), 2, 2, 30,
                            {"STAGE_SLEEP": "c=0.02"})
    assert 0 < most <= bound


def test_sigterm_hands_every_unfinished_root_back(tmp):
    """SIGTERM once 20 of 200 results are written: exit 143, every root
    done (all its outputs written) or back in the inbox, none claimed; a
    second run finishes the rest and runs none of the done again."""
    n = 40
    inbox, out = tmp / "in", tmp / "out"
    inbox.mkdir()
    roots = [f"r{i:03d}.json" for i in range(n)]
    for i, name in enumerate(roots):
        (inbox / name).write_text(json.dumps(root_payload(i)))
    f = write_pipeline(tmp, {"type": "dir", "path": str(inbox)},
                       {"type": "dir", "path": str(out)}, three_stages(),
                       queue=4, grace="60s")
    env = clean_env(STAGE_SLEEP="c=0.02", STAGE_LOG=tmp / "log-0")
    p = start("run", "-f", f, env=env, cwd=tmp)
    try:
        wait_for(lambda: len(os.listdir(out)) >= 20 if out.exists()
                 else False, timeout=120, what="20 results")
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = stderr_of(p)
    assert_clean(err)
    assert p.returncode == 143, err[-3000:]
    done = set(os.listdir(inbox / "done"))
    back = {e for e in os.listdir(inbox) if e.endswith(".json")}
    claimed = [e for _, _, files in os.walk(inbox / "processing")
               for e in files]
    assert claimed == [] and not done & back and done | back == set(roots)
    assert back, "the signal came after the run was over"
    for r in done:
        for k in range(SPLIT):
            assert (out / f"{r}%2F{k}.json").exists(), (r, k)
    # Handed back: the roots taken and not finished (the rest were never
    # taken from the inbox).
    m = re.search(r"finished: (\d+) done, 0 dead, 0 retried, (\d+) "
                  r"handed back", err)
    assert m and int(m.group(1)) == len(done), err[-3000:]
    handed = int(m.group(2))
    assert 0 < handed <= len(back)
    print(f"{len(done)} done, {handed} handed back, {len(back)} in the "
          f"inbox")

    env["STAGE_LOG"] = str(tmp / "log-1")
    code, _, err = hopper("run", "-f", f, env=env, timeout=300)
    assert code == 0, err[-3000:]
    assert set(os.listdir(inbox / "done")) == set(roots)
    again = {item for name, item, _ in log_lines(tmp / "log-1")
             if name == "a"}
    assert again == back
