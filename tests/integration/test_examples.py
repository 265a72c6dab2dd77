"""The word-count examples in worker/examples/, run by the real coordinator
over the same items, checked by `hopper check-worker`, and started on their
own to see that each exits by itself when its stdin closes.

A missing toolchain or an unbuilt example fails its test with the reason;
nothing here is skipped."""
import json
import os
import select
import shutil
import subprocess
import textwrap
import time

import pytest

from conftest import (BUILD, PY, ROOT, assert_clean, by_id, clean_env, hopper,
                      read_jsonl)

EXAMPLES = ROOT / "worker" / "examples"

# Each stream example's command, and the file that must exist to run it.
STREAM = {
    "python": ([PY, EXAMPLES / "python" / "word_count.py"], None),
    "node": (["node", EXAMPLES / "node" / "word_count.js"], None),
    "go": ([BUILD / "examples" / "go" / "word_count"], None),
    "rust": ([BUILD / "examples" / "rust" / "word_count"], None),
    "java": (["java", "-cp", BUILD / "examples" / "java", "WordCount"],
             BUILD / "examples" / "java" / "WordCount.class"),
    "c": ([BUILD / "examples" / "c" / "word_count"], None),
}
SH = EXAMPLES / "sh" / "word_count.sh"

NOT_COUNTABLE = 'payload must be a string, or an object with a "text" or ' \
                '"path" string'


def command(name):
    """The example's argv, or a failed test saying what is missing."""
    argv, needs = STREAM[name]
    argv = [str(a) for a in argv]
    if os.sep in argv[0]:
        assert os.access(argv[0], os.X_OK), \
            f"{argv[0]} is missing: run `make workers` first"
    else:
        assert shutil.which(argv[0]), \
            f"`{argv[0]}` is not on PATH: the {name} example needs it"
    if needs:
        assert needs.exists(), f"{needs} is missing: run `make workers` first"
    return argv


def run(tmp, lines, *flags):
    """Runs hopper over source lines (raw JSON texts); returns (exit code,
    results by id, stderr)."""
    src, out = tmp / "in.jsonl", tmp / "out.jsonl"
    src.write_bytes(b"".join(line.encode() + b"\n" for line in lines))
    code, _, err = hopper("run", "--source", f"jsonl:{src}",
                          "--sink", f"jsonl:{out}", "--attempts", "3",
                          "--backoff", "0.05", "--timeout", "60", *flags)
    return code, by_id(read_jsonl(out.read_text())), err


def assert_counts(res, counts):
    for id, words in counts.items():
        assert res[id]["ok"] is True, res[id]
        assert res[id]["result"] == {"words": words}, res[id]
        assert res[id]["attempts"] == 1, res[id]


def assert_dead_at_once(r, error):
    assert r["ok"] is False, r
    assert r["attempts"] == 1, r  # a permanent failure: no retries
    assert error in r["error"], r


@pytest.mark.parametrize("name", list(STREAM))
def test_stream_example_counts_words(tmp, name):
    doc = tmp / "doc.txt"
    doc.write_text("alpha beta\ngamma\n\tdelta  épsilon\n", encoding="utf-8")
    lines = [
        json.dumps("the quick brown fox"),
        json.dumps("héllo wörld ünïcode 日本", ensure_ascii=False),
        json.dumps({"text": "one two\tthree\nfour five", "lang": "en"}),
        json.dumps({"path": str(doc)}),
        "42",
        # A raw CR is JSON whitespace: a worker splits lines at LF only.
        '{"text":\r"a raw CR between tokens"}',
        json.dumps(""),
    ]
    code, res, err = run(tmp, lines, "--workers", "2", "--",
                         *command(name))
    assert code == 3, err  # a finished run with a dead item
    assert sorted(res, key=int) == [str(i) for i in range(1, 8)], res
    assert_counts(res, {"1": 4, "2": 4, "3": 5, "4": 5, "6": 5, "7": 0})
    assert_dead_at_once(res["5"], NOT_COUNTABLE)


