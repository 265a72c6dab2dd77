"""Pipelines of stages in one coordinator: chains, copiers, filters,
splitters, sharders, and lineage: a root is acknowledged only when its
whole tree is written, dead-lettered when a descendant dies."""
import json
from collections import defaultdict
from pathlib import Path

from conftest import (PY, WORKERS, by_id, clean_env, hopper, read_jsonl,
                      write_jsonl)

STAGE = [PY, str(WORKERS / "stage.py")]


def run_pipeline(tmp, stages, payloads, sinks=None, extra=None, env=None):
    """Runs a pipeline file over a jsonl source (dead letters in dead.jsonl)
    and returns (code, {sink name: lines}, stderr)."""
    src = write_jsonl(tmp / "in.jsonl", payloads)
    sinks = sinks or {"out": {"type": "jsonl", "path": str(tmp / "out.jsonl")}}
    doc = {"sources": {"in": {"type": "jsonl", "path": str(src), "id": "key",
                              "dead": str(tmp / "dead.jsonl")}},
           "sinks": sinks, "stages": stages, "backoff": "10ms",
           "workers": 1, **(extra or {})}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc, indent=1))
    code, out, err = hopper("run", "-f", f, env=clean_env(**(env or {})))
    got = {}
    for name, s in sinks.items():
        p = Path(s["path"])
        got[name] = read_jsonl(p.read_text()) if p.exists() else []
    return code, got, err


def fnv1a(text):
    """The hash a sharder picks a shard with (FNV-1a, 64 bits)."""
    h = 14695981039346656037
    for c in text.encode():
        h = ((h ^ c) * 1099511628211) % (1 << 64)
    return h


def cmd(name):
    return STAGE + [name]


def dead_letters(tmp):
    p = tmp / "dead.jsonl"
    return read_jsonl(p.read_text()) if p.exists() else []


def test_a_chain_hands_each_result_on_as_the_next_payload(tmp):
    stages = {"a": {"command": cmd("a"), "to": "b"},
              "b": {"command": cmd("b"), "to": "c"},
              "c": {"command": cmd("c")}}
    payloads = [{"key": f"u{i}"} for i in range(50)]
    code, got, err = run_pipeline(tmp, stages, payloads)
    assert code == 0, err
    res = by_id(got["out"])
    assert sorted(res) == sorted(f"u{i}" for i in range(50))
    for r in res.values():
        assert r["ok"] and r["result"]["trail"] == ["a", "b", "c"]
    assert "finished: 50 done, 0 dead" in err


def test_a_copier_sends_every_output_to_each_place(tmp):
    sinks = {"left": {"type": "jsonl", "path": str(tmp / "l.jsonl")},
             "right": {"type": "jsonl", "path": str(tmp / "r.jsonl")}}
    stages = {"a": {"command": cmd("a"), "to": ["b", "right"]},
              "b": {"command": cmd("b"), "to": "left"}}
    payloads = [{"key": f"u{i}"} for i in range(20)]
    code, got, err = run_pipeline(tmp, stages, payloads, sinks=sinks)
    assert code == 0, err
    left, right = by_id(got["left"]), by_id(got["right"])
    assert sorted(left) == sorted(right) == sorted(f"u{i}" for i in range(20))
    assert all(r["result"]["trail"] == ["a", "b"] for r in left.values())
    assert all(r["result"]["trail"] == ["a"] for r in right.values())
    assert "finished: 20 done, 0 dead" in err


def test_a_filter_drops_and_the_root_is_still_acknowledged(tmp):
    stages = {"a": {"command": cmd("a"), "to": "b"},
              "b": {"command": cmd("b")}}
    payloads = [{"key": f"u{i}", "do": {"a": "drop"} if i % 3 == 0 else {}}
                for i in range(30)]
    code, got, err = run_pipeline(tmp, stages, payloads)
    assert code == 0, err
    res = by_id(got["out"])
    assert sorted(res) == sorted(f"u{i}" for i in range(30) if i % 3)
    assert "finished: 30 done, 0 dead" in err


