"""A reduce with "state": its accumulators live in PostgreSQL, by window
and key. Items are counted into the table about once a second, with their
ids, and their source items acknowledged then; an item that comes again
after a crash counts once; results are written from the table, by one
coordinator, when the input is over or the window has closed."""
import json
import signal
import time

from conftest import (by_id, clean_env, hopper, pg_insert, read_jsonl,
                      stderr_of,
                      start, stop, wait_for, write_jsonl)
from test_stages import cmd


def doc_of(tmp, pg, name, rows, reduce, table, tag=True, source=None):
    src = write_jsonl(tmp / f"{name}.in.jsonl", rows)
    stages = {"sum": {"reduce": {**reduce, "state": pg.url,
                                 "state_table": table}, "to": "out"}}
    if tag:
        stages = {"tag": {"command": cmd("tag"), "to": "sum"}, **stages}
    doc = {"sources": {"in": source or {
               "type": "jsonl", "path": str(src), "id": "key",
               "dead": str(tmp / f"{name}.dead.jsonl")}},
           "sinks": {"out": {"type": "jsonl",
                             "path": str(tmp / f"{name}.out.jsonl")}},
           "stages": stages, "backoff": "10ms", "workers": 2}
    f = tmp / f"{name}.json"
    f.write_text(json.dumps(doc, indent=1))
    return f


def results(tmp, name):
    p = tmp / f"{name}.out.jsonl"
    return read_jsonl(p.read_text()) if p.exists() else []


def items(n, keys=3):
    return [{"key": f"i{i}", "codec": f"c{i % keys}", "size": i}
            for i in range(n)]


def sums(rows, keys=3):
    return {f"c{k}": (sum(r["size"] for r in rows if r["codec"] == f"c{k}"),
                      sum(1 for r in rows if r["codec"] == f"c{k}"))
            for k in range(keys)}


def test_a_finite_run_writes_its_sums_from_the_table(tmp, pg):
    rows = items(300)
    f = doc_of(tmp, pg, "one", rows,
               {"op": "sum", "field": "/size", "by": "/codec"}, "rs_one")
    code, _, err = hopper("run", "-f", f, env=clean_env())
    assert code == 0, err
    res = by_id(results(tmp, "one"))
    want = sums(rows)
    assert sorted(res) == sorted(want)
    for key, (total, count) in want.items():
        assert res[key]["result"]["value"] == total
        assert res[key]["result"]["count"] == count
    assert "stage sum: accumulators kept in rs_one" in err
    # Written: the window is gone from the table, for the next run's.
    assert pg.psql("SELECT (SELECT count(*) FROM rs_one) + (SELECT count(*) "
                   "FROM rs_one_seen) + (SELECT count(*) FROM "
                   "rs_one_windows)") == "0"


def test_an_item_counted_before_a_crash_counts_once(tmp, pg):
    """As a coordinator killed after counting ten items into the table but
    before their source heard it leaves them: the items come again, and
    count once."""
    code, _, err = hopper("run", "-f", doc_of(
        tmp, pg, "make", [], {"op": "count"}, "rs_once"), env=clean_env())
    assert code == 0, err
    pg.psql("INSERT INTO rs_once_windows (win) VALUES (0);"
            "INSERT INTO rs_once (win, key, result) VALUES (0, 'all', "
            "'{\"op\":\"count\",\"count\":10,\"value\":10}');"
            "INSERT INTO rs_once_seen (win, id) SELECT 0, 'i' || g "
            "FROM generate_series(0, 9) g", url=pg.url)
    f = doc_of(tmp, pg, "once", items(100), {"op": "count"}, "rs_once",
               tag=False)
    code, _, err = hopper("run", "-f", f, env=clean_env())
    assert code == 0, err
    res = by_id(results(tmp, "once"))
    assert res["all"]["result"]["value"] == 100, res
    assert "were counted in rs_once already (they came again): counted " \
        "once" in err


