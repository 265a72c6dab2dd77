"""The postgres source against a real PostgreSQL started by tests/harness:
claim, ack, retry with backoff, dead, lease expiry, NOTIFY wake-up, and
clear errors."""
import json
import time

from conftest import (FAKE, by_id, clean_env, hopper, pg_insert, read_jsonl,
                      start, stderr_of, wait_for)


def states(pg, table):
    out = pg.psql(f"SELECT state, count(*) FROM {table} GROUP BY 1 ORDER BY 1")
    return dict(line.split("|") for line in out.splitlines()) if out else {}


def run(pg, table, *flags, env=None):
    return hopper("run", "-s", pg.url, "-S", f"table={table}", "-S",
                  "poll=0.2", "--backoff", "0.05", *flags, "--", *FAKE,
                  env=env)


def test_every_row_done_once(pg, queue):
    pg_insert(pg, queue, [{"n": i} for i in range(300)])
    code, out, err = run(pg, queue, "-j", "3", "--prefetch", "4")
    assert code == 0, err
    res = by_id(read_jsonl(out))
    assert len(res) == 300 and all(r["ok"] for r in res.values())
    assert states(pg, queue) == {"done": "300"}
    assert pg.psql(f"SELECT count(*) FROM {queue} WHERE holder IS NOT NULL "
                   "OR lease_until IS NOT NULL") == "0"


def test_retries_wait_in_the_table_then_dead(pg, queue):
    pg_insert(pg, queue, [{"do": "fail_once"}, {"do": "perm"}, {"do": "fail"}])
    code, out, err = run(pg, queue, "--attempts", "3")
    assert code == 3, err
    rows = pg.psql(f"SELECT id, state, attempts, coalesce(last_error, '') "
                   f"FROM {queue} ORDER BY id").splitlines()
    assert rows == ["1|done|2|asked to fail", "2|dead|1|bad input",
                    "3|dead|3|asked to fail"]
    rec = json.loads(pg.psql(f"SELECT result FROM {queue} WHERE id = 3"))
    assert rec["attempts"] == 3 and "failing 3 on attempt 3" in rec["stderr"]


def test_an_expired_lease_is_reclaimed(pg, queue):
    pg_insert(pg, queue, [{"n": 1}, {"n": 2}])
    # Row 1 was claimed by a coordinator that died: its lease ran out.
    pg.psql(f"UPDATE {queue} SET state = 'running', attempts = 1, "
            "holder = 'gone:1', lease_until = now() - interval '1 second' "
            "WHERE id = 1")
    code, out, err = run(pg, queue)
    assert code == 0, err
    res = by_id(read_jsonl(out))
    assert res["1"]["attempts"] == 2 and res["2"]["attempts"] == 1
    assert states(pg, queue) == {"done": "2"}


def test_a_live_lease_is_waited_for_then_taken_over(pg, queue):
    """A finite run ends when the queue is finished: a row another
    coordinator holds is left alone while its lease lives, and taken over
    when the lease runs out (its holder died)."""
    pg_insert(pg, queue, [{"n": 1}, {"n": 2}])
    pg.psql(f"UPDATE {queue} SET state = 'running', attempts = 1, "
            "holder = 'busy:1', lease_until = now() + interval '2 seconds' "
            "WHERE id = 1")
    t0 = time.monotonic()
    code, out, err = run(pg, queue)
    took = time.monotonic() - t0
    assert code == 0, err
    res = by_id(read_jsonl(out))
    assert sorted(res) == ["1", "2"]
    assert res["1"]["result"]["attempt"] == 2
    assert took >= 1.5, took  # not before the lease ran out
    assert states(pg, queue) == {"done": "2"}


