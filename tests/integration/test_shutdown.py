"""Stopping: SIGTERM drains, a second SIGINT cuts it short, and kill -9 of
the coordinator loses nothing."""
import os
import re
import signal
import time

from conftest import FAKE, alive, clean_env, start, stderr_of, wait_for


def make_inbox(tmp, n):
    inbox = tmp / "in"
    inbox.mkdir()
    for i in range(n):
        (inbox / f"v{i:03d}.txt").write_text(str(i))
    return inbox


def names(folder):
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def started(log):
    return log.read_text().count("start ") if log.exists() else 0


def run_and_signal(tmp, n, sleep, *flags, signals=(signal.SIGTERM,)):
    inbox, log = make_inbox(tmp, n), tmp / "log"
    p = start("run", "-s", f"dir:{inbox}", "-o", f"dir:{tmp}/out", "-j", "2",
              *flags, "--", *FAKE, cwd=tmp,
              env=clean_env(FAKE_LOG=log, FAKE_SLEEP=sleep))
    wait_for(lambda: started(log) >= 2, what="two items started")
    t0 = time.time()
    for i, s in enumerate(signals):
        p.send_signal(s)
        # Each signal handled (and logged) before the next: two pending
        # ones of a kind would be one.
        wait_for(lambda: p.poll() is not None or len(re.findall(
            r": stopping; |second interrupt: stopping now",
            stderr_of(p))) > i, what=f"signal {i + 1} handled")
    code = p.wait(timeout=30)
    return inbox, code, time.time() - t0, stderr_of(p)


def test_sigterm_lets_in_flight_items_finish(tmp):
    inbox, code, _, err = run_and_signal(tmp, 8, 1, "--grace", "20")
    assert code == 143, err  # finite, and six items never done
    done = names(inbox / "done")
    assert len(done) == 2, err  # the two in flight finished
    assert len(names(inbox)) == 6  # the rest are back, unclaimed
    assert names(inbox / "processing") == [] and names(inbox / "failed") == []
    assert "handed back" in err


def test_grace_over_hands_in_flight_items_back(tmp):
    inbox, code, took, err = run_and_signal(tmp, 6, 30, "--grace", "0.5",
                                            "--kill-timeout", "0.5")
    assert code == 143, err
    assert took < 25  # the workers sleep 30 s
    assert len(names(inbox)) == 6, err  # all back, none failed
    assert names(inbox / "done") == [] and names(inbox / "failed") == []


def test_second_sigint_exits_at_once_losing_nothing(tmp):
    inbox, code, took, err = run_and_signal(
        tmp, 6, 30, "--grace", "60", "--kill-timeout", "0.5",
        signals=(signal.SIGINT, signal.SIGINT))
    assert code == 130, err
    assert took < 25  # the workers sleep 30 s
    assert len(names(inbox)) == 6
    assert names(inbox / "processing") == []


def test_kill_9_of_the_coordinator_repeats_only_what_was_in_flight(tmp):
    n = 60
    inbox, log, out = make_inbox(tmp, n), tmp / "log", tmp / "out"
    env = clean_env(FAKE_LOG=log, FAKE_SLEEP=0.03)
    args = ("run", "-s", f"dir:{inbox}", "-o", f"dir:{out}", "-j", "2",
            "--", *FAKE)
    p = start(*args, cwd=tmp, env=env)
    wait_for(lambda: log.exists() and log.read_text().count("end ") >= 20,
             what="20 items done")
    p.send_signal(signal.SIGKILL)
    p.wait()
    in_flight = {n for d in (inbox / "processing").iterdir() for n in names(d)
                 if not n.startswith(".")}  # in the killed one's holder folder
    assert in_flight, "nothing was in flight at the kill"
    # The orphaned workers see EOF, finish their item and exit.
    pids = {int(line.split()[3]) for line in log.read_text().splitlines()
            if line.startswith("start ")}
    wait_for(lambda: not any(alive(pid) for pid in pids),
             what="the orphaned workers gone")
    p = start(*args, cwd=tmp, env=env)
    assert p.wait(timeout=60) == 0, stderr_of(p)
    assert names(inbox / "done") == [f"v{i:03d}.txt" for i in range(n)]
    assert names(inbox / "processing") == [] and names(inbox / "failed") == []
    assert len(names(out)) == n
    ends = {}
    for line in log.read_text().splitlines():
        if line.startswith("end "):
            path = line.split(" ", 1)[1]
            ends[os.path.basename(path)] = ends.get(os.path.basename(path), 0) + 1
    assert set(ends) == {f"v{i:03d}.txt" for i in range(n)}
    repeats = {k for k, v in ends.items() if v > 1}
    assert repeats <= in_flight, (repeats, in_flight)
