"""Chaos, counted. Each test runs hopper over one source again and again:
every run but the last is killed with SIGKILL, and in every run a worker is
killed with SIGKILL every few answers. At the end every item is accounted
for exactly (acknowledged: in done/, with a result line, or a row in state
done; or dead-lettered), none is lost, every result a sink holds is whole
and readable, and the items done twice are counted and bounded by what was
in flight when a coordinator was killed.

Kills are paced by the workers' answers (their ledger), never by the clock,
so a run means the same on a fast machine and on a loaded one; the random
choices come from a fixed seed. The jsonl sink gets results of 1-2 MB and
each coordinator kill waits for the moment the sink file ends inside a
line, so the kills land in the middle of a write: the torn tails must be
cut, never glued onto.
"""
import glob
import json
import os
import random
import signal
import socket
import time
import zlib

from conftest import (PY, WORKERS, assert_clean, clean_env, pg_insert, start,
                      stderr_of, wait_for, write_jsonl)

CHAOS = [PY, str(WORKERS / "chaos.py")]
SEED = 14


def workers_of(pid):
    """The worker processes of coordinator pid: its children, whichever of
    its threads started them."""
    pids = set()
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(path) as f:
                pids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return sorted(pids)


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def pad_size(item, spec):
    """The padding chaos.py gives item for CHAOS_PAD=spec."""
    low, _, high = spec.partition("-")
    low, high = int(low), int(high or low)
    return low + zlib.crc32(item.encode()) % (high - low + 1)


