"""Join and reduce: a join gathers the parts of each root's tree into one
item, in order, never early, never twice; a dead part fails its group or is
collected; a group past its deadline fails or goes on partial. A reduce
folds items into exact results per key, and holds their source items until
the result is written: a coordinator killed before that loses nothing."""
import json
import signal
import subprocess

from conftest import (HOPPER, PY, WORKERS, by_id, clean_env, hopper,
                      read_jsonl, start, stderr_of, stop, wait_for,
                      write_jsonl)
from test_stages import cmd, dead_letters, run_pipeline

SPLIT_TAG_JOIN = {
    "split": {"command": cmd("split"), "to": "tag"},
    "tag": {"command": cmd("tag"), "to": "gather", "workers": 2},
    "gather": {"join": True, "to": "out"},
}


def test_a_join_hands_on_one_item_per_root_with_its_parts_in_order(tmp):
    # 12 parts: "r/10" and "r/11" must come after "r/2" (numeric order).
    payloads = [{"key": f"v{i}", "do": {"split": "split:12"}}
                for i in range(15)]
    code, got, err = run_pipeline(tmp, SPLIT_TAG_JOIN, payloads)
    assert code == 0, err
    res = by_id(got["out"])
    assert sorted(res) == sorted(f"v{i}" for i in range(15))
    for root, r in res.items():
        joined = r["result"]
        assert joined["id"] == root
        assert joined["root"]["key"] == root
        assert [p["part"] for p in joined["parts"]] == list(range(12))
        assert all(p["trail"] == ["split", "tag"] for p in joined["parts"])
        assert "errors" not in joined and "missing" not in joined
    assert "finished: 15 done, 0 dead" in err
    assert dead_letters(tmp) == []


def test_a_join_with_a_command_gives_its_worker_the_whole_group(tmp):
    stages = dict(SPLIT_TAG_JOIN)
    stages["gather"] = {"join": True, "command": cmd("gather"), "to": "out"}
    payloads = [{"key": f"v{i}", "do": {"split": "split:3"}} for i in range(5)]
    code, got, err = run_pipeline(tmp, stages, payloads)
    assert code == 0, err
    res = by_id(got["out"])
    assert sorted(res) == [f"v{i}" for i in range(5)]
    for r in res.values():
        assert r["result"]["trail"] == ["gather"]
        assert len(r["result"]["parts"]) == 3


def test_a_dead_part_fails_its_group_and_names_itself(tmp):
    payloads = [{"key": f"v{i}", "do": {"split": "split:5",
                                        "tag": "perm_part:3" if i < 2 else ""}}
                for i in range(6)]
    code, got, err = run_pipeline(tmp, SPLIT_TAG_JOIN, payloads)
    assert code == 3, err
    ok = {r["id"] for r in got["out"] if r["ok"]}
    assert ok == {f"v{i}" for i in range(2, 6)}
    dead = {d["id"]: d for d in dead_letters(tmp)}
    assert sorted(dead) == ["v0", "v1"]
    for root, d in dead.items():
        assert f"{root}/3" in d["error"] and "tag refuses" in d["error"]
    # The dead part itself is written as failed; no joined item for it.
    failed = [r for r in got["out"] if not r["ok"]]
    assert sorted(r["id"] for r in failed) == ["v0/3", "v1/3"]


def test_collect_hands_the_group_on_with_the_errors_in_it(tmp):
    stages = dict(SPLIT_TAG_JOIN)
    stages["gather"] = {"join": {"on_part_dead": "collect"}, "to": "out"}
    payloads = [{"key": f"v{i}", "do": {"split": "split:4",
                                        "tag": "perm_part:1" if i == 0 else ""}}
                for i in range(3)]
    code, got, err = run_pipeline(tmp, stages, payloads)
    res = {r["id"]: r for r in got["out"] if r["ok"]}
    assert sorted(res) == ["v0", "v1", "v2"], err
    v0 = res["v0"]["result"]
    assert [p["part"] for p in v0["parts"]] == [0, 2, 3]
    assert v0["errors"] == [{"id": "v0/1", "stage": "tag",
                             "error": "tag refuses v0/1"}]
    assert [p["part"] for p in res["v1"]["result"]["parts"]] == [0, 1, 2, 3]
    # The roots are done, not dead: the group went on.
    assert dead_letters(tmp) == []
    assert code == 3 and "3 done" in err  # the part itself is dead


