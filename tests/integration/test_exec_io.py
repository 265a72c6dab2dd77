"""Exec sources and sinks: a source or sink written in any language, as a
program hopper speaks JSON lines to (sources/PROTOCOL.md)."""
import http.client
import json
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import (FAKE, PY, ROOT, WORKERS, alive, assert_clean,
                      clean_env, hopper, http_port, read_jsonl, start,
                      stderr_of, stop, wait_for, write_jsonl)

SRC = WORKERS / "exec_source.py"
SINK = WORKERS / "exec_sink.py"
EXAMPLES = ROOT / "sources" / "examples"
SINK_EXAMPLES = ROOT / "sinks" / "examples"


def source_spec(*args):
    return "exec:" + " ".join(str(a) for a in (PY, SRC, *args))


def log_lines(d):
    p = Path(d) / "acks.log"
    return p.read_text().split() if p.exists() else []


def acked(d):
    words = log_lines(d)
    return [words[i + 1] for i in range(0, len(words), 2)
            if words[i] == "ack"]


def test_items_through_an_exec_source_all_acknowledged(tmp):
    n = 200
    code, out, err = hopper("run", "-s", source_spec(n, tmp),
                            "-o", f"jsonl:{tmp / 'out.jsonl'}", "--",
                            *FAKE, env=clean_env())
    assert code == 0, err
    rows = read_jsonl((tmp / "out.jsonl").read_text())
    assert sorted(int(r["id"]) for r in rows) == list(range(1, n + 1))
    assert all(r["ok"] for r in rows)
    # The program heard one ack for each item, and nothing else.
    assert sorted(map(int, acked(tmp))) == list(range(1, n + 1))
    assert len(log_lines(tmp)) == 2 * n


def ack_forms(d):
    p = Path(d) / "ack_forms"
    return p.read_text().splitlines() if p.exists() else []


def test_a_program_without_a_hello_gets_one_ack_a_line(tmp):
    # A program written before acknowledgement lists: it never says hello,
    # and hopper writes it every ack on a line of its own, as before.
    n = 300
    code, out, err = hopper("run", "-s", source_spec(n, tmp),
                            "-o", f"jsonl:{tmp / 'out.jsonl'}", "--",
                            *FAKE, env=clean_env())
    assert code == 0, err
    assert ack_forms(tmp) == ["one"] * n
    assert sorted(map(int, acked(tmp))) == list(range(1, n + 1))


def test_a_program_that_asks_for_ack_lists_gets_them(tmp):
    n = 2000
    fail = {"7", "1500"}
    code, out, err = hopper("run", "-s", source_spec(n, tmp),
                            "--attempts", "2", "--backoff", "10ms",
                            "-o", f"jsonl:{tmp / 'out.jsonl'}", "--",
                            *FAKE, env=clean_env(ACK_LISTS="1",
                                                 FAIL=",".join(fail)))
    assert code != 0 and f"{n - 2} done, 2 dead" in err, err
    forms = ack_forms(tmp)
    assert forms and all(f.startswith("list ") for f in forms), forms
    sizes = [int(f.split()[1]) for f in forms]
    # Lists, fewer lines than items, none longer than the bound.
    assert len(forms) < n - len(fail) and max(sizes) <= 1024, sizes
    # Each item's fate told once: acked, or nacked and then dead.
    assert sorted(map(int, acked(tmp))) == sorted(
        i for i in range(1, n + 1) if str(i) not in fail)
    words = log_lines(tmp)
    told = [(words[i], words[i + 1]) for i in range(0, len(words), 2)]
    assert sorted(i for k, i in told if k == "dead") == sorted(fail)
    assert sorted(i for k, i in told if k == "nack") == sorted(fail)
    assert len(told) == n + len(fail)
    rows = read_jsonl((tmp / "out.jsonl").read_text())
    assert sorted(int(r["id"]) for r in rows) == list(range(1, n + 1))


def test_a_killed_program_with_ack_lists_loses_nothing(tmp):
    n = 600
    code, out, err = hopper("run", "-s", source_spec(n, tmp),
                            "-o", f"jsonl:{tmp / 'out.jsonl'}", "--",
                            *FAKE, env=clean_env(ACK_LISTS="1",
                                                 KILL_AFTER=250))
    assert code == 0, err
    assert "started again" in err, err
    assert all(f.startswith("list ") for f in ack_forms(tmp))
    rows = read_jsonl((tmp / "out.jsonl").read_text())
    assert {int(r["id"]) for r in rows} == set(range(1, n + 1))
    assert {int(i) for i in acked(tmp)} == set(range(1, n + 1))
    done = set((tmp / "done").read_text().split())
    assert done == {str(i) for i in range(1, n + 1)}


