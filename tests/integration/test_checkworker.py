"""hopper check-worker: a worker's first test, in plain words."""
import shutil

from conftest import (EXEC, FAKE, PY, clean_env, hopper, read_jsonl,
                      write_jsonl)


# How long check-worker waits for an answer: a bound that a loaded machine
# never reaches for a worker that answers, and one second where silence is
# what a test wants to see.
PATIENT = "60"
SILENT = "1"


def check(tmp, source, *flags, timeout=PATIENT):
    w = tmp / "w.py"
    w.write_text(source)
    return hopper("check-worker", "--timeout", timeout, *flags, "--", PY, w,
                  env=clean_env())


HEAD = "import json, sys\n"


def test_a_good_worker_passes():
    code, out, err = hopper("check-worker", "--", *FAKE, env=clean_env())
    assert code == 0, out + err
    assert "ok   1 MB payload" in out and "ok   exits on EOF" in out
    assert out.strip().endswith("the worker keeps the contract")


def assert_silent_until_eof(out):
    """The report of a worker whose answer came only when its stdin closed:
    what was seen, then both causes, each with its cure."""
    assert ("plain text payload: no answer within 1 s, then 1 line as soon "
            "as stdin was closed. Either") in out, out
    assert "the worker does not flush stdout after each answer (Python: " \
           "print(..., flush=True)" in out, out
    assert "it reads stdin in blocks and waits for a block to fill" in out
    assert "mawk: run it with -W interactive" in out, out


def test_not_flushing(tmp):
    code, out, _ = check(tmp, HEAD + "for l in sys.stdin:\n"
                         "    m = json.loads(l)\n"
                         "    sys.stdout.write(json.dumps({'id': m['id'], "
                         "'ok': True}) + '\\n')\n", timeout=SILENT)
    assert code == 1
    assert_silent_until_eof(out)


def test_reading_stdin_in_blocks(tmp):
    # Flushes every answer, but read(65536) waits for 64 KiB or EOF: the
    # answer comes when stdin closes, and stdout is not to blame.
    code, out, _ = check(tmp, HEAD + "buf = b''\n"
                         "while True:\n"
                         "    chunk = sys.stdin.buffer.read(65536)\n"
                         "    if not chunk: break\n"
                         "    buf += chunk\n"
                         "    while b'\\n' in buf:\n"
                         "        line, buf = buf.split(b'\\n', 1)\n"
                         "        m = json.loads(line)\n"
                         "        print(json.dumps({'id': m['id'], "
                         "'ok': True}), flush=True)\n", timeout=SILENT)
    assert code == 1
    assert_silent_until_eof(out)
    assert "ok   exits on EOF" in out


# A mawk worker that copies the id and flushes each answer. Debian's mawk
# reads its input in blocks unless told -W interactive.
MAWK = ('{ match($0, /"id":"[^"]*"/); id = substr($0, RSTART + 5, '
        'RLENGTH - 5); printf "{\\"id\\":%s,\\"ok\\":true}\\n", id; '
        'fflush() }')


def test_mawk_without_interactive_is_named():
    assert shutil.which("mawk"), "mawk is missing: run tests/deps.sh"
    code, out, _ = hopper("check-worker", "--timeout", SILENT, "--", "mawk",
                          MAWK, env=clean_env())
    assert code == 1, out
    assert_silent_until_eof(out)
    code, out, _ = hopper("check-worker", "--timeout", PATIENT, "--", "mawk",
                          "-W", "interactive", MAWK, env=clean_env())
    assert code == 0, out
    assert out.strip().endswith("the worker keeps the contract")


def test_ids_are_the_ones_sources_make(tmp):
    # Each id the worker saw, in order, goes to a file beside it.
    code, out, _ = check(tmp, HEAD + "for l in sys.stdin:\n"
                         "    m = json.loads(l)\n"
                         "    print(json.dumps({'id': m['id'], 'ok': True}), "
                         "flush=True)\n"
                         "    with open(sys.argv[0] + '.ids', 'a') as f:\n"
                         "        f.write(m['id'] + '\\n')\n")
    assert code == 0, out
    ids = (tmp / "w.py.ids").read_text().splitlines()
    assert ids == ["1", "2", "3", "4", "5", "clip 7.mp4"], ids


