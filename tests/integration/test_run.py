"""hopper run over jsonl: results, retries, dead letters, and every way a
worker can break the contract."""
import json
import time

from conftest import (EXEC, FAKE, by_id, hopper, read_jsonl, write_jsonl)


def run_items(tmp, payloads, *flags, worker=FAKE, timeout=120):
    src = write_jsonl(tmp / "in.jsonl", payloads)
    code, out, err = hopper("run", "-s", f"jsonl:{src}", "--backoff", "0.05",
                            *flags, "--", *worker, timeout=timeout)
    return code, by_id(read_jsonl(out)), err


def test_every_item_answered_once(tmp):
    payloads = [{"n": i} for i in range(200)]
    code, res, err = run_items(tmp, payloads, "-j", "3")
    assert code == 0, err
    assert sorted(res) == sorted(str(i + 1) for i in range(200))
    for i in range(200):
        r = res[str(i + 1)]
        assert r["ok"] is True and r["attempts"] == 1
        assert r["result"]["echo"] == {"n": i}
    assert "finished: 200 done, 0 dead" in err


def test_prefetch_window_keeps_every_item(tmp):
    code, res, err = run_items(tmp, [{"n": i} for i in range(500)],
                               "-j", "2", "--prefetch", "16")
    assert code == 0, err
    assert len(res) == 500 and all(r["ok"] for r in res.values())


def test_id_from_a_field(tmp):
    payloads = [{"key": f"k{i}"} for i in range(5)]
    code, res, err = run_items(tmp, payloads, "-S", "id=key")
    assert code == 0, err
    assert sorted(res) == [f"k{i}" for i in range(5)]


def test_retry_then_success_and_dead_after_max_attempts(tmp):
    dead = tmp / "dead.jsonl"
    payloads = [{"do": "fail_once"}, {"do": "fail"}, {"do": "ok"}]
    code, res, err = run_items(tmp, payloads, "-j", "1", "--attempts", "3",
                               "-S", f"dead={dead}")
    assert code == 3, err  # a finite run with dead items
    assert res["1"]["ok"] and res["1"]["attempts"] == 2
    assert not res["2"]["ok"] and res["2"]["attempts"] == 3
    assert res["2"]["error"] == "asked to fail"
    assert res["3"]["ok"] and res["3"]["attempts"] == 1
    rec = read_jsonl(dead.read_text())
    assert len(rec) == 1 and rec[0]["id"] == "2" and rec[0]["attempts"] == 3
    assert "failing 2 on attempt 3" in rec[0]["stderr"]
    assert rec[0]["payload"] == {"do": "fail"}


def test_permanent_failure_skips_the_remaining_attempts(tmp):
    code, res, err = run_items(tmp, [{"do": "perm"}], "--attempts", "5")
    assert code == 3
    assert res["1"]["attempts"] == 1 and res["1"]["error"] == "bad input"


def bad_worker_case(tmp, action, *flags, expect):
    payloads = [{"n": 0}, {"do": action}, {"n": 2}]
    t0 = time.time()
    code, res, err = run_items(tmp, payloads, "-j", "1", *flags)
    assert code == 0, err
    assert all(r["ok"] for r in res.values()), res
    assert res["2"]["attempts"] == 2, res["2"]
    assert expect in err, err
    return time.time() - t0, err


def test_worker_printing_non_json_is_replaced(tmp):
    _, err = bad_worker_case(tmp, "noise_once",
                             expect="worker 0 wrote a line that is not a JSON "
                                    "object ('Loading model...')")
    assert "item=2" in err


def test_worker_answering_for_the_wrong_id(tmp):
    bad_worker_case(tmp, "wrongid_once",
                    expect="worker 0 answered for item 'not-2' while handling "
                           "item '2'")


def test_worker_writing_a_100mb_line(tmp):
    # The default limit is 16 MiB; the line is dropped as it streams past.
    bad_worker_case(tmp, "bigline_once",
                    expect="worker 0 wrote a line over the 16777216-byte limit")


