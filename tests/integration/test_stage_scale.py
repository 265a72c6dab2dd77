"""Stages that leave their size unset share a budget of workers, and the
workers go where the queue is: a three-stage chain whose middle stage is
five times slower gives the middle stage most of them. The levels and
their timing are tests/unit/test_budget.c's, on a fake clock; this run
checks on the real machine what the log says of each decision."""
import json
import re

from conftest import PY, WORKERS, clean_env, hopper, read_jsonl, write_jsonl

SCALE = re.compile(r"stage (\w+): scale (\d+) -> (\d+) workers")


def burn(ms):
    """A stage command: burn.py sleeping ms on each item."""
    return f"SLEEP_MS={ms} exec {PY} {WORKERS / 'burn.py'}"


def chain(tmp, n, extra=None):
    src = write_jsonl(tmp / "in.jsonl", [{"n": i} for i in range(n)])
    doc = {"source": {"type": "jsonl", "path": str(src)},
           "sink": {"type": "jsonl", "path": str(tmp / "out.jsonl")},
           "stages": {"a": {"command": burn(10), "to": "b"},
                      "b": {"command": burn(50), "to": "c"},
                      "c": {"command": burn(10)}},
           **(extra or {})}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc, indent=1))
    return f


def test_the_slow_middle_stage_gets_most_of_the_shared_workers(tmp):
    f = chain(tmp, 1500)
    code, _, err = hopper("run", "-f", f, "--shared-workers", 8,
                          timeout=600, env=clean_env())
    assert code == 0, err[-3000:]
    assert "finished: 1500 done, 0 dead" in err, err[-3000:]
    assert len(read_jsonl((tmp / "out.jsonl").read_text())) == 1500
    # Each stage's target after each decision, in the order logged.
    now = {"a": 1, "b": 1, "c": 1}
    peak = dict(now)
    for m in SCALE.finditer(err):
        stage, before, after = m[1], int(m[2]), int(m[3])
        assert now[stage] == before, m[0]
        now[stage] = after
        peak[stage] = max(peak[stage], after)
        # The shared budget is never passed, and a stage keeps a worker.
        assert sum(now.values()) <= 8, (m[0], now)
        assert after >= 1, m[0]
    print(f"most workers: {peak}")
    assert peak["b"] > peak["a"] and peak["b"] > peak["c"], (peak, err)
    assert peak["b"] >= 5, (peak, err)
    # No item was cut short to give a worker to another stage.
    assert "while handling the item" not in err, err[-3000:]


def test_graph_shows_shared_and_given_sizes(tmp):
    f = chain(tmp, 1)
    code, out, err = hopper("graph", f, "--shared-workers", 6)
    assert code == 0, err
    assert "stage a (stream, 1..6 shared workers)" in out, out
    doc = json.loads(f.read_text())
    doc["stages"]["a"]["workers"] = 2
    doc["stages"]["c"]["min_workers"] = 0
    f.write_text(json.dumps(doc))
    code, out, err = hopper("graph", f, "--shared-workers", 6)
    assert code == 0, err
    # A size given is kept as given, outside the budget.
    assert "stage a (stream, 2 workers)" in out, out
    assert "stage b (stream, 1..6 shared workers)" in out, out
    assert "stage c (stream, 0..6 shared workers)" in out, out
    # A flag for every stage is a size given for each.
    code, out, err = hopper("graph", chain(tmp, 1), "-j", 3)
    assert code == 0, err
    assert out.count("(stream, 3 workers)") == 3, out


def test_a_budget_below_one_worker_a_stage_is_refused(tmp):
    f = chain(tmp, 1)
    code, out, err = hopper("validate", f, "--shared-workers", 2)
    assert code != 0
    assert ("--shared-workers 2: shared_workers 2 is below what the stages "
            "that share it run at least: 3") in err, err