def test_a_group_past_its_timeout_goes_on_partial_or_fails(tmp):
    for mode in ("partial", "fail"):
        stages = dict(SPLIT_TAG_JOIN)
        stages["gather"] = {"join": {"timeout": "1s", "on_timeout": mode},
                            "to": "out"}
        (tmp / "out.jsonl").unlink(missing_ok=True)
        (tmp / "dead.jsonl").unlink(missing_ok=True)
        payloads = [{"key": "slow", "do": {"split": "split:4",
                                           "tag": "sleep_part:2:4"}}]
        code, got, err = run_pipeline(tmp, stages, payloads)
        assert "the group is not complete after 1.0 s" in err
        if mode == "partial":
            assert code == 0, err
            (r,) = [r for r in got["out"] if r["ok"]]
            assert r["result"]["missing"] is True
            assert 2 not in [p["part"] for p in r["result"]["parts"]]
            assert "a part came after its group was handed on" in err
        else:
            assert code == 3, err
            assert [r for r in got["out"] if r["ok"]] == []
            (d,) = dead_letters(tmp)
            assert d["id"] == "slow" and "join timed out" in d["error"]
            assert d["stage"] == "gather"


def run_reduce(tmp, reduce, payloads, extra_stage=None):
    stages = {"sum": {"reduce": reduce, "to": "out"}}
    if extra_stage:
        stages = {"a": {"command": cmd("a"), "to": "sum"}, **stages}
    doc = {"sources": {"in": {"type": "jsonl",
                              "path": str(write_jsonl(tmp / "in.jsonl",
                                                      payloads)),
                              "id": "key", "dead": str(tmp / "dead.jsonl"),
                              "to": "a" if extra_stage else "sum"}},
           "sinks": {"out": {"type": "jsonl", "path": str(tmp / "out.jsonl")}},
           "stages": stages, "workers": 1}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc))
    out = tmp / "out.jsonl"
    out.unlink(missing_ok=True)
    (tmp / "dead.jsonl").unlink(missing_ok=True)
    code, _, err = hopper("run", "-f", f)
    return code, read_jsonl(out.read_text()) if out.exists() else [], err


def test_reduce_ops_are_exact_per_key(tmp):
    payloads = [{"key": f"i{i}", "codec": ["h264", "vp9", "hevc"][i % 3],
                 "size": i, "colour": ["red", "blue"][i % 2]}
                for i in range(30)]
    want = {"h264": [i for i in range(30) if i % 3 == 0],
            "vp9": [i for i in range(30) if i % 3 == 1],
            "hevc": [i for i in range(30) if i % 3 == 2]}
    for op in ("count", "sum", "min", "max", "mean"):
        red = {"op": op, "by": "/codec"}
        if op != "count":
            red["field"] = "/size"
        code, out, err = run_reduce(tmp, red, payloads)
        assert code == 0, err
        res = {r["id"]: r["result"] for r in out}
        assert sorted(res) == sorted(want)
        for k, xs in want.items():
            assert res[k]["key"] == k and res[k]["count"] == len(xs)
            expect = {"count": len(xs), "sum": sum(xs), "min": min(xs),
                      "max": max(xs), "mean": sum(xs) / len(xs)}[op]
            assert res[k]["value"] == expect, (op, k, res[k])
        assert "finished: 30 done, 0 dead" in err
    code, out, err = run_reduce(tmp, {"op": "histogram", "field": "/size",
                                      "buckets": [10, 20]}, payloads)
    assert code == 0, err
    (r,) = out
    assert r["id"] == "all"
    assert r["result"]["buckets"] == [10, 20]
    assert r["result"]["counts"] == [10, 10, 10]
    code, out, err = run_reduce(tmp, {"op": "histogram", "field": "/colour",
                                      "by": "/codec"}, payloads)
    res = {r["id"]: r["result"]["counts"] for r in out}
    assert res["h264"] == {"red": 5, "blue": 5}


