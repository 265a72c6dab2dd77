"""Resources: memory stays flat over many items, an 8K source costs about a
frame, valgrind finds no leak, and the per-item deadline holds."""
import json
import shutil
import subprocess

import pytest

from thumbutil import corpus, out, start  # noqa: F401 (fixtures)
from thumbutil import WORKER, Worker, ffmpeg, sanitized


def status(pid, key):
    """A field of /proc/PID/status, in kB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


@pytest.mark.skipif(sanitized(), reason="ASan's allocator keeps memory")
def test_memory_flat_over_many_items(corpus, start):
    w = start("--width", 160)
    items = [{"path": str(corpus / n), "format": f, "count": c,
              "sheet": c > 1}
             for n in ("h264.mp4", "vp9.webm", "hevc10.mkv", "mpeg4.avi",
                       "empty.mp4", "undecodable.avi", "still.png")
             for f, c in (("jpeg", 1), ("webp", 1), ("png", 3))]
    for p in items * 2:  # warm up: caches, the allocator's arenas
        w.call(p)
    before = status(w.proc.pid, "VmRSS")
    for p in items * 6:
        w.call(p)
    after = status(w.proc.pid, "VmRSS")
    print(f"RSS {before} kB -> {after} kB over {len(items) * 6} items")
    assert after - before < 4096, (before, after)


@pytest.mark.skipif(sanitized(), reason="ASan's allocator keeps memory")
def test_8k_source_memory_is_bounded(tmp_path, start):
    video = tmp_path / "8k.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=7680x4320:rate=25", "-t",
           "0.12", "-c:v", "libx264", "-preset", "ultrafast", video)
    w = start("--width", 320)
    r = w.ok({"path": str(video), "position": "50%"})
    assert (r["source_width"], r["source_height"]) == (7680, 4320)
    assert (r["width"], r["height"]) == (320, 180)
    peak = status(w.proc.pid, "VmHWM")
    print(f"peak RSS for an 8K source: {peak // 1024} MB")
    # A 4:2:0 8K frame is 50 MB; the decoder keeps its references.
    assert peak < 400 * 1024, peak


@pytest.mark.skipif(sanitized() or not shutil.which("valgrind"),
                    reason="needs valgrind and the plain build")
def test_valgrind_no_leaks(corpus, tmp_path):
    lines = []
    for i, p in enumerate([
            {"path": str(corpus / "rotated.mp4"), "format": "webp"},
            {"path": str(corpus / "h264.mp4"), "count": 3, "sheet": True,
             "format": "png"},
            str(corpus / "undecodable.avi"), str(corpus / "text.mp4"),
            str(corpus / "audio_only.m4a")]):
        lines.append(json.dumps({"id": str(i), "payload": p}))
    lines.append("not json")
    p = subprocess.run(
        ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
         "--error-exitcode=99", "--quiet", str(WORKER), "--out",
         tmp_path / "out", "--width", "64"],
        input="\n".join(lines) + "\n", capture_output=True, text=True,
        timeout=120)
    assert p.returncode == 0, p.stderr[-4000:]
    answers = [json.loads(x) for x in p.stdout.splitlines()]
    assert [a["id"] for a in answers if "progress" not in a] == \
        [str(i) for i in range(5)]
    assert "definitely lost" not in p.stderr, p.stderr[-4000:]


def test_deadline_bounds_an_item(corpus, start, tmp_path):
    # A sheet over 10 minutes of HEVC (the corpus clip 300 times, stream
    # copied) decodes all of it, about 5 s, far past the 1 s allowed.
    long = tmp_path / "long.mkv"
    ffmpeg("-stream_loop", 299, "-i", corpus / "hevc10.mkv", "-c", "copy",
           long)
    w = start("--timeout", 1, "--width", 16)
    msg, _ = w.call({"path": str(long), "count": 1000, "sheet": True},
                    timeout=20)
    assert msg["ok"] is False and msg["retry"] is False
    assert "timed out after 1 s" in msg["error"]
    w.ok(str(corpus / "h264.mp4"))