def test_worker_that_never_answers_times_out(tmp):
    # Without the deadline the item would hang until hopper()'s own timeout.
    bad_worker_case(tmp, "hang_once", "--timeout", "0.5",
                              "--kill-timeout", "0.5",
                              expect="worker 0 timed out after 0.5 s")


def test_progress_lines_extend_the_deadline(tmp):
    payloads = [{"do": "sleep", "secs": 1.5, "progress": True}]
    code, res, err = run_items(tmp, payloads, "--timeout", "0.6")
    assert code == 0, err
    assert res["1"]["ok"] and res["1"]["attempts"] == 1


def test_emit_lines_extend_the_deadline(tmp):
    # Emits prove the worker alive as progress lines do: the item is not
    # timed out, and its outputs (one a 0.2 s) reach the sink as 1/0, 1/1...
    payloads = [{"do": "sleep", "secs": 1.5, "emit": True}]
    code, res, err = run_items(tmp, payloads, "--timeout", "0.6",
                               "--attempts", "1")
    assert code == 0, err
    assert len(res) >= 4 and all(r["ok"] for r in res.values()), res
    assert sorted(res, key=lambda i: int(i.split("/")[1])) == [
        f"1/{n}" for n in range(len(res))], res
    assert "timed out" not in err, err


def test_silence_past_the_deadline_without_progress(tmp):
    payloads = [{"do": "sleep", "secs": 1.5}]
    code, res, err = run_items(tmp, payloads, "--timeout", "0.5",
                               "--attempts", "1", "--kill-timeout", "0.2")
    assert code == 3 and "timed out" in res["1"]["error"]


def test_worker_exiting_mid_item_is_restarted(tmp):
    _, err = bad_worker_case(tmp, "crash_once",
                             expect="worker 0 exited with status 7 while "
                                    "handling the item")
    assert "stderr: about to crash" in err


def test_worker_killed_by_sigkill(tmp):
    # The worker records its pid; the test kills it while it sleeps.
    import os, signal, subprocess, threading
    from conftest import HOPPER, clean_env
    log = tmp / "log"
    src = write_jsonl(tmp / "in.jsonl",
                      [{"do": "sleep_once", "secs": 30}, {"n": 1}])
    p = subprocess.Popen([HOPPER, "run", "-s", f"jsonl:{src}", "-j", "1",
                          "--backoff", "0.05", "--", *FAKE],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=clean_env(FAKE_LOG=log))
    from conftest import wait_for
    wait_for(lambda: log.exists() and "start 1 1" in log.read_text())
    pid = int(log.read_text().split()[3])
    os.kill(pid, signal.SIGKILL)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    res = by_id(read_jsonl(out))
    assert res["1"]["ok"] and res["1"]["attempts"] == 2
    assert "killed by signal 9" in err


def test_worker_ignoring_sigterm_gets_sigkill(tmp):
    from conftest import clean_env
    src = write_jsonl(tmp / "in.jsonl", [{"do": "hang_once"}])
    # The deadline leaves the worker time to start and ignore SIGTERM
    # before it comes, even on a loaded machine.
    code, out, err = hopper("run", "-s", f"jsonl:{src}", "--timeout", "5",
                            "--kill-timeout", "0.5", "--backoff", "0.05",
                            "--", *FAKE, env=clean_env(FAKE_IGNORE_TERM=1))
    assert code == 0, err
    assert "ignored SIGTERM" in err
    assert by_id(read_jsonl(out))["1"]["attempts"] == 2


def test_missing_worker_is_a_clear_error_at_start(tmp):
    src = write_jsonl(tmp / "in.jsonl", [{"n": 1}])
    for mode in ("stream", "exec"):
        t0 = time.time()
        code, out, err = hopper("run", "-s", f"jsonl:{src}", "-m", mode, "--",
                                "/no/such/worker")
        assert code == 1, err
        assert "cannot run '/no/such/worker'" in err
        # Not restarted with backoff: said at once (a generous bound).
        assert time.time() - t0 < 30


