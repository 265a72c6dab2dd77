"""Time windows of a reduce: tumbling windows aligned to the epoch, by
event time (a JSON pointer) or arrival, each open for `grace` past its
end; an item for a window already closed is counted late and goes to the
stage's port `late`. The source items behind a window are acknowledged
only once its result is written: a coordinator killed before that repeats
them."""
import json
import signal
import time

from conftest import (clean_env, hopper, http_port, read_jsonl, start,
                      stderr_of, stop, wait_for, write_jsonl)
from test_http import get, metric
from test_stages import cmd, dead_letters

HOUR = 3600


def pipeline(tmp, reduce, source, to=None, extra_stage=False):
    sinks = {"out": {"type": "jsonl", "path": str(tmp / "out.jsonl")},
             "late": {"type": "jsonl", "path": str(tmp / "late.jsonl")}}
    stages = {"count": {"reduce": reduce,
                        "to": to or {"*": "out", "late": "late"}}}
    if extra_stage:
        stages = {"a": {"command": cmd("a"), "to": "count", "workers": 1},
                  **stages}
    doc = {"sources": {"in": dict(source, to="a" if extra_stage else
                                  "count")},
           "sinks": sinks, "stages": stages}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc, indent=1))
    return f


def lines(path):
    return read_jsonl(path.read_text()) if path.exists() else []


def test_a_time_window_without_grace_is_refused_naming_stage_and_key(tmp):
    f = pipeline(tmp, {"op": "count", "interval": "10s"},
                 {"type": "jsonl", "path": "-"})
    code, _, err = hopper("validate", f)
    assert code == 2, err
    assert "p.json:" in err and "stage 'count'" in err, err
    assert "a time window ('interval') needs 'grace'" in err, err
    f = pipeline(tmp, {"op": "count", "interval": "10s", "grace": 0,
                       "time": "ts"}, {"type": "jsonl", "path": "-"})
    code, _, err = hopper("validate", f)
    assert code == 2 and "'ts' is not a JSON pointer" in err, err


