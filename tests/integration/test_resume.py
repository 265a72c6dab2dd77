"""Runs that can be trusted and resumed: a finite run stopped by a signal
with items not done exits 130 (SIGINT) or 143 (SIGTERM), and a run journal
lets the same command, run again, skip what is already done."""
import signal

from conftest import (FAKE, PY, clean_env, read_jsonl, start, stderr_of, stop,
                      wait_for, write_jsonl)


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
