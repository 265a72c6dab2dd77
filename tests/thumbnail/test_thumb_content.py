"""What the thumbnails show: the right frame, size, orientation and format,
checked against what the ffmpeg CLI extracts from the same file."""
import os

import pytest

from thumbutil import corpus, out, start  # noqa: F401 (fixtures)
from thumbutil import (cli_frame, crop, ffmpeg, image_rgb, keyframe_times,
                       mean, probe, psnr)

FPS = 25
MIN_PSNR = 30


@pytest.mark.parametrize("name", ["h264.mp4", "vp9.webm", "hevc10.mkv",
                                  "mpeg4.avi", "odd.webm"])
@pytest.mark.parametrize("pos", [1.2, 0.53])
def test_accurate_matches_cli(corpus, start, name, pos):
    w = start("--format", "png", "--seek", "accurate", "--width", 160)
    r = w.ok({"path": str(corpus / name), "position": pos})
    # The frame on screen at pos: at or before it, within one frame.
    assert r["position"] <= pos + 1e-6
    assert pos - r["position"] < 1 / FPS + 1e-6
    assert r["clamped"] is False
    assert r["width"] == 160
    got = image_rgb(r["files"][0])
    want = cli_frame(corpus / name, r["position"], r["width"], r["height"])
    assert psnr(got, want) >= MIN_PSNR


def test_accurate_differs_from_neighbour(corpus, start):
    """The PSNR check can tell neighbouring frames apart (testsrc2 moves)."""
    w = start("--format", "png", "--width", 160)
    r = w.ok({"path": str(corpus / "h264.mp4"), "position": 1.2})
    got = image_rgb(r["files"][0])
    other = cli_frame(corpus / "h264.mp4", 1.4, r["width"], r["height"])
    assert psnr(got, other) < MIN_PSNR


def test_keyframe_mode_gives_keyframe_before(corpus, start):
    video = corpus / "h264.mp4"
    keys = keyframe_times(video)
    assert len(keys) >= 3, keys  # -g 25 over 3 s
    w = start("--format", "png", "--seek", "keyframe", "--width", 160)
    for pos in (0.7, 1.7, 2.5):
        r = w.ok({"path": str(video), "position": pos})
        want_t = max(k for k in keys if k <= pos)
        assert abs(r["position"] - want_t) < 1e-3, (pos, r, keys)
        got = image_rgb(r["files"][0])
        want = cli_frame(video, want_t, r["width"], r["height"])
        assert psnr(got, want) >= MIN_PSNR


def test_rotated_source_gives_portrait(corpus, start):
    video = corpus / "rotated.mp4"
    w = start("--format", "png", "--width", 120)
    r = w.ok({"path": str(video), "position": 1})
    assert (r["source_width"], r["source_height"]) == (320, 240)
    assert (r["width"], r["height"]) == (120, 160)
    info = probe(r["files"][0])["streams"][0]
    assert (info["width"], info["height"]) == (120, 160)
    # The display matrix says a quarter turn counter-clockwise, which the
    # CLI's autorotate applies as transpose=cclock. The worker scales
    # before it turns (less memory for big sources), and swscale's
    # horizontal and vertical filters differ in phase, so the exact match
    # is with that order; the other turns are far off.
    got = image_rgb(r["files"][0])

    def cli(turn):
        return ffmpeg("-noautorotate", "-ss", f"{r['position']:.3f}", "-i",
                      video, "-frames:v", "1", "-vf",
                      f"scale=160:120,{turn}", "-f", "rawvideo",
                      "-pix_fmt", "rgb24", "-")
    assert psnr(got, cli("transpose=cclock")) >= MIN_PSNR
    assert psnr(got, cli("transpose=clock")) < 10
    assert psnr(got, cli("hflip,vflip,transpose=cclock")) < 10
    # And close to what the CLI's autorotate gives.
    assert psnr(got, cli_frame(video, r["position"], 120, 160)) >= 20


