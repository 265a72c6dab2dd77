"""Operations per stage: /metrics series labelled by stage (and shard),
/status's "stages", a progress segment and trace columns for each stage,
on a pipeline of three stages, the middle one a sharder."""
import csv
import json
import re
import subprocess

from conftest import (HOPPER, assert_clean, by_id, clean_env, hopper,
                      http_port, read_jsonl, stderr_of, wait_for, write_jsonl)
from test_http import get, metric
from test_progress import run_on_pty
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


def test_progress_line_has_a_segment_per_stage(tmp):
    (tmp / "state").mkdir()
    src = write_jsonl(tmp / "in.jsonl", payloads()[:16])
    code, term, _ = run_on_pty(
        tmp, "run", "-f", pipeline(tmp, src), cols=400,
        env=clean_env(STAGE_STATE=tmp / "state", STAGE_SLEEP_B=0.25))
    assert code == 3, term  # u7 died in c
    draws = re.findall(r"\r(hopper \d+/16 [^\r\x1b]* retried)((?: \| "
                       r"[^\r\x1b|]*)*)\x1b\[K", term)
    # b's shards take 16 x 0.25 s between them, at least 2 s: four draws a
    # second.
    assert len(draws) >= 3, term
    done = []
    for _, tail in draws:
        # One segment per stage: a sharder's two shards in one.
        segs = [re.fullmatch(r"([abc]): (\d+) done, (\d+|\?) waiting, "
                             r"(\d+)/(\d+) busy", s)
                for s in tail.split(" | ")[1:]]
        assert all(segs) and [m[1] for m in segs] == ["a", "b", "c"], tail
        assert all(int(m[4]) <= int(m[5]) for m in segs), tail
        assert int(segs[1][5]) <= 2  # b's two shards, a worker each
        done.append([int(m[2]) for m in segs])
    for stage in range(3):
        counts = [d[stage] for d in done]
        assert counts == sorted(counts), done
    assert done[-1][0] > 0


def test_trace_has_columns_per_stage(tmp):
    (tmp / "state").mkdir()
    src = write_jsonl(tmp / "in.jsonl", payloads()[:16])
    tr = tmp / "trace.csv"
    code, _, err = hopper("run", "-f", pipeline(tmp, src), "--trace", tr,
                          env=clean_env(STAGE_STATE=tmp / "state",
                                        STAGE_SLEEP_B=0.25))
    assert code == 3, err
    rows = list(csv.reader(tr.read_text().splitlines()))
    head, rows = rows[0], rows[1:]
    run = ["t", "depth", "inflight", "workers", "busy", "desired", "done",
           "dead", "throughput"]
    each = ["depth", "inflight", "workers", "busy", "desired", "done", "dead",
            "throughput"]
    assert head == run + [f"{s}:{c}" for s in ("a", "b[0]", "b[1]", "c")
                          for c in each]
    assert len(rows) >= 3, rows  # b takes 2 s or more, four rows a second
    for row in rows:
        assert len(row) == len(head), row
        r = dict(zip(head, row))
        stages = ("a", "b[0]", "b[1]", "c")
        # The run's workers and in flight are its stages' sums.
        for c in ("workers", "inflight", "busy"):
            assert int(r[c]) == sum(int(r[f"{s}:{c}"]) for s in stages)
    done = [[int(dict(zip(head, row))[f"{s}:done"]) for row in rows]
            for s in ("a", "b[0]", "b[1]", "c")]
    assert all(d == sorted(d) for d in done)
    assert max(done[0]) > 0


def test_one_stage_trace_keeps_its_columns(tmp):
    src = write_jsonl(tmp / "in.jsonl", [{"n": i} for i in range(3)])
    tr = tmp / "trace.csv"
    code, _, err = hopper("run", "-s", f"jsonl:{src}", "--trace", tr, "--",
                          *cmd("a"))
    assert code == 0, err
    lines = tr.read_text().splitlines()
    assert lines[0] == "t,depth,inflight,workers,busy,desired,done,dead," \
                       "throughput"
    assert all(len(line.split(",")) == 9 for line in lines[1:])