def test_notify_wakes_an_idle_coordinator(pg, queue, tmp):
    """Polling every 10 minutes: once the coordinator has polled, claimed
    and found nothing (it logs that it is idle), a row inserted is taken
    by a claim that follows the notification, not by the poll."""
    out = tmp / "out.jsonl"
    p = start("run", "-s", pg.url, "-S", f"table={queue}", "-S", "poll=600",
              "-o", f"jsonl:{out}", "--watch", "--log-level", "debug",
              "--", *FAKE, cwd=tmp)
    idle = "postgres source: idle until a notification or the next poll"
    try:
        # The first poll's wake is set before its line is logged, so an
        # idle line after it means that wake's claim found nothing too:
        # no claim is in flight or due before the next poll.
        wait_for(lambda: idle in stderr_of(p).partition(
            "postgres source: polling")[2], timeout=60,
            what="idle after the first poll")
        mark = len(stderr_of(p))
        pg_insert(pg, queue, [{"n": 7}])
        wait_for(lambda: out.exists() and out.read_text().strip(),
                 timeout=120, what="the result")
        p.send_signal(2)
        assert p.wait(timeout=60) == 0, stderr_of(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    after = stderr_of(p)[mark:]
    # The claim that took the row came after the notification, and no poll
    # happened in between (the next one is 10 minutes away).
    woke = after.find("postgres source: woken by a notification")
    took = after.find(": 1 rows in ")
    assert 0 <= woke < took, after[-3000:]
    assert "postgres source: polling" not in after[:took], after[-3000:]
    assert read_jsonl(out.read_text())[0]["result"]["echo"] == {"n": 7}
    assert states(pg, queue) == {"done": "1"}


def test_a_notification_that_comes_during_a_query_wakes_it(pg, queue, tmp):
    """The source's connection is busy with a query when a row is
    inserted: here the lease heartbeat for a row in a worker's hands,
    held up by a lock the test takes on that row. The notification then
    comes in with that query's answer, and must still wake the source:
    the row is taken long before the next poll (10 minutes away)."""
    import subprocess
    out = tmp / "out.jsonl"
    pg_insert(pg, queue, [{"do": "sleep", "secs": 600}])
    p = start("run", "-s", pg.url, "-S", f"table={queue}", "-S", "poll=600",
              "-S", "lease=3", "-o", f"jsonl:{out}", "--watch", "-j", "2",
              "--log-level", "debug", "--grace", "0", "--kill-timeout", "1",
              "--", *FAKE, cwd=tmp)
    locker = None
    try:
        wait_for(lambda: states(pg, queue) == {"running": "1"},
                 what="the sleeper claimed")
        locker = subprocess.Popen(["psql", "-X", "-q", "-d", pg.url],
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, text=True)
        locker.stdin.write(f"BEGIN; SELECT id FROM {queue} FOR UPDATE;\n")
        locker.stdin.flush()
        # The heartbeat (every lease / 3) waits for the lock.
        wait_for(lambda: pg.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type ="
            " 'Lock' AND query LIKE 'UPDATE % SET lease_until = %'")
            == "1", timeout=60, what="the heartbeat waiting for the lock")
        mark = len(stderr_of(p))
        pg_insert(pg, queue, [{"n": 2}])
        locker.stdin.write("COMMIT;\n")
        locker.stdin.close()
        assert locker.wait(timeout=60) == 0
        wait_for(lambda: out.exists() and out.read_text().strip(),
                 timeout=120, what="the inserted row's result")
    finally:
        if locker and locker.poll() is None:
            locker.kill()
            locker.wait()
        p.terminate()
        p.wait(timeout=60)
    after = stderr_of(p)[mark:]
    assert "postgres source: polling" not in after, after[-3000:]
    assert "postgres source: woken by a notification" in after
    assert read_jsonl(out.read_text())[0]["result"]["echo"] == {"n": 2}


def test_sigterm_hands_claimed_rows_back(pg, queue, tmp):
    pg_insert(pg, queue, [{"do": "sleep", "secs": 30}, {"n": 2}, {"n": 3}])
    log = tmp / "log"
    p = start("run", "-s", pg.url, "-S", f"table={queue}", "-j", "1",
              "--grace", "0.3", "--kill-timeout", "0.3", "--", *FAKE,
              cwd=tmp, env=clean_env(FAKE_LOG=log))
    try:
        # One worker: the sleeping row in its hands, and one more claimed
        # ahead, waiting in memory.
        wait_for(lambda: states(pg, queue).get("running") == "2",
                 what="two rows claimed")
        wait_for(lambda: log.exists() and "start 1 1 " in log.read_text(),
                 what="the sleeping row in the worker's hands")
        p.terminate()
        assert p.wait(timeout=20) == 143, stderr_of(p)  # finite, not done
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # Not failed attempts: all back to ready, attempts as before the claim.
    assert pg.psql(f"SELECT string_agg(state || ':' || attempts, ',' "
                   f"ORDER BY id) FROM {queue}") == "ready:0,ready:0,ready:0"


def test_clear_errors(pg, queue):
    code, _, err = hopper("run", "-s", pg.url, "-S", "table=no_such_table",
                          "--", *FAKE)
    assert code == 1 and "postgres source: table no_such_table:" in err
    assert 'relation "no_such_table" does not exist' in err
    code, _, err = hopper("run", "-s", pg.url, "-S", "table=x;drop", "--",
                          *FAKE)
    assert code == 1 and "'x;drop' is not a valid identifier" in err
    bad = pg.url.replace("hopper-secret", "nope")
    code, _, err = hopper("run", "-s", bad, "--", *FAKE)
    assert code == 1 and "password authentication failed" in err
    assert "nope" not in err and "hopper-secret" not in err
    code, _, err = hopper("run", "-s", "postgres://hopper@127.0.0.1:1/x",
                          "--", *FAKE)
    assert code == 1 and "postgres source: cannot connect" in err