def test_a_killed_source_program_is_restarted_and_loses_nothing(tmp):
    n = 300
    code, out, err = hopper("run", "-s", source_spec(n, tmp),
                            "-o", f"jsonl:{tmp / 'out.jsonl'}", "--",
                            *FAKE, env=clean_env(KILL_AFTER=120))
    assert code == 0, err
    assert "killed by signal 9" in err and "started again" in err, err
    assert "exec source '" in err
    rows = read_jsonl((tmp / "out.jsonl").read_text())
    # At least once: some items may be done twice, none is missing.
    assert {int(r["id"]) for r in rows} == set(range(1, n + 1))
    assert {int(i) for i in acked(tmp)} == set(range(1, n + 1))
    done = set((tmp / "done").read_text().split())
    assert done == {str(i) for i in range(1, n + 1)}


def test_a_source_flooding_past_its_credit_is_held_back(tmp):
    n, pad = 60, 100_000
    code, out, err = hopper("run", "-s", source_spec(n, tmp),
                            "-S", "credit=5",
                            "-o", f"jsonl:{tmp / 'out.jsonl'}", "--",
                            *FAKE, env=clean_env(FLOOD=pad))
    assert code == 0, err
    rows = read_jsonl((tmp / "out.jsonl").read_text())
    assert sorted(int(r["id"]) for r in rows) == list(range(1, n + 1))
    # Named once, with its credit.
    assert err.count("an item beyond its credit") == 1, err
    assert "exec source '" in err and "(5 outstanding at most)" in err
    # What the program managed to write never ran ahead of the credit it
    # was granted by more than hopper's one held item and the pipe's
    # worth (an item is larger than a pipe): hopper stopped reading.
    over = int((tmp / "flood").read_text())
    assert over <= 3, over


def test_failed_items_are_nacked_to_the_program_then_dead(tmp):
    n = 10
    code, out, err = hopper("run", "-s", source_spec(n, tmp),
                            "-o", f"jsonl:{tmp / 'out.jsonl'}",
                            "--attempts", "3", "--backoff", "0.05", "--",
                            *FAKE, env=clean_env(FAIL="4,9"))
    assert code != 0 and "8 done, 2 dead" in err, err
    words = log_lines(tmp)
    said = [(words[i], words[i + 1]) for i in range(0, len(words), 2)]
    # The program kept the schedule: two nacks each, then the dead letter;
    # the attempts it carried made the third attempt the last.
    for item in ("4", "9"):
        assert [k for k, i in said if i == item] == ["nack", "nack", "dead"]
    assert sorted(i for k, i in said if k == "ack") == sorted(
        str(i) for i in range(1, n + 1) if i not in (4, 9))
    dead = [r for r in read_jsonl((tmp / "out.jsonl").read_text())
            if not r["ok"]]
    assert sorted(r["id"] for r in dead) == ["4", "9"]
    assert all(r["attempts"] == 3 for r in dead)


def test_a_stopped_run_releases_what_is_in_flight(tmp):
    n = 50
    started = tmp / "started.log"
    p = start("run", "-s", source_spec(n, tmp), "-j", "2", "--grace", "1",
              "-o", f"jsonl:{tmp / 'out.jsonl'}", "--", *FAKE,
              env=clean_env(SLOW=60, FAKE_LOG=started), cwd=tmp)
    try:
        wait_for(lambda: started.exists()
                 and started.read_text().count("start") == 2,
                 what="two items at work")
    finally:
        stop(p)
    assert p.returncode == 143, stderr_of(p)
    assert_clean(stderr_of(p))
    # Everything the program gave was handed back to it: the two at work
    # once their grace was over, the rest that waited too.
    released = [w for k, w in zip(log_lines(tmp)[::2], log_lines(tmp)[1::2])
                if k == "release"]
    assert sorted(map(int, released)) == list(range(1, n + 1))
    assert not acked(tmp)
    assert not alive(int((tmp / "pid").read_text()))


