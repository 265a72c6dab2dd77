"""A reducer worker: a reduce stage with a command folds its items through
its workers, a batch at a time ({"key", "acc", "items"} in, the new
accumulator out), one after another per key, or side by side with merges
of two accumulators (a tree). The source items behind a result are
acknowledged only once it is written."""
import json
from collections import defaultdict

from conftest import (PY, ROOT, WORKERS, clean_env, hopper, read_jsonl, start,
                      write_jsonl)
from test_gather import kill_after, reduce_refused
from test_stages import cmd, dead_letters

EXAMPLE = [PY, str(ROOT / "worker" / "examples" / "python" / "reducer.py")]
LOGGING = [PY, str(WORKERS / "reducer_log.py")]
CODECS = ["h264", "vp9", "av1"]


def items(n):
    return [{"key": f"i{i}", "codec": CODECS[i % 3], "size": i,
             "name": f"n{i}"} for i in range(n)]


def run(tmp, reduce, payloads, command=LOGGING, env=None, workers=3):
    doc = {"sources": {"in": {"type": "jsonl",
                              "path": str(write_jsonl(tmp / "in.jsonl",
                                                      payloads)),
                              "id": "key", "dead": str(tmp / "dead.jsonl")}},
           "sinks": {"out": {"type": "jsonl", "path": str(tmp / "out.jsonl")}},
           "stages": {"fold": {"reduce": reduce, "command": command,
                               "workers": workers, "to": "out"}}}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc))
    for name in ("out.jsonl", "dead.jsonl", "log.jsonl"):
        (tmp / name).unlink(missing_ok=True)
    code, _, err = hopper("run", "-f", f,
                          env=clean_env(REDUCER_LOG=tmp / "log.jsonl",
                                        **(env or {})))
    out = tmp / "out.jsonl"
    return code, read_jsonl(out.read_text()) if out.exists() else [], err


def sums(payloads):
    want = defaultdict(lambda: {"n": 0, "sum": 0})
    for p in payloads:
        want[p["codec"]]["n"] += 1
        want[p["codec"]]["sum"] += p["size"]
    return dict(want)


def test_the_example_reducer_folds_each_key_exactly(tmp):
    payloads = items(100)
    code, out, err = run(tmp, {"by": "/codec", "batch": 7}, payloads,
                         command=EXAMPLE)
    assert code == 0, err
    res = {r["id"]: r["result"] for r in out}
    assert sorted(res) == sorted(CODECS)
    for k in CODECS:
        mine = [p for p in payloads if p["codec"] == k]
        top = max(mine, key=lambda p: p["size"])
        assert res[k] == {"count": len(mine),
                          "total": sum(p["size"] for p in mine),
                          "max": top["size"], "largest": top["name"]}
    assert "finished: 100 done, 0 dead" in err


def test_batches_of_one_key_follow_each_other_from_the_last_accumulator(tmp):
    payloads = items(60)
    code, out, err = run(tmp, {"by": "/codec", "batch": 4}, payloads)
    assert code == 0, err
    assert {r["id"]: r["result"] for r in out} == sums(payloads)
    seen = defaultdict(list)
    for line in read_jsonl((tmp / "log.jsonl").read_text()):
        p = line["payload"]
        assert "merge" not in p and len(p["items"]) <= 4
        seen[p["key"]].append(p)
    for k, batches in seen.items():
        n = 0
        for b in batches:  # each from the answer to the one before
            assert (b["acc"] or {"n": 0})["n"] == n
            n += len(b["items"])
        assert n == 20


def test_merge_runs_batches_side_by_side_as_a_tree(tmp):
    payloads = items(90)
    code, out, err = run(tmp, {"by": "/codec", "batch": 5, "merge": True},
                         payloads)
    assert code == 0, err
    assert {r["id"]: r["result"] for r in out} == sums(payloads)
    batches, merges = defaultdict(int), defaultdict(int)
    for line in read_jsonl((tmp / "log.jsonl").read_text()):
        p = line["payload"]
        key = line["id"].split("/")[1]
        if "merge" in p:
            merges[key] += 1
        else:
            assert p["acc"] is None and len(p["items"]) <= 5
            batches[key] += 1
    # A tree of n leaves has n - 1 merges.
    for k in CODECS:
        assert batches[k] == 6 and merges[k] == 5


