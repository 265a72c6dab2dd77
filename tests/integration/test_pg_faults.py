"""Fault tests for the PostgreSQL queue, proved by counting: every worker
writes a ledger line per item it handles (workers/tally.py: item, attempt,
its coordinator's pid, CLOCK_MONOTONIC start and end), and the ledger is
held against the queue table.

- Three coordinators share 20,000 rows and one is killed with SIGKILL in the
  middle: every row ends done, the only items handled twice are items the
  killed one had started and still held, no two coordinators ever had an
  item at the same time, and nobody took a row before its lease ran out.
- The database server stops (or crashes) under a run and comes back: the
  run reconnects, finishes, and every row is done, once.
- A refused connection, hostile table and column names, and payloads the
  worker cannot use: clear errors, no password shown, no SQL run, and the
  rest of the queue finishes.
"""
import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import (PY, ROOT, WORKERS, assert_clean, clean_env, hopper,
                      read_jsonl, start, stderr_of, wait_for)

sys.path.insert(0, str(ROOT / "tests"))
from harness.postgres import PostgresServer  # noqa: E402

TALLY = [PY, str(WORKERS / "tally.py")]

Run = collections.namedtuple("Run", "attempt pid start end how")


def no_attempts(ledger):
    """No item reached a worker. A worker may have started, and opened its
    ledger, before the run was refused: the file may exist, empty."""
    return not ledger.exists() or ledger.read_text() == ""


@pytest.fixture
def pg():
    """A server of the test's own: these tests stop and kill it."""
    with PostgresServer() as server:
        yield server


def init(pg, table):
    code, _, err = hopper("pg", "init", pg.url, "--table", table)
    assert code == 0, err


def states(pg, table):
    out = pg.psql(f"SELECT state, count(*) FROM {table} GROUP BY 1 ORDER BY 1")
    return {s: int(k) for s, k in (line.split("|")
                                   for line in out.splitlines())}


def column(pg, table, expr):
    """id -> expr, for every row."""
    out = pg.psql(f"SELECT id, {expr} FROM {table} ORDER BY id")
    return {line.split("|", 1)[0]: line.split("|", 1)[1]
            for line in out.splitlines()}


def read_tally(path):
    """item id -> [Run], in the order the lines were written."""
    seen = collections.defaultdict(list)
    if not path.exists():
        return seen
    for line in path.read_text().splitlines():
        parts = line.split()
        assert len(parts) == 6, f"a torn ledger line: {line!r}"
        item, attempt, pid, t0, t1, how = parts
        seen[item].append(Run(int(attempt), int(pid), int(t0), int(t1), how))
    return seen


def stop_all(procs):
    """Kills whatever of ours is still running, by pid."""
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def wait_exit(p, deadline, what):
    try:
        return p.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{what} did not finish in time; its stderr "
                             f"ends:\n{stderr_of(p)[-3000:]}") from None


def hopper_backends(pg):
    return int(pg.psql("SELECT count(*) FROM pg_stat_activity "
                       "WHERE usename = 'hopper'"))


# ---- three coordinators, one killed

N = 20000
LEASE = 2
SLOW = 3.0  # seconds: longer than the lease, so only heartbeats keep it
# Slow rows: a few in the middle, and the last four, still in hand (or
# queued on a busy worker's stdin, several seconds) when the other
# coordinators have run out of work and would take any row whose lease is
# not kept up.
SLOW_ROWS = f"g % 5000 = 0 OR g > {N - 4}"


