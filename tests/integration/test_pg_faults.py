"""Fault tests for the PostgreSQL queue, counted: a coordinator killed in the
middle of a shared run, and the database server restarted under a run."""
import collections
import os
import signal
import sys
import time

import pytest

from conftest import PY, ROOT, WORKERS, clean_env, hopper, start, stderr_of

sys.path.insert(0, str(ROOT / "tests"))
from harness.postgres import PostgresServer  # noqa: E402

LEDGER = [PY, str(WORKERS / "ledger.py")]


@pytest.fixture
def pg():
    """A server of the test's own: these tests stop and kill things."""
    with PostgresServer() as server:
        yield server


def fill(pg, table, n):
    code, _, err = hopper("pg", "init", pg.url, "--table", table)
    assert code == 0, err
    pg.psql(f"INSERT INTO {table} (payload) SELECT jsonb_build_object("
            f"'n', g) FROM generate_series(1, {n}) g", url=pg.url)


def count(pg, table, state):
    return int(pg.psql(f"SELECT count(*) FROM {table} WHERE state = "
                       f"'{state}'"))


def read_ledger(path):
    """id -> [(coordinator pid, start ns, end ns)]"""
    seen = collections.defaultdict(list)
    for line in path.read_text().splitlines():
        item, pid, t0, t1 = line.split()
        seen[item].append((int(pid), int(t0), int(t1)))
    return seen


def stop_all(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_three_coordinators_one_killed(pg, tmp):
    n = 20000
    fill(pg, "q", n)
    ledger = tmp / "ledger"
    env = clean_env(LEDGER=ledger)
    procs = [start("run", "-s", pg.url, "-S", "table=q", "-S", "lease=2",
                   "-S", "poll=0.2", "-S", "batch=32", "-o", "jsonl:/dev/null",
                   "-j", "2", "--prefetch", "4", "--", *LEDGER, env=env,
                   cwd=tmp)
             for _ in range(3)]
    victim = procs[0]
    try:
        end = time.monotonic() + 60
        while count(pg, "q", "done") < n // 4:
            assert time.monotonic() < end, "the run did not get going"
            assert all(p.poll() is None for p in procs)
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        held = int(pg.psql(f"SELECT count(*) FROM q WHERE holder LIKE "
                           f"'%:{victim.pid}'"))
        for p in procs[1:]:
            assert p.wait(timeout=120) == 0, stderr_of(p)
    finally:
        stop_all(procs)

    # Every item ended done, and was handled by someone.
    assert count(pg, "q", "done") == n
    seen = read_ledger(ledger)
    assert len(seen) == n
    pids = {p.pid for p in procs}
    assert {pid for runs in seen.values() for pid, _, _ in runs} <= pids
    victims = {item for item, runs in seen.items()
               if any(pid == victim.pid for pid, _, _ in runs)}
    assert victims, "the killed coordinator had done nothing"
    assert len(victims) < n, "the killed coordinator did everything"
    # The only repeats are items the killed coordinator held.
    repeats = {item for item, runs in seen.items() if len(runs) > 1}
    assert repeats <= victims, sorted(repeats - victims)[:10]
    assert held > 0 and len(repeats) <= held + 2 * 4, (len(repeats), held)
    # No item was in two coordinators' hands at once.
    for item in repeats:
        runs = sorted(seen[item], key=lambda r: r[1])
        for (pid_a, _, end_a), (pid_b, start_b, _) in zip(runs, runs[1:]):
            assert pid_a == pid_b or end_a <= start_b, (item, runs)
    # Rows the killed one never touched were claimed exactly once.
    once = pg.psql("SELECT count(*) FROM q WHERE attempts = 1")
    assert int(once) >= n - len(victims)
    print(f"killed one held {held} rows; {len(repeats)} items repeated; "
          f"{len(victims)} touched by it")


def test_the_server_crashes_and_restarts_under_a_run(pg, tmp):
    n = 3000
    fill(pg, "q", n)
    ledger = tmp / "ledger"
    env = clean_env(LEDGER=ledger, LEDGER_SLEEP="0.002")
    p = start("run", "-s", pg.url, "-S", "table=q", "-S", "poll=0.2",
              "-o", pg.url, "-O", "table=r", "-O", "create=true",
              "-j", "2", "--prefetch", "2", "--", *LEDGER, env=env, cwd=tmp)
    try:
        end = time.monotonic() + 60
        while count(pg, "q", "done") < n // 5:
            assert time.monotonic() < end and p.poll() is None
            time.sleep(0.05)
        pg.kill()  # a crash: recovery runs when it comes back
        time.sleep(1.5)
        pg.start()
        assert p.wait(timeout=120) == 0, stderr_of(p)
    finally:
        stop_all([p])
    err = stderr_of(p)
    assert "lost the connection" in err and "connected again" in err
    assert count(pg, "q", "done") == n
    # One commit per result: exactly one result per row, none extra.
    assert pg.psql("SELECT count(*), count(DISTINCT key) FROM r") == \
        f"{n}|{n}"
    assert pg.psql("SELECT count(*) FROM r JOIN q ON r.key = q.id::text") \
        == str(n)
    assert len(read_ledger(ledger)) == n
