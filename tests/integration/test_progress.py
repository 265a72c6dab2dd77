"""The progress line: on a terminal's stderr for a finite run, redrawn with
carriage returns, cleared at the end; never on stdout, never when stderr is
not a terminal or with --no-progress."""
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import termios
import time

from conftest import FAKE, HOPPER, assert_clean, clean_env, read_jsonl


def write_items(tmp, n):
    src = tmp / "in.jsonl"
    src.write_text("".join(f'{{"n": {i}}}\n' for i in range(n)) +
                   "\n")  # a blank line is no item
    return src


def run_on_pty(tmp, *args, env=None, cols=200):
    """Runs hopper with stderr on a pseudo-terminal and stdout in a file;
    returns (exit code, what the terminal got, what stdout got)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0, 0))
    out = tmp / "stdout"
    with open(out, "w") as outf:
        p = subprocess.Popen([HOPPER, *map(str, args)], stdout=outf,
                             stderr=slave, stdin=subprocess.DEVNULL,
                             env=env or clean_env())
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer is gone
            break
        if not chunk:
            break
        seen += chunk
    code = p.wait(timeout=60)
    os.close(master)
    term = seen.decode(errors="replace")
    assert_clean(term)
    return code, term, out.read_text()


def test_progress_line_on_a_terminal(tmp):
    src = tmp / "in.jsonl"
    src.write_text("".join('{"do": "fail_once"}\n' if i == 20 else
                           f'{{"n": {i}}}\n' for i in range(40)) +
                   "\n")  # a blank line is no item
    code, term, out = run_on_pty(
        tmp, "run", "-s", f"jsonl:{src}", "-j", "2", "--backoff", "0.2",
        "--", *FAKE, env=clean_env(FAKE_SLEEP=0.05))
    assert code == 0, term
    draws = re.findall(r"\rhopper (\d+)/40 \(\d+%\) \| [\d.-]+/s \| "
                       r"ETA [\d:-]+ \| \d+ workers? \| (\d+) done, 0 dead, "
                       r"(\d) retried\x1b\[K", term)
    assert len(draws) >= 3, term  # ~1 s at four a second
    finished = [int(a) for a, _, _ in draws]
    assert finished == sorted(finished) and finished[-1] > 0
    assert all(a == b for a, b, _ in draws)  # no item died
    assert draws[-1][2] == "1"
    # The retry's warning came while the line was up: the line was cleared
    # for it and drawn again under it.
    assert re.search(r"\r\x1b\[K\d\d:\d\d:\d\d\.\d{3} warn  item=21 attempt 1 "
                     r"of 3 failed[^\r\n]*\r?\nhopper \d+/40", term), term
    # Log lines pass above the line: as a terminal shows it (what follows
    # the last carriage return), each one starts at the left margin.
    # (the terminal turns each newline into CR LF)
    shown = [line.rstrip("\r").split("\r")[-1].replace("\x1b[K", "")
             for line in term.split("\n")]
    logged = [line for line in shown
              if re.search(" (debug|info |warn |error) ", line)]
    assert len(logged) >= 3, shown  # running:, the retry, finished:
    for line in logged:
        assert re.match(r"\d\d:\d\d:\d\d\.\d{3} [a-z]", line), repr(line)
    # Cleared at the end, before the summary.
    tail = term[term.rindex("\rhopper "):]
    assert "\r\x1b[K" in tail and "finished: 40 done" in tail
    # stdout holds results only.
    results = read_jsonl(out)
    assert len(results) == 40 and all(r["ok"] for r in results)
    assert "\r" not in out and "/s |" not in out


def test_progress_line_fits_a_narrow_terminal(tmp):
    src = write_items(tmp, 20)
    code, term, _ = run_on_pty(tmp, "run", "-s", f"jsonl:{src}", "--", *FAKE,
                               env=clean_env(FAKE_SLEEP=0.1), cols=40)
    assert code == 0, term
    draws = re.findall(r"\r(hopper [^\r\x1b]*)\x1b\[K", term)
    assert draws and all(len(d) <= 39 for d in draws), draws


def test_a_dir_source_knows_its_total(tmp):
    inbox = tmp / "in"
    inbox.mkdir()
    for i in range(12):
        (inbox / f"f{i:02d}").write_text(str(i))
    code, term, _ = run_on_pty(
        tmp, "run", "-s", f"dir:{inbox}", "-o", f"dir:{tmp}/out", "-j", "2",
        "--", *FAKE, env=clean_env(FAKE_SLEEP=0.1))
    assert code == 0, term
    assert re.search(r"\rhopper \d+/12 \(\d+%\)", term), term


def test_no_total_from_a_pipe(tmp):
    """stdin is no file: the line counts what finished, no percentage."""
    master, slave = pty.openpty()
    items = "".join(f'{{"n": {i}}}\n' for i in range(20))
    p = subprocess.Popen([HOPPER, "run", "-s", "jsonl:-", "-j", "1", "--",
                          *FAKE], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=slave,
                         env=clean_env(FAKE_SLEEP=0.05), text=True)
    os.close(slave)
    p.stdin.write(items)
    p.stdin.close()
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert p.wait(timeout=60) == 0
    os.close(master)
    term = seen.decode()
    assert re.search(r"\rhopper \d+ finished \| [\d.-]+/s \|", term), term
    assert "%)" not in term


def test_no_progress_when_stderr_is_not_a_terminal(tmp):
    src = write_items(tmp, 20)
    p = subprocess.run([HOPPER, "run", "-s", f"jsonl:{src}", "--", *FAKE],
                       capture_output=True, text=True,
                       env=clean_env(FAKE_SLEEP=0.05), timeout=60)
    assert p.returncode == 0, p.stderr
    assert "finished: 20 done" in p.stderr
    assert "\r" not in p.stderr and "/s |" not in p.stderr
    assert "\r" not in p.stdout and len(read_jsonl(p.stdout)) == 20


def test_no_progress_flag_on_a_terminal(tmp):
    src = write_items(tmp, 20)
    code, term, out = run_on_pty(
        tmp, "run", "-s", f"jsonl:{src}", "--no-progress", "--", *FAKE,
        env=clean_env(FAKE_SLEEP=0.05))
    assert code == 0, term
    assert "finished: 20 done" in term
    assert "hopper 20/" not in term and "/s |" not in term
    assert "\x1b[K" not in term
    assert len(read_jsonl(out)) == 20


def test_no_progress_in_a_pipeline_file(tmp):
    src = write_items(tmp, 5)
    pipe = tmp / "p.json"
    pipe.write_text('{"source": "jsonl:%s", "progress": false, '
                    '"command": %s}' % (src, str(FAKE).replace("'", '"')))
    code, term, _ = run_on_pty(tmp, "run", "-f", pipe,
                               env=clean_env(FAKE_SLEEP=0.3))
    assert code == 0, term
    assert "/s |" not in term


def test_watch_mode_has_no_progress_line(tmp):
    inbox = tmp / "in"
    inbox.mkdir()
    master, slave = pty.openpty()
    p = subprocess.Popen([HOPPER, "run", "-s", f"dir:{inbox}", "-o",
                          f"dir:{tmp}/out", "--watch", "--", *FAKE],
                         stdout=subprocess.DEVNULL, stderr=slave,
                         stdin=subprocess.DEVNULL, env=clean_env())
    os.close(slave)
    os.set_blocking(master, False)
    time.sleep(1.5)
    p.terminate()
    assert p.wait(timeout=30) == 0
    seen = b""
    try:
        while True:
            chunk = os.read(master, 65536)
            if not chunk:
                break
            seen += chunk
    except (BlockingIOError, OSError):
        pass
    os.close(master)
    assert b"running:" in seen and b"/s |" not in seen


def test_a_used_up_source_leaves_nothing_waiting(tmp):
    """A jsonl file cannot tell how much of it is left while it is read,
    so its first stage shows `? waiting` then; once the whole file is read,
    what waits is what the stage's queue holds, a number."""
    src = write_items(tmp, 12)
    pipe = tmp / "p.json"
    fake = json.dumps(list(map(str, FAKE)))
    slow = json.dumps(["env", "FAKE_SLEEP=0.1", *map(str, FAKE)])
    pipe.write_text('{"source": "jsonl:%s", "sink": "jsonl:%s", '
                    '"stages": {"a": {"command": %s, "to": "b"}, '
                    '"b": {"command": %s}}}'
                    % (src, tmp / "out.jsonl", fake, slow))
    code, term, _ = run_on_pty(tmp, "run", "-f", pipe)
    assert code == 0, term
    draws = re.findall(r"\| a: \d+ done, (\d+|\?) waiting, \d+/\d+ busy "
                       r"\| b: \d+ done, (\d+|\?) waiting", term)
    # b takes 12 x 0.1 s, four draws a second; a is done with the file
    # long before b's last items.
    assert len(draws) >= 3, term
    assert all(b != "?" for _, b in draws), draws
    a = [w for w, _ in draws]
    assert a[-1] != "?", draws
    # Once read to its end, the file stays so.
    assert "?" not in a[a.index(next(w for w in a if w != "?")):], draws
    assert len(read_jsonl((tmp / "out.jsonl").read_text())) == 12