def test_three_coordinators_one_killed(pg, tmp):
    init(pg, "q")
    pg.psql("INSERT INTO q (payload) SELECT CASE WHEN "
            f"{SLOW_ROWS} THEN jsonb_build_object('n', g, 'sleep', {SLOW}) "
            "ELSE jsonb_build_object('n', g) END "
            f"FROM generate_series(1, {N}) g", url=pg.url)
    assert pg.psql("SELECT min(id), max(id), count(*) FROM q") == \
        f"1|{N}|{N}"
    ledger = tmp / "ledger"
    env = clean_env(TALLY_LOG=ledger)
    outs = [tmp / f"out{i}.jsonl" for i in range(3)]
    procs = []
    t_begin = time.monotonic()
    deadline = t_begin + 150  # the whole test stops by itself
    try:
        for out in outs:
            procs.append(start(
                "run", "-s", pg.url, "-S", "table=q", "-S", f"lease={LEASE}",
                "-S", "poll=0.2", "-S", "batch=32", "-o", f"jsonl:{out}",
                "-j", "2", "--prefetch", "4", "--", *TALLY, env=env,
                cwd=tmp))
        victim, survivors = procs[0], procs[1:]
        holder = f"{socket.gethostname()}:{victim.pid}:%"

        # Kill it once it has finished a good part of its share.
        def victim_done():
            if not ledger.exists():
                return 0
            return ledger.read_bytes().count(b" %d " % victim.pid)
        while victim_done() < N // 10:
            assert time.monotonic() < t_begin + 60, "the run did not get going"
            for p in procs:
                assert p.poll() is None, stderr_of(p)[-3000:]
            time.sleep(0.05)
        backends = hopper_backends(pg)
        kill_ns = time.monotonic_ns()
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        # Let its last statement (an ack in flight) finish on the server:
        # its backend goes when it notices the client gone.
        end = time.monotonic() + 1
        while hopper_backends(pg) >= backends and time.monotonic() < end:
            time.sleep(0.01)
        # What it held, and for how long yet: nobody may take these rows
        # before then.
        query_ns = time.monotonic_ns()
        held = {line.split("|")[0]: float(line.split("|")[1])
                for line in pg.psql(
                    "SELECT id, extract(epoch FROM lease_until - "
                    f"clock_timestamp()) FROM q WHERE state = 'running' "
                    f"AND holder LIKE '{holder}'").splitlines()}
        done_at_kill = states(pg, "q").get("done", 0)
        for p in survivors:
            assert wait_exit(p, deadline, "a surviving coordinator") == 0, \
                stderr_of(p)[-3000:]
    finally:
        stop_all(procs)
    took = time.monotonic() - t_begin
    errs = [stderr_of(p) for p in procs]
    for err in errs:
        assert_clean(err)

    # (a) Every row is done, counted in the table, and nothing is held.
    assert states(pg, "q") == {"done": N}
    assert pg.psql("SELECT count(*) FROM q WHERE holder IS NOT NULL OR "
                   "lease_until IS NOT NULL") == "0"
    seen = read_tally(ledger)
    assert set(seen) == {str(i) for i in range(1, N + 1)}
    pids = {p.pid: i for i, p in enumerate(procs)}
    runs_all = [r for runs in seen.values() for r in runs]
    assert {r.pid for r in runs_all} <= set(pids), "a worker of whom?"
    assert all(r.how in ("ok", "abandoned") for r in runs_all)
    by_victim = {item for item, runs in seen.items()
                 if any(r.pid == victim.pid for r in runs)}
    # It was killed in the middle: it had done a good part, not all.
    assert N // 10 <= len(by_victim) < N // 2, len(by_victim)
    assert done_at_kill < N

    # (b) Repeats: only items the killed coordinator had started and still
    # held when it died, and each of them finished by one survivor once.
    repeats = {item for item, runs in seen.items() if len(runs) > 1}
    assert repeats <= by_victim, sorted(repeats - by_victim)[:10]
    assert repeats <= set(held), sorted(repeats - set(held))[:10]
    for item, runs in seen.items():
        theirs = [r for r in runs if r.pid != victim.pid]
        assert len(theirs) <= 1, (item, runs)
        if item not in by_victim:
            assert len(runs) == 1 and runs[0].how == "ok", (item, runs)

    # (c) No item was in two coordinators' hands at the same time.
    overlaps = []
    for item, runs in seen.items():
        for i, a in enumerate(runs):
            for b in runs[i + 1:]:
                if a.pid != b.pid and a.start < b.end and b.start < a.end:
                    overlaps.append((item, a, b))
    assert not overlaps, overlaps[:5]
    # ... and none of the rows it held was taken before its lease ran out.
    assert held, "the killed coordinator held nothing"
    # Its leases were alive when it died (kept up to the end), and no longer
    # than asked for.
    since_kill = (query_ns - kill_ns) / 1e9
    assert all(0 < left + since_kill and left <= LEASE + 0.1
               for left in held.values()), (since_kill, held)
    for item, left in held.items():
        for r in seen[item]:
            if r.pid != victim.pid:
                assert r.start > query_ns + left * 1e9, \
                    (item, left, (r.start - kill_ns) / 1e9)

    # The table agrees with the ledger: a row claimed twice is exactly a row
    # the killed one held (claimed by it, then by a survivor); every other
    # row, the killed one's finished ones too, was claimed once. The attempt
    # a worker was told is the claim's.
    attempts = {k: int(v) for k, v in column(pg, "q", "attempts").items()}
    assert {k for k, v in attempts.items() if v != 1} == set(held)
    assert all(attempts[k] == 2 for k in held)
    for item, runs in seen.items():
        oks = [r for r in runs if r.how == "ok"]
        assert len(oks) in (1, 2) and oks[-1].attempt == attempts[item], \
            (item, runs)
    # Each survivor wrote exactly the results its workers produced.
    for i, p in enumerate(procs):
        if p is victim:
            continue
        got = [r["id"] for r in read_jsonl(outs[i].read_text())]
        assert len(got) == len(set(got))
        assert set(got) == {item for item, runs in seen.items()
                            if any(r.pid == p.pid for r in runs)}
    for err in errs[1:]:
        # A survivor never lost a lease of its own.
        assert "no longer ours" not in err, err[-3000:]
    slow = {str(i) for i in range(1, N + 1) if i % 5000 == 0 or i > N - 4}
    assert all(len(seen[s]) == 1 or s in held for s in slow)
    # How long before the kill the killed one had finished items that it had
    # not acknowledged yet (its results were on their way).
    ages = sorted((kill_ns - r.end) / 1e9 for item in repeats
                  for r in seen[item] if r.pid == victim.pid and r.how == "ok")
    print(f"\n{took:.1f} s; {backends} connections; lease left at the kill "
          f"{min(held.values()) + since_kill:.2f} s at least; killed one "
          "finished "
          f"{len(by_victim)} items, held {len(held)} rows when killed, "
          f"{len(repeats)} items handled twice: {sorted(repeats, key=int)}; "
          f"finished by it but unacknowledged: {len(ages)}, finished "
          f"{ages[0] if ages else 0:.3f}..{ages[-1] if ages else 0:.3f} s "
          "before the kill")


