"""Pipelines of stages, the details a user reads: the attempts a
descendant's record shows, the stage a dead letter names, the drops the
run counts, the words of a timeout, the jsonl sink on a redirected
stdout, when a jsonl dead letter died, and the running line's stages."""
import json
import re
import subprocess
import time
import zlib
from datetime import datetime, timezone

from conftest import (HOPPER, PY, assert_clean, by_id, clean_env, hopper,
                      http_port, read_jsonl, stderr_of, wait_for,
                      write_jsonl)
from test_http import get, metric
from test_stage_ops import of, samples
from test_stages import cmd, dead_letters, run_pipeline


def test_a_descendants_record_shows_the_attempts_that_made_it(tmp):
    # split's outputs on p1 go straight to the sink; those on p0 go to b,
    # which copies each to two sinks: all of them are made by a new item
    # of the tree, none by a worker of its own.
    sinks = {"out": {"type": "jsonl", "path": str(tmp / "out.jsonl")},
             "copy": {"type": "jsonl", "path": str(tmp / "copy.jsonl")}}
    stages = {"split": {"command": cmd("split"),
                        "to": {"p0": "b", "p1": "out"}, "attempts": 3},
              "b": {"command": cmd("b"), "to": ["out", "copy"],
                    "attempts": 3}}
    payloads = [{"key": f"u{i}", "do": {"split": "split:4",
                                        "b": "port:x"}} for i in range(3)]
    code, got, err = run_pipeline(tmp, stages, payloads, sinks=sinks)
    assert code == 0, err
    out, copy = by_id(got["out"]), by_id(got["copy"])
    assert sorted(out) == sorted(f"u{i}/{k}" for i in range(3)
                                 for k in range(4))
    assert sorted(copy) == sorted(f"u{i}/{k}" for i in range(3)
                                  for k in (0, 2))
    assert {r["attempts"] for r in out.values()} == {1}, out
    assert {r["attempts"] for r in copy.values()} == {1}, copy


def first_good_attempt(stage, item, crash):
    """The first attempt of item that stage.py, at STAGE_CRASH=crash, does
    not kill in the middle of (as its maybe_crash decides)."""
    attempt = 1
    while zlib.crc32(f"{stage} {item} {attempt}".encode()) % 1000 < \
            crash * 1000:
        attempt += 1
    return attempt


def test_a_descendants_record_counts_the_attempts_of_its_maker(tmp):
    # The splitter is killed half way through some attempts; the outputs
    # of the attempt that succeeds go straight to the sink, and each one's
    # record says which attempt that was.
    keys = [f"u{i}" for i in range(8)]
    want = {k: first_good_attempt("split", k, 0.5) for k in keys}
    assert max(want.values()) > 1 and min(want.values()) == 1  # both kinds
    stages = {"split": {"command": cmd("split"), "attempts": 10,
                        "to": {"p0": "out", "p1": "out"}}}
    payloads = [{"key": k, "do": {"split": "split:2"}} for k in keys]
    code, got, err = run_pipeline(tmp, stages, payloads,
                                  env={"STAGE_CRASH": "split=0.5"})
    assert code == 0, err
    res = by_id(got["out"])
    assert sorted(res) == sorted(f"{k}/{n}" for k in keys for n in (0, 1))
    for rid, r in res.items():
        assert r["attempts"] == want[rid.split("/")[0]], (rid, r)


def test_every_dead_letter_names_the_stage_it_died_in(tmp):
    # u1 dies in the first stage (a root, in its own stage), u2 in the
    # second (a descendant), u3 on a port the splitter does not map.
    stages = {"a": {"command": cmd("a"), "to": "split"},
              "split": {"command": cmd("split"), "to": {"p0": "b"}},
              "b": {"command": cmd("b"), "shards": 2, "key": "/part"}}
    payloads = [{"key": "u0", "do": {"split": "port:p0"}},
                {"key": "u1", "do": {"a": "perm"}},
                {"key": "u2", "do": {"split": "port:p0", "b": "perm"}},
                {"key": "u3", "do": {"split": "port:p1"}}]
    code, got, err = run_pipeline(tmp, stages, payloads)
    assert code == 3, err
    dead = {d["id"]: d for d in dead_letters(tmp)}
    assert sorted(dead) == ["u1", "u2", "u3"], dead
    assert dead["u1"]["stage"] == "a"
    assert dead["u1"]["error"] == "a refuses u1"
    assert dead["u2"]["stage"] == "b"  # the stage's name, not its shard's
    assert "b refuses u2" in dead["u2"]["error"]
    assert dead["u3"]["stage"] == "split"
    assert "no route for port 'p1'" in dead["u3"]["error"]
    assert all(d["payload"] == payloads[int(i[1])] for i, d in dead.items())
    assert [r["id"] for r in got["out"] if r["ok"]] == ["u0"]
    # The sink's records of the dead items name the stage too.
    failed = {r["id"]: r for r in got["out"] if not r["ok"]}
    assert {i: r["stage"] for i, r in failed.items()} == \
        {"u1": "a", "u2": "b", "u3": "split"}, failed


