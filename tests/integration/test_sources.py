"""The jsonl and dir sources and sinks: bad input, claiming by rename,
watching a folder, and sinks that cannot write."""
import json
import os
import signal
import subprocess

import pytest

from conftest import (EXEC, FAKE, by_id, fill, hopper, read_jsonl, start, stderr_of,
                      stop, wait_for)


def test_bad_jsonl_lines_are_dead_with_file_and_line(tmp):
    src = tmp / "in.jsonl"
    src.write_text('{"n": 1}\nnot json\n\n' + '"' + "x" * 5000 + '"\n{"n": 5}\n')
    code, out, err = hopper("run", "-s", f"jsonl:{src}", "--max-line", "4K",
                            "--", *FAKE)
    assert code == 3, err
    res = by_id(read_jsonl(out))
    assert res["1"]["ok"] and res["5"]["ok"]
    assert res["2"]["error"].startswith(f"{src}:2: not JSON")
    assert res["4"]["error"] == f"{src}:4: line over the 4096-byte limit"
    assert f"{src}:3: blank line skipped" in err
    assert "3" not in res


def test_missing_and_unreadable_input(tmp):
    code, _, err = hopper("run", "-s", f"jsonl:{tmp}/nope.jsonl", "--", *FAKE)
    assert code == 1 and f"{tmp}/nope.jsonl: No such file or directory" in err
    code, _, err = hopper("run", "-s", f"jsonl:{tmp}", "--", *FAKE)
    assert code == 1 and "is a directory" in err
    code, _, err = hopper("run", "-s", f"dir:{tmp}/nothere", "--", *FAKE)
    assert code == 1 and "nothere: No such file or directory" in err


def make_files(folder, n, prefix="f", text="one two three"):
    folder.mkdir(exist_ok=True)
    for i in range(n):
        (folder / f"{prefix}{i:03d}.txt").write_text(f"{text} {i}")


def test_dir_source_once_to_dir_sink(tmp):
    inbox, out = tmp / "in", tmp / "out"
    make_files(inbox, 20)
    (inbox / "perm.txt").write_text("perm")
    (inbox / "skip.dat").write_text("not matched by the glob")
    code, _, err = hopper("run", "-s", f"dir:{inbox}", "-S", "glob=*.txt",
                          "-o", f"dir:{out}", "-m", "exec", "--", *EXEC)
    assert code == 3, err
    done = sorted(p.name for p in (inbox / "done").iterdir())
    assert done == [f"f{i:03d}.txt" for i in range(20)]
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == [
        "perm.txt", "perm.txt.error.json"]
    rec = json.loads((inbox / "failed" / "perm.txt.error.json").read_text())
    assert "status 65" in rec["error"] and rec["attempts"] == 1
    assert rec["payload"] == rec["file"] == str(inbox / "failed" / "perm.txt")
    assert list((inbox / "processing").iterdir()) == []
    assert (inbox / "skip.dat").exists()
    results = sorted(p.name for p in out.iterdir())
    assert results == [f"f{i:03d}.txt.json" for i in range(20)]
    assert json.loads((out / "f007.txt.json").read_text()) == {"words": 4}


def test_dir_source_recovers_what_a_crashed_run_left(tmp):
    inbox = tmp / "in"
    make_files(inbox, 3)
    (inbox / "processing").mkdir()
    (inbox / "processing" / "left.txt").write_text("from a crash")
    code, out, err = hopper("run", "-s", f"dir:{inbox}", "--", *FAKE)
    assert code == 0, err
    assert "recovered 1 item(s)" in err
    assert (inbox / "done" / "left.txt").exists()
    assert len(read_jsonl(out)) == 4


