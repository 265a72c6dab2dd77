"""Join by key: parts from different source items that share a key are
gathered into one item, once the group knows its size (a count carried in
a field, or an end marker on the numbered last part). The guarantees of a
join by parent hold: a part handled twice never completes a group early,
a dead part is a finished part (fail or collect), a group past its
deadline fails or goes on partial, a finite run names the groups it could
not complete and exits non-zero, pending groups are exported, and memory
is bounded with a clear error."""
import json
import random
import signal

from conftest import (by_id, clean_env, hopper, http_port, read_jsonl, start,
                      stderr_of, stop, wait_for, write_jsonl)
from test_http import get, metric
from test_stages import cmd, dead_letters, run_pipeline


def frames(videos, n, seed=1, **extra):
    """n frames of each video, one source item each, shuffled."""
    rows = [{"key": f"v{v}-f{f}", "video": f"v{v}", "part": f, "total": n,
             **extra} for v in range(videos) for f in range(n)]
    random.Random(seed).shuffle(rows)
    return rows


def by_key(join, to="out"):
    return {"tag": {"command": cmd("tag"), "to": "j", "workers": 2},
            "j": {"join": join, "to": to}}


def test_parts_sharing_a_key_are_joined_once_the_count_is_in(tmp):
    code, got, err = run_pipeline(
        tmp, by_key({"by": "/video", "count": "/total"}), frames(5, 4))
    assert code == 0, err
    res = by_id(got["out"])
    assert sorted(res) == [f"v{v}" for v in range(5)]
    for key, r in res.items():
        joined = r["result"]
        assert joined["key"] == key
        assert [p["key"] for p in joined["parts"]] == \
            [f"{key}-f{f}" for f in range(4)]
        assert all(p["trail"] == ["tag"] for p in joined["parts"])
        assert "errors" not in joined and "missing" not in joined
    # Every source item is acknowledged, once its group's item is written.
    assert "finished: 20 done, 0 dead" in err
    assert dead_letters(tmp) == []


def test_an_end_marker_closes_a_group_once_every_number_before_it_came(tmp):
    rows = [{"key": f"v{v}-f{f}", "video": f"v{v}", "n": f,
             "last": f == 2 + v} for v in range(3) for f in range(3 + v)]
    random.Random(7).shuffle(rows)
    code, got, err = run_pipeline(
        tmp, by_key({"by": "/video", "end": "/last", "seq": "/n"}), rows)
    assert code == 0, err
    res = by_id(got["out"])
    for v in range(3):
        parts = res[f"v{v}"]["result"]["parts"]
        assert [p["n"] for p in parts] == list(range(3 + v))
    assert "finished: 12 done, 0 dead" in err


def test_a_part_that_comes_twice_never_completes_its_group_early(tmp):
    """Each frame reaches the join twice, by two paths, with the same id;
    the last frame of each video is slow. Counted twice, a group of three
    would be complete with frames 0, 0 and 1 before frame 2 came."""
    rows = [dict(r, do={"b": "sleep_part:2:0.4", "c": "sleep_part:2:0.4"})
            for r in frames(4, 3)]
    stages = {"a": {"command": cmd("a"), "to": ["b", "c"]},
              "b": {"command": cmd("b"), "to": "j"},
              "c": {"command": cmd("c"), "to": "j"},
              "j": {"join": {"by": "/video", "count": "/total"},
                    "to": "out"}}
    code, got, err = run_pipeline(tmp, stages, rows)
    assert code == 0, err
    res = by_id(got["out"])
    assert sorted(res) == [f"v{v}" for v in range(4)]
    for r in res.values():
        assert sorted(p["part"] for p in r["result"]["parts"]) == [0, 1, 2]
    assert "finished: 12 done, 0 dead" in err