def test_bad_lines_are_named_with_their_numbers_and_the_run_goes_on(tmp):
    n = 10
    code, out, err = hopper("run", "-s", source_spec(n, tmp),
                            "-o", f"jsonl:{tmp / 'out.jsonl'}", "--",
                            *FAKE, env=clean_env(BAD=1))
    assert code == 0, err
    rows = read_jsonl((tmp / "out.jsonl").read_text())
    assert sorted(int(r["id"]) for r in rows) == list(range(1, n + 1))
    # Items 1 and 2 are lines 1 and 2; then two bad lines before item 3.
    assert "line 3: not JSON" in err, err
    assert "line 4: no \"id\" (an item), \"depth\", \"end\" or " \
        "\"hello\"" in err, err
    assert "exec source '" in err


def test_a_source_that_closes_its_stdout_and_runs_on_is_restarted(tmp):
    prog = tmp / "closer.py"
    prog.write_text(
        "import os, sys, time\n"
        "print('{\"id\": \"1\", \"payload\": 1}', flush=True)\n"
        "if os.environ['HOPPER_INCARNATION'] == '1':\n"
        "    os.close(1)\n"
        "    time.sleep(3600)\n"
        "print('{\"end\": true}', flush=True)\n"
        "sys.stdin.read()\n")
    code, out, err = hopper("run", "-s", f"exec:{PY} {prog}",
                            "-o", f"jsonl:{tmp / 'out.jsonl'}", "--", *FAKE,
                            env=clean_env())
    assert code == 0, err
    assert "closed its stdout and kept running" in err, err
    # The first incarnation's item, and the second's again: at least once.
    rows = read_jsonl((tmp / "out.jsonl").read_text())
    assert [r["id"] for r in rows] == ["1", "1"]


def sink_spec(d):
    return f"exec:{PY} {SINK} {d}"


def test_an_exec_sink_that_refuses_some_results(tmp):
    n = 20
    src = write_jsonl(tmp / "in.jsonl", [{"n": i} for i in range(n)])
    code, out, err = hopper(
        "run", "-s", f"jsonl:{src}", "-S", f"dead={tmp / 'dead.jsonl'}",
        "-o", sink_spec(tmp), "--", *FAKE,
        env=clean_env(RETRY_ONCE="3,7", REFUSE="5"))
    assert "19 done, 1 dead" in err, err
    recs = read_jsonl((tmp / "records.jsonl").read_text())
    ok = {r["id"] for r in recs if r["ok"]}
    # Refused for now: written again, then taken. Refused for good: dead.
    assert ok == {str(i) for i in range(1, n + 1)} - {"5"}
    assert set((tmp / "refused").read_text().split()) == {"3", "7"}
    dead = read_jsonl((tmp / "dead.jsonl").read_text())
    assert [d["id"] for d in dead] == ["5"]
    assert "refused for good" in dead[0]["error"]
    # The dead item reached the sink as a dead record.
    assert any(r["id"] == "5" and not r["ok"] for r in recs)
    assert "record '3' refused for now" in err


def test_a_killed_sink_program_loses_nothing(tmp):
    n = 200
    src = write_jsonl(tmp / "in.jsonl", [{"n": i} for i in range(n)])
    code, out, err = hopper("run", "-s", f"jsonl:{src}",
                            "-o", sink_spec(tmp), "--", *FAKE,
                            env=clean_env(KILL_AFTER=70))
    assert code == 0, err
    assert "exec sink '" in err and "killed by signal 9" in err, err
    recs = read_jsonl((tmp / "records.jsonl").read_text())
    assert {r["id"] for r in recs} == {str(i) for i in range(1, n + 1)}
    assert all(r["ok"] for r in recs)


def test_a_sink_line_that_is_no_answer_restarts_the_program(tmp):
    n = 30
    src = write_jsonl(tmp / "in.jsonl", [{"n": i} for i in range(n)])
    code, out, err = hopper("run", "-s", f"jsonl:{src}",
                            "-o", sink_spec(tmp), "--", *FAKE,
                            env=clean_env(GARBAGE_AT=5))
    assert code == 0, err
    assert "exec sink '" in err and "line 5: not a JSON object" in err, err
    assert "started again" in err
    recs = read_jsonl((tmp / "records.jsonl").read_text())
    assert {r["id"] for r in recs} == {str(i) for i in range(1, n + 1)}