def test_a_bad_item_is_dead_with_its_reason_and_the_rest_counts(tmp):
    payloads = [{"key": f"i{i}", "size": i} for i in range(10)]
    payloads[3] = {"key": "i3"}
    payloads[6] = {"key": "i6", "size": "big"}
    code, out, err = run_reduce(tmp, {"op": "sum", "field": "/size"},
                                payloads)
    assert code == 3, err
    (r,) = [r for r in out if r["ok"]]
    assert r["result"]["value"] == sum(range(10)) - 3 - 6
    assert r["result"]["count"] == 8
    dead = {d["id"]: d["error"] for d in dead_letters(tmp)}
    assert sorted(dead) == ["i3", "i6"]
    assert "no value at /size" in dead["i3"]
    assert '"big", not a number' in dead["i6"]


def test_count_windows_give_a_result_each_n_items(tmp):
    payloads = [{"key": f"i{i}"} for i in range(25)]
    code, out, err = run_reduce(tmp, {"op": "count", "every": 10}, payloads)
    assert code == 0, err
    res = {r["id"]: r["result"]["value"] for r in out}
    assert res == {"all@0": 10, "all@1": 10, "all@2": 5}


def test_a_killed_run_acknowledged_nothing_the_reduce_had_not_written(tmp):
    """The coordinator is SIGKILLed once half the items went through the
    stage before the reduce; the next run of the same file counts every
    item: had a source item been acknowledged when it was folded in, it
    would be missing from the count."""
    n = 60
    inbox = tmp / "inbox"
    inbox.mkdir()
    for i in range(n):
        (inbox / f"i{i:03}.json").write_text(json.dumps({"g": f"g{i % 4}"}))
    doc = {"source": {"type": "dir", "path": str(inbox)},
           "sinks": {"out": {"type": "jsonl",
                             "path": str(tmp / "out.jsonl")}},
           "stages": {"a": {"command": cmd("a"), "to": "count",
                            "workers": 1},
                      "count": {"reduce": {"op": "count", "by": "/g"},
                                "to": "out"}}}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc))
    log = tmp / "log"
    p = start("run", "-f", f, cwd=tmp,
              env=clean_env(STAGE_LOG=log, STAGE_SLEEP_A="0.02"))
    kill_after(p, log, n // 2, "half the items", tmp)
    code, _, err = hopper("run", "-f", f, cwd=tmp)
    assert code == 0, err
    res = {r["id"]: r["result"]["value"] for r in
           read_jsonl((tmp / "out.jsonl").read_text())}
    assert res == {f"g{k}": n // 4 for k in range(4)}


# Source items folded into a built-in reduce, with nothing else of their
# tree waiting, are kept in short until the result is written (their id
# and payload): the guarantees hold for them as for whole items.

def exec_source(n, d):
    return {"type": "exec",
            "command": f"{PY} {WORKERS / 'exec_source.py'} {n} {d}"}


def said(d):
    p = d / "acks.log"
    words = p.read_text().split() if p.exists() else []
    return list(zip(words[::2], words[1::2]))


def test_a_stopped_reduce_acknowledges_its_written_windows_only(tmp):
    """45 items in windows of 10: the source hears an ack for each of the
    40 whose windows were written, and, once the run is stopped, has the
    last 5 handed back, each once."""
    n = 45
    doc = {"source": exec_source(n, tmp),
           "sinks": {"out": {"type": "jsonl",
                             "path": str(tmp / "out.jsonl")}},
           "stages": {"count": {"reduce": {"op": "count", "every": 10},
                                "to": "out"}}}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc))
    p = start("run", "-f", f, cwd=tmp, env=clean_env())
    try:
        wait_for(lambda: len([k for k, _ in said(tmp) if k == "ack"]) >= 40
                 or p.poll() is not None, what="40 acknowledgements")
        assert p.poll() is None, stderr_of(p)
    finally:
        stop(p)
    assert p.returncode == 143, stderr_of(p)
    out = read_jsonl((tmp / "out.jsonl").read_text())
    assert [r["result"]["value"] for r in out] == [10] * 4
    heard = said(tmp)
    acks = sorted(int(i) for k, i in heard if k == "ack")
    released = sorted(int(i) for k, i in heard if k == "release")
    assert acks == list(range(1, 41)), heard
    assert released == list(range(41, n + 1)), heard
    assert len(heard) == n, heard


