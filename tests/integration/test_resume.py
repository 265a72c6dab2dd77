"""Runs that can be trusted and resumed: a finite run stopped by a signal
with items not done exits 130 (SIGINT) or 143 (SIGTERM), and a run journal
lets the same command, run again, skip what is already done."""
import signal

from conftest import (FAKE, PY, clean_env, hopper, read_jsonl, start,
                      stderr_of, stop, wait_for, write_jsonl)


def ends(log):
    return log.read_text().count("end ") if log.exists() else 0


def run_jsonl(tmp, n, *flags, sleep=0.05, jobs=2):
    """Starts a finite run of n jsonl lines to a jsonl sink; each item
    takes `sleep` seconds."""
    src = write_jsonl(tmp / "in.jsonl", [{"n": i} for i in range(n)])
    log = tmp / "log"
    p = start("run", "-s", f"jsonl:{src}", "-o", f"jsonl:{tmp}/out.jsonl",
              "-j", str(jobs), *flags, "--", *FAKE, cwd=tmp,
              env=clean_env(FAKE_LOG=log, FAKE_SLEEP=sleep))
    return p, log


def signal_after_results(p, log, sig, results=4):
    wait_for(lambda: ends(log) >= results, what=f"{results} results")
    p.send_signal(sig)
    code = p.wait(timeout=60)
    return code, stderr_of(p)


def test_sigint_of_an_unfinished_finite_run_exits_130(tmp):
    p, log = run_jsonl(tmp, 300)
    code, err = signal_after_results(p, log, signal.SIGINT)
    assert code == 130, err
    assert "handed back" in err


def test_sigterm_of_an_unfinished_finite_run_exits_143(tmp):
    p, log = run_jsonl(tmp, 300)
    code, err = signal_after_results(p, log, signal.SIGTERM)
    assert code == 143, err


def test_sigterm_drains_a_watched_run_to_exit_0(tmp):
    inbox, out = tmp / "in", tmp / "out"
    inbox.mkdir()
    p = start("run", "-s", f"dir:{inbox}", "-o", f"dir:{out}", "--watch",
              "--", *FAKE, cwd=tmp)
    try:
        wait_for(lambda: "running: " in stderr_of(p), what="the run started")
        (inbox / "a.txt").write_text("{}")
        wait_for(lambda: out.exists() and len(list(out.iterdir())) == 1,
                 what="a result")
    finally:
        stop(p)
    assert p.returncode == 0, stderr_of(p)


LINGER = """
import json, sys, time
for line in sys.stdin:
    m = json.loads(line)
    print(json.dumps({"id": m["id"], "ok": True, "result": m["payload"]}),
          flush=True)
open(sys.argv[1], "w").close()
time.sleep(30)
"""


def test_a_signal_after_everything_finished_still_exits_0(tmp):
    """The run had nothing left to do when the signal came: its outcome is
    whole, and the exit says so. The worker lingers after its stdin ends,
    so the signal arrives while the finished run waits for it."""
    src = write_jsonl(tmp / "in.jsonl", [{"n": i} for i in range(5)])
    eof = tmp / "eof"
    p = start("run", "-s", f"jsonl:{src}", "-o", f"jsonl:{tmp}/out.jsonl",
              "-j", "1", "--kill-timeout", "1", "--", PY, "-c", LINGER,
              str(eof), cwd=tmp)
    wait_for(eof.exists, what="the worker told its input is over")
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 0, stderr_of(p)
    assert len(read_jsonl((tmp / "out.jsonl").read_text())) == 5


# The run journal.

FLAKY = """
import json, os, sys
fail = set(os.environ.get("FAIL", "").split(","))
for line in sys.stdin:
    m = json.loads(line)
    if m["id"] in fail:
        a = {"id": m["id"], "ok": False, "error": "told to fail",
             "retry": False}
    else:
        a = {"id": m["id"], "ok": True, "result": m["payload"]}
    print(json.dumps(a), flush=True)
"""


def journal_lines(path):
    return read_jsonl(path.read_text())


def run_flaky(tmp, *flags, fail=()):
    return hopper("run", "-s", f"jsonl:{tmp}/in.jsonl", "-o",
                  f"jsonl:{tmp}/out.jsonl", "--journal", tmp / "journal",
                  "-j", "2", *flags, "--", PY, "-c", FLAKY, cwd=tmp,
                  env=clean_env(FAIL=",".join(fail)))