# ---- the database server goes away under a run

def take_down(pg, outage):
    if outage == "crash":
        pg.kill()  # SIGKILL: crash recovery runs when it comes back
    else:
        os.kill(pg.pid, signal.SIGINT)  # a fast shutdown, as an admin's
        end = time.monotonic() + 30
        while pg.running:
            assert time.monotonic() < end, "the server did not stop"
            time.sleep(0.02)


@pytest.mark.parametrize("outage,sink", [("stop", "joined"),
                                         ("crash", "joined"),
                                         ("stop", "separate"),
                                         ("crash", "separate")])
def test_the_server_goes_away_under_a_run(pg, tmp, outage, sink):
    """The lease (30 s) outlasts the outage: the run must reconnect and go
    on with the rows it holds, so every row is handled exactly once."""
    n = 3000
    init(pg, "q")
    pg.psql("INSERT INTO q (payload) SELECT jsonb_build_object('n', g) "
            f"FROM generate_series(1, {n}) g", url=pg.url)
    ledger = tmp / "ledger"
    env = clean_env(TALLY_LOG=ledger, TALLY_SLEEP="0.002")
    sink_flags = ["-o", pg.url, "-O", "table=r", "-O", "create=true"]
    if sink == "separate":
        sink_flags += ["-O", "join=false"]
    p = start("run", "-s", pg.url, "-S", "table=q", "-S", "poll=0.2",
              "-S", "lease=30", *sink_flags, "-j", "2", "--prefetch", "2",
              "--", *TALLY, env=env, cwd=tmp)
    t0 = time.monotonic()
    try:
        while states(pg, "q").get("done", 0) < n // 5:
            assert time.monotonic() < t0 + 60, "the run did not get going"
            assert p.poll() is None, stderr_of(p)[-3000:]
            time.sleep(0.05)
        take_down(pg, outage)
        time.sleep(1.5)
        assert p.poll() is None, stderr_of(p)[-3000:]
        pg.start()
        code = wait_exit(p, time.monotonic() + 90, "the run")
    finally:
        stop_all([p])
    err = stderr_of(p)
    assert_clean(err)
    table = states(pg, "q")
    assert code == 0, (table, err[-3000:])
    assert "postgres source: lost the connection" in err, err[-3000:]
    assert "postgres source: connected again" in err, err[-3000:]
    assert table == {"done": n}, err[-3000:]
    assert pg.psql("SELECT count(*) FROM q WHERE holder IS NOT NULL") == "0"
    seen = read_tally(ledger)
    assert set(seen) == {str(i) for i in range(1, n + 1)}
    twice = {k: v for k, v in seen.items() if len(v) > 1}
    assert not twice, list(twice.items())[:5]
    # A claim that committed as the server died, its answer lost, is
    # handed back uncounted when the run reconnects: every row counts the
    # one attempt that went to a worker.
    attempts = column(pg, "q", "attempts")
    again = {k: v for k, v in attempts.items() if v != "1"}
    assert again == {}, again
    # One result per row, and a result only for a done row.
    assert pg.psql("SELECT count(*), count(DISTINCT key) FROM r") == \
        f"{n}|{n}"
    assert pg.psql("SELECT count(*) FROM r JOIN q ON r.key = q.id::text "
                   "AND q.state = 'done' AND (r.result->>'n')::int = "
                   "(q.payload->>'n')::int") == str(n)
    print(f"\n{time.monotonic() - t0:.1f} s; the log says:\n" + "\n".join(
        line for line in err.splitlines() if "postgres" in line))