def test_watch_picks_up_new_files_and_survives_a_vanished_folder(tmp):
    inbox, out = tmp / "in", tmp / "out"
    inbox.mkdir()
    p = start("run", "-s", f"dir:{inbox}", "-o", f"dir:{out}", "--watch",
              "--", *FAKE, cwd=tmp)
    try:
        # Logged once the source is open: the folder is watched and its
        # first scan is done, so these five are found through the watch.
        wait_for(lambda: "running: " in stderr_of(p), what="the run started")
        make_files(inbox, 5)
        wait_for(lambda: out.exists() and len(list(out.iterdir())) == 5,
                 what="5 results")
        # Remove the folder under it: an error, and hopper keeps running.
        subprocess.run(["rm", "-rf", str(inbox)], check=True)
        wait_for(lambda: "vanished" in stderr_of(p), what="vanished error")
        assert p.poll() is None
        make_files(inbox, 2, prefix="g")
        wait_for(lambda: len(list(out.iterdir())) == 7, what="7 results")
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0, stderr_of(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert f"input folder {inbox} vanished" in stderr_of(p)
    assert len(list((inbox / "done").iterdir())) == 2


@pytest.fixture
def small_fs(tmpfs):
    """A 64 KiB tmpfs (root only): a folder that fills up or goes read-only."""
    return tmpfs("small", "64k")


def test_full_output_folder_marks_nothing_done(tmp, small_fs):
    """The sink is out: results are held, nothing is done or dead, and
    SIGTERM hands every file back to the input folder."""
    inbox = tmp / "in"
    make_files(inbox, 3)
    fill(small_fs)
    p = start("run", "-s", f"dir:{inbox}", "-o", f"dir:{small_fs}",
              "--attempts", "2", "--backoff", "0.05", "--", *FAKE, cwd=tmp)
    try:
        wait_for(lambda: "the sink is out" in stderr_of(p))
        wait_for(lambda: stderr_of(p).count("No space left on device") >= 1)
        assert list((inbox / "done").iterdir()) == []
        assert list((inbox / "failed").iterdir()) == []
    finally:
        stop(p)
    err = stderr_of(p)
    assert p.returncode == 143, err  # a finite run stopped, nothing done
    assert "0 done, 0 dead" in err
    assert sorted(q.name for q in inbox.iterdir() if q.is_file()) == [
        f"f{i:03d}.txt" for i in range(3)]
    assert list((inbox / "done").iterdir()) == []
    assert list((inbox / "failed").iterdir()) == []


def test_read_only_output_folder_retries_until_writable(tmp, small_fs):
    inbox = tmp / "in"
    make_files(inbox, 2)
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    p = start("run", "-s", f"dir:{inbox}", "-o", f"dir:{small_fs}",
              "--attempts", "20", "--backoff", "0.2", "--backoff-max", "0.3",
              "--", *FAKE, cwd=tmp)
    try:
        wait_for(lambda: "Read-only file system" in stderr_of(p))
        assert list((inbox / "done").iterdir()) == []
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
        assert p.wait(timeout=30) == 0, stderr_of(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert len(list((inbox / "done").iterdir())) == 2
    assert sorted(q.name for q in small_fs.iterdir()) == [
        "f000.txt.json", "f001.txt.json"]


def test_a_bare_cr_in_a_line_reaches_the_worker_compacted(tmp):
    src = tmp / "in.jsonl"
    src.write_bytes(b'{"text":\r"a b"}\n')
    code, out, err = hopper("run", "-s", f"jsonl:{src}", "--", *FAKE)
    assert code == 0, err
    assert read_jsonl(out)[0]["result"]["echo"] == {"text": "a b"}


def test_dir_sink_removes_temp_files_a_killed_run_left(tmp):
    out = tmp / "out"
    out.mkdir()
    (out / ".a.json.999999.tmp").write_text("half")  # no such process
    (out / f".b.json.{os.getpid()}.tmp").write_text("live writer")
    (out / ".keep.tmp").write_text("not ours")
    src = tmp / "in.jsonl"
    src.write_text('{"n": 1}\n')
    code, _, err = hopper("run", "-s", f"jsonl:{src}", "-o", f"dir:{out}",
                          "--", *FAKE)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        f".b.json.{os.getpid()}.tmp", ".keep.tmp", "1.json"]
    assert "removed 1 temporary file(s)" in err


def test_unreadable_input_file_as_an_ordinary_user(tmp):
    """Root reads anything, so the run is made as nobody."""
    import shutil
    from conftest import HOPPER
    if os.geteuid() != 0 or not shutil.which("runuser"):
        pytest.skip("needs root to run hopper as another user")
    import tempfile
    d = tempfile.mkdtemp(prefix="hopper-perm.")  # /tmp is open to nobody
    os.chmod(d, 0o755)
    src = os.path.join(d, "secret.jsonl")
    with open(src, "w") as f:
        f.write('{"n": 1}\n')
    os.chmod(src, 0o600)
    # A copy of the binary nobody can run, wherever the checkout lives.
    exe = os.path.join(d, "hopper")
    shutil.copy(HOPPER, exe)
    os.chmod(exe, 0o755)
    p = subprocess.run(["runuser", "-u", "nobody", "--", exe, "run", "-s",
                        f"jsonl:{src}", "--", "/bin/cat"],
                       capture_output=True, text=True, timeout=30)
    shutil.rmtree(d)
    assert p.returncode == 1, p.stderr
    assert f"jsonl source: {src}: Permission denied" in p.stderr
