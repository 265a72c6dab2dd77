"""Exec mode under load: each process starts as the one before it in its
slot exits, with its payload already in its stdin and in WORK_ITEM_FILE.
These check that the overlap never mixes two items up, and that a timeout
or SIGTERM still loses nothing."""
import re
import signal
import time

from conftest import by_id, clean_env, hopper, read_jsonl, start, \
    stderr_of, wait_for, write_jsonl

# Answers with what it was given: its id, the bytes on stdin, and whether
# WORK_ITEM_FILE holds exactly the same bytes.
CHECKER = """#!/bin/sh
cat > "$TMPDIR_W/$$.in"
if cmp -s "$TMPDIR_W/$$.in" "$WORK_ITEM_FILE"; then same=yes; else same=no; fi
printf '{"id": "%s", "bytes": %s, "file_matches": "%s"}\\n' \\
	"$HOPPER_ITEM_ID" "$(wc -c < "$TMPDIR_W/$$.in")" "$same"
rm -f "$TMPDIR_W/$$.in"
"""

# Sleeps as long as its payload says (from the dir source, the payload is a
# path: the file says), logging when it starts.
SLEEPER = """#!/bin/sh
payload=$(cat)
[ -f "$payload" ] && payload=$(cat "$payload")
echo "start $HOPPER_ITEM_ID" >> "$LOG"
sleep "$payload"
echo '"slept"'
"""


def script(tmp, name, text):
    path = tmp / name
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def test_overlapping_starts_keep_each_items_payload(tmp):
    worker = script(tmp, "checker.sh", CHECKER)
    # Long and short payloads in turn: a file left longer by the item
    # before would show as a mismatch.
    payloads = ["x" * (500 if i % 2 else 3) + str(i) for i in range(300)]
    src = write_jsonl(tmp / "in.jsonl", payloads)
    code, out, err = hopper("run", "-s", f"jsonl:{src}", "-m", "exec", "-j",
                            "2", "--", worker, env=clean_env(TMPDIR_W=tmp))
    assert code == 0, err
    res = by_id(read_jsonl(out))
    assert len(res) == 300
    for i, p in enumerate(payloads):
        r = res[str(i + 1)]["result"]
        assert r == {"id": str(i + 1), "bytes": len(p),
                     "file_matches": "yes"}, (i, r)


def test_payload_larger_than_a_pipe(tmp):
    worker = script(tmp, "checker.sh", CHECKER)
    big = "y" * (1 << 20)
    src = write_jsonl(tmp / "in.jsonl", [big, "small", big])
    code, out, err = hopper("run", "-s", f"jsonl:{src}", "-m", "exec", "-j",
                            "1", "--", worker, env=clean_env(TMPDIR_W=tmp))
    assert code == 0, err
    res = by_id(read_jsonl(out))
    assert res["1"]["result"]["bytes"] == 1 << 20
    assert res["2"]["result"]["bytes"] == 5
    assert all(r["result"]["file_matches"] == "yes" for r in res.values())


def test_timeout_with_an_item_waiting_behind(tmp):
    log = tmp / "log"
    worker = script(tmp, "sleeper.sh", SLEEPER)
    src = write_jsonl(tmp / "in.jsonl", ["30", "0", "0", "0"])
    t0 = time.time()
    code, out, err = hopper("run", "-s", f"jsonl:{src}", "-m", "exec", "-j",
                            "1", "--timeout", "0.5", "--attempts", "1",
                            "--", worker, env=clean_env(LOG=log), timeout=60)
    assert code == 3, err
    assert time.time() - t0 < 25  # the first item sleeps 30 s
    res = by_id(read_jsonl(out))
    assert "timed out" in res["1"]["error"]
    assert all(res[i]["ok"] and res[i]["attempts"] == 1
               for i in ("2", "3", "4")), res


def test_sigterm_finishes_what_is_in_flight_and_hands_back_the_rest(tmp):
    inbox, log = tmp / "in", tmp / "log"
    inbox.mkdir()
    for i in range(8):
        (inbox / f"v{i}.txt").write_text("1")
    worker = script(tmp, "sleeper.sh", SLEEPER)
    p = start("run", "-s", f"dir:{inbox}", "-o", f"dir:{tmp}/out", "-m",
              "exec", "-j", "2", "--grace", "20", "--", worker, cwd=tmp,
              env=clean_env(LOG=log))
    wait_for(lambda: log.exists() and log.read_text().count("start") >= 2,
             what="two items started")
    p.send_signal(signal.SIGTERM)
    code = p.wait(timeout=30)
    err = stderr_of(p)
    assert code == 143, err  # a finite run with items handed back
    # In flight: the two running. The item each slot had queued to follow
    # as it exits is handed back at the signal, never started.
    inflight = int(re.search(r"stopping; (\d+) item\(s\) in flight", err)[1])
    assert inflight == 2, err
    assert log.read_text().count("start") == inflight, err
    done = [f for f in (inbox / "done").iterdir() if f.is_file()]
    back = [f for f in inbox.iterdir() if f.is_file()]
    assert len(done) == inflight, err
    assert len(back) == 8 - inflight, err  # unclaimed again, not failed
    assert not any((inbox / "processing").iterdir())
    assert not (inbox / "failed").exists() or \
        not any((inbox / "failed").iterdir())


def test_output_over_the_limit_kills_only_that_item(tmp):
    worker = script(tmp, "loud.sh", """#!/bin/sh
payload=$(cat)
if [ "$payload" = loud ]; then yes x | head -c 300000; fi
echo '"quiet"'
""")
    src = write_jsonl(tmp / "in.jsonl", ["a", "loud", "b", "c"])
    code, out, err = hopper("run", "-s", f"jsonl:{src}", "-m", "exec", "-j",
                            "1", "--max-line", "4K", "--attempts", "1",
                            "--", worker)
    assert code == 3, err
    res = by_id(read_jsonl(out))
    assert "more than 4096 bytes" in res["2"]["error"], res["2"]
    assert all(res[i]["result"] == "quiet" for i in ("1", "3", "4")), res


def test_stderr_of_a_running_process_is_logged_as_it_comes(tmp):
    worker = script(tmp, "talker.sh", """#!/bin/sh
cat > /dev/null
echo "working on $HOPPER_ITEM_ID" >&2
while [ ! -e "$GO" ]; do sleep 0.05; done
echo '"done"'
""")
    src = write_jsonl(tmp / "in.jsonl", ["x"])
    # The process runs until the test has seen its stderr line: a line read
    # only at the process's exit would never be seen.
    p = start("run", "-s", f"jsonl:{src}", "-m", "exec", "--", worker,
              cwd=tmp, env=clean_env(GO=tmp / "go"))
    wait_for(lambda: "working on 1" in stderr_of(p), timeout=60,
             what="the stderr line while the process runs")
    (tmp / "go").touch()
    p.wait(timeout=30)
    assert p.returncode == 0