def test_exec_mode_exit_codes_and_environment(tmp):
    payloads = ["hello big world", "retry-once", "perm", "crash", "text", "env",
                {"an": "object"}]
    code, res, err = run_items(tmp, payloads, "-m", "exec", "-j", "2",
                               worker=EXEC)
    assert code == 3, err
    assert res["1"]["result"] == {"words": 3}
    assert res["2"]["result"] == {"ok": "second time"} and res["2"]["attempts"] == 2
    assert not res["3"]["ok"] and res["3"]["attempts"] == 1
    assert "status 65" in res["3"]["error"] and "cannot use this" in res["3"]["error"]
    assert not res["4"]["ok"] and res["4"]["attempts"] == 3
    assert res["5"]["result"] == "plain words"
    assert res["6"]["result"] == {"id": "6", "attempt": 1, "file_matches": "yes"}
    assert res["7"]["result"] == {"words": 1}  # compact JSON on stdin


def test_exec_mode_timeout_kills_the_process_group(tmp):
    code, res, err = run_items(tmp, ["sleep"], "-m", "exec", "--timeout", "0.5",
                               "--attempts", "1", worker=EXEC, timeout=20)
    assert code == 3 and "timed out" in res["1"]["error"]


def test_stdin_source_and_stdout_sink():
    payloads = "\n".join(json.dumps({"n": i}) for i in range(10)) + "\n"
    code, out, err = hopper("run", "-s", "jsonl:-", "--", *FAKE, input=payloads)
    assert code == 0, err
    assert len(read_jsonl(out)) == 10


def test_json_logs(tmp):
    code, res, err = run_items(tmp, [{"do": "perm"}], "--log-format", "json")
    lines = [json.loads(line) for line in err.splitlines()]
    dead = [e for e in lines if e.get("item") == "1" and e["level"] == "error"]
    assert dead and "bad input" in dead[0]["msg"]


FD_REPORTER = """
import json, os, sys
def pipes():
    out = []
    for fd in sorted(int(f) for f in os.listdir("/proc/self/fd")):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own descriptor, closed by now
        if fd > 2 and target.startswith(("pipe:", "socket:")):
            out.append(fd)
    return out
if os.environ.get("HOPPER_ITEM_ID"):
    sys.stdin.read()
    print(json.dumps(pipes()))
else:
    for line in sys.stdin:
        item = json.loads(line)
        print(json.dumps({"id": item["id"], "ok": True, "result": pipes()}),
              flush=True)
"""


def test_workers_inherit_no_pipe_of_hopper(tmp):
    # hopper's stdout is a pipe here: a worker holding a copy of it (or of
    # any other pipe of hopper's) keeps a reader of hopper's output from
    # ever seeing its end.
    from conftest import PY
    worker = tmp / "fds.py"
    worker.write_text(FD_REPORTER)
    for mode in ("stream", "exec"):
        code, res, err = run_items(tmp, ["a", "b"], "-m", mode, "-j", "1",
                                   worker=[PY, str(worker)])
        assert code == 0, err
        assert [r["result"] for r in res.values()] == [[], []], (mode, res)


def test_short_flags_take_attached_values(tmp):
    # As getopt allows: -j1, -ojsonl:FILE, -Sid=key.
    src = write_jsonl(tmp / "in.jsonl", [{"key": f"k{i}"} for i in range(3)])
    out = tmp / "out.jsonl"
    code, _, err = hopper("run", f"-sjsonl:{src}", "-j1", f"-ojsonl:{out}",
                          "-Sid=key", "-t30", "--", *FAKE)
    assert code == 0, err
    assert "1 stream worker(s)" in err
    assert sorted(r["id"] for r in read_jsonl(out.read_text())) == \
        ["k0", "k1", "k2"]
    # An attached value is checked as a separate one is, named as typed.
    code, _, err = hopper("run", f"-sjsonl:{src}", "-j-3", "--", *FAKE)
    assert code == 2
    assert err == "hopper: -j-3: option 'workers': -3 is out of range " \
                  "(0..4096)\n", err
    # A long flag typed with one dash is not -s with "ource" attached.
    code, _, err = hopper("run", "-source", f"jsonl:{src}", "--", *FAKE)
    assert code == 2
    assert err == "hopper: unknown flag '-source'; did you mean '--source'?\n"


