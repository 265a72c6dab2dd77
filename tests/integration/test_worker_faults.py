"""Workers that fail in ways the contract does not spell out step by step:
a crash with its reason on stderr, a closed stdout, processes left behind
in the worker's group, a worker that cannot start at all, and --halt."""
import json
import os
import re
import signal

import pytest

from conftest import (FAKE, PY, by_id, clean_env, hopper, read_jsonl, wait_for,
                      write_jsonl)


def test_stream_crash_error_carries_the_last_stderr_line(tmp):
    # The first item is answered, so the worker is known to work: the
    # crash is the item's failed attempt.
    src = write_jsonl(tmp / "in.jsonl", [{"n": 0}, {"do": "boom"}])
    dead = tmp / "dead.jsonl"
    code, out, err = hopper("run", "-s", f"jsonl:{src}", "-S",
                            f"dead={dead}", "-j", "1", "--attempts", "1",
                            "--", *FAKE, timeout=60)
    assert code == 3, err
    res = by_id(read_jsonl(out))
    assert res["1"]["ok"] and not res["2"]["ok"]
    want = ("worker 0 exited with status 1 while handling the item: "
            "boom: bad frame")
    assert res["2"]["error"] == want
    letters = read_jsonl(dead.read_text())
    assert len(letters) == 1 and letters[0]["id"] == "2"
    assert letters[0]["error"] == want


# A stream worker that starts processes in its own group, records their
# pids, and answers; on an item that says "exit" it answers and exits on its
# own. One of its processes ignores SIGTERM.
GROUP_STREAM = """#!/bin/sh
sleep 1000 >/dev/null 2>&1 &
echo $! >> "$PIDS"
sleep 1000 &
echo $! >> "$PIDS"
sh -c 'trap "" TERM; echo $$ >> "$PIDS"; exec sleep 1000' >/dev/null 2>&1 &
while read -r line; do
	id=$(printf '%s' "$line" | sed 's/^{"id":"\\([^"]*\\)".*/\\1/')
	printf '{"id": "%s", "ok": true}\\n' "$id"
	case "$line" in *'"exit"'*) exit 0 ;; esac
done
"""

# An exec worker that leaves a process behind in its group.
GROUP_EXEC = """#!/bin/sh
sleep 1000 >/dev/null 2>&1 &
echo $! >> "$PIDS"
echo '{"ok": true}'
"""


def alive(pid):
    """True while the process runs (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def script(tmp, name, text):
    path = tmp / name
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("mode", ["stream", "exec"])
def test_processes_a_worker_left_in_its_group_end_with_it(tmp, mode):
    pids = tmp / "pids"
    worker = script(tmp, "w.sh", GROUP_STREAM if mode == "stream"
                    else GROUP_EXEC)
    src = write_jsonl(tmp / "in.jsonl", [{"n": 0}, "exit", {"n": 1}])
    try:
        code, out, err = hopper("run", "-s", f"jsonl:{src}", "-j", "1",
                                "--mode", mode, "--kill-timeout", "0.5",
                                "--", worker, timeout=60,
                                env=clean_env(PIDS=pids))
        assert code == 0, err
        res = by_id(read_jsonl(out))
        assert sorted(res) == ["1", "2", "3"] and all(
            r["ok"] for r in res.values())
        left = [int(p) for p in pids.read_text().split()]
        # stream: two worker starts of three processes; exec: one each item
        assert len(left) == (6 if mode == "stream" else 3), left
        # hopper has exited: what its workers started goes with them (a
        # killed process may take a moment to be torn down).
        wait_for(lambda: not any(alive(p) for p in left), timeout=10,
                 what="the processes workers left behind to end")
        if mode == "stream":
            assert "sending SIGKILL to process group" in err, err
    finally:
        for p in (int(x) for x in pids.read_text().split()) \
                if pids.exists() else ():
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_worker_that_closes_its_stdout_is_replaced_at_once(tmp):
    # The default --timeout is 300 s: the run must not wait for it.
    src = write_jsonl(tmp / "in.jsonl", [{"n": 0}, {"do": "closeout_once"},
                                         {"do": "closeout"}])
    code, out, err = hopper("run", "-s", f"jsonl:{src}", "-j", "1",
                            "--attempts", "2", "--backoff", "0.05",
                            "--", *FAKE, timeout=60)
    assert code == 3, err
    res = by_id(read_jsonl(out))
    assert res["1"]["ok"] and res["1"]["attempts"] == 1
    assert res["2"]["ok"] and res["2"]["attempts"] == 2
    assert not res["3"]["ok"] and res["3"]["attempts"] == 2
    want = ("worker 0 closed its stdout and kept running: it can answer "
            "nothing more")
    assert res["3"]["error"] == want
    # One worker stopped for each of the three attempts, each logged once
    # with what came of it.
    assert len(re.findall(r"item=\d (attempt 1 of 2 failed|dead after 2 "
                          r"attempts): " + want, err)) == 3, err
    assert "timed out" not in err


def inbox(tmp, payloads):
    """A dir source's folder with one file per payload, named in order."""
    d = tmp / "in"
    d.mkdir()
    for i, p in enumerate(payloads):
        (d / f"{i:02d}.json").write_text(json.dumps(p))
    return d