def test_the_sqlite_sink_example(tmp):
    n = 50
    src = write_jsonl(tmp / "in.jsonl", [{"n": i} for i in range(n)])
    db = tmp / "out.db"
    code, out, err = hopper(
        "run", "-s", f"jsonl:{src}",
        "-o", f"exec:{PY} {SINK_EXAMPLES / 'sqlite_sink.py'} {db}",
        "--", *FAKE, env=clean_env())
    assert code == 0, err
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT id, ok, result FROM results").fetchall()
    assert sorted(int(r[0]) for r in rows) == list(range(1, n + 1))
    assert all(r[1] == 1 for r in rows)
    assert json.loads(dict((r[0], r[2]) for r in rows)["7"]) is not None


def test_the_file_source_example_in_a_pipeline_file(tmp):
    src = write_jsonl(tmp / "in.jsonl", [{"n": i} for i in range(30)])
    pipe = tmp / "p.json"
    pipe.write_text(json.dumps({
        "source": {"type": "exec",
                   "command": [PY, str(EXAMPLES / "file_source.py"),
                               "--state", str(tmp / "state"), str(src)]},
        "sink": f"jsonl:{tmp / 'out.jsonl'}",
        "command": [*FAKE],
    }))
    code, out, err = hopper("run", "-f", pipe, env=clean_env())
    assert code == 0, err
    rows = read_jsonl((tmp / "out.jsonl").read_text())
    assert sorted(int(r["id"]) for r in rows) == list(range(1, 31))
    assert len((tmp / "state").read_text().split()) == 30


def test_the_file_source_example_retries_skips_and_remembers(tmp):
    # Blank lines are skipped with their numbers; a failed item comes back
    # with its attempts and dies; a second run gives nothing finished.
    src = tmp / "in.jsonl"
    src.write_text('{"n":1}\n\n{"do":"fail"}\n   \n{"n":5}\n{"n":6}\n')
    spec = f"exec:{PY} {EXAMPLES / 'file_source.py'} --state " \
        f"{tmp / 'state'} {src}"
    code, out, err = hopper("run", "-s", spec, "--attempts", "2",
                            "--backoff", "0.05",
                            "-o", f"jsonl:{tmp / 'out.jsonl'}", "--",
                            *FAKE, env=clean_env())
    assert code != 0 and "3 done, 1 dead, 1 retried" in err, err
    rows = read_jsonl((tmp / "out.jsonl").read_text())
    assert sorted((r["id"], r["ok"], r["attempts"]) for r in rows) == [
        ("1", True, 1), ("3", False, 2), ("5", True, 1), ("6", True, 1)]
    assert sorted((tmp / "state").read_text().split()) == \
        ["1", "3", "5", "6"]
    code, out, err = hopper("run", "-s", spec,
                            "-o", f"jsonl:{tmp / 'out2.jsonl'}", "--",
                            *FAKE, env=clean_env())
    assert code == 0 and "0 done, 0 dead" in err, err


def test_the_go_file_source_example(tmp):
    go = shutil.which("go")
    if not go:
        pytest.skip("no Go toolchain")
    exe = tmp / "file_source"
    subprocess.run([go, "build", "-o", str(exe), "."],
                   cwd=EXAMPLES / "go" / "file_source", check=True,
                   env=clean_env(CGO_ENABLED=0, GOTOOLCHAIN="local",
                                 GOFLAGS="-buildvcs=false"))
    src = write_jsonl(tmp / "in.jsonl", [{"n": i} for i in range(40)])
    code, out, err = hopper("run", "-s", f"exec:{exe} {src}",
                            "-o", f"jsonl:{tmp / 'out.jsonl'}", "--",
                            *FAKE, env=clean_env())
    assert code == 0, err
    rows = read_jsonl((tmp / "out.jsonl").read_text())
    assert sorted(int(r["id"]) for r in rows) == list(range(1, 41))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis(tmp):
    exe = shutil.which("redis-server")
    if not exe:
        pytest.skip("redis-server is not installed (tests/deps.sh test)")
    port = free_port()
    p = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no",
                          "--dir", str(tmp)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sys.path.insert(0, str(EXAMPLES))
    try:
        from redis_source import Redis  # the example's own RESP client

        def up():
            try:
                return Redis("127.0.0.1", port)("PING") == "PONG"
            except OSError:
                return False
        wait_for(up, what="redis-server")
        yield port, Redis("127.0.0.1", port)
    finally:
        sys.path.remove(str(EXAMPLES))
        p.terminate()
        p.wait(timeout=30)