def test_non_square_pixels(corpus, start):
    video = corpus / "sar.mp4"  # 320x240 stored, SAR 2:1
    w = start("--format", "png", "--width", 320)
    r = w.ok({"path": str(video), "position": 1})
    assert (r["width"], r["height"]) == (320, 120)
    got = image_rgb(r["files"][0])
    want = cli_frame(video, r["position"], 320, 120)
    assert psnr(got, want) >= MIN_PSNR


def test_interlaced_gives_one_field(corpus, start):
    video = corpus / "interlaced.mp4"
    w = start("--format", "png", "--width", 320)
    r = w.ok({"path": str(video), "position": 1})
    assert (r["width"], r["height"]) == (320, 240)
    got = image_rgb(r["files"][0])
    # The first field, line-doubled back to full height.
    want = cli_frame(video, r["position"], 320, 240, pre="field=top")
    assert psnr(got, want) >= MIN_PSNR


def test_ten_bit_source_gives_8bit_image(corpus, start):
    w = start("--format", "png")
    r = w.ok({"path": str(corpus / "hevc10.mkv"), "position": 1})
    info = probe(r["files"][0])["streams"][0]
    assert info["pix_fmt"] == "rgb24"
    assert (info["width"], info["height"]) == (320, 240)


def test_odd_dimensions_kept(corpus, start):
    w = start("--format", "png")
    r = w.ok({"path": str(corpus / "odd.webm"), "position": 1})
    assert (r["source_width"], r["source_height"]) == (321, 241)
    assert (r["width"], r["height"]) == (321, 241)
    got = image_rgb(r["files"][0])
    want = cli_frame(corpus / "odd.webm", r["position"], 321, 241)
    assert psnr(got, want) >= MIN_PSNR


@pytest.mark.parametrize("fmt,codec,ext", [("jpeg", "mjpeg", "jpg"),
                                           ("png", "png", "png"),
                                           ("webp", "webp", "webp")])
def test_formats(corpus, start, out, fmt, codec, ext):
    w = start("--width", 200, "--quality", 95)
    r = w.ok({"path": str(corpus / "h264.mp4"), "format": fmt,
              "position": 2})
    assert r["files"] == [str(out / f"h264.{ext}")]
    info = probe(r["files"][0])["streams"][0]
    assert info["codec_name"] == codec
    assert (info["width"], info["height"]) == (200, 150)
    got = image_rgb(r["files"][0])
    want = cli_frame(corpus / "h264.mp4", r["position"], 200, 150)
    assert psnr(got, want) >= (MIN_PSNR if fmt == "png" else 25)
    # Written through a temp name: nothing else is left in the folder.
    assert sorted(os.listdir(out)) == [f"h264.{ext}"]


def test_quality_changes_size(corpus, start, out):
    w = start("--width", 320, "--format", "jpeg")
    sizes = []
    for q in (20, 95):
        r = w.ok({"path": str(corpus / "h264.mp4"), "quality": q,
                  "position": 1, "out": str(out / f"q{q}")})
        sizes.append(os.path.getsize(r["files"][0]))
    assert sizes[0] < sizes[1]


def test_height_only_and_box(corpus, start):
    w = start()
    r = w.ok({"path": str(corpus / "h264.mp4"), "height": 60,
              "position": 1})
    assert (r["width"], r["height"]) == (80, 60)
    # Both: fit inside the box, aspect kept.
    r = w.ok({"path": str(corpus / "h264.mp4"), "width": 100,
              "height": 100, "position": 1})
    assert (r["width"], r["height"]) == (100, 75)