def test_leases_are_kept_up_across_a_server_restart(pg, tmp):
    """The server restarts while the only worker is busy on an item longer
    than the lease: the coordinator has nothing to tell the database but
    heartbeats, and must still reconnect and keep its lease, or a second
    coordinator, idle and looking, takes the item while it is in hand."""
    init(pg, "q")
    pg.psql("INSERT INTO q (payload) VALUES ('{\"n\": 1, \"sleep\": 7}')",
            url=pg.url)
    ledger = tmp / "ledger"
    env = clean_env(TALLY_LOG=ledger)
    flags = ["run", "-s", pg.url, "-S", "table=q", "-S", "poll=0.2",
             "-S", "lease=5", "-j", "1", "--", *TALLY]
    procs = [start(*flags, env=env, cwd=tmp)]
    deadline = time.monotonic() + 60
    try:
        while pg.psql("SELECT state FROM q") != "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        pg.restart()  # a fast shutdown and start: about a second
        procs.append(start(*flags, env=env, cwd=tmp))
        codes = [wait_exit(p, deadline, "a coordinator") for p in procs]
    finally:
        stop_all(procs)
    errs = [stderr_of(p) for p in procs]
    assert codes == [0, 0], errs
    assert pg.psql("SELECT state || ':' || attempts FROM q") == "done:1", \
        (read_tally(ledger), errs)
    assert [r.pid for r in read_tally(ledger)["1"]] == [procs[0].pid]
    assert "no longer ours" not in errs[0], errs[0]


@pytest.mark.parametrize("restart", [False, True])
def test_a_row_held_in_our_name_but_unknown_is_not_forgotten(pg, tmp,
                                                              restart):
    """A claim that committed but whose answer never came (the server died
    between the two) leaves a row running in the coordinator's own name that
    it knows nothing of. Made here by writing such a row while it runs. The
    run must not call the queue finished while that row is out. Without a
    reconnection it comes back when its lease ends, as a row of a dead
    holder does, its attempt counted. When the server restarts, the run,
    connected again, hands it back to the queue at once, uncounted: one
    attempt, long before its lease of an hour would have ended."""
    init(pg, "q")
    pg.psql("INSERT INTO q (payload) VALUES ('{\"n\": 1, \"sleep\": 1}')",
            url=pg.url)
    ledger = tmp / "ledger"
    # With a restart, the default lease: item 1's must outlast the outage.
    lease = [] if restart else ["-S", "lease=2"]
    p = start("run", "-s", pg.url, "-S", "table=q", "-S", "poll=0.2",
              *lease, "-j", "1", "--", *TALLY,
              env=clean_env(TALLY_LOG=ledger), cwd=tmp)
    try:
        end = time.monotonic() + 30
        while pg.psql("SELECT state FROM q WHERE id = 1") != "running":
            assert time.monotonic() < end
            time.sleep(0.02)
        holder = pg.psql("SELECT holder FROM q WHERE id = 1")
        assert holder.startswith(f"{socket.gethostname()}:{p.pid}:"), holder
        pg.psql("INSERT INTO q (payload, state, attempts, holder, "
                "lease_until) VALUES ('{\"n\": 2}', 'running', 1, "
                f"'{holder}', now() + interval "
                f"'{'1 hour' if restart else '2 seconds'}')")
        if restart:
            take_down(pg, "stop")
            pg.start()
        code = wait_exit(p, time.monotonic() + 60, "the run")
    finally:
        stop_all([p])
    err = stderr_of(p)
    assert code == 0, err
    assert states(pg, "q") == {"done": 2}, err
    assert pg.psql("SELECT attempts FROM q WHERE id = 2") == \
        ("1" if restart else "2")
    assert pg.psql("SELECT attempts FROM q WHERE id = 1") == "1"
    assert ("1 rows claimed as the connection went" in err) == restart, \
        err[-3000:]
    assert sorted(read_tally(ledger)) == ["1", "2"]


