"""The jsonl and dir sinks when things go wrong: torn and partial writes,
ids that look alike, a disk that fills or turns read-only and comes back,
and dead letters that cannot be written."""
import hashlib
import json
import re
import subprocess

import pytest

from conftest import (FAKE, fill, hopper, http_port, start, stderr_of, stop,
                      wait_for, write_jsonl)
from test_http import get, metric


def escaped(item_id):
    """The dir sink's name for an id, as the README gives it."""
    raw = item_id.encode()
    out = ""
    for i, b in enumerate(raw):
        c = chr(b)
        if c in "%/" or b < 0x20 or b == 0x7f or b >= 0x80 or (
                i == 0 and c == "."):
            out += "%%%02X" % b
        else:
            out += c
    if len(out) > 200:
        cut = out[:128]
        while "%" in cut[-2:]:  # never half an escape
            cut = cut[:cut.rindex("%")]
        out = cut + "%%" + hashlib.sha256(raw).hexdigest()
    return out


def test_dir_sink_gives_every_id_a_file_of_its_own(tmp):
    long_a = "L" * 300
    long_b = "L" * 299 + "M"
    ids = ["a/b", "a_b", ".hidden", "_hidden", "%2F", long_a, long_b,
           "plain-7.txt"]
    src = write_jsonl(tmp / "in.jsonl", [{"key": i, "n": n}
                                         for n, i in enumerate(ids)])
    out = tmp / "out"
    code, _, err = hopper("run", "-s", f"jsonl:{src}", "-S", "id=key",
                          "-o", f"dir:{out}", "--", *FAKE)
    assert code == 0, err
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == len(ids), files
    for n, i in enumerate(ids):
        path = out / (escaped(i) + ".json")
        assert json.loads(path.read_text())["echo"] == {"key": i, "n": n}
    assert (out / "plain-7.txt.json").exists()  # ordinary ids unchanged
    assert (out / "a%2Fb.json").exists() and (out / "%2Ehidden.json").exists()