def test_the_redis_source_example_end_to_end(tmp, redis):
    port, r = redis
    n = 100
    for i in range(1, n + 1):
        r("RPUSH", "jobs", json.dumps({"id": f"job-{i}", "n": i}))
    spec = (f"exec:{PY} {EXAMPLES / 'redis_source.py'} --port {port} "
            f"--key jobs --drain")
    code, out, err = hopper("run", "-s", spec,
                            "-o", f"jsonl:{tmp / 'out.jsonl'}", "--",
                            *FAKE, env=clean_env())
    assert code == 0, err
    rows = read_jsonl((tmp / "out.jsonl").read_text())
    assert sorted(r["id"] for r in rows) == sorted(f"job-{i}"
                                                   for i in range(1, n + 1))
    # Everything acknowledged: nothing left in the list or in flight.
    assert r("LLEN", "jobs") == 0
    assert r("LLEN", "jobs:processing") == 0


def test_the_redis_source_reports_depth_and_gives_back_on_stop(tmp, redis):
    port, r = redis
    n = 200
    for i in range(1, n + 1):
        r("RPUSH", "slow", json.dumps({"id": f"s{i}", "do": "sleep",
                                       "secs": 0.05}))
    spec = (f"exec:{PY} {EXAMPLES / 'redis_source.py'} --port {port} "
            f"--key slow")
    p = start("run", "-s", spec, "-S", "credit=5", "-j", "1", "--grace", "1",
              "--listen", "127.0.0.1:0", "-o", f"jsonl:{tmp / 'out.jsonl'}",
              "--", *FAKE, cwd=tmp)
    try:
        web = http_port(p)

        def depth():
            c = http.client.HTTPConnection("127.0.0.1", web, timeout=10)
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
            c.close()
            m = re.search(r"^hopper_queue_depth (\d+)", text, re.M)
            return int(m.group(1)) if m else -1
        # The program's {"depth": N} lines reach the autoscaler's gauge.
        wait_for(lambda: depth() >= 100, what="the depth the program says")
    finally:
        stop(p)
    assert p.returncode == 143, stderr_of(p)
    assert_clean(stderr_of(p))
    # Stopped early: what was done was acknowledged (gone from Redis),
    # the rest is back on the list, nothing in between.
    done = {row["id"] for row in read_jsonl((tmp / "out.jsonl").read_text())}
    left = {json.loads(x)["id"] for x in r("LRANGE", "slow", 0, -1)}
    assert r("LLEN", "slow:processing") == 0
    assert done | left == {f"s{i}" for i in range(1, n + 1)}
    assert len(left) > 0


def test_check_source_and_check_sink(tmp):
    src = write_jsonl(tmp / "in.jsonl", [{"n": i} for i in range(10)])
    code, out, err = hopper("check-source", "--", PY,
                            EXAMPLES / "file_source.py", src)
    assert code == 0, out + err
    assert "ok   line 1: hello: acknowledgements in lists" in out
    assert "ok   line 2: item '1'" in out
    assert 'sent {"ack":["1"]}' in out
    assert 'sent {"ack":["4","5","6"]}' in out
    assert "the source program keeps the contract" in out

    # A program without a hello is acked one item a line, as before.
    code, out, err = hopper("check-source", "--", PY, SRC, 10, tmp)
    assert code == 0, out + err
    assert "ok   line 1: item '1'" in out
    assert 'sent {"ack":"1"}' in out and '"ack":[' not in out

    bad = tmp / "bad_source.py"
    bad.write_text(
        "import sys\n"
        "print('hello', flush=True)\n"
        "for i in range(10):\n"
        "    print('{\"id\": \"%d\", \"payload\": 1}' % i, flush=True)\n"
        "sys.stdin.read()\n")
    code, out, err = hopper("check-source", "--timeout", "5", "--", PY, bad)
    assert code == 1, out + err
    assert "FAIL line 1: not JSON" in out, out
    assert "FAIL line 5: item '3' is item 4, beyond the credit of 3" in out

    code, out, err = hopper("check-sink", "--", PY,
                            SINK_EXAMPLES / "sqlite_sink.py", tmp / "c.db")
    assert code == 0, out + err
    assert "ok   line 1: record '1' is safe" in out

    badsink = tmp / "bad_sink.py"
    badsink.write_text(
        "import sys\n"
        "for line in sys.stdin:\n"
        "    print('{\"ok\": \"7\"}', flush=True)\n")
    code, out, err = hopper("check-sink", "--timeout", "5", "--", PY,
                            badsink)
    assert code == 1, out + err
    assert "FAIL line 1: an answer for '7' while record '1' waits" in out