def test_a_killed_reduce_journals_only_what_its_results_cover(tmp):
    """Lines come on a pipe that stays open; once four windows of 10 are
    written the coordinator is SIGKILLed: the journal records those 40
    items and none of the 5 folded in after them, and a rerun with the
    journal counts just those 5."""
    lines = "".join(json.dumps({"n": i}) + "\n" for i in range(45))
    (tmp / "in.jsonl").write_text(lines)
    doc = {"source": "jsonl:-",
           "sinks": {"out": {"type": "jsonl",
                             "path": str(tmp / "out.jsonl")}},
           "stages": {"count": {"reduce": {"op": "count", "every": 10},
                                "to": "out"}}}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc))
    journal = tmp / "journal"
    errf = open(tmp / "first.err", "w+")
    p = subprocess.Popen([HOPPER, "run", "-f", str(f), "--journal",
                          str(journal)], stdin=subprocess.PIPE,
                         stderr=errf, cwd=tmp, env=clean_env())
    try:
        p.stdin.write(lines.encode())
        p.stdin.flush()

        def journaled():
            if not journal.exists():
                return []
            return [r["id"] for r in read_jsonl(journal.read_text())
                    if r.get("outcome") == "done"]
        wait_for(lambda: len(journaled()) >= 40 or p.poll() is not None,
                 what="40 items journaled")
        assert p.poll() is None, (tmp / "first.err").read_text()
        p.kill()
        p.wait()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdin.close()
        errf.close()
    assert sorted(journaled(), key=int) == [str(i) for i in range(1, 41)]
    with open(tmp / "in.jsonl") as stdin:
        r = subprocess.run([HOPPER, "run", "-f", str(f), "--journal",
                            str(journal)], stdin=stdin, capture_output=True,
                           text=True, cwd=tmp, env=clean_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert "skipped 40 item(s)" in r.stderr, r.stderr
    out = read_jsonl((tmp / "out.jsonl").read_text())
    assert [x["result"]["value"] for x in out] == [10, 10, 10, 10, 5]
    done = [x["id"] for x in read_jsonl(journal.read_text())
            if x.get("outcome") == "done"]
    assert sorted(done, key=int) == [str(i) for i in range(1, 46)]


def test_a_result_refused_for_good_dead_letters_the_items_behind_it(tmp):
    """The sink refuses one key's count for good: every source item behind
    that window is dead, its dead letter naming the stage and holding its
    payload, so that a retry can run it again."""
    payloads = [{"g": f"g{i % 3}", "n": i} for i in range(12)]
    doc = {"source": {"type": "jsonl",
                      "path": str(write_jsonl(tmp / "in.jsonl", payloads)),
                      "dead": str(tmp / "dead.jsonl")},
           "sinks": {"out": {"type": "exec", "command":
                             f"{PY} {WORKERS / 'exec_sink.py'} {tmp}"}},
           "stages": {"count": {"reduce": {"op": "count", "by": "/g"},
                                "to": "out"}}}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc))
    code, _, err = hopper("run", "-f", f, env=clean_env(REFUSE="g1"))
    assert code == 3, err
    dead = {d["id"]: d for d in dead_letters(tmp)}
    assert sorted(dead, key=int) == [str(i) for i in range(1, 13)], err
    for i, p in enumerate(payloads):
        d = dead[str(i + 1)]
        assert d["payload"] == p, d
        assert d["stage"] == "count", d
        assert "its reduce result could not be written" in d["error"], d


def kill_after(p, log, lines, what, tmp):
    """SIGKILLs the run p once its workers' log has that many lines, and
    checks that it wrote no result before it died."""
    try:
        wait_for(lambda: log.exists() and
                 len(log.read_text().splitlines()) >= lines or
                 p.poll() is not None, what=what)
        assert p.poll() is None, stderr_of(p)
        p.send_signal(signal.SIGKILL)
        p.wait()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert not (tmp / "out.jsonl").exists() or \
        (tmp / "out.jsonl").read_text() == ""