def test_a_killed_run_loses_no_count_and_counts_none_twice(tmp, pg):
    rows = items(2000, keys=4)
    f = doc_of(tmp, pg, "kill", rows,
               {"op": "mean", "field": "/size", "by": "/codec"}, "rs_kill")
    journal = tmp / "kill.journal"
    p = start("run", "-f", f, "--journal", journal, cwd=tmp,
              env=clean_env(STAGE_SLEEP="tag=0.005"))
    try:
        wait_for(lambda: pg.psql("SELECT count(*) FROM rs_kill_seen",
                                 check=False) not in ("", "0"),
                 what="items counted into the table")
        p.send_signal(signal.SIGKILL)
        p.wait()
    finally:
        stop(p)
    assert results(tmp, "kill") == [], "the run ended before the kill"
    counted = int(pg.psql("SELECT count(*) FROM rs_kill_seen"))
    assert 0 < counted < 2000
    code, _, err = hopper("run", "-f", f, "--journal", journal,
                          env=clean_env())
    assert code == 0, err
    res = by_id(results(tmp, "kill"))
    want = sums(rows, keys=4)
    assert sorted(res) == sorted(want)
    for key, (total, count) in want.items():
        assert res[key]["result"]["count"] == count, (key, res[key])
        assert res[key]["result"]["sum"] == total