GATE = [PY, str(WORKERS / "gate.py")]


def finished_counts(err):
    """(done, dead) from a run's summary line."""
    m = re.search(r"finished: (\d+) done, (\d+) dead", err)
    assert m, err[-3000:]
    return int(m.group(1)), int(m.group(2))


@pytest.mark.parametrize("outage", ["stop", "crash"])
def test_a_dead_letter_the_server_never_took_is_not_dead(pg, tmp, outage):
    """An item fails for good while the server is down, so its row cannot
    be marked dead. The run must not call it dead: it ends with exit
    status 1 and the row still running in its name; the next run, the
    server back and the lease over, takes the row again and kills it for
    real. Every row ends done or dead, none lost, and no run ever counted
    an item dead whose row was not."""
    init(pg, "q")
    texts = {"item0": "a", "item1": "perm", "item2": "b"}
    for key, text in texts.items():
        (tmp / key).write_text(text)
    pg.psql("INSERT INTO q (key, payload) VALUES " + ",".join(
        f"('{key}', to_jsonb('{tmp / key}'::text))" for key in texts),
        url=pg.url)
    ledger, gate, out = tmp / "ledger", tmp / "gate", tmp / "out.jsonl"
    env = clean_env(LEDGER=ledger, GATE=gate)
    # A worker more than rows: with one free, the source claims again and
    # finds nothing, so it knows the queue is empty before the server
    # goes. No poll (which would claim again) while it is down: the run is
    # idle, every row in a worker's hands at the gate.
    flags = ["run", "-s", pg.url, "-S", "table=q", "-S", "lease=2",
             "-o", f"jsonl:{out}", "-j", "4", "--prefetch", "1"]
    p = start(*flags, "-S", "poll=3600", "--log-level", "debug", "--",
              *GATE, env=env, cwd=tmp)
    try:
        wait_for(lambda: ledger.exists() and
                 len(ledger.read_text().splitlines()) == 3 and
                 "postgres source: idle until" in stderr_of(p),
                 timeout=60, what="every row in a worker's hands")
        assert p.poll() is None, stderr_of(p)[-3000:]
        take_down(pg, outage)
        gate.touch()
        code = wait_exit(p, time.monotonic() + 90, "the run")
    finally:
        stop_all([p])
        if not pg.running:
            pg.start()
    err = stderr_of(p)
    assert_clean(err)
    table = states(pg, "q")
    done, dead = finished_counts(err)
    # Dead only if its row is; the row is the holder's until its lease
    # ends.
    assert dead == table.get("dead", 0), (table, err[-3000:])
    assert (done, dead) == (2, 0), err[-3000:]
    assert code == 1, err[-3000:]
    assert "1 item(s) failed for good but their dead letters could not " \
        "be written" in err, err[-3000:]
    assert "postgres source: q: row 2: the dead letter was not written " \
        "(no connection to the server when the run ended)" in err, \
        err[-3000:]
    state, holder = pg.psql("SELECT state, holder FROM q "
                            "WHERE key = 'item1'").split("|")
    assert state == "running", holder
    assert holder.startswith(f"{socket.gethostname()}:{p.pid}:"), holder

    # The server is back: the next run takes the rows again once their
    # lease ended, and this time the dead letter is written.
    code, _, err = hopper(*flags, "-S", "poll=0.2", "--", *GATE, env=env,
                          cwd=tmp, timeout=120)
    assert code == 3, err[-3000:]
    assert finished_counts(err) == (2, 1), err[-3000:]
    assert states(pg, "q") == {"done": 2, "dead": 1}
    line = pg.psql("SELECT key, attempts, last_error FROM q "
                   "WHERE state = 'dead'")
    assert line == f"item1|2|{tmp / 'item1'}: asked to fail", line
    # Each good item's result is in the sink (twice: at least once).
    results = read_jsonl(out.read_text())
    assert sorted(r["id"] for r in results if r["ok"]) == \
        ["item0", "item0", "item2", "item2"]