def reduce_refused(tmp, reduce, command, words):
    """hopper validate refuses a file whose stage 'sum' has this reduce
    (and a command when asked), naming the file, the stage and words."""
    stage = {"reduce": reduce, "to": "out"}
    if command:
        stage["command"] = cmd("x")
    doc = {"source": "jsonl:-", "sinks": {"out": "jsonl:-"},
           "stages": {"first": {"command": cmd("a"), "to": "sum"},
                      "sum": stage}}
    f = tmp / "bad.json"
    f.write_text(json.dumps(doc, indent=1))
    code, _, err = hopper("validate", f)
    assert code == 2, err
    assert "bad.json:" in err and "stage 'sum'" in err, err
    assert words in err, err


def test_join_and_reduce_errors_name_the_file_line_and_stage(tmp):
    cases = [
        ({"op": "count"}, "command", "takes no 'command'"),
        ({"op": "sum"}, None, "'sum' needs a 'field'"),
        ({"op": "count", "by": "codec"}, None, "'codec' is not a JSON"),
        ({"op": "avg"}, None, "avg"),
        ({"op": "count", "buckets": [1]}, None, "histogram only"),
    ]
    for reduce, extra, words in cases:
        reduce_refused(tmp, reduce, bool(extra), words)
    doc = {"source": "jsonl:-", "sinks": {"out": "jsonl:-"},
           "stages": {"first": {"command": cmd("a"), "to": "j"},
                      "j": {"join": {"on_part_dead": "ignore"}, "to": "out"}}}
    f = tmp / "bad.json"
    f.write_text(json.dumps(doc, indent=1))
    code, _, err = hopper("validate", f)
    assert code == 2 and "on_part_dead" in err and "collect" in err, err


def test_graph_shows_joins_and_reduces(tmp):
    doc = {"source": "jsonl:-", "sinks": {"out": "jsonl:-", "t": "jsonl:-"},
           "stages": {"split": {"command": cmd("split"), "to": ["j", "sum"]},
                      "j": {"join": {"on_part_dead": "collect"}, "to": "out"},
                      "sum": {"reduce": {"op": "mean", "field": "/size",
                                         "by": "/codec"}, "to": "t"}}}
    f = tmp / "g.json"
    f.write_text(json.dumps(doc))
    code, out, err = hopper("graph", f)
    assert code == 0, err
    assert "stage j (join, collecting dead parts)\n" in out
    assert "stage sum (reduce: mean of /size by /codec)\n" in out


# A jsonl file read straight into a built-in reduce: its lines are folded
# in with no item made of them, and kept as runs of line numbers until the
# result is written (read again for dead letters). The guarantees hold as
# for items; files long enough to take many reads.

def lines_file(tmp, n, bad=None):
    """n JSON lines {"g", "n", "pad"} (the pad varies their lengths), line
    i (from 1) replaced by bad[i]; returns the path and the lines."""
    lines = [json.dumps({"g": f"g{i % 7}", "n": i, "pad": "x" * (i % 53)})
             for i in range(1, n + 1)]
    for at, text in (bad or {}).items():
        lines[at - 1] = text
    path = tmp / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, lines


def count_doc(tmp, path, sink, **reduce):
    return {"source": {"type": "jsonl", "path": str(path),
                       "dead": str(tmp / "dead.jsonl")},
            "sinks": {"out": sink},
            "stages": {"count": {"reduce": {"op": "count", "by": "/g",
                                            **reduce},
                                 "to": "out"}}}