def where(d):
    """Which files are back in the inbox, done, failed or still claimed."""
    def names(sub):
        p = d / sub if sub else d
        return sorted(f.name for f in p.iterdir() if f.is_file()) \
            if p.exists() else []
    return {k: names(k) for k in ("", "done", "failed", "processing")}


def test_a_worker_that_cannot_start_stops_the_run(tmp):
    # A mistyped script: python3 starts, says why on stderr and exits 2,
    # before any answer, every time. The run stops at once (not after
    # minutes of restarts backing off), exit 1, and nothing is dead.
    d = inbox(tmp, [{"n": i} for i in range(6)])
    out = tmp / "out.jsonl"
    code, _, err = hopper("run", "-s", f"dir:{d}", "-o", f"jsonl:{out}",
                          "-j", "1", "--", PY, str(tmp / "nosuch.py"),
                          timeout=60)
    assert code == 1, err
    last = [line for line in err.splitlines() if " error " in line][-1]
    assert "worker 0 exited with status 2 before its first answer" in last
    assert "can't open file" in last and "nosuch.py" in last, last
    assert "5 times in a row" in last, last
    files = where(d)
    assert files[""] == [f"{i:02d}.json" for i in range(6)], files
    assert not files["done"] and not files["failed"] and \
        not files["processing"], files
    assert out.read_text() == ""
    assert re.search(r"finished: 0 done, 0 dead, 0 retried", err), err


def test_halt_now_on_the_first_failure_hands_back_what_runs(tmp):
    # Worker 0 sleeps on 00, worker 1 fails 01: the run stops at once,
    # stops the sleeper and hands every item back (the failed one too: its
    # retry never comes).
    d = inbox(tmp, [{"do": "sleep", "secs": 30}, {"do": "fail"}] +
              [{"n": i} for i in range(8)])
    code, _, err = hopper("run", "-s", f"dir:{d}", "-o", f"dir:{tmp / 'out'}",
                          "-j", "2", "--halt", "now,fail=1", "--", *FAKE,
                          env=clean_env(FAKE_READ_FILE=1), timeout=60)
    assert code == 4, err
    assert "--halt now,fail=1: 1 of 1 attempts failed" in err, err
    files = where(d)
    assert files[""] == [f"{i:02d}.json" for i in range(10)], files
    assert not files["done"] and not files["failed"], files


def test_halt_soon_at_half_failed_lets_nothing_new_start(tmp):
    # One worker, one attempt each, every other item fails: after the
    # tenth attempt half have failed. Nothing more starts; what was not
    # attempted is back in the inbox.
    d = inbox(tmp, [{"do": "fail"} if i % 2 else {"n": i}
                    for i in range(20)])
    code, _, err = hopper("run", "-s", f"dir:{d}", "-o", f"dir:{tmp / 'out'}",
                          "-j", "1", "--attempts", "1",
                          "--halt", "soon,fail=50%", "--", *FAKE,
                          env=clean_env(FAKE_READ_FILE=1), timeout=60)
    assert code == 4, err
    assert "--halt soon,fail=50%: 5 of 10 attempts failed" in err, err
    files = where(d)
    assert files["done"] == [f"{i:02d}.json" for i in range(0, 10, 2)]
    # A failed file comes with its error record.
    assert [f for f in files["failed"] if not f.endswith(".error.json")] \
        == [f"{i:02d}.json" for i in range(1, 10, 2)], files
    assert files[""] == [f"{i:02d}.json" for i in range(10, 20)], files
    assert re.search(r"finished: 5 done, 5 dead, 0 retried, \d+ handed "
                     r"back", err), err


def test_halt_takes_only_what_it_documents(tmp):
    src = write_jsonl(tmp / "in.jsonl", [{"n": 0}])
    for bad in ("sometimes", "now,fail=0", "soon,fail=101%", "now,done=1",
                "later,fail=1", "now,fail=1.5"):
        code, _, err = hopper("run", "-s", f"jsonl:{src}", "--halt", bad,
                              "--", *FAKE)
        assert code == 2, (bad, err)
        assert f"--halt {bad}: halt '{bad}' is not never" in err, err


def test_halt_from_a_pipeline_file(tmp):
    src = write_jsonl(tmp / "in.jsonl", [{"n": 0}, {"do": "fail"}, {"n": 2}])
    pipeline = tmp / "p.json"
    pipeline.write_text(json.dumps({"source": f"jsonl:{src}",
                                    "halt": "soon,fail=1",
                                    "command": [*FAKE]}, indent=1))
    code, out, err = hopper("run", "-f", pipeline, "-j", "1",
                            "--attempts", "1")
    assert code == 4, err
    res = by_id(read_jsonl(out))
    assert sorted(res) == ["1", "2"] and res["1"]["ok"] and \
        not res["2"]["ok"], res
    assert "--halt soon,fail=1: 1 of 2 attempts failed" in err
    pipeline.write_text(json.dumps({"source": f"jsonl:{src}",
                                    "halt": "soon",
                                    "command": [*FAKE]}, indent=1))
    code, _, err = hopper("run", "-f", pipeline)
    assert code == 2 and f"{pipeline}:3:" in err and \
        "halt 'soon' is not never" in err, err