def test_a_rerun_with_the_journal_finishes_each_id_once(tmp):
    n = 300
    p, log = run_jsonl(tmp, n, "--journal", tmp / "journal")
    code, err = signal_after_results(p, log, signal.SIGINT, results=20)
    assert code == 130, err
    first = read_jsonl((tmp / "out.jsonl").read_text())
    assert 20 <= len(first) < n, err
    # The same command again, to the end.
    p, _ = run_jsonl(tmp, n, "--journal", tmp / "journal", sleep=0)
    assert p.wait(timeout=120) == 0, stderr_of(p)
    err = stderr_of(p)
    out = read_jsonl((tmp / "out.jsonl").read_text())
    ids = [r["id"] for r in out]
    assert len(ids) == len(set(ids)), "an id finished twice"
    assert sorted(ids, key=int) == [str(i) for i in range(1, n + 1)]
    assert all(r["ok"] for r in out)
    assert (f"skipped {len(first)} item(s) that the journal "
            f"{tmp / 'journal'} records as finished by an earlier run "
            f"({len(first)} done, 0 dead)") in err, err
    assert f"finished: {n - len(first)} done" in err, err
    # The journal: a header per run, then each id done once.
    lines = journal_lines(tmp / "journal")
    heads = [x for x in lines if "journal" in x]
    assert len(heads) == 2
    assert heads[0]["source"] == f"jsonl:{tmp / 'in.jsonl'}"
    done = [x["id"] for x in lines if x.get("outcome") == "done"]
    assert sorted(done, key=int) == [str(i) for i in range(1, n + 1)]


def test_dead_items_are_skipped_unless_resume_failed(tmp):
    write_jsonl(tmp / "in.jsonl", [{"n": i} for i in range(10)])
    code, _, err = run_flaky(tmp, fail=("3", "7"))
    assert code == 3, err
    # Rerun: the dead stay dead (not run again), and the exit says so.
    code, _, err = run_flaky(tmp)
    assert code == 3, err
    assert "(8 done, 2 dead)" in err, err
    assert "finished: 0 done, 0 dead" in err, err
    assert len(read_jsonl((tmp / "out.jsonl").read_text())) == 10
    # --resume-failed runs them again; now they pass.
    code, _, err = run_flaky(tmp, "--resume-failed")
    assert code == 0, err
    assert "finished: 2 done, 0 dead" in err, err
    assert "(8 done, 0 dead)" in err, err
    out = read_jsonl((tmp / "out.jsonl").read_text())
    assert sorted(r["id"] for r in out[10:]) == ["3", "7"]
    assert all(r["ok"] for r in out[10:])
    # And a fourth run has nothing left to do.
    code, _, err = run_flaky(tmp)
    assert code == 0, err
    assert "(10 done, 0 dead)" in err, err


def test_a_torn_last_journal_line_is_cut(tmp):
    write_jsonl(tmp / "in.jsonl", [{"n": i} for i in range(5)])
    code, _, err = run_flaky(tmp, fail=("5",))
    assert code == 3, err
    # As if a run had been killed while writing: half a line.
    with open(tmp / "journal", "a") as f:
        f.write('{"id": "5", "outc')
    code, _, err = run_flaky(tmp, "--resume-failed")
    assert code == 0, err
    assert "cut a torn last line of 17 byte(s)" in err, err
    assert "finished: 1 done, 0 dead" in err, err
    lines = journal_lines(tmp / "journal")  # every line whole again
    assert lines[-1] == {"id": "5", "outcome": "done", "attempts": 1}


def test_a_journal_refuses_another_source(tmp):
    write_jsonl(tmp / "in.jsonl", [{"n": 1}])
    write_jsonl(tmp / "other.jsonl", [{"n": 1}])
    code, _, err = run_flaky(tmp)
    assert code == 0, err
    code, _, err = hopper("run", "-s", f"jsonl:{tmp}/other.jsonl",
                          "--journal", tmp / "journal", "--", PY, "-c",
                          FLAKY, cwd=tmp)
    assert code == 1, err
    assert (f"journal {tmp / 'journal'} records the source "
            f"jsonl:{tmp / 'in.jsonl'}, not jsonl:{tmp / 'other.jsonl'}"
            ) in err, err


def test_a_journal_is_for_finite_runs(tmp):
    code, _, err = hopper("run", "-s", f"dir:{tmp}", "--watch", "--journal",
                          tmp / "j", "--", "true", cwd=tmp)
    assert code == 2 and "a journal is for finite runs" in err, err
    code, _, err = hopper("run", "-s", f"jsonl:{tmp}/x", "--resume-failed",
                          "--", "true", cwd=tmp)
    assert code == 2 and "--resume-failed needs a journal" in err, err
