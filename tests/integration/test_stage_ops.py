"""Operations per stage: /metrics series labelled by stage (and shard) and
/status's "stages", on a pipeline of three stages, the middle one a
sharder."""
import json
import re
import subprocess

from conftest import (HOPPER, assert_clean, by_id, clean_env, hopper,
                      http_port, read_jsonl, stderr_of, wait_for, write_jsonl)
from test_http import get, metric
from test_stages import cmd, fnv1a

KEYS = [f"u{i}" for i in range(30)]
RETRIED = {"u3", "u13", "u23"}  # fail their first attempt in a
DROPPED = {"u5", "u15", "u25"}  # c drops them
FAILED = {"u7", "u17"}  # c refuses them: their roots are dead


def payloads():
    out = []
    for k in KEYS:
        do = {}
        if k in RETRIED:
            do["a"] = "fail_once"
        if k in DROPPED:
            do["c"] = "drop"
        if k in FAILED:
            do["c"] = "perm"
        out.append({"key": k, "do": do})
    return out


def pipeline(tmp, source_path):
    """Writes a -> b (two shards by /key) -> c, over a jsonl source, and
    returns the file."""
    doc = {"sources": {"in": {"type": "jsonl", "path": str(source_path),
                              "id": "key", "dead": str(tmp / "dead.jsonl")}},
           "sinks": {"out": {"type": "jsonl", "path": str(tmp / "out.jsonl")}},
           "workers": 1, "backoff": "10ms",
           "stages": {"a": {"command": cmd("a"), "to": "b"},
                      "b": {"command": cmd("b"), "shards": 2, "key": "/key",
                            "to": "c"},
                      "c": {"command": cmd("c")}}}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc, indent=1))
    return f


def serve_pipeline(tmp):
    """Starts the pipeline on stdin with the endpoints; returns (process,
    port)."""
    (tmp / "state").mkdir()
    errf = open(tmp / "hopper.err", "w+")
    p = subprocess.Popen([HOPPER, "run", "-f", pipeline(tmp, "-"),
                          "--listen", "127.0.0.1:0"],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=errf, text=True,
                         env=clean_env(STAGE_STATE=tmp / "state"))
    p.errf = errf
    return p, http_port(p)


def samples(text, name):
    """Every sample of the family name: {frozenset of labels: value}."""
    got = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        key, _, value = line.rpartition(" ")
        base, _, labels = key.partition("{")
        if base != name:
            continue
        pairs = [kv.split("=", 1) for kv in labels.rstrip("}").split(",")
                 if kv]
        got[frozenset((k, v.strip('"')) for k, v in pairs)] = float(value)
    return got


def of(series, **labels):
    want = frozenset((k, str(v)) for k, v in labels.items())
    return series[want]


def shard_of(key):
    return fnv1a(key) % 2


def test_metrics_and_status_per_stage(tmp):
    p, port = serve_pipeline(tmp)
    try:
        p.stdin.write("".join(json.dumps(x) + "\n" for x in payloads()))
        p.stdin.flush()

        def settled():
            text = get(port, "/metrics")[2]
            return (metric(text, "hopper_items_total", outcome="done") +
                    metric(text, "hopper_items_total", outcome="dead") == 30
                    and metric(text, "hopper_items_in_flight") == 0)

        wait_for(settled, what="30 roots finished")
        status, _, text = get(port, "/metrics")
        assert status == 200
        chk = subprocess.run(["promtool", "check", "metrics"], input=text,
                             capture_output=True, text=True)
        assert chk.returncode == 0, chk.stdout + chk.stderr

        # The run's series stay unlabelled totals over its roots.
        assert metric(text, "hopper_items_total", outcome="done") == 28
        assert metric(text, "hopper_items_total", outcome="dead") == 2
        assert metric(text, "hopper_items_total", outcome="retried") == 3
        assert metric(text, "hopper_items_fetched_total") == 30
        assert metric(text, "hopper_workers") == 4

        # Each stage's own, labelled; a sharder's shards by number.
        items = samples(text, "hopper_stage_items_total")
        b0 = sum(1 for k in KEYS if shard_of(k) == 0)
        expect = {("a", None): (30, 0, 3), ("b", 0): (b0, 0, 0),
                  ("b", 1): (30 - b0, 0, 0), ("c", None): (28, 2, 0)}
        for (stage, shard), (done, failed, retried) in expect.items():
            labels = {"stage": stage}
            if shard is not None:
                labels["shard"] = shard
            assert of(items, outcome="done", **labels) == done, labels
            assert of(items, outcome="failed", **labels) == failed, labels
            assert of(items, outcome="retried", **labels) == retried, labels
        assert len(items) == 12  # four stages, three outcomes
        dropped = samples(text, "hopper_stage_outputs_dropped_total")
        assert of(dropped, stage="c") == 3 and of(dropped, stage="a") == 0
        for family in ("hopper_stage_workers", "hopper_stage_workers_desired",
                       "hopper_stage_worker_starts_total"):
            assert sorted(samples(text, family).values()) == [1] * 4, family
        assert set(samples(text, "hopper_stage_workers_busy").values()) \
            == {0}
        assert set(samples(text, "hopper_stage_items_in_flight").values()) \
            == {0}
        assert of(samples(text, "hopper_stage_queue_depth"), stage="c") == 0

        # sum() over the stages never counts twice: the run's totals are
        # families of their own, and equal the sums.
        assert sum(samples(text, "hopper_stage_workers").values()) == \
            metric(text, "hopper_workers")
        assert sum(samples(text, "hopper_stage_worker_starts_total")
                   .values()) == metric(text, "hopper_worker_starts_total")
        counts = samples(text, "hopper_stage_item_duration_seconds_count")
        assert of(counts, stage="a") == 33  # 30 items, 3 retried
        assert of(counts, stage="c") == 30
        assert sum(counts.values()) == \
            metric(text, "hopper_item_duration_seconds_count") == 33 + 30 + 30
        infs = {k: v for k, v in samples(
            text, "hopper_stage_item_duration_seconds_bucket").items()
            if ("le", "+Inf") in k}
        assert sorted(infs.values()) == sorted(counts.values())

        status, _, body = get(port, "/status")
        st = json.loads(body)
        assert st["items"]["done"] == 28 and st["items"]["dead"] == 2
        assert st["workers"]["live"] == 4  # the existing fields stay
        stages = st["stages"]
        assert [(s["name"], s["shard"], s["shards"]) for s in stages] == \
            [("a", None, 1), ("b", 0, 2), ("b", 1, 2), ("c", None, 1)]
        for s, ((_, _), (done, failed, retried)) in zip(stages,
                                                         expect.items()):
            assert s["mode"] == "stream"
            assert s["items"]["done"] == done, s
            assert s["items"]["failed"] == failed, s
            assert s["items"]["retried"] == retried, s
            assert s["in_flight"] == 0 and s["blocked"] == 0
            assert s["workers"] == {"live": 1, "busy": 0, "desired": 1,
                                    "starts": 1, "restarts": 0}
            assert isinstance(s["rate"], float) and s["rate"] > 0, s
        assert [s["items"]["dropped"] for s in stages] == [0, 0, 0, 3]
        assert stages[3]["depth"] == 0 and stages[1]["depth"] == 0

        p.stdin.close()
        assert p.wait(timeout=60) == 3  # two dead roots
        res = by_id(read_jsonl((tmp / "out.jsonl").read_text()))
        assert sorted(k for k, r in res.items() if r["ok"]) == \
            sorted(set(KEYS) - DROPPED - FAILED)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        assert_clean(stderr_of(p))