# ---- clear errors

@pytest.fixture(scope="module")
def logged():
    """A server that logs every connection and statement, to show that a
    refused name never reached it."""
    with PostgresServer(settings={"log_connections": "on",
                                  "log_statement": "all"}) as server:
        yield server


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_a_refused_connection_is_named_without_the_password(tmp):
    port = closed_port()
    secret = "Pw-s3cret-42"
    items = tmp / "items.jsonl"
    items.write_text('{"n": 1}\n')
    env = clean_env(TALLY_LOG=tmp / "ledger")
    for url in (f"postgres://hopper:{secret}@127.0.0.1:{port}/hopper",
                f"postgresql://hopper@127.0.0.1:{port}/hopper?password="
                f"{secret}&connect_timeout=5"):
        for args, says in (
                (["run", "-s", url, "-S", "table=q", "--", *TALLY],
                 "postgres source: cannot connect"),
                (["run", "-s", f"jsonl:{items}", "-o", url, "--", *TALLY],
                 "postgres sink: cannot connect"),
                (["pg", "init", url, "--table", "q"],
                 "cannot connect to PostgreSQL"),
                (["enqueue", url, "--table", "q", str(items)],
                 "cannot connect to PostgreSQL")):
            t0 = time.monotonic()
            code, out, err = hopper(*args, env=env, timeout=30)
            assert code == 1, (args, err)
            assert says in err, (args, err)
            assert "Connection refused" in err and \
                f'"127.0.0.1", port {port}' in err, (args, err)
            assert secret not in out + err, (args, out, err)
            assert time.monotonic() - t0 < 10  # refused, not retried
    assert no_attempts(tmp / "ledger")  # no worker got anything


HOSTILE = ['q; DROP TABLE x', '"q"', 'q"; DROP TABLE x; --',
           "q' OR '1'='1", "q--", "q x", "x.y.z", "", "q\nDROP TABLE x",
           "x" * 64, "q\u00e9"]


def test_hostile_names_are_refused_before_any_sql(logged, tmp):
    init(logged, "q")
    logged.psql("CREATE TABLE x (v int); INSERT INTO x VALUES (1);"
                "INSERT INTO q (payload) VALUES ('{\"n\": 1}')",
                url=logged.url)
    env = clean_env(TALLY_LOG=tmp / "ledger")

    def log_since(mark):
        with open(logged.log_path, "rb") as f:
            f.seek(mark)
            return f.read().decode(errors="replace")

    def refused(flags, says):
        mark = os.path.getsize(logged.log_path)
        code, out, err = hopper("run", "-s", logged.url, *flags, "--",
                                *TALLY, env=env)
        assert code != 0 and says in err, (flags, err)
        assert "hopper-secret" not in out + err
        # Not a connection, let alone a statement, reached the server.
        assert "connection received" not in log_since(mark), flags

    for name in HOSTILE:
        refused(["-S", f"table={name}"],
                f"postgres source: table name '{name}' is not a valid "
                "identifier")
        refused(["-S", "table=q", "-S", f"payload_column={name}"],
                f"postgres source: column name '{name}' is not a valid "
                "identifier")
        refused(["-S", "table=q", "-S", f"key_column={name}"],
                f"postgres source: column name '{name}' is not a valid "
                "identifier")
    # The check itself can see SQL: a plain name that is missing connects,
    # asks, and is told.
    mark = os.path.getsize(logged.log_path)
    code, _, err = hopper("run", "-s", logged.url, "-S", "table=no_such_q",
                          "--", *TALLY, env=env)
    assert code == 1 and 'relation "no_such_q" does not exist' in err, err
    assert "connection authorized: user=hopper" in log_since(mark)
    # Nothing was dropped or touched.
    assert logged.psql("SELECT count(*) FROM x") == "1"
    assert logged.psql("SELECT state || ':' || attempts FROM q") == "ready:0"
    assert no_attempts(tmp / "ledger")