def test_sh_example_counts_words_in_exec_mode(tmp):
    assert os.access(SH, os.X_OK), f"{SH} is not executable"
    lines = [
        json.dumps("the quick brown fox"),
        json.dumps("héllo wörld ünïcode 日本", ensure_ascii=False),
        json.dumps("tabs\tand\nnew lines\vand\fmore\r"),
        json.dumps(""),
        json.dumps("   "),
    ]
    code, res, err = run(tmp, lines, "--mode", "exec", "--workers", "2",
                         "--", SH)
    assert code == 3, err
    assert_counts(res, {"1": 4, "2": 4, "3": 6, "5": 0})
    assert_dead_at_once(res["4"], "empty payload")


@pytest.mark.parametrize("name", list(STREAM))
def test_stream_example_keeps_the_contract(name):
    code, out, err = hopper("check-worker", "--", *command(name))
    assert code == 0, out + err
    assert out.strip().endswith("the worker keeps the contract"), out


def test_sh_example_keeps_the_contract():
    code, out, err = hopper("check-worker", "--mode", "exec", "--", SH)
    assert code == 0, out + err


@pytest.mark.parametrize("name", list(STREAM))
def test_stream_example_exits_on_eof(name):
    p = subprocess.Popen(command(name), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=clean_env())
    try:
        p.stdin.write(b'{"id":"a","attempt":1,"payload":"one two"}\n')
        p.stdin.flush()
        # A JVM takes a while to start; the answer must come unprompted.
        ready, _, _ = select.select([p.stdout], [], [], 30)
        assert ready, f"{name}: no answer within 30 s"
        assert json.loads(p.stdout.readline()) == {
            "id": "a", "ok": True, "result": {"words": 2}}
        p.stdin.close()
        t0 = time.monotonic()
        try:
            code = p.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name}: still running 2 s after EOF on stdin")
        stderr = p.stderr.read().decode(errors="replace")
        assert code == 0, f"{name} exited with {code}: {stderr}"
        assert_clean(stderr)
        assert p.stdout.read() == b"", f"{name} wrote more after its answer"
        assert time.monotonic() - t0 < 2
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for f in (p.stdin, p.stdout, p.stderr):
            if not f.closed:
                f.close()


# A C worker on the helper that takes its time: progress lines must keep an
# item alive past --timeout, and the handler's retry flag must reach hopper.
SLOW_C = textwrap.dedent(r"""
    #include <string.h>
    #include <time.h>
    #include "worker/hop_worker.h"

    static int slow(const char *id, int attempt, json_t *payload,
                    json_t **result, char **error, bool *retry, void *arg)
    {
            const char *s = json_string_value(payload);
            (void)arg;
            if (s && !strcmp(s, "flaky") && attempt == 1)
                    return hop_worker_fail(error, "flaky on attempt %d",
                                           attempt);
            if (s && !strcmp(s, "bad")) {
                    *retry = false;
                    return hop_worker_fail(error, "bad is never good");
            }
            for (int i = 1; s && !strcmp(s, "slow") && i <= 8; i++) {
                    nanosleep(&(struct timespec){0, 250000000}, NULL);
                    hop_worker_progress(id, i / 8.0);
            }
            *result = json_pack("{s:i}", "attempt", attempt);
            return 0;
    }

    int main(void)
    {
            return hop_worker_run(slow, NULL) ? 1 : 0;
    }
    """)


def test_c_helper_progress_and_retry(tmp):
    lib = BUILD / "worker" / "libhopworker.a"
    assert lib.exists(), f"{lib} is missing: run `make workers` first"
    src, exe = tmp / "slow.c", tmp / "slow"
    src.write_text(SLOW_C)
    san = ["-fsanitize=address,undefined"] if BUILD.name == "san" else []
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra",
                    "-Wstrict-prototypes", "-Werror", *san, f"-I{ROOT}",
                    "-o", exe, src, lib, "-ljansson", "-lm"], check=True)
    lines = [json.dumps(p) for p in ("slow", "flaky", "bad", "quick")]
    # Two seconds of work against a one-second deadline: progress saves it.
    code, res, err = run(tmp, lines, "--workers", "1", "--timeout", "1",
                         "--", exe)
    assert code == 3, err
    assert res["1"]["ok"] and res["1"]["attempts"] == 1, res["1"]
    assert res["2"]["ok"] and res["2"]["result"] == {"attempt": 2}, res["2"]
    assert_dead_at_once(res["3"], "bad is never good")
    assert res["4"]["ok"] and res["4"]["attempts"] == 1, res["4"]
    assert "timed out" not in err, err