def test_a_dead_part_fails_every_source_item_of_its_group(tmp):
    rows = frames(3, 4, do={"tag": "perm_part:2"})
    for r in rows:
        if r["video"] != "v0":
            r["do"] = {}
    code, got, err = run_pipeline(
        tmp, by_key({"by": "/video", "count": "/total"}), rows)
    assert code == 3, err
    ok = {r["id"] for r in got["out"] if r["ok"]}
    assert ok == {"v1", "v2"}
    dead = {d["id"]: d for d in dead_letters(tmp)}
    assert sorted(dead) == [f"v0-f{f}" for f in range(4)]
    for k in ("v0-f0", "v0-f1", "v0-f3"):
        assert "join j, key v0" in dead[k]["error"], dead[k]
        assert "v0-f2 (stage tag): tag refuses v0-f2" in dead[k]["error"]
        assert dead[k]["stage"] == "j"
    assert "tag refuses v0-f2" in dead["v0-f2"]["error"]


def test_collect_hands_the_group_on_with_the_dead_part_s_error(tmp):
    rows = frames(2, 3, do={"tag": "perm_part:1"})
    for r in rows:
        if r["video"] != "v0":
            r["do"] = {}
    code, got, err = run_pipeline(
        tmp, by_key({"by": "/video", "count": "/total",
                     "on_part_dead": "collect"}), rows)
    res = {r["id"]: r["result"] for r in got["out"] if r["ok"]}
    assert sorted(res) == ["v0", "v1"], err
    assert [p["part"] for p in res["v0"]["parts"]] == [0, 2]
    assert res["v0"]["errors"] == [{"id": "v0-f1", "stage": "tag",
                                    "error": "tag refuses v0-f1"}]
    assert len(res["v1"]["parts"]) == 3
    # Only the part that died is dead; the others went on.
    assert [d["id"] for d in dead_letters(tmp)] == ["v0-f1"]
    assert code == 3 and "5 done, 1 dead" in err


def test_a_group_that_never_completes_is_named_and_the_run_fails(tmp):
    rows = [r for r in frames(3, 3) if r["key"] != "v1-f2"]
    code, got, err = run_pipeline(
        tmp, by_key({"by": "/video", "count": "/total"}), rows)
    assert code == 3, err
    assert "stage j: group v1 is not complete at the end of the input: " \
        "2 of 3 part(s) came" in err
    assert {r["id"] for r in got["out"] if r["ok"]} == {"v0", "v2"}
    dead = {d["id"]: d["error"] for d in dead_letters(tmp)}
    assert sorted(dead) == ["v1-f0", "v1-f1"]
    assert "group v1 is not complete" in dead["v1-f0"]


def test_a_group_past_its_timeout_goes_on_partial_or_fails(tmp):
    for mode in ("partial", "fail"):
        rows = [r for r in frames(1, 4) if r["part"] != 3]
        rows.append({"key": "v0-f3", "video": "v0", "part": 3, "total": 4,
                     "do": {"tag": "sleep_part:3:3"}})
        (tmp / "out.jsonl").unlink(missing_ok=True)
        (tmp / "dead.jsonl").unlink(missing_ok=True)
        code, got, err = run_pipeline(
            tmp, by_key({"by": "/video", "count": "/total", "timeout": "1s",
                         "on_timeout": mode}), rows)
        assert "group v0 is not complete after 1.0 s, with 3 of 4" in err
        if mode == "partial":
            assert code == 0, err
            (r,) = [r for r in got["out"] if r["ok"]]
            assert r["result"]["missing"] is True
            assert [p["part"] for p in r["result"]["parts"]] == [0, 1, 2]
            assert "a part of group v0 came after the group was over" in err
        else:
            assert code == 3, err
            assert [r for r in got["out"] if r["ok"]] == []
            dead = {d["id"]: d["error"] for d in dead_letters(tmp)}
            assert sorted(dead) == ["v0-f0", "v0-f1", "v0-f2"]
            assert "join timed out after 1.0 s: group v0 had 3 of 4" in \
                dead["v0-f0"]


def test_max_parts_fails_the_group_with_a_clear_error(tmp):
    code, got, err = run_pipeline(
        tmp, by_key({"by": "/video", "count": "/total", "max_parts": 2}),
        sorted(frames(1, 3), key=lambda r: r["part"]),
        extra={"workers": 1})
    assert code == 3, err
    assert "the join holds 2 parts, its max_parts: group v0 cannot take " \
        "more" in err
    assert [r for r in got["out"] if r["ok"]] == []
    assert sorted(d["id"] for d in dead_letters(tmp)) == \
        ["v0-f0", "v0-f1", "v0-f2"]


