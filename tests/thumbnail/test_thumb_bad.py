"""Bad inputs fail permanently, with the file and the reason, and the same
worker process goes on with the next item. Envelopes that break the
contract get an answer when they carry an id."""
import json
import os
import shutil
import subprocess

import pytest

from thumbutil import corpus, out, start  # noqa: F401 (fixtures)
from thumbutil import WORKER, Worker, image_rgb, psnr
from test_thumb_content import frame_times, parse_vtt

# file -> words the reason must contain
BAD = {
    "empty.mp4": "empty file",
    "text.mp4": "not a readable media file",
    "png_named.mp4": "still image",
    "still.png": "still image",
    "still.jpg": "still image",
    "audio_only.m4a": "no video stream (audio only)",
    "truncated.mp4": "not a readable media file",
    "corrupt.mp4": "not a readable media file",
    "undecodable.avi": "no decodable video frame",
    "undecodable.mkv": "no decodable video frame",
    "missing.mp4": "No such file or directory",
}


def test_each_bad_input_fails_permanently_then_worker_goes_on(corpus, start,
                                                              out):
    w = start("--width", 64)
    for name, reason in BAD.items():
        path = str(corpus / name)
        msg, _ = w.call(path)
        assert msg["ok"] is False, (name, msg)
        assert msg["retry"] is False, (name, msg)
        assert msg["error"].startswith(path + ": "), msg
        assert reason in msg["error"], msg
        # The same process handles a good item next.
        r = w.ok({"path": str(corpus / "h264.mp4"), "position": 1})
        assert os.path.getsize(r["files"][0]) > 0
    assert w.proc.poll() is None
    # Nothing but the good item's image was written.
    assert sorted(os.listdir(out)) == ["h264.jpg"]


def test_truncated_after_the_index(corpus, start):
    """The index is whole but the data stops halfway: the start works, and
    any position past the cut gives the last frame that decodes, clamped,
    with a note; so do a count and a sheet, whose tiles past the cut share
    that frame's tile. (Before, positions up to 80% clamped and 84% and
    above failed, since the keyframe the index gives is past the cut.)"""
    path = str(corpus / "truncated_faststart.mp4")
    last = frame_times(path)[-1]  # what the ffmpeg CLI decodes
    assert 1 < last < 2.5, last
    w = start("--width", 64, "--format", "png")
    r = w.ok({"path": path, "position": 0.3})
    assert r["position"] == 0.28 and r["clamped"] is False
    assert "notes" not in r
    for pos in ("80%", "84%", "90%", "100%", 2.2, 2.5, 2.99):
        for seek in ("accurate", "keyframe"):
            r = w.ok({"path": path, "position": pos, "seek": seek})
            assert r["position"] == pytest.approx(last, abs=1e-3), (pos, r)
            assert r["clamped"] is True, (pos, seek, r)
            if pos != "100%":
                assert "the file ends early" in r["notes"][0], r
    want = image_rgb(r["files"][0])
    for sheet in (False, True):
        r = w.ok({"path": path, "count": 10, "sheet": sheet})
        assert r["clamped"] is True
        assert r["positions"][-1] == pytest.approx(last, abs=1e-3)
        assert r["positions"] == sorted(set(r["positions"]))
        assert any("the file ends early" in n for n in r["notes"])
        if not sheet:
            assert len(r["files"]) == r["count"] == len(r["positions"])
            assert psnr(image_rgb(r["files"][-1]), want) >= 40
    cues = parse_vtt(open(r["files"][1]).read())
    assert len(cues) == r["count"] < 10
    assert cues[-1][1] == pytest.approx(3.0, abs=1e-3)
    w.ok({"path": path, "position": "auto"})


def test_damaged_index_gives_one_reason(corpus, start):
    """An MP4 whose index finds no packet: auto, a fixed position, keyframe
    mode and a count give the same reason (auto used to say "cannot seek
    or read: Operation not permitted", a demuxer's bare -1)."""
    path = str(corpus / "damaged_index.mp4")
    w = start("--width", 64)
    for p in ({"position": "auto"}, {"position": 1.3},
              {"position": 1.3, "seek": "keyframe"}, {"count": 3},
              {"position": "50%"}):
        msg, _ = w.call({"path": path, **p})
        assert msg["ok"] is False and msg["retry"] is False, msg
        assert msg["error"] == (path + ": no video data where expected: "
                                "the index points to none (damaged?)"), msg
    w.ok(str(corpus / "h264.mp4"))


def test_paths_are_files_not_urls(corpus, start, tmp_path, out):
    """A path is opened as a local file: a name that looks like an FFmpeg
    protocol is just a name, and a playlist cannot reach the network."""
    odd = tmp_path / "concat:clip.mp4"
    shutil.copy(corpus / "h264.mp4", odd)
    playlist = tmp_path / "list.m3u8"
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n"
                        "http://127.0.0.1:9/x.ts\n#EXT-X-ENDLIST\n")
    w = start()
    r = w.ok(str(odd))
    assert r["files"] == [str(out / "concat:clip.jpg")]
    msg, _ = w.call(str(playlist))
    assert msg["ok"] is False and msg["retry"] is False
    assert msg["error"].startswith(str(playlist) + ": ")