# A C worker on the helper whose answers tell how many bytes of answers
# were still unwritten when its handler ran: 0 when every earlier answer
# had been flushed. With an argument it batches its answers.
PENDING_C = textwrap.dedent(r"""
    #include <stdio.h>
    #include <stdio_ext.h>
    #include "worker/hop_worker.h"

    static int pending(const char *id, int attempt, json_t *payload,
                       json_t **result, char **error, bool *retry, void *arg)
    {
            (void)id, (void)attempt, (void)payload, (void)error, (void)retry;
            (void)arg;
            *result = json_integer((json_int_t)__fpending(stdout));
            return 0;
    }

    int main(int argc, char **argv)
    {
            (void)argv;
            hop_worker_batch_answers(argc > 1);
            return hop_worker_run(pending, NULL) ? 1 : 0;
    }
    """)


def read_answers(p, n, timeout=10):
    """n answer lines from p's stdout, failing after timeout seconds
    without one (an answer held while the worker waits for input)."""
    got, buf = [], b""
    fd = p.stdout.fileno()
    while len(got) < n:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"no answer within {timeout} s; had {got}"
        chunk = os.read(fd, 65536)
        assert chunk, f"stdout ended; had {got}"
        buf += chunk
        *lines, buf = buf.split(b"\n")
        got += [json.loads(x) for x in lines]
    return got


def test_c_helper_batches_answers_only_when_asked(tmp):
    lib = BUILD / "worker" / "libhopworker.a"
    assert lib.exists(), f"{lib} is missing: run `make workers` first"
    src, exe = tmp / "pending.c", tmp / "pending"
    src.write_text(PENDING_C)
    san = ["-fsanitize=address,undefined"] if BUILD.name == "san" else []
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra",
                    "-Wstrict-prototypes", "-Werror", *san, f"-I{ROOT}",
                    "-o", exe, src, lib, "-ljansson", "-lm"], check=True)
    three = "".join(f'{{"id":"{i}","attempt":1,"payload":{i}}}\n'
                    for i in range(1, 4)).encode()
    for batch in (False, True):
        p = subprocess.Popen([exe, *(["batch"] if batch else [])],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            # Three envelopes in one write (atomic on a pipe), so one read
            # gives them all: batching holds the first two answers until
            # the third is made.
            os.write(p.stdin.fileno(), three)
            ans = read_answers(p, 3)
            assert [a["id"] for a in ans] == ["1", "2", "3"]
            assert all(a["ok"] for a in ans), ans
            held = [a["result"] for a in ans]
            if batch:
                assert held[0] == 0 and 0 < held[1] < held[2], held
            else:
                assert held == [0, 0, 0], held
            # Nothing more to read: the answer goes out at once, even
            # batched, and so does the last line before EOF.
            os.write(p.stdin.fileno(), b'{"id":"4","payload":4}\n')
            assert read_answers(p, 1) == [{"id": "4", "ok": True,
                                           "result": 0}]
            os.write(p.stdin.fileno(), b'{"id":"5","payload":5}')
            p.stdin.close()
            assert read_answers(p, 1)[0]["id"] == "5"
            assert p.wait(timeout=10) == 0
            assert p.stderr.read() == b""
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()


def test_sh_ffmpeg_thumbnail_worker_in_exec_mode(tmp_path):
    """worker/examples/sh/thumbnail.sh: one ffmpeg per video; a file that
    is not a video is a permanent failure (exit 65)."""
    video = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi",
                    "-i", "testsrc2=size=160x120:rate=10", "-t", "1",
                    "-pix_fmt", "yuv420p", str(video)], check=True)
    (tmp_path / "empty.mp4").write_bytes(b"")
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps(str(video)) + "\n" +
                     json.dumps(str(tmp_path / "empty.mp4")) + "\n")
    env = dict(os.environ, THUMB_OUT=str(tmp_path / "thumbs"),
               THUMB_WIDTH="64")
    from conftest import HOPPER
    p = subprocess.run([HOPPER, "run", "-m", "exec", "-s", f"jsonl:{items}",
                        "--", str(EXAMPLES / "sh" / "thumbnail.sh")],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 3, p.stderr
    res = {r["id"]: r for r in map(json.loads, p.stdout.splitlines())}
    assert res["1"]["ok"] and res["1"]["result"] == {
        "file": f"{tmp_path}/thumbs/clip.jpg"}
    assert (tmp_path / "thumbs" / "clip.jpg").stat().st_size > 0
    assert not res["2"]["ok"] and res["2"]["attempts"] == 1
    assert "status 65" in res["2"]["error"]


# The split-words examples: a splitter and a filter that emit
# (worker/PROTOCOL.md, "Emits"), checked line by line and by check-worker.
SPLIT = {
    "python": [PY, EXAMPLES / "python" / "split_words.py"],
    "go": [BUILD / "examples" / "go" / "split_words"],
    "c": [BUILD / "examples" / "c" / "split_words"],
}
SPLIT_SH = EXAMPLES / "sh" / "split_words.sh"
NOT_TEXT = 'payload must be a string, or an object with a "text" string'


def split_command(name):
    argv = [str(a) for a in SPLIT[name]]
    assert os.access(argv[0], os.X_OK), \
        f"{argv[0]} is missing: run `make workers` first"
    return argv


@pytest.mark.parametrize("name", list(SPLIT))
def test_split_example_emits_each_word_then_answers(name):
    envelopes = [
        {"id": "a", "attempt": 1, "payload": "the 42 \"héllo\"\tend"},
        {"id": "b", "attempt": 1, "payload": {"text": " \n "}},
        {"id": "c", "attempt": 1, "payload": 7},
    ]
    p = subprocess.run(split_command(name), input="".join(
        json.dumps(e) + "\n" for e in envelopes).encode(),
        capture_output=True, timeout=60, env=clean_env())
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.decode().splitlines()]
    words = [("the", "word"), ("42", "number"), ('"héllo"', "word"),
             ("end", "word")]
    assert lines[:4] == [
        {"id": "a", "emit": {"word": w, "n": n}, "port": port, "key": w}
        for n, (w, port) in enumerate(words)], lines
    # The answer: ok, not a drop; its result, if any, is not an output.
    assert lines[4]["id"] == "a" and lines[4]["ok"] is True, lines[4]
    assert lines[4].get("drop", False) is False, lines[4]
    # No words: a drop, the filter's answer.
    assert lines[5] == {"id": "b", "ok": True, "drop": True}, lines[5]
    assert lines[6] == {"id": "c", "ok": False, "retry": False,
                        "error": NOT_TEXT}, lines[6]
    assert len(lines) == 7, lines