def test_a_worker_command_without_the_separator_explains_itself(tmp):
    code, _, err = hopper("run", "-s", "jsonl:-", "python3", "w.py")
    assert code == 2
    assert err == ("hopper: unexpected 'python3': the worker command goes "
                   "after -- (hopper run [OPTIONS] -- python3 ...)\n"), err
    code, out, err = hopper("check-worker", "python3", "w.py")
    assert code == 2 and out == ""
    assert err == ("hopper: unexpected 'python3': the worker command goes "
                   "after -- (hopper check-worker -- python3 ...)\n"), err
    code, _, err = hopper("check-worker", "--timout", "3", "--", "w")
    assert code == 2
    assert err == "hopper: unknown flag '--timout'; did you mean '--timeout'?\n"
    code, _, err = hopper("check-worker")
    assert code == 2 and "no worker command: put it after --" in err
    code, out, _ = hopper("check-worker", "--help")
    assert code == 0 and out.startswith("usage: hopper check-worker")


def test_help_has_several_examples():
    code, out, _ = hopper("run", "--help")
    assert code == 0
    examples = out.split("examples:\n")[1].split("\n\n")[0].splitlines()
    commands = [ln for ln in examples if "hopper run" in ln]
    assert len(commands) >= 4, examples
    # Each is explained by the comment above it.
    assert all(examples[examples.index(c) - 1].lstrip().startswith("#")
               for c in commands), examples


def test_a_shell_command_is_logged_as_written(tmp):
    src = write_jsonl(tmp / "in.jsonl", [{"n": 1}])
    shell = f"exec {' '.join(FAKE)} # from the pipeline file"
    f = tmp / "pipe.json"
    f.write_text(json.dumps({"source": f"jsonl:{src}", "command": shell,
                             "workers": 1}))
    code, out, err = hopper("run", "-f", f)
    assert code == 0, err
    assert f"1 stream worker(s): {shell}\n" in err, err
    assert "/bin/sh" not in err
    code, out, _ = hopper("validate", f)
    assert code == 0 and out.endswith(f"1 stream worker(s): {shell}\n"), out


def failure_lines(err, item):
    """The log lines about item, but for the worker's own stderr."""
    return [ln for ln in err.splitlines()
            if f"item={item} " in ln and " stderr: " not in ln]


def test_a_retry_is_one_log_line(tmp):
    # Stream mode: a worker that dies holding the item, one that times out.
    # (An answer first: a worker that fails before any is another story.)
    code, _, err = run_items(tmp, [{"n": 0}, {"do": "crash_once"},
                                   {"do": "hang_once"}],
                             "-j", "1", "--timeout", "1", "--kill-timeout",
                             "0.5")
    assert code == 0, err
    for item, why in (("2", "exited with status 7"), ("3", "timed out")):
        lines = failure_lines(err, item)
        assert len(lines) == 1, lines
        assert "attempt 1 of 3 failed: " in lines[0] and why in lines[0]
        assert "retrying in" in lines[0]
    # Exec mode: a process that fails, twice retried, then dead.
    code, _, err = run_items(tmp, [{"n": 1}], "-m", "exec", "--attempts",
                             "3", worker=["sh", "-c", "exit 1"])
    assert code == 3, err
    lines = failure_lines(err, "1")
    assert len(lines) == 3, lines
    assert "attempt 1 of 3 failed: worker 0 exited with status 1; " \
           "retrying" in lines[0]
    assert "dead after 3 attempts: worker 0 exited with status 1" in lines[2]