def test_position_past_end_is_clamped(corpus, start):
    video = corpus / "h264.mp4"  # 3 s, last frame at 2.96
    w = start("--format", "png", "--width", 160)
    for seek in ("accurate", "keyframe"):
        r = w.ok({"path": str(video), "position": 100, "seek": seek})
        assert r["clamped"] is True
        assert abs(r["position"] - 2.96) < 1e-3, r
        got = image_rgb(r["files"][0])
        want = cli_frame(video, 2.96, r["width"], r["height"])
        assert psnr(got, want) >= MIN_PSNR
    # Within the last frame's time on screen, the very end included (the
    # end itself is the last frame in keyframe mode too).
    for pos, seek in ((2.97, "accurate"), ("100%", "accurate"),
                      ("100%", "keyframe"), (3.0, "keyframe")):
        r = w.ok({"path": str(video), "position": pos, "seek": seek})
        assert r["clamped"] is False, (pos, seek, r)
        assert abs(r["position"] - 2.96) < 1e-3, (pos, seek, r)
    r = w.ok({"path": str(video), "position": 3.05})
    assert r["clamped"] is True


def test_percentage_and_timecode(corpus, start):
    w = start("--width", 64)
    r = w.ok({"path": str(corpus / "h264.mp4"), "position": "50%"})
    assert 1.5 - 1 / FPS < r["position"] <= 1.5
    r = w.ok({"path": str(corpus / "h264.mp4"), "position": "00:00:02.0"})
    assert abs(r["position"] - 2.0) < 1e-3


def test_auto_skips_black(corpus, start):
    video = corpus / "black_start.mp4"  # 2 s black, then 2 s of picture
    w = start("--format", "png", "--width", 160, "--position", "auto")
    r = w.ok(str(video))
    assert r["position"] >= 2.0
    assert mean(image_rgb(r["files"][0])) > 40


def test_result_fields(corpus, start, out):
    w = start("--width", 160)
    r = w.ok(str(corpus / "vp9.webm"))
    assert r["files"] == [str(out / "vp9.jpg")]
    assert r["codec"] == "vp9"
    assert "webm" in r["container"]
    assert r["duration"] == pytest.approx(2.0, abs=0.05)
    assert (r["source_width"], r["source_height"]) == (256, 192)
    assert (r["width"], r["height"]) == (160, 120)
    assert isinstance(r["ms"], int) and r["ms"] >= 0
    assert r["clamped"] is False


def test_count_gives_spaced_files(corpus, start, out):
    w = start("--width", 80)
    msg, progress = w.call({"path": str(corpus / "h264.mp4"), "count": 3})
    r = msg["result"]
    assert r["files"] == [str(out / f"h264-00{i}.jpg") for i in (1, 2, 3)]
    assert all(os.path.getsize(f) > 0 for f in r["files"])
    assert r["positions"] == sorted(r["positions"])
    # Middles of three equal stretches of 3 s: 0.5, 1.5, 2.5.
    for got, want in zip(r["positions"], (0.5, 1.5, 2.5)):
        assert want - 1 / FPS < got <= want + 1e-6
    assert len(progress) == 2 and progress == sorted(progress)
    assert all(0 < p < 1 for p in progress)


def parse_vtt(text):
    lines = text.strip().split("\n")
    assert lines[0] == "WEBVTT"
    cues = []

    def secs(t):
        h, m, s = t.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    for i, line in enumerate(lines):
        if "-->" in line:
            a, b = (x.strip() for x in line.split("-->"))
            image, frag = lines[i + 1].split("#xywh=")
            cues.append((secs(a), secs(b), image,
                         tuple(int(v) for v in frag.split(","))))
    return cues