def test_a_one_stage_run_keeps_its_dead_letters(tmp):
    # Without stages, a dead letter is as it was: no stage to name.
    src = write_jsonl(tmp / "in.jsonl", [{"key": "u1", "do": {"a": "perm"}}])
    code, _, err = hopper("run", "-s", f"jsonl:{src}", "-o",
                          f"jsonl:{tmp / 'out.jsonl'}", "-S", "id=key", "-S",
                          f"dead={tmp / 'dead.jsonl'}", "--", *cmd("a"))
    assert code == 3, err
    (dead,) = dead_letters(tmp)
    assert "stage" not in dead and dead["error"] == "a refuses u1"
    (rec,) = read_jsonl((tmp / "out.jsonl").read_text())
    assert not rec["ok"] and "stage" not in rec


DROPS = {"stages": {"a": {"command": cmd("a"), "to": "split"},
                    "split": {"command": cmd("split"), "to": {"p0": "b"},
                              "unmapped": "drop"},
                    "b": {"command": cmd("b")}}}


def drop_payloads():
    """Ten roots: a drops u0..u2 (a filter), split sends the rest on p0,
    but u7..u9 on p1, which it drops (an unmapped port)."""
    return [{"key": f"u{i}", "do": {"a": "drop"} if i < 3 else
             {"split": "port:p1" if i >= 7 else "port:p0"}}
            for i in range(10)]


def test_drops_are_counted_for_the_run_in_the_finished_line(tmp):
    code, got, err = run_pipeline(tmp, DROPS["stages"], drop_payloads())
    assert code == 0, err
    assert sorted(r["id"] for r in got["out"]) == [f"u{i}" for i in
                                                   range(3, 7)]
    assert re.search(r"finished: 10 done, 0 dead, 0 retried, 0 handed "
                     r"back, 6 dropped \(a 3, split 3\), in ", err), err