def test_count_windows_give_each_key_a_result_per_window(tmp):
    payloads = [dict(p, codec="all") for p in items(25)]
    code, out, err = run(tmp, {"batch": 4, "every": 10}, payloads,
                         workers=1)
    assert code == 0, err
    res = {r["id"]: r["result"] for r in out}
    assert res == {"all@0": {"n": 10, "sum": sum(range(10))},
                   "all@1": {"n": 10, "sum": sum(range(10, 20))},
                   "all@2": {"n": 5, "sum": sum(range(20, 25))}}


def test_a_batch_that_dies_dead_letters_the_items_behind_its_window(tmp):
    payloads = items(12)
    payloads[5] = {"key": "i5", "codec": "vp9", "name": "no size"}
    code, out, err = run(tmp, {"batch": 100}, payloads, command=EXAMPLE)
    assert code == 3, err
    assert [r for r in out if r["ok"]] == []
    dead = {d["id"]: d for d in dead_letters(tmp)}
    assert sorted(dead) == sorted(p["key"] for p in payloads)
    assert 'has no number "size"' in dead["i0"]["error"], dead["i0"]
    assert "its reduce result could not be written" in dead["i0"]["error"]
    assert dead["i0"]["stage"] == "fold"


def test_a_killed_run_acknowledged_nothing_the_reducer_had_not_written(tmp):
    n = 40
    inbox = tmp / "inbox"
    inbox.mkdir()
    for i in range(n):
        (inbox / f"i{i:03}.json").write_text(
            json.dumps({"codec": CODECS[i % 2], "size": i}))
    doc = {"source": {"type": "dir", "path": str(inbox)},
           "sinks": {"out": {"type": "jsonl",
                             "path": str(tmp / "out.jsonl")}},
           "stages": {"a": {"command": cmd("a"), "to": "fold",
                            "workers": 1},
                      "fold": {"reduce": {"by": "/codec", "batch": 3},
                               "command": LOGGING,
                               "workers": 1, "to": "out"}}}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc))
    log = tmp / "log.jsonl"
    p = start("run", "-f", f, cwd=tmp,
              env=clean_env(REDUCER_LOG=log, STAGE_SLEEP_A="0.02"))
    kill_after(p, log, 4, "some batches", tmp)
    code, _, err = hopper("run", "-f", f, cwd=tmp, env=clean_env())
    assert code == 0, err
    res = {r["id"]: r["result"] for r in
           read_jsonl((tmp / "out.jsonl").read_text())}
    assert res == {c: {"n": n // 2,
                       "sum": sum(i for i in range(n) if CODECS[i % 2] == c)}
                   for c in CODECS[:2]}


def test_reducer_worker_options_are_checked(tmp):
    cases = [({"op": "count"}, True, "takes no 'command'"),
             ({"op": "count", "batch": 3}, False, "'batch' and 'merge'"),
             ({"by": "/k"}, False, "no 'op'")]
    for reduce, command, words in cases:
        reduce_refused(tmp, reduce, command, words)


def test_graph_shows_a_reducer_worker(tmp):
    doc = {"source": "jsonl:-", "sinks": {"out": "jsonl:-"},
           "stages": {"sum": {"reduce": {"by": "/codec", "batch": 50,
                                         "merge": True},
                              "command": cmd("x"), "to": "out"}}}
    f = tmp / "g.json"
    f.write_text(json.dumps(doc))
    code, out, err = hopper("graph", f)
    assert code == 0, err
    assert "stage sum (reduce by a stream worker, batches of 50, merged " \
        "as a tree, by /codec)" in out