def ends_mid_line(path):
    """Whether the file's last byte is not a newline: a write in progress,
    or one that a kill cut short."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            return size > 0 and os.pread(f.fileno(), 1, size - 1) != b"\n"
    except FileNotFoundError:
        return False


class Chaos:
    """Runs one hopper command line kills + 1 times over the same source and
    sink. Each run but the last is SIGKILLed, its workers with it, once its
    workers have answered a number of items more drawn from per_kill (and,
    with moment, once moment(proc) returns: it may wait for a moment it
    likes); after_kill(proc) then looks at what the dead run left. In every
    run one worker is SIGKILLed each per_worker_kill answers. The last run
    must end by itself. A run that ends by itself before its kill is the
    last one."""

    def __init__(self, tmp, args, env, kills, per_kill, per_worker_kill,
                 deadline=300):
        self.tmp, self.args = tmp, args
        self.ledger = tmp / "ledger"
        self.env = clean_env(CHAOS_LEDGER=self.ledger, **env)
        self.kills, self.per_kill = kills, per_kill
        self.per_worker_kill = per_worker_kill
        self.deadline = deadline
        self.rng = random.Random(SEED)
        self.procs = []
        self.coordinator_kills = self.worker_kills = 0

    def answers(self):
        try:
            return self.ledger.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    def ledger_lines(self):
        """[(item id, coordinator pid)] for each answer a worker wrote."""
        if not self.ledger.exists():
            return []
        lines = self.ledger.read_text().splitlines()
        return [(a, int(b)) for a, b in (line.split() for line in lines)]

    def run(self, moment=None, after_kill=None):
        end = time.monotonic() + self.deadline
        try:
            for i in range(self.kills + 1):
                p = start(*self.args, env=self.env, cwd=self.tmp)
                self.procs.append(p)
                if not self._one(p, i == self.kills, end, moment):
                    break
                if after_kill:
                    after_kill(p)
        finally:
            for p in self.procs:
                if p.poll() is None:
                    workers = workers_of(p.pid)
                    kill(p.pid)
                    p.wait()
                    for w in workers:
                        kill(w)
        last = self.procs[-1]
        for p in self.procs:
            assert_clean(stderr_of(p))
        print(f"{len(self.procs)} runs, {self.coordinator_kills} coordinator "
              f"kills, {self.worker_kills} worker kills, "
              f"{self.answers()} answers")
        return last

    def _one(self, p, last, end, moment):
        """Drives one run; True when it was killed, False when it ended by
        itself."""
        base = self.answers()
        kill_at = base + self.rng.randint(*self.per_kill)
        worker_at = base + self.rng.randint(*self.per_worker_kill)
        while p.poll() is None:
            if time.monotonic() > end:
                raise AssertionError("the chaos run did not finish in time; "
                                     "the last run's stderr ends:\n" +
                                     stderr_of(p)[-3000:])
            n = self.answers()
            if n >= worker_at:
                workers = workers_of(p.pid)
                if workers:
                    kill(self.rng.choice(workers))
                    self.worker_kills += 1
                worker_at = n + self.rng.randint(*self.per_worker_kill)
            if not last and n >= kill_at:
                if moment:
                    moment(p)
                workers = workers_of(p.pid)
                kill(p.pid)
                p.wait()
                for w in workers:
                    kill(w)
                self.coordinator_kills += 1
                return True
            time.sleep(0.005)
        return False


def parse_lines(path):
    """Every line of a jsonl sink file, parsed; the file must end with a
    newline and every line must parse."""
    data = path.read_bytes()
    assert data.endswith(b"\n"), f"{path} ends inside a line"
    bad, lines = [], []
    for k, raw in enumerate(data.split(b"\n")[:-1], 1):
        try:
            lines.append(json.loads(raw))
        except ValueError:
            bad.append((k, len(raw), raw[:60], raw[-60:]))
    assert not bad, f"{len(bad)} line(s) of {path} do not parse: {bad[:5]}"
    return lines


def test_folder_source_to_dir_sink(tmp):
    """300 files, three of which fail for good; 6 coordinator kills."""
    n, perm, pad = 300, {7, 150, 299}, "20000-80000"
    inbox, out = tmp / "in", tmp / "out"
    inbox.mkdir()
    names = [f"c{i:04d}.json" for i in range(n)]
    for i, name in enumerate(names):
        (inbox / name).write_text(json.dumps({"do": "perm"} if i in perm
                                             else {"n": i}))
    held = set()  # files in processing/ when a coordinator was killed

    def claimed():
        # Each coordinator claims into a holder folder of its own.
        return {f for _, _, files in os.walk(inbox / "processing")
                for f in files}

    def after_kill(p):
        held.update(claimed())
    chaos = Chaos(tmp, ["run", "-s", f"dir:{inbox}", "-o", f"dir:{out}",
                        "-j", 3, "--attempts", 20, "--backoff", "0.05",
                        "--", *CHAOS],
                  dict(CHAOS_PAD=pad, CHAOS_SLEEP=0.005), kills=6,
                  per_kill=(20, 35), per_worker_kill=(8, 16))
    last = chaos.run(after_kill=after_kill)
    assert last.returncode == 3, stderr_of(last)[-3000:]
    assert chaos.coordinator_kills == 6

    # Every file is in done/ or failed/, once; nothing left behind.
    done = {f for f in os.listdir(inbox / "done")}
    failed = {f for f in os.listdir(inbox / "failed")
              if not f.endswith(".error.json")}
    assert [f for f in os.listdir(inbox) if f.endswith(".json")] == []
    assert claimed() == set()
    assert done | failed == set(names) and not done & failed
    assert failed == {names[i] for i in perm}
    # Every file done has its result, whole; no temporary file is left.
    for name in done:
        res = json.loads((out / f"{name}.json").read_text())
        assert res["id"] == name and len(res["pad"]) == pad_size(name, pad)
    assert [f for f in os.listdir(out) if f.endswith(".tmp")] == []
    # Done twice: only what a killed coordinator held.
    answered = {}
    for item, _ in chaos.ledger_lines():
        answered[item] = answered.get(item, 0) + 1
    twice = {item for item, k in answered.items() if k > 1}
    print(f"dir: {len(done)} done, {len(failed)} dead, {len(twice)} done "
          f"twice, {len(held)} held at the kills")
    assert twice <= held, twice - held


def test_jsonl_source_to_jsonl_sink_torn_writes(tmp):
    """100 lines, two of which fail for good, with results of 1-2 MB; 8
    coordinator kills, each while the sink file ends inside a line. A
    jsonl source keeps no place: each run starts from its first line."""
    n, perm, pad = 100, {5, 60}, "1000000-2000000"
    src = write_jsonl(tmp / "in.jsonl", [{"do": "perm"} if i in perm
                                         else {"n": i} for i in range(n)])
    out = tmp / "out.jsonl"
    torn = []

    def moment(p):
        # Spin (a write of a megabyte is over in a millisecond) until the
        # file ends inside a line, for a few seconds at most.
        until = time.monotonic() + 5
        while time.monotonic() < until and p.poll() is None:
            if ends_mid_line(out):
                return

    def after_kill(p):
        torn.append(ends_mid_line(out))
    chaos = Chaos(tmp, ["run", "-s", f"jsonl:{src}", "-o", f"jsonl:{out}",
                        "-j", 3, "--attempts", 20, "--backoff", "0.05",
                        "--", *CHAOS],
                  dict(CHAOS_PAD=pad), kills=8, per_kill=(4, 10),
                  per_worker_kill=(6, 12))
    last = chaos.run(moment=moment, after_kill=after_kill)
    assert last.returncode == 3, stderr_of(last)[-3000:]
    assert chaos.coordinator_kills == 8

    lines = parse_lines(out)
    ids = [str(i + 1) for i in range(n)]
    dead_ids = {str(i + 1) for i in perm}
    ok = {}
    for r in lines:
        if r["ok"]:
            res = r["result"]
            assert res["id"] == r["id"], r["id"]
            assert len(res["pad"]) == pad_size(r["id"], pad), r["id"]
            ok.setdefault(r["id"], []).append(res["run"])
        else:
            assert r["id"] in dead_ids, r
    assert set(ok) == set(ids) - dead_ids
    assert dead_ids <= {r["id"] for r in lines if not r["ok"]}
    # The last run, never killed, wrote each result once; the killed ones
    # at most what their workers answered (the ledger line follows the
    # answer: a worker killed between the two answered one more).
    assert all(runs.count(last.pid) == 1 for runs in ok.values())
    killed = {p.pid for p in chaos.procs[:-1]}
    extra = sum(len(runs) - 1 for runs in ok.values())
    answered = sum(1 for _, run in chaos.ledger_lines() if run in killed)
    assert extra <= answered + chaos.worker_kills, (extra, answered)
    # The kills tore lines, and each torn tail was cut by the next run.
    cuts = sum(stderr_of(p).count("cut a torn last line")
               for p in chaos.procs)
    print(f"jsonl: {len(lines)} lines, {extra} results written again, "
          f"{sum(torn)} of {len(torn)} kills left a torn line, {cuts} cut")
    assert sum(torn) >= 1, "no kill landed inside a write"
    assert cuts == sum(torn)


def test_postgres_source(pg, queue, tmp):
    """300 rows, three of which fail for good; 6 coordinator kills, and
    before two of them the server itself is killed with SIGKILL and
    started again (crash recovery) while the coordinator runs on. A
    killed coordinator's rows come back when their 2 s lease runs out."""
    n, perm = 300, {7, 150, 299}
    pg_insert(pg, queue, [{"do": "perm"} if i in perm else {"n": i}
                          for i in range(n)])
    out = tmp / "out.jsonl"
    held = set()  # rows a killed coordinator, or the server, held
    crashes = []

    def running():
        rows = pg.psql(f"SELECT id FROM {queue} WHERE state = 'running'")
        return set(rows.split())

    def moment(p):
        if chaos.coordinator_kills not in (1, 3):
            return
        held.update(running())
        pg.kill()
        pg.start()
        crashes.append(p.pid)
        held.update(running())
        # The coordinator reconnects and goes on.
        n = chaos.answers()
        wait_for(lambda: chaos.answers() >= n + 10 or p.poll() is not None,
                 timeout=120, what="answers after the server came back")

    def after_kill(p):
        holder = f"{socket.gethostname()}:{p.pid}:%"
        rows = pg.psql(f"SELECT id FROM {queue} WHERE state = 'running' "
                       f"AND holder LIKE '{holder}'")
        held.update(rows.split())
    chaos = Chaos(tmp, ["run", "-s", pg.url, "-S", f"table={queue}",
                        "-S", "lease=2", "-S", "poll=0.2",
                        "-o", f"jsonl:{out}", "-j", 3, "--attempts", 20,
                        "--backoff", "0.05", "--", *CHAOS],
                  dict(CHAOS_SLEEP=0.005), kills=6, per_kill=(20, 35),
                  per_worker_kill=(8, 16))
    last = chaos.run(moment=moment, after_kill=after_kill)
    assert last.returncode == 3, stderr_of(last)[-3000:]
    assert chaos.coordinator_kills == 6 and len(crashes) == 2
    for pid in crashes:
        proc = next(p for p in chaos.procs if p.pid == pid)
        assert "postgres source: connected again" in stderr_of(proc)

    rows = dict(line.split("|") for line in pg.psql(
        f"SELECT id, state FROM {queue}").splitlines())
    assert len(rows) == n
    perm_ids = {str(i + 1) for i in perm}
    assert {i for i, s in rows.items() if s == "dead"} == perm_ids
    assert {i for i, s in rows.items() if s != "dead"} == \
        {i for i, s in rows.items() if s == "done"}
    # Every row done has its result line; lines only for rows done twice
    # when a killed coordinator held them.
    lines = parse_lines(out)
    ok = {}
    for r in lines:
        if r["ok"]:
            assert r["result"]["id"] == r["id"]
            ok[r["id"]] = ok.get(r["id"], 0) + 1
    assert set(ok) == set(rows) - perm_ids
    answered = {}
    for item, _ in chaos.ledger_lines():
        answered[item] = answered.get(item, 0) + 1
    twice = {i for i, k in answered.items() if k > 1}
    print(f"postgres: {len(ok)} done, {len(perm_ids)} dead, {len(twice)} "
          f"done twice, {len(held)} held at the kills")
    assert twice <= held, twice - held
    assert {i for i, k in ok.items() if k > 1} <= held