def test_drops_are_counted_in_metrics_and_status(tmp):
    doc = {"sources": {"in": {"type": "jsonl", "path": "-", "id": "key"}},
           "sinks": {"out": {"type": "jsonl",
                             "path": str(tmp / "out.jsonl")}},
           "workers": 1, **DROPS}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc))
    errf = open(tmp / "hopper.err", "w+")
    p = subprocess.Popen([HOPPER, "run", "-f", f, "--listen", "127.0.0.1:0"],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=errf, text=True, env=clean_env())
    p.errf = errf
    try:
        port = http_port(p)
        p.stdin.write("".join(json.dumps(x) + "\n" for x in drop_payloads()))
        p.stdin.flush()
        wait_for(lambda: metric(get(port, "/metrics")[2],
                                "hopper_items_total", outcome="done") == 10,
                 what="10 roots done")
        text = get(port, "/metrics")[2]
        chk = subprocess.run(["promtool", "check", "metrics"], input=text,
                             capture_output=True, text=True)
        assert chk.returncode == 0, chk.stdout + chk.stderr
        assert metric(text, "hopper_outputs_dropped_total") == 6
        dropped = samples(text, "hopper_stage_outputs_dropped_total")
        assert of(dropped, stage="a") == 3
        assert of(dropped, stage="split") == 3
        assert of(dropped, stage="b") == 0
        st = json.loads(get(port, "/status")[2])
        assert st["items"]["dropped"] == 6
        assert [s["items"]["dropped"] for s in st["stages"]] == [3, 3, 0]
        p.stdin.close()
        assert p.wait(timeout=60) == 0, stderr_of(p)
        assert "6 dropped (a 3, split 3)" in stderr_of(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        assert_clean(stderr_of(p))


EMIT_THEN_HANG = """
import json, sys, time
for line in sys.stdin:
    msg = json.loads(line)
    if msg["payload"].get("emits"):
        for i in range(2):
            time.sleep(0.4)
            print(json.dumps({"id": msg["id"], "emit": i}), flush=True)
    time.sleep(60)
"""


def test_a_timeout_says_what_the_worker_did_not_write(tmp):
    w = tmp / "w.py"
    w.write_text(EMIT_THEN_HANG)
    src = write_jsonl(tmp / "in.jsonl", [{"emits": True}, {"emits": False}])
    code, out, err = hopper("run", "-s", f"jsonl:{src}", "--timeout", "1",
                            "--attempts", "1", "--kill-timeout", "0.2",
                            "-j", "2", "--", PY, w)
    assert code == 3, err
    res = by_id(read_jsonl(out))
    # Its emits kept item 1 alive past one timeout: the error says the time
    # ran from its last line, and how long it had the item in all.
    m = re.fullmatch(r"worker \d timed out after 1\.0 s since its last line "
                     r"\(an answer, progress or emit\), holding item '1' "
                     r"for (\d+\.\d) s", res["1"]["error"])
    assert m and float(m[1]) >= 1.8, res["1"]["error"]
    assert re.fullmatch(r"worker \d timed out after 1\.0 s with no answer, "
                        r"progress or emit for item '2'",
                        res["2"]["error"]), res["2"]["error"]
    assert "no progress" not in err


def test_an_exec_timeout_says_the_process_did_not_exit(tmp):
    src = write_jsonl(tmp / "in.jsonl", [{"n": 1}])
    code, out, err = hopper("run", "-s", f"jsonl:{src}", "-m", "exec",
                            "--timeout", "0.5", "--attempts", "1",
                            "--kill-timeout", "0.2", "--",
                            "sh", "-c", "sleep 60")
    assert code == 3, err
    (r,) = read_jsonl(out)
    assert r["error"] == "worker 0 timed out after 0.5 s: the process for " \
                         "item '1' did not exit", r


def test_results_to_a_stdout_file_that_ends_in_a_torn_line(tmp):
    # As `hopper run ... -o jsonl:- >> out` does: the shell opens out for
    # writing only. Its fragment is the user's: kept, and the results
    # start on a line of their own.
    out = tmp / "out"
    out.write_text('{"theirs": 1}\npartial')
    src = write_jsonl(tmp / "in.jsonl", [{"key": f"u{i}"} for i in range(3)])
    with open(out, "a") as f:
        p = subprocess.run([HOPPER, "run", "-s", f"jsonl:{src}", "-S",
                            "id=key", "-o", "jsonl:-", "--", *cmd("a")],
                           stdout=f, stderr=subprocess.PIPE, text=True,
                           env=clean_env(), timeout=120)
    assert_clean(p.stderr)
    assert p.returncode == 0, p.stderr
    assert "stdout is a file whose last line has no newline" in p.stderr
    lines = out.read_text().split("\n")
    assert lines[:2] == ['{"theirs": 1}', "partial"]
    assert lines[-1] == ""
    assert sorted(json.loads(line)["id"] for line in lines[2:-1]) == \
        ["u0", "u1", "u2"]


def test_dead_list_shows_when_a_jsonl_dead_letter_died(tmp):
    src = write_jsonl(tmp / "in.jsonl", [{"key": "u1", "do": {"a": "perm"}},
                                         {"key": "u2"}])
    before = time.time()
    spec = ["-s", f"jsonl:{src}", "-S", "id=key", "-S",
            f"dead={tmp / 'dead.jsonl'}"]
    code, _, err = hopper("run", *spec, "--", *cmd("a"))
    assert code == 3, err
    (dead,) = dead_letters(tmp)
    died = datetime.strptime(dead["died"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc).timestamp()
    assert before - 1 <= died <= time.time() + 1, dead
    assert dead["error"] == "a refuses u1"  # the rest is as it was

    code, out, err = hopper("dead", "list", *spec)
    assert code == 0, err
    head, row = out.splitlines()
    assert head.split() == ["ID", "ATTEMPTS", "DIED", "ERROR"]
    assert row.split(None, 3) == ["u1", "1", dead["died"], "a refuses u1"]
    code, out, err = hopper("dead", "list", "--json", *spec)
    assert code == 0, err
    assert [d["when"] for d in read_jsonl(out)] == [dead["died"]]


def test_the_running_line_gives_each_stage_its_own_size(tmp):
    # a and b leave their size unset: they share --shared-workers 3 between
    # them, and neither runs 3 of its own. c is fixed, d autoscales alone.
    stages = {"a": {"command": cmd("a"), "to": "b"},
              "b": {"command": cmd("b"), "to": "c"},
              "c": {"command": cmd("c"), "workers": 2, "to": "d"},
              "d": {"command": cmd("d"), "min_workers": 0,
                    "max_workers": 4}}
    src = write_jsonl(tmp / "in.jsonl", [{"key": f"u{i}"} for i in range(4)])
    doc = {"sources": {"in": {"type": "jsonl", "path": str(src),
                              "id": "key"}},
           "sinks": {"out": {"type": "jsonl", "path": str(tmp / "o.jsonl")}},
           "stages": stages}
    f = tmp / "p.json"
    f.write_text(json.dumps(doc))
    code, _, err = hopper("run", "-f", f, "--shared-workers", 3)
    assert code == 0, err
    assert len(read_jsonl((tmp / "o.jsonl").read_text())) == 4
    line = next(x for x in err.splitlines() if " running: " in x)
    assert line.endswith(
        "running: 1 source(s), 4 stage(s): a (stream, shared), "
        "b (stream, shared), c (2 stream), d (0 to 4 stream); a, b share 3 "
        "worker(s) at most; 1 sink(s)"), line