BAD_PAYLOADS = ['"a string"', '[1, 2]', 'null', '42', '{"n": "seven"}',
                '{"m": 1}', 'true']


@pytest.mark.parametrize("how", ["perm", "crash"])
def test_a_payload_the_worker_cannot_use_ends_dead(logged, tmp, how):
    table = f"pay_{how}"
    init(logged, table)
    # Good rows with the bad ones in among them.
    rows = [f"'{{\"n\": {i}}}'" for i in range(60)]
    # A crash costs a worker restart (with backoff): fewer of those.
    bads = BAD_PAYLOADS if how == "perm" else BAD_PAYLOADS[::3]
    for k, bad in enumerate(bads):
        rows.insert(5 + 8 * k, "'%s'" % bad.replace("'", "''"))
    logged.psql(f"INSERT INTO {table} (payload) VALUES " +
                ",".join(f"({r}::jsonb)" for r in rows), url=logged.url)
    bad_ids = logged.psql(f"SELECT id FROM {table} WHERE jsonb_typeof("
                          "payload) <> 'object' OR jsonb_typeof(payload->"
                          "'n') IS DISTINCT FROM 'number'").split()
    assert len(bad_ids) == len(bads)
    ledger = tmp / "ledger"
    out = tmp / "out.jsonl"
    code, _, err = hopper(
        "run", "-s", logged.url, "-S", f"table={table}", "-S", "poll=0.2",
        "-o", f"jsonl:{out}", "-j", "2", "--attempts", "2", "--backoff",
        "0.05", "--", *TALLY,
        env=clean_env(TALLY_LOG=ledger, TALLY_BAD=how), timeout=120)
    assert code == 3, err[-3000:]  # some items dead
    assert states(logged, table) == {"done": 60, "dead": len(bads)}
    dead = logged.psql(f"SELECT id FROM {table} WHERE state = 'dead'").split()
    assert sorted(dead, key=int) == sorted(bad_ids, key=int)
    seen = read_tally(ledger)
    for item, runs in seen.items():
        if item in bad_ids:
            # perm: one attempt, no retry; crash: retried, then dead.
            assert [r.how for r in runs] == \
                (["bad"] if how == "perm" else ["crash", "crash"]), runs
        else:
            assert [r.how for r in runs] == ["ok"], (item, runs)
    assert len(seen) == 60 + len(bads)
    results = {r["id"]: r for r in read_jsonl(out.read_text())}
    assert {k for k, r in results.items() if r["ok"]} == \
        set(seen) - set(bad_ids)
    for item in bad_ids:
        line = logged.psql(f"SELECT attempts, last_error, payload::text, "
                           f"result::text FROM {table} WHERE id = {item}")
        attempts, last_error, payload, record = line.split("|", 3)
        rec = json.loads(record)
        assert int(attempts) == (1 if how == "perm" else 2)
        assert rec["error"] == last_error and rec["attempts"] == \
            int(attempts), rec
        assert json.loads(payload) == rec["payload"], rec
        if how == "perm":
            # The worker's own words, naming what it got.
            assert last_error.startswith("payload must be an object with an "
                                         "integer n, got "), last_error
            assert last_error.endswith(json.dumps(json.loads(payload))), \
                last_error
        else:
            assert "exited" in last_error, last_error
            assert "Error" in rec["stderr"], rec  # the worker's traceback


@pytest.mark.parametrize("url", [
    "postgres://u:p%zzSECRET@127.0.0.1:1/db",   # libpq quotes the token
    "postgres://u:SECRET@[::1/db",              # ... or the whole URL
])
def test_a_malformed_url_never_shows_its_password(url):
    for args in (["pg", "init", url],
                 ["pg", "init", "host=127.0.0.1 port=1 password=SECRET "
                  "dbname=x user=u connect_timeout=x"],
                 ["run", "-s", url, "--", "cat"],
                 ["run", "-s", "jsonl:/dev/null", "-o", url, "--", "cat"]):
        code, out, err = hopper(*args)
        assert code == 1, (args, err)
        assert "SECRET" not in err + out, (args, err)
        assert "connect" in err, (args, err)
