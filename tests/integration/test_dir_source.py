"""The dir source: file names that are not UTF-8, two coordinators on one
folder, and dead letters that name the file where it now is."""
import json
import os
import signal
import subprocess
from collections import Counter
from urllib.parse import unquote_to_bytes

from conftest import (HOPPER, PY, WORKERS, assert_clean, clean_env, start,
                      stderr_of, stop, wait_for)

GATE = [PY, str(WORKERS / "gate.py")]


def run(*args, env=None):
    """Runs hopper to completion; stdout and stderr as bytes, so that a line
    that is not UTF-8 is seen rather than raised."""
    p = subprocess.run([HOPPER, *map(str, args)], capture_output=True,
                       timeout=120, env=env or clean_env())
    assert_clean(p.stderr.decode("utf-8", "replace"))
    return p.returncode, p.stdout, p.stderr


def json_lines(data):
    """Every line must be UTF-8 JSON."""
    return [json.loads(line.decode("utf-8")) for line in data.splitlines()]


def ledger_ids(path):
    if not path.exists():
        return []
    return [line.split()[0] for line in path.read_text().splitlines()]


def make_files(folder, n, prefix="f"):
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{prefix}{i:02d}.txt" for i in range(n)]
    for name in names:
        (folder / name).write_text(f"text of {name}")
    return names


def test_a_name_that_is_not_utf8_reaches_the_worker_escaped(tmp):
    inbox, out = tmp / "in", tmp / "out.jsonl"
    inbox.mkdir()
    raw = {b"bad\xff\xfe.txt": b"bad name", "good é.txt".encode(): b"good",
           b"100%.txt": b"percent", b"worse\xe9.txt": b"perm"}
    for name, text in raw.items():
        with open(os.fsencode(inbox) + b"/" + name, "wb") as f:
            f.write(text)
    code, _, err = run("run", "-s", f"dir:{inbox}", "-S", "payload=object",
                       "-o", f"jsonl:{out}", "-j", "2", "--", *GATE)
    assert code == 3, err  # worse\xe9.txt is dead by design
    lines = json_lines(out.read_bytes())
    by_id = {r["id"]: r for r in lines}
    assert len(by_id) == len(lines) == 4
    # The id is the name with '%' and bytes that are not UTF-8 as %XX:
    # one to one, and the raw name comes back with unquote_to_bytes.
    assert set(by_id) == {"bad%FF%FE.txt", "good é.txt", "100%25.txt",
                          "worse%E9.txt"}
    assert {unquote_to_bytes(i) for i in by_id} == set(raw)
    # The worker opened every path it was given.
    for i, r in by_id.items():
        if i != "worse%E9.txt":
            assert r["ok"] and r["result"] == {
                "text": raw[unquote_to_bytes(i)].decode()}, r
    assert not by_id["worse%E9.txt"]["ok"]
    # Files keep their own names in done/ and failed/.
    done = os.fsencode(inbox / "done")
    assert set(os.listdir(done)) == set(raw) - {b"worse\xe9.txt"}
    failed = os.fsencode(inbox / "failed")
    assert set(os.listdir(failed)) == {b"worse\xe9.txt",
                                       b"worse\xe9.txt.error.json"}
    with open(failed + b"/worse\xe9.txt.error.json", "rb") as f:
        report = json.loads(f.read().decode("utf-8"))
    shown = f"{inbox}/failed/worse%E9.txt"
    assert report["id"] == "worse%E9.txt"
    assert report["file"] == shown and report["payload"]["path"] == shown
    assert report["error"] == f"{shown}: asked to fail"
    err.decode("utf-8")  # the log is UTF-8 too
    assert not list((inbox / "processing").iterdir())


def test_a_dead_letter_names_the_file_where_it_is_now(tmp):
    inbox = tmp / "in"
    make_files(inbox, 2)
    (inbox / "corrupt.txt").write_text("perm")
    code, _, err = run("run", "-s", f"dir:{inbox}", "--", *GATE)
    err = err.decode()
    assert code == 3, err
    now = f"{inbox}/failed/corrupt.txt"
    assert (inbox / "failed" / "corrupt.txt").read_text() == "perm"
    report = json.loads(
        (inbox / "failed" / "corrupt.txt.error.json").read_text())
    dead = [line for line in err.splitlines() if "dead after" in line]
    assert len(dead) == 1 and f"dead after 1 attempt: {now}: asked" in dead[0]
    assert report["error"] == f"{now}: asked to fail"
    assert report["file"] == now and report["payload"] == now
    assert "processing" not in json.dumps(report) + dead[0]


