"""Shared helpers for the integration tests: where hopper is, how to run it,
checks that a sanitizer build reported nothing, and the PostgreSQL and
Kafka servers of tests/harness (one per test module that asks)."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from harness.kafka import KafkaBroker  # noqa: E402
from harness.postgres import PostgresServer  # noqa: E402
BUILD = Path(os.environ.get("HOPPER_BUILD", ROOT / "build"))
HOPPER = os.environ.get("HOPPER", str(BUILD / "hopper"))
PY = os.environ.get("HOPPER_PYTHON", sys.executable)
WORKERS = Path(__file__).resolve().parent / "workers"
FAKE = [PY, str(WORKERS / "fake.py")]
EXEC = [str(WORKERS / "exec.sh")]

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


def clean_env(**extra):
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def assert_clean(stderr):
    for mark in SANITIZER_MARKS:
        assert mark not in stderr, stderr[-4000:]


def hopper(*args, input=None, timeout=120, env=None, cwd=None):
    """Runs hopper to completion; returns (exit code, stdout, stderr)."""
    p = subprocess.run([HOPPER, *map(str, args)], input=input, cwd=cwd,
                       capture_output=True, text=True, timeout=timeout,
                       env=env or clean_env())
    assert_clean(p.stderr)
    return p.returncode, p.stdout, p.stderr


def start(*args, env=None, cwd=None):
    """Starts hopper in the background, stderr to a file we can read."""
    errf = open(Path(cwd or ".") / f"hopper-{time.monotonic_ns()}.err", "w+")
    p = subprocess.Popen([HOPPER, *map(str, args)], stdout=subprocess.PIPE,
                         stderr=errf, text=True, env=env or clean_env(),
                         cwd=cwd)
    p.errf = errf
    return p


def stop(*procs, timeout=60):
    """SIGTERM to each started hopper still running (None is skipped), then
    waits for them all."""
    for p in procs:
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        if p:
            p.wait(timeout=timeout)


def stderr_of(p):
    p.errf.flush()
    p.errf.seek(0)
    return p.errf.read()


def wait_for(cond, timeout=60, what="condition"):
    """Waits until cond() is true. The timeout only stops a test that would
    hang: on a loaded machine under the sanitizers, starting two
    coordinators and their workers has taken longer than 20 s."""
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid):
    """Whether process pid runs (a zombie, dead but not yet reaped by
    whoever adopted it, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def http_port(p, timeout=30):
    """The port a hopper started with --listen 127.0.0.1:0 serves on, once
    its log names it."""
    found = []

    def named():
        m = re.search(r"on http://127\.0\.0\.1:(\d+)", stderr_of(p))
        assert p.poll() is None, stderr_of(p)
        if m:
            found.append(int(m.group(1)))
        return bool(found)

    wait_for(named, timeout=timeout, what="the http server")
    return found[0]


def write_jsonl(path, payloads):
    with open(path, "w") as f:
        for p in payloads:
            f.write(json.dumps(p) + "\n")
    return path


def read_jsonl(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def by_id(lines):
    out = {}
    for r in lines:
        assert r["id"] not in out, f"id {r['id']} finished twice"
        out[r["id"]] = r
    return out


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


@pytest.fixture
def tmpfs(tmp):
    """Mounts small tmpfs file systems in the test's folder (root only):
    tmpfs("name", "64k") returns the mount point. All are unmounted after
    the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounts = []

    def mount(name, size):
        mnt = tmp / name
        mnt.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}",
                        "tmpfs", str(mnt)], check=True)
        mounts.append(mnt)
        return mnt

    yield mount
    for mnt in reversed(mounts):
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(folder, leave=0):
    """Fills the file system of folder with a file named filler, leaving
    about leave bytes free (none: then a write of any size fails); returns
    the filler's path."""
    filler = folder / "filler"
    st = os.statvfs(folder)
    todo = max(0, st.f_bavail * st.f_frsize - leave)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        chunk = b"\0" * 65536
        while todo > 0 or not leave:
            n = min(todo, len(chunk)) if leave else len(chunk)
            os.write(fd, chunk[:n])
            todo -= n
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


@pytest.fixture(scope="module")
def pg():
    """A PostgreSQL server for the test module."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def queue(pg, request):
    """A fresh queue table named after the test."""
    name = "q_" + request.node.name.replace("test_", "", 1)[:40]
    code, _, err = hopper("pg", "init", pg.url, "--table", name)
    assert code == 0, err
    return name


def pg_insert(pg, table, payloads):
    """Queues one row per payload."""
    values = ",".join("('%s'::jsonb)" % json.dumps(p).replace("'", "''")
                      for p in payloads)
    pg.psql(f"INSERT INTO {table} (payload) VALUES {values}")


# Kafka clients that leave a group soon after they die.
KAFKA_QUICK = "session.timeout.ms=6000,heartbeat.interval.ms=1000"


@pytest.fixture(scope="module")
def kafka():
    """A Kafka broker for the test module."""
    with KafkaBroker() as broker:
        yield broker