def test_a_splitter_routes_each_output_by_its_port(tmp):
    sinks = {"even": {"type": "jsonl", "path": str(tmp / "e.jsonl")},
             "odd": {"type": "jsonl", "path": str(tmp / "o.jsonl")}}
    stages = {"split": {"command": cmd("split"),
                        "to": {"p0": "even", "p1": "odd"}}}
    payloads = [{"key": f"u{i}", "do": {"split": "split:5"}}
                for i in range(10)]
    code, got, err = run_pipeline(tmp, stages, payloads, sinks=sinks)
    assert code == 0, err
    even, odd = by_id(got["even"]), by_id(got["odd"])
    assert sorted(even) == sorted(f"u{i}/{k}" for i in range(10)
                                  for k in (0, 2, 4))
    assert sorted(odd) == sorted(f"u{i}/{k}" for i in range(10)
                                 for k in (1, 3))
    assert even["u3/4"]["result"]["part"] == 4
    assert "finished: 10 done, 0 dead" in err


def test_an_unmapped_port_is_an_error_unless_the_stage_drops(tmp):
    stages = {"split": {"command": cmd("split"), "to": {"p0": "out"}}}
    payloads = [{"key": "u1", "do": {"split": "split:2"}}]
    code, got, err = run_pipeline(tmp, stages, payloads)
    assert code == 3, err
    assert [r["id"] for r in got["out"] if r["ok"]] == ["u1/0"]
    dead = dead_letters(tmp)
    assert [d["id"] for d in dead] == ["u1"]
    assert "no route for port 'p1'" in dead[0]["error"]

    stages["split"]["unmapped"] = "drop"
    code, got, err = run_pipeline(tmp, stages, payloads)
    assert code == 0, err
    assert "finished: 1 done, 0 dead" in err


def test_a_sharder_keeps_one_key_in_one_shard(tmp):
    log = tmp / "log"
    stages = {"split": {"command": cmd("split"), "to": "count"},
              "count": {"command": cmd("count"), "shards": 3,
                        "key": "/part"}}
    payloads = [{"key": f"u{i}", "do": {"split": "split:6"}}
                for i in range(20)]
    code, got, err = run_pipeline(tmp, stages, payloads,
                                  env={"STAGE_LOG": log})
    assert code == 0, err
    assert len(by_id(got["out"])) == 120
    pids = defaultdict(set)
    for line in log.read_text().splitlines():
        name, item, _, pid = line.split()
        if name == "count":
            # the emit's own key (k0..k2) decides, not /part
            key = f"k{int(item.rsplit('/', 1)[1]) % 3}"
            pids[fnv1a(key) % 3].add(pid)
    assert all(len(p) == 1 for p in pids.values()), pids
    assert len(set().union(*pids.values())) == len(pids) >= 2


def test_a_dead_descendant_dead_letters_its_root(tmp):
    stages = {"a": {"command": cmd("a"), "to": "b"},
              "b": {"command": cmd("b")}}
    payloads = [{"key": f"u{i}", "do": {"b": "perm"} if i == 4 else {}}
                for i in range(8)]
    code, got, err = run_pipeline(tmp, stages, payloads)
    assert code == 3, err
    dead = dead_letters(tmp)
    assert [d["id"] for d in dead] == ["u4"]
    assert "stage b" in dead[0]["error"] and "b refuses u4" in \
        dead[0]["error"]
    assert dead[0]["payload"] == payloads[4]  # the root's own payload
    assert sorted(r["id"] for r in got["out"] if r["ok"]) == \
        sorted(f"u{i}" for i in range(8) if i != 4)
    assert "finished: 7 done, 1 dead" in err


