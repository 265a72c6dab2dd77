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


# Emits: outputs a worker writes before its answer (worker/PROTOCOL.md).
EMIT_LOOP = HEAD + "for l in sys.stdin:\n    m = json.loads(l)\n    i = m['id']\n"


def say(obj):
    return f"    print(json.dumps({obj}), flush=True)\n"


def test_a_good_worker_has_one_output_per_item():
    code, out, err = hopper("check-worker", "--", *FAKE, env=clean_env())
    assert code == 0, out + err
    assert "ok   plain text payload: answered ok in " in out
    assert out.count(": 1 output (its result)") == 6, out


def test_a_splitter_says_how_many_outputs_and_ports(tmp):
    code, out, _ = check(tmp, EMIT_LOOP +
                         "    for n in range(3):\n"
                         "        print(json.dumps({'id': i, 'emit': n, "
                         "'port': 'even' if n % 2 == 0 else 'odd', "
                         "'key': str(n)}), flush=True)\n" +
                         say("{'id': i, 'ok': True}"))
    assert code == 0, out
    assert out.count(": 3 outputs (ports even, odd), with keys") == 6, out
    assert out.strip().endswith("the worker keeps the contract")


def test_a_filter_drops(tmp):
    code, out, _ = check(tmp, EMIT_LOOP +
                         say("{'id': i, 'ok': True, 'drop': i != '3'}"))
    assert code == 0, out
    assert out.count(": no output (dropped)") == 5, out
    assert "ok   nested object payload: answered ok in " in out
    assert out.count(": 1 output (its result)") == 1, out


def test_emits_before_a_failure_are_discarded(tmp):
    code, out, _ = check(tmp, EMIT_LOOP + say("{'id': i, 'emit': 1}") +
                         say("{'id': i, 'ok': False, 'error': 'no'}"))
    assert code == 0, out
    assert "1 emitted output discarded: they count only when the answer " \
           "is ok" in out, out


def test_an_emit_with_the_wrong_id_is_named(tmp):
    code, out, _ = check(tmp, EMIT_LOOP + say("{'id': 'x' + i, 'emit': 1}") +
                         say("{'id': i, 'ok': True}"))
    assert code == 1, out
    assert "plain text payload: emitted with id 'x1' for item '1': copy the " \
           "id from the input line; an emit carries the id of the item it " \
           "is an output of" in out, out


def test_an_emit_after_the_answer_is_named(tmp):
    code, out, _ = check(tmp, EMIT_LOOP + say("{'id': i, 'ok': True}") +
                         say("{'id': i, 'emit': 1}"))
    assert code == 1, out
    assert "plain text payload: emitted after its final answer: " \
           "'{\"id\": \"1\", \"emit\": 1}'; emit an item's outputs before " \
           "its answer" in out, out


def test_a_port_or_key_that_is_not_a_string_is_named(tmp):
    code, out, _ = check(tmp, EMIT_LOOP + say("{'id': i, 'emit': 1, "
                                              "'port': 2}") +
                         say("{'id': i, 'ok': True}"))
    assert code == 1, out
    assert "plain text payload: a bad emit line: \"port\" must be a string, " \
           "not 2" in out, out
    code, out, _ = check(tmp, EMIT_LOOP + say("{'id': i, 'emit': 1, "
                                              "'key': None}") +
                         say("{'id': i, 'ok': True}"))
    assert code == 1, out
    assert "a bad emit line: \"key\" must be a string, not null" in out, out


def test_a_run_fails_a_bad_emit_as_check_worker_does(tmp):
    # One reader: the item in hand fails, naming the worker and the line,
    # and the worker is replaced.
    w = tmp / "w.py"
    w.write_text(EMIT_LOOP + "    if m['payload']['n'] == 2:\n"
                 "        print(json.dumps({'id': i, 'emit': 1, "
                 "'port': 7}), flush=True)\n"
                 "    elif m['payload']['n'] == 3:\n"
                 "        print(json.dumps({'id': 'z', 'emit': 1}), "
                 "flush=True)\n" + say("{'id': i, 'ok': True}"))
    src = write_jsonl(tmp / "in.jsonl", [{"n": 1}, {"n": 2}, {"n": 3}])
    code, out, err = hopper("run", "-s", f"jsonl:{src}", "-j", "1",
                            "--attempts", "1", "--", PY, w)
    assert code == 3, err
    res = {r["id"]: r for r in read_jsonl(out)}
    assert sorted(res) == ["1", "2", "3"], out
    assert res["1"]["ok"] is True
    assert res["2"]["ok"] is False and "worker 0 wrote a bad emit line for " \
        "item '2': \"port\" must be a string, not 7" in res["2"]["error"]
    assert res["3"]["ok"] is False and "worker 0 emitted for item 'z' while " \
        "handling item '3'" in res["3"]["error"], res["3"]


def exec_worker(tmp, body):
    w = tmp / "w.sh"
    w.write_text("#!/bin/sh\n" + body)
    w.chmod(0o755)
    return hopper("check-worker", "--mode", "exec", "--timeout", PATIENT,
                  "--", w, env=clean_env())


def test_exec_outputs_through_hopper_emit(tmp):
    # The file does not exist when the worker starts; each line is one
    # output, and stdout is then not an output.
    code, out, _ = exec_worker(tmp, '[ -e "$HOPPER_EMIT" ] && exit 1\n'
                               'cat > /dev/null\n'
                               'for n in 1 2; do echo "{\\"emit\\": $n, '
                               '\\"port\\": \\"p$n\\"}" >> "$HOPPER_EMIT"; '
                               'done\necho ignored\n')
    assert code == 0, out
    assert out.count(", 2 outputs (ports p1, p2)") == 6, out


def test_exec_empty_emit_file_is_a_drop_and_bad_lines_are_named(tmp):
    code, out, _ = exec_worker(tmp, 'cat > /dev/null\n: > "$HOPPER_EMIT"\n')
    assert code == 0, out
    assert out.count(", no output (dropped)") == 6, out
    code, out, _ = exec_worker(tmp, 'cat > /dev/null\n'
                               'printf \'{"emit": 1}\\n{"emit": 2, '
                               '"port": 3}\\n\' > "$HOPPER_EMIT"\n')
    assert code == 1, out
    assert "plain text payload: its HOPPER_EMIT file, line 2: \"port\" must " \
           "be a string, not 3 (each line: {\"emit\": PAYLOAD" in out, out
    code, out, _ = exec_worker(tmp, 'cat > /dev/null\n'
                               'echo \'{"payload": 1}\' > "$HOPPER_EMIT"\n')
    assert code == 1, out
    assert "its HOPPER_EMIT file, line 1: no \"emit\" member" in out, out


def test_exec_worker_without_emits_has_one_output():
    code, out, err = hopper("check-worker", "--mode", "exec", "--", *EXEC)
    assert code == 0, out + err
    assert "ok   plain text payload: exit 0 in " in out
    assert "stdout is JSON: 1 output" in out, out