def test_event_time_puts_items_in_their_window_and_late_ones_aside(tmp):
    now = time.time()
    rows = ([{"key": f"i{i}", "codec": "ab"[i % 2], "ts": now}
             for i in range(10)] +
            [{"key": f"old{i}", "codec": "a", "ts": now - 2 * HOUR}
             for i in range(3)] +
            [{"key": "bad", "codec": "a", "ts": "yesterday"}])
    src = {"type": "jsonl", "path": str(write_jsonl(tmp / "in.jsonl", rows)),
           "id": "key", "dead": str(tmp / "dead.jsonl")}
    f = pipeline(tmp, {"op": "count", "by": "/codec", "interval": "1h",
                       "grace": "10m", "time": "/ts"}, src)
    code, _, err = hopper("run", "-f", f)
    assert code == 3, err
    start_s = int(now // HOUR * HOUR)
    res = {r["id"]: r["result"]["value"] for r in lines(tmp / "out.jsonl")
           if r["ok"]}
    assert res == {f"a@{start_s}": 5, f"b@{start_s}": 5}
    late = lines(tmp / "late.jsonl")
    assert sorted(r["id"] for r in late) == ["old0", "old1", "old2"]
    assert late[0]["result"]["codec"] == "a"  # the item as it came
    (d,) = dead_letters(tmp)
    assert d["id"] == "bad" and "not a number of seconds since the " \
        "epoch" in d["error"]
    assert "finished: 13 done, 1 dead" in err


def test_late_items_are_dropped_and_counted_when_to_has_no_late_port(tmp):
    now = time.time()
    rows = [{"key": "new", "ts": now}, {"key": "old", "ts": now - 2 * HOUR}]
    src = {"type": "jsonl", "path": str(write_jsonl(tmp / "in.jsonl", rows)),
           "id": "key", "dead": str(tmp / "dead.jsonl")}
    reduce = {"op": "count", "interval": "1h", "grace": "1m", "time": "/ts"}
    f = pipeline(tmp, reduce, src, to={"*": "out"})
    code, _, err = hopper("run", "-f", f)
    assert code == 0, err
    # Only the result: a late item is never mixed with them.
    assert [r["id"] for r in lines(tmp / "out.jsonl")] == \
        [f"all@{int(now // HOUR * HOUR)}"]
    assert "item=old stage count: its time" in err
    assert "dropped (the stage's \"to\" has no port late)" in err
    assert "2 done, 0 dead" in err and "1 dropped" in err


def test_a_watched_run_writes_each_window_once_its_grace_is_over(tmp):
    inbox = tmp / "inbox"
    inbox.mkdir()
    f = pipeline(tmp, {"op": "count", "interval": "1s", "grace": "1s"},
                 {"type": "dir", "path": str(inbox)}, extra_stage=True)
    p = start("run", "-f", f, "--watch", cwd=tmp, env=clean_env())
    try:
        total = 0
        for batch in (4, 3):
            for i in range(batch):
                (inbox / f"b{total + i}.json").write_text("{}")
            total += batch

            def counted(total=total):
                assert p.poll() is None, stderr_of(p)
                return sum(r["result"]["value"]
                           for r in lines(tmp / "out.jsonl")) == total

            wait_for(counted, what=f"{total} items in window results")
            # Written, so acknowledged: every file is done.
            wait_for(lambda total=total:
                     len(list((inbox / "done").iterdir())) == total,
                     what="the files done")
        ids = [r["id"] for r in lines(tmp / "out.jsonl")]
        assert len(ids) == len(set(ids)) and \
            all(i.startswith("all@") for i in ids)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0, stderr_of(p)
    finally:
        stop(p)


def test_a_killed_watched_run_repeats_the_items_of_an_unwritten_window(tmp):
    """The items are folded into a window that stays open (its end plus
    grace is an hour away) when the coordinator is SIGKILLed: none was
    acknowledged, so a finite run over the same folder counts them all."""
    n = 12
    inbox = tmp / "inbox"
    inbox.mkdir()
    now = time.time()
    for i in range(n):
        (inbox / f"i{i:03}.json").write_text(
            json.dumps({"g": f"g{i % 3}", "ts": now}))
    f = pipeline(tmp, {"op": "count", "by": "/g", "interval": "1h",
                       "grace": "1h", "time": "/ts"},
                 {"type": "dir", "path": str(inbox)}, extra_stage=True)
    p = start("run", "-f", f, "--watch", "--listen", "127.0.0.1:0", cwd=tmp,
              env=clean_env())
    try:
        port = http_port(p)
        wait_for(lambda: metric(get(port, "/metrics")[2],
                                "hopper_stage_gathered_items",
                                stage="count") == n,
                 what="every item held by the open window")
        p.send_signal(signal.SIGKILL)
        p.wait()
    finally:
        stop(p)
    assert lines(tmp / "out.jsonl") == []
    assert not (inbox / "done").exists() or \
        list((inbox / "done").iterdir()) == []
    code, _, err = hopper("run", "-f", f, cwd=tmp, env=clean_env())
    assert code == 0, err
    start_s = int(now // HOUR * HOUR)
    res = {r["id"]: r["result"]["value"] for r in lines(tmp / "out.jsonl")}
    assert res == {f"g{k}@{start_s}": n // 3 for k in range(3)}
    assert len(list((inbox / "done").iterdir())) == n


def test_a_reducer_worker_folds_time_windows_too(tmp):
    now = time.time()
    rows = ([{"key": f"i{i}", "size": i, "ts": now} for i in range(6)] +
            [{"key": "old", "size": 100, "ts": now - 2 * HOUR}])
    src = {"type": "jsonl", "path": str(write_jsonl(tmp / "in.jsonl", rows)),
           "id": "key", "dead": str(tmp / "dead.jsonl")}
    from test_reducer_worker import LOGGING
    f = pipeline(tmp, {"batch": 4, "interval": "1h", "grace": "10m",
                       "time": "/ts"}, src)
    doc = json.loads(f.read_text())
    doc["stages"]["count"]["command"] = LOGGING
    f.write_text(json.dumps(doc))
    code, _, err = hopper("run", "-f", f)
    assert code == 0, err
    res = {r["id"]: r["result"] for r in lines(tmp / "out.jsonl")}
    assert res == {f"all@{int(now // HOUR * HOUR)}": {"n": 6, "sum": 15}}
    assert [r["id"] for r in lines(tmp / "late.jsonl")] == ["old"]