def test_directory_is_not_a_video(corpus, start):
    w = start()
    msg, _ = w.call(str(corpus))
    assert msg["ok"] is False and msg["retry"] is False
    assert "not a regular file" in msg["error"]


@pytest.mark.parametrize("payload,reason", [
    (42, "expected a path"),
    ({"width": 10}, "expected a path"),
    ({"path": ""}, "expected a path"),
    ({"path": "x.mp4", "width": "wide"}, "\"width\": bad value"),
    ({"path": "x.mp4", "format": "gif"}, "\"format\": bad value"),
    ({"path": "x.mp4", "position": "-3"}, "\"position\": bad value"),
    ({"path": "x.mp4", "position": "120%"}, "\"position\": bad value"),
    ({"path": "x.mp4", "seek": "fast"}, "\"seek\": bad value"),
    ({"path": "x.mp4", "count": 0}, "\"count\": bad value"),
    ({"path": "x.mp4", "quality": 101}, "\"quality\": bad value"),
    ({"path": "x.mp4", "width": [1]}, "bad type"),
])
def test_bad_payloads(corpus, start, payload, reason):
    w = start()
    msg, _ = w.call(payload)
    assert msg["ok"] is False and msg["retry"] is False, msg
    assert reason in msg["error"], msg
    w.ok(str(corpus / "h264.mp4"))


def test_unknown_payload_keys_are_ignored(corpus, start):
    w = start()
    w.ok({"path": str(corpus / "h264.mp4"), "colour": "blue"})
    assert "colour" in w.stderr()


def test_payload_out_overrides(corpus, start, tmp_path):
    w = start()
    dest = tmp_path / "a" / "b"
    r = w.ok({"path": str(corpus / "h264.mp4"), "out": str(dest)})
    assert r["files"] == [str(dest / "h264.jpg")]


def test_dir_source_object_payload_names_files(corpus, start, out):
    """The dir source's object payload: {"path": claimed path, "name":
    original name}; the files are named after "name", quietly."""
    w = start()
    r = w.ok({"path": str(corpus / "h264.mp4"), "name": "../holiday.mov"})
    assert r["files"] == [str(out / "holiday.jpg")]
    assert "ignored" not in w.stderr()


def test_numeric_positions(corpus, start):
    w = start()
    for pos, want in ((1, 1.0), (1.5, 1.48), (2.0, 2.0), (1e-7, 0.0)):
        r = w.ok({"path": str(corpus / "h264.mp4"), "position": pos})
        assert r["position"] == want, (pos, r)


def test_no_out_dir_is_a_permanent_failure(corpus, tmp_path):
    w = Worker(errdir=tmp_path)
    msg, _ = w.call(str(corpus / "h264.mp4"))
    assert msg["ok"] is False and msg["retry"] is False
    assert "no output directory" in msg["error"]
    w.close()


def test_envelope_errors(corpus, start):
    w = start()
    # Not JSON, but an id can be found: answered.
    w.send_line('{"id": "broken", "payload": ')
    msg = w.read()
    assert msg == {"id": "broken", "ok": False, "retry": False,
                   "error": msg["error"]}
    assert "malformed" in msg["error"]
    # No id at all: a note on stderr, no answer, and the worker goes on.
    w.send_line("complete garbage")
    w.send_line(json.dumps({"payload": "x"}))
    w.send_line("")
    # An envelope without a payload.
    w.send_line(json.dumps({"id": "np"}))
    msg = w.read()
    assert msg["id"] == "np" and msg["ok"] is False
    # Unknown envelope fields are ignored; ids are echoed as given.
    w.send_line(json.dumps({"id": "u", "attempt": 3, "trace": {"a": 1},
                            "payload": str(corpus / "h264.mp4")}))
    msg = w.read()
    assert msg["id"] == "u" and msg["ok"] is True
    assert "not a JSON envelope" in w.stderr()


def test_long_line(corpus, start):
    w = start()
    r = w.ok({"path": str(corpus / "h264.mp4"), "pad": "x" * 1_000_000})
    assert r["files"]


def test_eof_exits_zero(corpus, tmp_path, out):
    w = Worker("--out", out, errdir=tmp_path)
    w.ok(str(corpus / "h264.mp4"))
    w.close()  # asserts exit 0 and nothing but JSON on stdout


def test_bad_command_line():
    p = subprocess.run([str(WORKER), "--width", "abc"], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and "--width" in p.stderr and p.stdout == ""
    p = subprocess.run([str(WORKER), "--help"], capture_output=True,
                       text=True)
    assert p.returncode == 0 and "--position" in p.stdout