def test_time_windows_from_the_table_and_late_items(tmp, pg):
    # Windows that the clock does not close while the test runs: a finite
    # run writes them at its end.
    t0 = (int(time.time()) // 10 + 1000) * 10
    w0 = t0 // 10
    rows = [{"key": f"i{i}", "codec": "c0", "size": 1, "ts": t0 + i}
            for i in range(30)]
    reduce = {"op": "count", "by": "/codec", "interval": 10, "grace": 0,
              "time": "/ts"}
    f = doc_of(tmp, pg, "win", rows, reduce, "rs_win", tag=False)
    code, _, err = hopper("run", "-f", f, env=clean_env())
    assert code == 0, err
    res = by_id(results(tmp, "win"))
    assert {k: r["result"]["value"] for k, r in res.items()} == \
        {f"c0@{t0}": 10, f"c0@{t0 + 10}": 10, f"c0@{t0 + 20}": 10}
    assert pg.psql("SELECT win, state FROM rs_win_windows ORDER BY win") \
        == f"{w0}|done\n{w0 + 1}|done\n{w0 + 2}|done"
    # A later run's item for a window written already is late.
    more = [{"key": "j0", "codec": "c0", "size": 1, "ts": t0 + 5},
            {"key": "j1", "codec": "c0", "size": 1, "ts": t0 + 35}]
    f = doc_of(tmp, pg, "win2", more, reduce, "rs_win", tag=False)
    code, _, err = hopper("run", "-f", f, env=clean_env())
    assert code == 0, err
    assert {r["id"]: r["result"]["value"] for r in results(tmp, "win2")} \
        == {f"c0@{t0 + 30}": 1}
    assert f"stage sum: window {w0} was handed on already: 1 item(s) " \
        "came too late for it, dropped" in err, err


def test_validate_names_a_bad_reduce_state(tmp):
    cases = [
        ({"op": "count", "state": "mysql://db/x"},
         "reduce: 'state' is where groups are kept: a PostgreSQL URL"),
        ({"op": "count", "state": "postgres://db/x", "every": 10},
         "reduce: 'every' (a count window) cannot be kept in 'state'"),
        ({"op": "count", "state_table": "t"},
         "reduce: 'state_table' goes with 'state'"),
        ({"state": "postgres://db/x"},
         "reduce: 'state' keeps a built-in op's accumulators"),
    ]
    for reduce, words in cases:
        stage = {"reduce": reduce, "to": "out"}
        if "op" not in reduce:
            stage["command"] = cmd("r")
        doc = {"source": "jsonl:in.jsonl",
               "sinks": {"out": {"type": "jsonl", "path": "o.jsonl"}},
               "stages": {"sum": stage}}
        f = tmp / "v.json"
        f.write_text(json.dumps(doc))
        code, _, err = hopper("validate", "-f", f)
        assert code == 2 and words in err, (reduce, err)


def test_two_watched_coordinators_share_time_windows(tmp, pg, queue):
    """Two coordinators read one queue and count into one table by time
    windows of arrival: each window is written once, by one of them, with
    what both counted, and every item is in one window."""
    n = 120
    pg_insert(pg, queue, [{"key": f"i{i}", "codec": "c0"}
                          for i in range(n)])
    source = {"type": "postgres", "url": pg.url, "table": queue,
              "poll": "100ms", "batch": 4}
    reduce = {"op": "count", "by": "/codec", "interval": 1, "grace": 2}
    logs = [tmp / "a.log", tmp / "b.log"]
    procs = []
    try:
        for name, log in zip("ab", logs):
            f = doc_of(tmp, pg, name, [], reduce, "rs_share", source=source)
            procs.append(start("run", "-f", f, "--watch", cwd=tmp,
                               env=clean_env(STAGE_SLEEP="tag=0.05",
                                             STAGE_LOG=log)))
            wait_for(lambda: log.exists(), what=f"coordinator {name} at work")

        def counted():
            return sum(r["result"]["value"] for name in "ab"
                       for r in results(tmp, name))
        wait_for(lambda: counted() >= n, timeout=120,
                 what="every item in a written window")
        wait_for(lambda: pg.psql(
            "SELECT count(*) FROM rs_share_windows WHERE state <> 'done'")
            == "0", what="every window done")
    finally:
        stop(*procs)
    lines = results(tmp, "a") + results(tmp, "b")
    ids = [r["id"] for r in lines]
    assert len(ids) == len(set(ids)), ids
    assert counted() == n
    # Both coordinators took items from the queue.
    assert all(log.read_text().strip() for log in logs)


def test_graph_says_where_the_state_is(tmp):
    doc = {"source": "jsonl:in.jsonl",
           "sinks": {"out": {"type": "jsonl", "path": "o.jsonl"}},
           "stages": {"tag": {"command": cmd("tag"), "to": ["sum", "j"]},
                      "sum": {"reduce": {"op": "sum", "field": "/size",
                                         "by": "/codec",
                                         "state": "postgres://db/x"},
                              "to": "out"},
                      "j": {"join": {"by": "/video", "count": "/total",
                                     "state": "postgres://db/x"},
                            "to": "out"}}}
    f = tmp / "g.json"
    f.write_text(json.dumps(doc))
    code, out, err = hopper("graph", f)
    assert code == 0, err
    assert "stage sum (reduce: sum of /size by /codec, state in " \
        "PostgreSQL)" in out, out
    assert "stage j (join, failing on dead parts, by /video counting " \
        "/total, state in PostgreSQL)" in out, out


def test_the_database_goes_away_under_a_reduce(tmp, pg, queue):
    """The server holding the queue and the accumulators crashes mid-run
    and comes back: what was folded meanwhile waits, and every item is
    counted once."""
    from test_pg_faults import take_down, wait_exit
    n = 200
    pg_insert(pg, queue, [{"key": f"i{i}", "codec": f"c{i % 3}", "size": i}
                          for i in range(n)])
    source = {"type": "postgres", "url": pg.url, "table": queue,
              "poll": "100ms", "lease": "60s"}
    f = doc_of(tmp, pg, "db", [], {"op": "sum", "field": "/size",
                                   "by": "/codec"}, "rs_db", source=source)
    p = start("run", "-f", f, cwd=tmp, env=clean_env(STAGE_SLEEP="tag=0.05"))
    try:
        wait_for(lambda: pg.psql("SELECT count(*) FROM rs_db_seen",
                                 check=False) not in ("", "0"),
                 what="items counted into the table")
        take_down(pg, "crash")
        wait_for(lambda: "what stage sum would keep there waits for it"
                 in stderr_of(p), what="a count waiting for the store")
        pg.start()
        code = wait_exit(p, time.monotonic() + 120, "the run")
    finally:
        stop(p)
    err = stderr_of(p)
    assert code == 0, err[-3000:]
    assert "stage sum: its state store answers again" in err, err[-3000:]
    res = by_id(results(tmp, "db"))
    want = sums([{"codec": f"c{i % 3}", "size": i} for i in range(n)])
    for key, (total, count) in want.items():
        assert res[key]["result"]["count"] == count, (key, err[-3000:])
        assert res[key]["result"]["value"] == total
    assert pg.psql(f"SELECT state, count(*) FROM {queue} GROUP BY 1") == \
        f"done|{n}"