@pytest.mark.parametrize("name", list(SPLIT))
def test_split_example_keeps_the_contract(name):
    code, out, err = hopper("check-worker", "--", *split_command(name))
    assert code == 0, out + err
    assert "ok   plain text payload: answered ok in " in out, out
    assert ": 2 outputs (ports word), with keys" in out, out
    assert out.strip().endswith("the worker keeps the contract"), out


def test_sh_split_example_emits_through_hopper_emit():
    assert os.access(SPLIT_SH, os.X_OK), f"{SPLIT_SH} is not executable"
    code, out, err = hopper("check-worker", "--mode", "exec", "--",
                            SPLIT_SH)
    assert code == 0, out + err
    assert "ok   plain text payload: exit 0 in " in out, out
    assert ", 2 outputs (ports word), with keys" in out, out
    assert "1 MB payload: exit 0 in " in out, out


@pytest.mark.parametrize("name", ["python", "go", "c", "sh"])
def test_split_example_outputs_reach_the_sink(tmp, name):
    # A one-stage run: each word is an output of its own, id ITEM/N, and
    # text with no words has none. One word is one output: the id stays.
    lines = [json.dumps("call 911 now"), json.dumps("   "),
             json.dumps("solo"), json.dumps("a b")]
    if name == "sh":
        flags = ["--mode", "exec", "--", str(SPLIT_SH)]
    else:
        flags = ["--", *split_command(name)]
    code, res, err = run(tmp, lines, "--workers", "2", *flags)
    assert code == 0, err
    words = {"1/0": "call", "1/1": "911", "1/2": "now", "3": "solo",
             "4/0": "a", "4/1": "b"}
    assert sorted(res) == sorted(words), res
    for id, word in words.items():
        n = int(id.split("/")[1]) if "/" in id else 0
        assert res[id]["ok"] is True, res[id]
        assert res[id]["result"] == {"word": word, "n": n}, res[id]
