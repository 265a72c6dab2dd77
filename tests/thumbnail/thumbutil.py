"""Helpers and fixtures for the thumbnail worker's tests: the sample corpus,
a worker process driven over the stream contract, and picture comparisons
against the ffmpeg CLI.

There is no conftest.py here on purpose: tests/integration imports names
from its own conftest module, and a second conftest.py on the same run
would shadow it. Test modules import the fixtures below instead."""
import atexit
import json
import math
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("HOPPER_BUILD", ROOT / "build"))
WORKER = BUILD / "hopper-thumbnail"
HERE = Path(__file__).resolve().parent
PY = sys.executable

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


def sanitized():
    """True when the build under test is the sanitizer build."""
    return BUILD.name == "san"


class Worker:
    """One hopper-thumbnail process in stream mode."""

    def __init__(self, *args, errdir):
        self.errpath = Path(errdir) / f"worker-{id(self)}.err"
        self.errf = open(self.errpath, "w+")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.proc = subprocess.Popen(
            [str(WORKER), *map(str, args)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.errf, text=True, bufsize=1,
            env=env)
        self.lines = queue.Queue()
        self.raw = []  # every stdout line, to check that all were JSON
        self.seq = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.raw.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def send_line(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def read(self, timeout=30):
        """The next stdout line, parsed; None at EOF."""
        line = self.lines.get(timeout=timeout)
        return None if line is None else json.loads(line)

    def call(self, payload, timeout=30, id=None):
        """Sends one item; returns (final answer, progress lines)."""
        self.seq += 1
        id = id or f"item-{self.seq}"
        self.send_line(json.dumps({"id": id, "attempt": 1,
                                   "payload": payload}))
        progress = []
        while True:
            msg = self.read(timeout)
            assert msg is not None, "worker exited: " + self.stderr()[-3000:]
            assert msg["id"] == id, msg
            if "progress" in msg:
                progress.append(msg["progress"])
                continue
            return msg, progress

    def ok(self, payload, **kw):
        msg, _ = self.call(payload, **kw)
        assert msg["ok"] is True, msg
        return msg["result"]

    def stderr(self):
        self.errf.flush()
        return self.errpath.read_text()

    def close(self, timeout=60):
        """Closes stdin; asserts exit 0, nothing but JSON on stdout and no
        sanitizer report."""
        self.proc.stdin.close()
        code = self.proc.wait(timeout)
        err = self.stderr()
        self.errf.close()
        for mark in SANITIZER_MARKS:
            assert mark not in err, err[-4000:]
        assert code == 0, f"exit {code}: {err[-3000:]}"
        for line in self.raw:
            json.loads(line)


def ffmpeg(*args, timeout=60):
    """Runs the ffmpeg CLI quietly; returns stdout bytes."""
    p = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel",
                        "error", *map(str, args)], capture_output=True,
                       timeout=timeout)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout


def probe(path, entries="stream=codec_name,width,height,pix_fmt"):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", entries,
                          "-of", "json", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)


def keyframe_times(path):
    """Timestamps (s) of the video keyframes, from ffprobe."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-skip_frame",
         "nokey", "-show_entries", "frame=pts_time,best_effort_timestamp_time",
         "-of", "json", str(path)], capture_output=True, text=True,
        check=True).stdout
    times = []
    for f in json.loads(out)["frames"]:
        t = f.get("best_effort_timestamp_time", f.get("pts_time"))
        times.append(float(t))
    return sorted(times)


def image_rgb(path):
    """An image file's pixels as RGB24 bytes."""
    return ffmpeg("-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-")


def cli_frame(video, pos, w, h, pre=""):
    """The frame the ffmpeg CLI extracts at pos, scaled to w x h, RGB24.
    `pre` is a filter chain to run before the scale."""
    vf = (pre + "," if pre else "") + f"scale={w}:{h}"
    return ffmpeg("-ss", f"{pos:.3f}", "-i", video, "-frames:v", "1", "-vf",
                  vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "-")


def psnr(a, b):
    assert len(a) == len(b), (len(a), len(b))
    se = sum((x - y) * (x - y) for x, y in zip(a, b))
    if se == 0:
        return 99.0
    return 10 * math.log10(255 * 255 / (se / len(a)))


def crop(rgb, width, x, y, w, h):
    """The w x h rectangle at x, y of an RGB24 picture width pixels wide."""
    rows = [rgb[((y + r) * width + x) * 3:((y + r) * width + x + w) * 3]
            for r in range(h)]
    return b"".join(rows)


def mean(rgb):
    return sum(rgb) / len(rgb)


_corpus = None


def corpus_dir():
    """The sample corpus, made once per test process."""
    global _corpus
    if _corpus is None:
        assert WORKER.exists(), f"build {WORKER} first"
        d = Path(tempfile.mkdtemp(prefix="hopper-thumb-corpus-"))
        atexit.register(shutil.rmtree, d, True)
        subprocess.run(["bash", str(HERE / "make_corpus.sh"), str(d)],
                       check=True, timeout=120)
        _corpus = d
    return _corpus


@pytest.fixture
def corpus():
    return corpus_dir()


@pytest.fixture
def out(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


@pytest.fixture
def start(tmp_path, out):
    """start(*args) starts a worker with --out out and args; every worker
    started is closed and checked at teardown."""
    workers = []

    def _start(*args, out_dir=out):
        w = Worker("--out", out_dir, *args, errdir=tmp_path)
        workers.append(w)
        return w

    yield _start
    for w in workers:
        w.close()