def test_an_id_turned_into_a_number_is_named(tmp):
    # A worker whose JSON reader turns "1" into 1: every item of a jsonl run
    # would fail with it.
    code, out, _ = check(tmp, HEAD + "for l in sys.stdin:\n"
                         "    m = json.loads(l)\n"
                         "    i = m['id']\n"
                         "    i = int(i) if i.isdigit() else i\n"
                         "    print(json.dumps({'id': i, 'ok': True}), "
                         "flush=True)\n")
    assert code == 1, out
    assert ("plain text payload: answered with id 1, a number, for item "
            "\"1\": ids are strings") in out, out


def test_a_run_reads_number_ids_as_check_worker_does(tmp):
    # One reader for answers: what check-worker names, a run names too.
    w = tmp / "w.py"
    w.write_text(HEAD + "for l in sys.stdin:\n"
                 "    m = json.loads(l)\n"
                 "    print(json.dumps({'id': int(m['id']), 'ok': True}), "
                 "flush=True)\n")
    src = write_jsonl(tmp / "in.jsonl", [{"n": 1}, {"n": 2}])
    code, out, err = hopper("run", "-s", f"jsonl:{src}", "-j", "1",
                            "--attempts", "1", "--", PY, w)
    assert code == 3, err
    res = read_jsonl(out)
    assert sorted(r["id"] for r in res) == ["1", "2"]
    for r in res:
        assert r["ok"] is False
        assert (f"answered with the id of item '{r['id']}' as a number: "
                "ids are strings") in r["error"], r


def test_a_worker_that_reads_meaning_into_ids_fails(tmp):
    code, out, _ = check(tmp, HEAD + "for l in sys.stdin:\n"
                         "    m = json.loads(l)\n"
                         "    n = int(m['id'])\n"
                         "    print(json.dumps({'id': m['id'], 'ok': True}), "
                         "flush=True)\n")
    assert code == 1, out
    assert "ok   plain text payload" in out
    assert "a file as the dir source gives it (id \"clip 7.mp4\"): the " \
           "worker exited with status 1 before answering; last stderr " \
           "line: ValueError" in out, out


def test_noise_on_stdout(tmp):
    code, out, _ = check(tmp, HEAD + "print('starting up', flush=True)\n"
                         "for l in sys.stdin: pass\n")
    assert code == 1
    assert "wrote 'starting up' to stdout, which is not a JSON object" in out


def test_wrong_id_and_no_ok(tmp):
    code, out, _ = check(tmp, HEAD + "for l in sys.stdin:\n"
                         "    print(json.dumps({'id': 'x', 'ok': True}), "
                         "flush=True)\n")
    assert code == 1 and "answered with id 'x' for item '1'" in out
    code, out, _ = check(tmp, HEAD + "for l in sys.stdin:\n"
                         "    m = json.loads(l)\n"
                         "    print(json.dumps({'id': m['id']}), flush=True)\n")
    assert code == 1 and "answer has no boolean \"ok\"" in out


def test_does_not_exit_on_eof(tmp):
    code, out, _ = check(tmp, HEAD + "import time\nfor l in sys.stdin:\n"
                         "    m = json.loads(l)\n"
                         "    print(json.dumps({'id': m['id'], 'ok': True}), "
                         "flush=True)\n"
                         "time.sleep(60)\n")
    assert code == 1
    assert "did not exit within 5 s of EOF on stdin" in out


def test_crash_names_the_status_and_stderr(tmp):
    code, out, _ = check(tmp, HEAD + "sys.stdin.readline()\n"
                         "print('boom: no model file', file=sys.stderr)\n"
                         "sys.exit(4)\n")
    assert code == 1
    assert "exited with status 4 before answering; last stderr line: boom: " \
           "no model file" in out


def test_exec_mode(tmp):
    code, out, err = hopper("check-worker", "--mode", "exec", "--", *EXEC)
    assert code == 0, out + err
    assert "ok   plain text payload: exit 0" in out
    bad = tmp / "bad.sh"
    bad.write_text("#!/bin/sh\necho oops >&2\nexit 1\n")
    bad.chmod(0o755)
    code, out, _ = hopper("check-worker", "--mode", "exec", "--", bad)
    assert code == 1
    assert "exited with status 1; exit 0 means done, 75 retry, 65 permanent " \
           "failure" in out and "stderr: oops" in out
