"""hopper check-worker: a worker's first test, in plain words."""
from conftest import EXEC, FAKE, PY, clean_env, hopper


def check(tmp, source, *flags):
    w = tmp / "w.py"
    w.write_text(source)
    return hopper("check-worker", "--timeout", "1", *flags, "--", PY, w,
                  env=clean_env())


HEAD = "import json, sys\n"


def test_a_good_worker_passes():
    code, out, err = hopper("check-worker", "--", *FAKE, env=clean_env())
    assert code == 0, out + err
    assert "ok   1 MB payload" in out and "ok   exits on EOF" in out
    assert out.strip().endswith("the worker keeps the contract")


def test_not_flushing(tmp):
    code, out, _ = check(tmp, HEAD + "for l in sys.stdin:\n"
                         "    m = json.loads(l)\n"
                         "    sys.stdout.write(json.dumps({'id': m['id'], "
                         "'ok': True}) + '\\n')\n")
    assert code == 1
    assert "the answer arrived only when stdin closed: the worker does not " \
           "flush stdout" in out


def test_noise_on_stdout(tmp):
    code, out, _ = check(tmp, HEAD + "print('starting up', flush=True)\n"
                         "for l in sys.stdin: pass\n")
    assert code == 1
    assert "wrote 'starting up' to stdout, which is not a JSON object" in out


def test_wrong_id_and_no_ok(tmp):
    code, out, _ = check(tmp, HEAD + "for l in sys.stdin:\n"
                         "    print(json.dumps({'id': 'x', 'ok': True}), "
                         "flush=True)\n")
    assert code == 1 and "answered with id 'x' for item 'check-1'" in out
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