def parse_lines(path):
    """Every line of a jsonl sink file, parsed: a fragment fails here."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), data[-200:]
    return [json.loads(line) for line in data.decode().splitlines()]


def test_jsonl_sink_cuts_a_torn_tail_before_writing(tmp):
    sink = tmp / "out.jsonl"
    whole = '{"id":"old","ok":true,"result":1,"attempts":1}\n'
    torn = '{"id":"killed","ok":true,"result":{"echo":{"n'
    sink.write_text(whole + torn)
    src = write_jsonl(tmp / "in.jsonl", [{"n": n} for n in range(5)])
    code, _, err = hopper("run", "-s", f"jsonl:{src}", "-o", f"jsonl:{sink}",
                          "--", *FAKE)
    assert code == 0, err
    assert f"jsonl sink: {sink}: cut a torn last line of {len(torn)} byte(s)" \
        in err
    lines = parse_lines(sink)
    assert [r["id"] for r in lines].count("old") == 1
    assert sorted(r["id"] for r in lines if r["id"] != "old") == \
        ["1", "2", "3", "4", "5"]
    assert all(r["ok"] for r in lines)


def test_jsonl_sink_makes_its_folder(tmp):
    sink = tmp / "a" / "b" / "out.jsonl"
    src = write_jsonl(tmp / "in.jsonl", [{"n": n} for n in range(3)])
    code, _, err = hopper("run", "-s", f"jsonl:{src}", "-o", f"jsonl:{sink}",
                          "--", *FAKE)
    assert code == 0, err
    assert sorted(r["id"] for r in parse_lines(sink)) == ["1", "2", "3"]
    # A folder that cannot be made is named, and nothing runs.
    (tmp / "file").write_text("")
    code, _, err = hopper("run", "-s", f"jsonl:{src}", "-o",
                          f"jsonl:{tmp}/file/out.jsonl", "--", *FAKE)
    assert code != 0
    assert f"jsonl sink: {tmp}/file/out.jsonl: Not a directory" in err, err


def sample(port, name, **labels):
    return metric(get(port, "/metrics")[2], name, **labels)


def finished_with(p, timeout=120):
    p.wait(timeout=timeout)
    err = stderr_of(p)
    m = re.search(r"finished: (\d+) done, (\d+) dead", err)
    assert m, err[-3000:]
    return p.returncode, int(m.group(1)), int(m.group(2)), err


def check_outage(p, port, reason):
    """While the place is out: the log said so once, /readyz says why, and
    retries use up no attempt and make nothing dead (nor, for the sink,
    done)."""
    wait_for(lambda: f"the {reason} is out" in stderr_of(p), timeout=60,
             what=f"the {reason} out")
    errors = ("hopper_sink_errors_total" if reason == "sink"
              else "hopper_source_errors_total")
    wait_for(lambda: sample(port, errors) >= 3, timeout=60,
             what="three failed tries")
    status, _, body = get(port, "/readyz")
    assert status == 503 and f"the {reason} is out" in body, body
    if reason == "sink":
        assert sample(port, "hopper_items_total", outcome="done") == 0
    assert sample(port, "hopper_items_total", outcome="dead") == 0
    assert sample(port, "hopper_items_total", outcome="retried") == 0
    assert sample(port, "hopper_items_held") >= 1
    assert stderr_of(p).count(f"the {reason} is out") == 1


@pytest.mark.parametrize("kind", ["jsonl", "dir"])
def test_a_disk_that_fills_and_frees_loses_and_kills_nothing(tmp, tmpfs,
                                                              kind):
    mnt = tmpfs("disk", "1m")
    filler = fill(mnt)
    items = [{"n": n} for n in range(20)] + [{"do": "perm", "n": n}
                                             for n in range(20, 25)]
    src = write_jsonl(tmp / "in.jsonl", items)
    sink = mnt / ("out.jsonl" if kind == "jsonl" else "out")
    if kind == "dir":
        filler.unlink()
        sink.mkdir()
        filler = fill(mnt)
    p = start("run", "-s", f"jsonl:{src}", "-o", f"{kind}:{sink}",
              "--listen", "127.0.0.1:0", "-j", "2", "--attempts", "2",
              "--backoff", "0.05", "--", *FAKE, cwd=tmp)
    try:
        check_outage(p, http_port(p), "sink")
        filler.unlink()
        code, done, dead, err = finished_with(p)
    finally:
        stop(p)
    assert (code, done, dead) == (3, 20, 5), err
    assert "the sink is back after" in err
    if kind == "jsonl":
        lines = parse_lines(sink)
        assert sorted(int(r["id"]) for r in lines) == list(range(1, 26))
        assert sum(r["ok"] for r in lines) == 20
    else:
        names = sorted(int(q.name[:-5]) for q in sink.iterdir())
        assert names == list(range(1, 21))
        for q in sink.iterdir():
            assert json.loads(q.read_text())["echo"]["n"] == int(q.name[:-5]) - 1


def test_a_read_only_dir_sink_holds_results_until_it_is_writable(tmp, tmpfs):
    mnt = tmpfs("ro", "1m")
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    src = write_jsonl(tmp / "in.jsonl", [{"n": n} for n in range(50)])
    p = start("run", "-s", f"jsonl:{src}", "-o", f"dir:{mnt}",
              "--listen", "127.0.0.1:0", "-j", "2", "--attempts", "1",
              "--", *FAKE, cwd=tmp)
    try:
        check_outage(p, http_port(p), "sink")
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
        code, done, dead, err = finished_with(p)
    finally:
        stop(p)
    assert (code, done, dead) == (0, 50, 0), err
    assert sorted(int(q.name[:-5]) for q in mnt.iterdir()) == \
        list(range(1, 51))


def test_a_partial_write_on_a_full_disk_leaves_no_fragment(tmp, tmpfs):
    mnt = tmpfs("part", "2m")
    sink = mnt / "out.jsonl"
    sink.touch()
    filler = fill(mnt, leave=300_000)  # a 600 kB line only partly fits
    big = "x" * 600_000
    src = write_jsonl(tmp / "in.jsonl", [{"n": n, "big": big}
                                         for n in range(3)])
    p = start("run", "-s", f"jsonl:{src}", "-o", f"jsonl:{sink}",
              "--listen", "127.0.0.1:0", "-j", "1", "--", *FAKE, cwd=tmp)
    try:
        port = http_port(p)
        check_outage(p, port, "sink")
        assert sample(port, "hopper_sink_repairs_total") >= 1
        filler.unlink()
        code, done, dead, err = finished_with(p)
    finally:
        stop(p)
    assert (code, done, dead) == (0, 3, 0), err
    lines = parse_lines(sink)
    assert sorted(r["id"] for r in lines) == ["1", "2", "3"]
    assert all(r["result"]["echo"]["big"] == big for r in lines)


def test_dead_letters_on_a_full_disk_stay_unacknowledged(tmp, tmpfs):
    mnt = tmpfs("dead", "1m")
    dead_file = mnt / "dead.jsonl"
    dead_file.touch()
    filler = fill(mnt)
    items = [{"n": 0}, {"do": "perm", "n": 1}, {"n": 2},
             {"do": "perm", "n": 3}, {"do": "perm", "n": 4}]
    src = write_jsonl(tmp / "in.jsonl", items)
    out = tmp / "out.jsonl"
    p = start("run", "-s", f"jsonl:{src}", "-S", f"dead={dead_file}",
              "-o", f"jsonl:{out}", "--listen", "127.0.0.1:0", "-j", "1",
              "--", *FAKE, cwd=tmp)
    try:
        check_outage(p, http_port(p), "dead-letter place")
        filler.unlink()
        code, done, dead, err = finished_with(p)
    finally:
        stop(p)
    assert (code, done, dead) == (3, 2, 3), err
    assert "the dead-letter place is back after" in err
    recs = parse_lines(dead_file)
    assert sorted(r["id"] for r in recs) == ["2", "4", "5"]
    lines = parse_lines(out)
    assert sorted(r["id"] for r in lines) == ["1", "2", "3", "4", "5"]


def test_a_dead_letter_file_with_a_torn_tail_is_cut_at_start(tmp):
    """The -S dead=FILE writer keeps the sink's rule: a torn last line that
    a killed run left is cut, so the next record is a line of its own."""
    dead_file = tmp / "dead.jsonl"
    whole = '{"id":"old","error":"told","attempts":1}\n'
    torn = '{"id":"killed","error":"to'
    dead_file.write_text(whole + torn)
    src = write_jsonl(tmp / "in.jsonl", [{"do": "perm"}, {"n": 2}])
    code, _, err = hopper("run", "-s", f"jsonl:{src}", "-S",
                          f"dead={dead_file}", "-o",
                          f"jsonl:{tmp / 'out.jsonl'}", "--", *FAKE)
    assert code == 3, err
    assert (f"dead-letter file {dead_file}: cut a torn last line of "
            f"{len(torn)} byte(s)") in err
    assert [r["id"] for r in parse_lines(dead_file)] == ["old", "1"]


def test_sigterm_during_an_outage_hands_held_items_back(tmp, tmpfs):
    mnt = tmpfs("term", "1m")
    fill(mnt)
    inbox = tmp / "in"
    inbox.mkdir()
    for n in range(6):
        (inbox / f"f{n}.txt").write_text(f"file {n}")
    p = start("run", "-s", f"dir:{inbox}", "-o", f"dir:{mnt}",
              "--listen", "127.0.0.1:0", "-j", "2", "--", *FAKE, cwd=tmp)
    try:
        check_outage(p, http_port(p), "sink")
    finally:
        stop(p)
    err = stderr_of(p)
    assert p.returncode == 143, err  # a finite run with items handed back
    assert re.search(r"handing \d+ held item\(s\) back to the source", err)
    assert "0 done, 0 dead" in err
    assert sorted(q.name for q in inbox.iterdir() if q.is_file()) == [
        f"f{n}.txt" for n in range(6)]
    assert list((inbox / "failed").iterdir()) == []


def test_runs_killed_while_writing_leave_only_whole_lines(tmp):
    """The coordinator is SIGKILLed five times while it writes results of
    half a megabyte, then runs to the end: every line of the sink parses
    (a torn tail is cut, never appended to) and every item is there."""
    big = "y" * 500_000
    src = write_jsonl(tmp / "in.jsonl", [{"n": n, "big": big}
                                         for n in range(24)])
    sink = tmp / "out.jsonl"
    args = ("run", "-s", f"jsonl:{src}", "-o", f"jsonl:{sink}", "-j", "2",
            "--", *FAKE)
    for k in range(5):
        size = sink.stat().st_size if sink.exists() else 0
        p = start(*args, cwd=tmp)
        try:
            # Killed once it has written a few lines more: often mid-line.
            wait_for(lambda: sink.exists() and
                     sink.stat().st_size > size + 1_000_000 + 97_000 * k,
                     timeout=120, what="the sink growing")
        finally:
            p.kill()
            p.wait()
    code, _, err = hopper(*args)
    assert code == 0, err
    lines = parse_lines(sink)
    assert {r["id"] for r in lines} == {str(n) for n in range(1, 25)}
    assert all(r["result"]["echo"]["big"] == big for r in lines)


def test_a_dir_source_whose_failed_folder_is_full_holds_its_dead(tmp, tmpfs):
    """The report cannot be written into failed/: the file stays claimed,
    is not counted dead, and goes to failed/ with its report once there is
    room."""
    from conftest import EXEC
    inbox = tmpfs("inbox", "1m")
    for name, text in [("a.txt", "one two"), ("b.txt", "perm"),
                       ("c.txt", "three"), ("d.txt", "perm")]:
        (inbox / name).write_text(text)
    for sub in ("processing", "done", "failed"):
        (inbox / sub).mkdir()
    filler = fill(inbox)
    out = tmp / "out.jsonl"
    p = start("run", "-s", f"dir:{inbox}", "-S", "glob=*.txt",
              "-o", f"jsonl:{out}", "-m", "exec", "-j", "1",
              "--listen", "127.0.0.1:0", "--", *EXEC, cwd=tmp)
    try:
        check_outage(p, http_port(p), "dead-letter place")
        assert not [q for q in (inbox / "failed").iterdir()]
        filler.unlink()
        code, done, dead, err = finished_with(p)
    finally:
        stop(p)
    assert (code, done, dead) == (3, 2, 2), err
    assert sorted(q.name for q in (inbox / "failed").iterdir()) == [
        "b.txt", "b.txt.error.json", "d.txt", "d.txt.error.json"]
    assert json.loads((inbox / "failed" / "b.txt.error.json").read_text())[
        "attempts"] == 1