@pytest.mark.parametrize("name", ["h264.mp4", "vp9.webm"])
def test_sheet_and_vtt(corpus, start, out, name):
    video = corpus / name
    w = start("--width", 64, "--format", "png")
    r = w.ok({"path": str(video), "count": 7, "sheet": True})
    stem = name.rsplit(".", 1)[0]
    sheet, vtt = r["files"]
    assert sheet == str(out / f"{stem}.sheet.png")
    assert vtt == str(out / f"{stem}.vtt")
    tw, th = r["width"], r["height"]
    info = probe(sheet)["streams"][0]
    assert (info["width"], info["height"]) == (3 * tw, 3 * th)  # 7 -> 3x3

    cues = parse_vtt(open(vtt).read())
    assert len(cues) == 7
    assert cues[0][0] == 0
    assert cues[-1][1] == pytest.approx(r["duration"], abs=1e-3)
    for a, b in zip(cues, cues[1:]):
        assert a[1] == b[0]  # no gap, no overlap
    rgb = image_rgb(sheet)
    for i, (t0, t1, image, (x, y, cw, ch)) in enumerate(cues):
        assert t0 < t1
        assert image == f"{stem}.sheet.png"
        assert (x, y, cw, ch) == ((i % 3) * tw, (i // 3) * th, tw, th)
        # Each tile shows the frame from inside its own time range.
        pos = r["positions"][i]
        assert t0 - 1 / FPS <= pos < t1
        tile = crop(rgb, 3 * tw, x, y, tw, th)
        assert psnr(tile, cli_frame(video, pos, tw, th)) >= MIN_PSNR


def test_sheet_columns(corpus, start):
    w = start("--width", 32)
    r = w.ok({"path": str(corpus / "h264.mp4"), "count": 5, "sheet": True,
              "columns": 5})
    info = probe(r["files"][0])["streams"][0]
    assert (info["width"], info["height"]) == (5 * 32, 24)


def frame_times(path):
    out = probe(path, "frame=best_effort_timestamp_time")
    return sorted(float(f["best_effort_timestamp_time"])
                  for f in out["frames"])


def test_variable_frame_rate(corpus, start):
    video = corpus / "vfr.mkv"  # 25 fps for 1 s, then 10 fps
    times = frame_times(video)
    w = start("--format", "png", "--width", 160)
    for pos in (0.5, 1.45, 2.25):
        r = w.ok({"path": str(video), "position": pos})
        # The frame on screen at pos: the last one that starts by then.
        assert r["position"] == pytest.approx(
            max(t for t in times if t <= pos + 1e-6), abs=1e-3)
        got = image_rgb(r["files"][0])
        want = cli_frame(video, r["position"], r["width"], r["height"])
        assert psnr(got, want) >= MIN_PSNR


def test_hdr10_source(corpus, start):
    video = corpus / "hdr10.mkv"  # 10-bit BT.2020 PQ
    w = start("--format", "png")
    r = w.ok({"path": str(video), "position": 0.5})
    assert probe(r["files"][0])["streams"][0]["pix_fmt"] == "rgb24"
    got = image_rgb(r["files"][0])
    want = cli_frame(video, r["position"], r["width"], r["height"])
    assert psnr(got, want) >= MIN_PSNR


def test_auto_on_all_black_still_answers(corpus, start):
    w = start("--position", "auto")
    r = w.ok(str(corpus / "black.mp4"))
    assert r["files"] and r["clamped"] is False


def nth_frame(video, n, w, h):
    """Frame n of the video, decoded from the start without seeking."""
    return ffmpeg("-i", video, "-vf", f"select=eq(n\\,{n}),scale={w}:{h}",
                  "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24",
                  "-")


def test_mpegts_with_bframes(corpus, start):
    """MPEG-TS has no index, so the demuxer's seek can land late; the frame
    must still be the right one (checked against decoding from the start,
    since the CLI's own -ss lands late here too)."""
    video = corpus / "bframes.ts"
    keys = keyframe_times(video)
    first = keys[0]
    keys = [k - first for k in keys]
    w = start("--format", "png", "--width", 160)
    for seek in ("accurate", "keyframe"):
        for pos in (0.2, 1.3, 2.97, 100):
            r = w.ok({"path": str(video), "position": pos, "seek": seek})
            if pos == 100:
                want_t = 2.96
            elif seek == "keyframe":
                want_t = max(k for k in keys if k <= pos + 1e-6)
            else:
                want_t = int(pos * FPS + 1e-6) / FPS
            assert r["position"] == pytest.approx(want_t, abs=1e-3), \
                (seek, pos, r, keys)
            assert r["clamped"] is (pos == 100)
            got = image_rgb(r["files"][0])
            want = nth_frame(video, round(want_t * FPS), 160, 120)
            assert psnr(got, want) >= MIN_PSNR, (seek, pos)