def test_a_counted_file_kills_its_bad_lines_and_counts_the_rest(tmp):
    """Lines that are not JSON or have no key, in the middle of a long
    file, die with the file and line in their error; a blank line is
    skipped; a line with a CR (an item, compacted) counts; every other
    line counts once."""
    n = 30000
    bad = {5000: '{"g": "g1", "n": oops}', 7001: '{"n": 7001}',
           9000: "   ", 11000: '{"g":\r"g3", "n": 11000}'}
    path, lines = lines_file(tmp, n, bad)
    doc = count_doc(tmp, path, {"type": "jsonl",
                                "path": str(tmp / "out.jsonl")})
    f = tmp / "p.json"
    f.write_text(json.dumps(doc))
    code, _, err = hopper("run", "-f", f)
    assert code == 3, err
    want = {}
    for i, line in enumerate(lines, 1):
        if i not in (5000, 7001, 9000):
            g = json.loads(line)["g"]
            want[g] = want.get(g, 0) + 1
    res = {r["id"]: r["result"]["value"]
           for r in read_jsonl((tmp / "out.jsonl").read_text()) if r["ok"]}
    assert res == want
    assert sum(want.values()) == n - 3
    dead = {d["id"]: d for d in dead_letters(tmp)}
    assert sorted(dead) == ["5000", "7001"], dead
    assert f"{path}:5000: not JSON" in dead["5000"]["error"], dead
    assert "no key at /g" in dead["7001"]["error"], dead
    assert dead["7001"]["payload"] == {"n": 7001}, dead
    assert f"{path}:9000: blank line skipped" in err, err
    assert f"finished: {n - 3} done, 2 dead" in err, err


def test_a_counted_file_whose_result_is_refused_dead_letters_its_lines(tmp):
    """The sink refuses one key's count for good: every line behind the
    window is dead with its own payload, read again from the file (lines
    from every part of it, around a bad line that broke their run)."""
    n = 20000
    path, lines = lines_file(tmp, n, {777: "not json"})
    doc = count_doc(tmp, path, {"type": "exec", "command":
                                f"{PY} {WORKERS / 'exec_sink.py'} {tmp}"})
    f = tmp / "p.json"
    f.write_text(json.dumps(doc))
    code, _, err = hopper("run", "-f", f, env=clean_env(REFUSE="g2"))
    assert code == 3, err
    dead = {d["id"]: d for d in dead_letters(tmp)}
    assert sorted(dead, key=int) == [str(i) for i in range(1, n + 1)], err
    assert "not JSON" in dead["777"]["error"]
    for i, line in enumerate(lines, 1):
        if i == 777:
            continue
        d = dead[str(i)]
        assert d["payload"] == json.loads(line), d
        assert d["stage"] == "count", d
        assert "its reduce result could not be written" in d["error"], d
    assert f"finished: 0 done, {n} dead" in err, err


def test_a_counted_file_stopped_before_its_result_is_written(tmp):
    """Windows of 10 over a file of 45 lines, and a pipe that stays open
    into the same reduce, so that the last window stays open: once four
    windows are written the run is stopped. Their 40 lines are done, the
    last 5 are handed back, each named, and nothing is dead."""
    n = 45
    path, _ = lines_file(tmp, n)
    doc = count_doc(tmp, path, {"type": "jsonl",
                                "path": str(tmp / "out.jsonl")}, every=10)
    doc["sources"] = {"file": {**doc.pop("source"), "to": "count"},
                      "pipe": {"type": "jsonl", "path": "-",
                               "to": "count"}}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc))
    out = tmp / "out.jsonl"
    errf = open(tmp / "run.err", "w+")
    p = subprocess.Popen([HOPPER, "run", "-f", str(f)],
                         stdin=subprocess.PIPE, stderr=errf, cwd=tmp,
                         env=clean_env())
    try:
        wait_for(lambda: out.exists() and
                 len(out.read_text().splitlines()) >= 4 * 7 or
                 p.poll() is not None, what="four windows written")
        assert p.poll() is None, (tmp / "run.err").read_text()
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdin.close()
        errf.close()
    err = (tmp / "run.err").read_text()
    assert p.returncode == 143, err
    assert "finished: 40 done, 0 dead, 0 retried, 5 handed back" in err, err
    for i in range(41, n + 1):
        assert f"item={i} {path}: item not finished before shutdown" in err, \
            err
    assert not dead_letters(tmp)
    counts = [r["result"]["value"] for r in read_jsonl(out.read_text())]
    assert sum(counts) == 40, counts