def test_a_part_without_its_key_dies_naming_the_pointer(tmp):
    rows = frames(1, 2) + [{"key": "stray", "total": 2}]
    code, got, err = run_pipeline(
        tmp, by_key({"by": "/video", "count": "/total"}), rows)
    assert code == 3, err
    (d,) = dead_letters(tmp)
    assert d["id"] == "stray" and d["stage"] == "j"
    assert "no key at /video (join 'by')" in d["error"]
    assert [r["id"] for r in got["out"] if r["ok"]] == ["v0"]


def test_a_join_by_the_emitted_key_gathers_across_source_items(tmp):
    # Each of 3 source items splits into 6 outputs keyed k0, k1, k2 (two
    # each); the join by that key, 6 parts, gathers them across items.
    stages = {"split": {"command": cmd("split"), "to": "j"},
              "j": {"join": {"by": "key", "count": "/n"}, "to": "out"}}
    rows = [{"key": f"s{i}", "n": 6, "do": {"split": "split:6"}}
            for i in range(3)]
    code, got, err = run_pipeline(tmp, stages, rows)
    assert code == 0, err
    res = by_id(got["out"])
    assert sorted(res) == ["k0", "k1", "k2"]
    for k, r in res.items():
        ids = sorted((p["key"], p["part"]) for p in r["result"]["parts"])
        j = int(k[1])
        assert ids == sorted((f"s{i}", p) for i in range(3)
                             for p in (j, j + 3))
    assert "finished: 3 done, 0 dead" in err


def test_pending_groups_are_in_metrics_and_status(tmp):
    src = tmp / "in.jsonl"
    write_jsonl(src, [r for r in frames(2, 3) if r["part"] != 2])
    doc = {"source": {"type": "jsonl", "path": str(src), "id": "key"},
           "sinks": {"out": {"type": "jsonl",
                             "path": str(tmp / "out.jsonl")}},
           "stages": by_key({"by": "/video", "count": "/total"})}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc))
    p = start("run", "-f", f, "--watch", "--listen", "127.0.0.1:0",
              env=clean_env(), cwd=tmp)
    try:
        port = http_port(p)

        def groups():
            text = get(port, "/metrics")[2]
            return (metric(text, "hopper_stage_join_groups", stage="j"),
                    metric(text, "hopper_stage_gathered_items",
                           stage="j")) == (2, 4)

        wait_for(groups, what="two pending groups of four parts")
        st = json.loads(get(port, "/status")[2])
        (j,) = [s for s in st["stages"] if s["name"] == "j"]
        assert j["gather"]["groups"] == 2 and j["gather"]["gathered"] == 4
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0, stderr_of(p)
        err = stderr_of(p)
        assert "stage j: 2 group(s) not complete, with 4 part(s)" in err
    finally:
        stop(p)
    assert not (tmp / "out.jsonl").exists() or \
        read_jsonl((tmp / "out.jsonl").read_text()) == []


def test_join_by_key_options_are_checked(tmp):
    cases = [
        ({"by": "/video"}, "needs its size"),
        ({"by": "/video", "count": "/n", "end": "/last", "seq": "/s"},
         "one of them"),
        ({"by": "/video", "end": "/last"}, "'end' needs 'seq'"),
        ({"count": "/n"}, "give 'by' too"),
        ({"by": "video", "count": "/n"}, "'video' is not a JSON pointer"),
    ]
    for join, words in cases:
        doc = {"source": "jsonl:-", "sinks": {"out": "jsonl:-"},
               "stages": {"a": {"command": cmd("a"), "to": "j"},
                          "j": {"join": join, "to": "out"}}}
        f = tmp / "bad.json"
        f.write_text(json.dumps(doc, indent=1))
        code, _, err = hopper("validate", f)
        assert code == 2, err
        assert "bad.json:" in err and "stage 'j'" in err and words in err, \
            err