def test_two_coordinators_on_one_folder_handle_each_file_once(tmp):
    inbox, ledger, gate = tmp / "in", tmp / "ledger", tmp / "gate"
    names = make_files(inbox, 12)
    env = clean_env(LEDGER=ledger, GATE=gate)
    args = ("run", "-s", f"dir:{inbox}", "-j", "2", "--", *GATE)
    a = start(*args, env=env, cwd=tmp)
    b = None
    try:
        # A holds two files (its workers have them, waiting on the gate).
        wait_for(lambda: len(ledger_ids(ledger)) == 2, what="A's claims")
        b = start(*args, env=env, cwd=tmp)
        wait_for(lambda: len(ledger_ids(ledger)) == 4, what="B's claims")
        gate.touch()
        assert a.wait(timeout=120) == 0, stderr_of(a)
        assert b.wait(timeout=120) == 0, stderr_of(b)
    finally:
        stop(a, b)
    counts = Counter(ledger_ids(ledger))
    assert counts == Counter(names), counts  # each file exactly once
    assert sorted(p.name for p in (inbox / "done").iterdir()) == names
    for p in (a, b):
        assert "cannot" not in stderr_of(p), stderr_of(p)
        assert "recovered" not in stderr_of(p), stderr_of(p)
    assert not list((inbox / "processing").iterdir())


def test_a_killed_coordinators_claims_are_recovered(tmp):
    inbox, ledger, gate = tmp / "in", tmp / "ledger", tmp / "gate"
    names = make_files(inbox, 8)
    env = clean_env(LEDGER=ledger, GATE=gate)
    args = ("run", "-s", f"dir:{inbox}", "-j", "2", "--", *GATE)
    a = start(*args, env=env, cwd=tmp)
    b = start("run", "-s", f"dir:{inbox}", "-j", "2", "--watch", "--",
              *GATE, env=env, cwd=tmp)
    try:
        wait_for(lambda: len(ledger_ids(ledger)) == 4, what="4 claims")
        held = {}
        for line in ledger.read_text().splitlines():
            held.setdefault(int(line.split()[1]), []).append(line.split()[0])
        a.send_signal(signal.SIGKILL)
        a.wait()
        # B, still running, finds A's claims (its lock is free now) and
        # takes them; a file that B holds is never taken from it.
        gate.touch()
        wait_for(lambda: len(list((inbox / "done").iterdir())) == 8,
                 timeout=60, what="all 8 done")
        wait_for(lambda: "recovered 2 item(s)" in stderr_of(b),
                 what="B's recovery")
        b.send_signal(signal.SIGTERM)
        assert b.wait(timeout=60) == 0, stderr_of(b)
    finally:
        stop(a, b)
    counts = Counter(ledger_ids(ledger))
    # A's two were started twice (A died with them), the rest once.
    assert set(counts) == set(names)
    assert {i for i, n in counts.items() if n == 2} == set(held[a.pid])
    assert sum(counts.values()) == 10
    assert "cannot" not in stderr_of(b), stderr_of(b)
    assert not list((inbox / "processing").iterdir())


def test_a_new_coordinator_recovers_a_killed_ones_claims(tmp):
    inbox, ledger, gate = tmp / "in", tmp / "ledger", tmp / "gate"
    names = make_files(inbox, 5)
    env = clean_env(LEDGER=ledger, GATE=gate)
    args = ("run", "-s", f"dir:{inbox}", "-j", "2", "--", *GATE)
    a = start(*args, env=env, cwd=tmp)
    try:
        wait_for(lambda: len(ledger_ids(ledger)) == 2, what="A's claims")
        a.send_signal(signal.SIGKILL)
        a.wait()
    finally:
        stop(a)
    gate.touch()
    code, _, err = run(*args, env=env)
    err = err.decode()
    assert code == 0, err
    assert "recovered 2 item(s) a previous run left" in err
    assert sorted(p.name for p in (inbox / "done").iterdir()) == names
    assert not list((inbox / "processing").iterdir())


def test_a_file_written_again_while_its_namesake_is_in_hand_waits(tmp):
    inbox, ledger, gate, out = (tmp / "in", tmp / "ledger", tmp / "gate",
                                tmp / "out.jsonl")
    inbox.mkdir()
    env = clean_env(LEDGER=ledger, GATE=gate)
    # Two workers: one holds the first, the other is free to claim.
    p = start("run", "-s", f"dir:{inbox}", "-o", f"jsonl:{out}", "-j", "2",
              "--watch", "--", *GATE, env=env, cwd=tmp)
    try:
        (inbox / "a.txt").write_text("one")
        wait_for(lambda: len(ledger_ids(ledger)) == 1, what="the first")
        (inbox / "a.txt").write_text("two")  # not over the claimed one
        wait_for(lambda: "a.txt waits" in stderr_of(p), what="deferral")
        gate.touch()
        wait_for(lambda: out.exists() and len(out.read_text().splitlines())
                 == 2, what="both results")
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0, stderr_of(p)
    finally:
        stop(p)
    texts = [r["result"]["text"] for r in json_lines(out.read_bytes())]
    assert texts == ["one", "two"]
    assert (inbox / "done" / "a.txt").read_text() == "two"
    assert "cannot" not in stderr_of(p), stderr_of(p)