def test_a_stage_may_let_the_rest_of_the_tree_go_on(tmp):
    stages = {"split": {"command": cmd("split"), "to": "b"},
              "b": {"command": cmd("b"), "on_dead": "alone"}}
    payloads = [{"key": "u1", "do": {"split": "split:3"}}]
    # the children carry the parent's "do": make b refuse them all
    payloads[0]["do"]["b"] = "perm"
    code, got, err = run_pipeline(tmp, stages, payloads)
    assert code == 3, err
    assert dead_letters(tmp) == []
    failed = [r for r in got["out"] if not r["ok"]]
    assert sorted(r["id"] for r in failed) == ["u1/0", "u1/1", "u1/2"]
    assert "finished: 1 done, 3 dead" in err


def test_a_failed_attempt_retries_in_its_own_stage(tmp):
    log, state = tmp / "log", tmp / "state"
    state.mkdir()
    stages = {"a": {"command": cmd("a"), "to": "b"},
              "b": {"command": cmd("b"), "attempts": 3}}
    payloads = [{"key": f"u{i}", "do": {"b": "fail_once"}} for i in range(5)]
    code, got, err = run_pipeline(tmp, stages, payloads,
                                  env={"STAGE_LOG": log, "STAGE_STATE": state})
    assert code == 0, err
    runs = defaultdict(int)
    for line in log.read_text().splitlines():
        name, item, attempt, _ = line.split()
        runs[name] += 1
    assert runs == {"a": 5, "b": 10}
    assert "finished: 5 done, 0 dead" in err


def test_small_queues_in_any_file_order_lose_nothing(tmp):
    # The file lists the stages backwards; each queue holds two items and
    # the splitter makes four outputs of each: the edges are full all the
    # time, and every output still arrives once.
    stages = {"c": {"command": cmd("c"), "queue": 2},
              "b": {"command": cmd("b"), "to": "c", "queue": 2},
              "a": {"command": cmd("a"), "to": "b", "prefetch": 4}}
    payloads = [{"key": f"u{i}", "do": {"a": "split:4"}} for i in range(60)]
    src = write_jsonl(tmp / "in.jsonl", payloads)
    doc = {"sources": {"in": {"type": "jsonl", "path": str(src), "id": "key",
                              "to": "a"}},
           "sink": {"type": "jsonl", "path": str(tmp / "out.jsonl")},
           "stages": stages, "workers": 1}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc))
    code, _, err = hopper("run", "-f", f)
    assert code == 0, err
    res = by_id(read_jsonl((tmp / "out.jsonl").read_text()))
    assert sorted(res) == sorted(f"u{i}/{k}" for i in range(60)
                                 for k in range(4))
    assert all(r["result"]["trail"] == ["a", "b", "c"] for r in res.values())
    assert "finished: 60 done, 0 dead" in err


def test_an_exec_stage_emits_through_its_file(tmp):
    # Each item becomes two outputs written to $HOPPER_EMIT, one per port;
    # an item with "none" creates the file empty: a drop.
    split = tmp / "split.sh"
    split.write_text(
        '#!/bin/sh\n'
        'p=$(cat)\n'
        'case "$p" in *none*) : > "$HOPPER_EMIT"; exit 0;; esac\n'
        'printf \'{"emit": %s, "port": "x"}\\n{"emit": 2, "port": "y"}\\n\''
        ' "$p" > "$HOPPER_EMIT"\n')
    split.chmod(0o755)
    sinks = {"x": {"type": "jsonl", "path": str(tmp / "x.jsonl")},
             "y": {"type": "jsonl", "path": str(tmp / "y.jsonl")}}
    stages = {"split": {"command": [str(split)], "mode": "exec",
                        "to": {"x": "x", "y": "y"}}}
    payloads = [{"key": f"u{i}", "n": i} for i in range(6)] + \
        [{"key": "z", "none": True}]
    code, got, err = run_pipeline(tmp, stages, payloads, sinks=sinks)
    assert code == 0, err
    x, y = by_id(got["x"]), by_id(got["y"])
    assert sorted(x) == sorted(f"u{i}/0" for i in range(6))
    assert sorted(y) == sorted(f"u{i}/1" for i in range(6))
    assert x["u3/0"]["result"] == {"key": "u3", "n": 3}
    assert y["u3/1"]["result"] == 2
    assert "finished: 7 done, 0 dead" in err
