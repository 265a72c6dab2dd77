"""Odd files that once gave a wrong shape, a wrong index or a wrong reason:
each one is made by make_corpus.sh."""
import pytest

from thumbutil import corpus, out, start  # noqa: F401 (fixtures)
from thumbutil import (cli_frame, crop, ffmpeg, image_rgb, keyframe_times,
                       probe, psnr)
from test_thumb_content import frame_times, parse_vtt


@pytest.mark.parametrize("sheet", [True, False])
def test_more_tiles_than_frames(corpus, start, out, sheet):
    """A one-frame clip (33 ms) asked for 50 tiles: one thumbnail, and a
    WebVTT index whose every cue ends after it starts."""
    w = start("--width", 32, "--format", "png")
    r = w.ok({"path": str(corpus / "one_frame.mp4"), "count": 50,
              "sheet": sheet})
    if not sheet:
        assert r["files"] == [str(out / "one_frame-001.png")]
    else:
        sheet_path, vtt = r["files"]
        cues = parse_vtt(open(vtt).read())
        assert all(c[0] < c[1] for c in cues)
        assert len(cues) == 1
        info = probe(sheet_path)["streams"][0]
        assert (info["width"], info["height"]) == (32, 24)
    assert r["count"] == 1 and r["positions"] == [0.0]
    assert "50 thumbnails asked, 1 made" in r["notes"][0]
    if not sheet:
        return
    assert cues[0][0] == 0
    assert cues[0][1] == pytest.approx(r["duration"], abs=1e-3)
    assert cues[0][3] == (0, 0, 32, 24)


def test_tiles_merge_only_repeated_frames(corpus, start):
    """30 tiles of a 3 s, 25 fps clip: every spot has its own frame, so
    nothing merges; 200 tiles: 75 frames, so only the repeats merge, each
    remaining cue non-empty and the tiles in order."""
    w = start("--width", 16)
    r = w.ok({"path": str(corpus / "h264.mp4"), "count": 30,
              "sheet": True})
    assert len(parse_vtt(open(r["files"][1]).read())) == 30
    assert "notes" not in r
    r = w.ok({"path": str(corpus / "h264.mp4"), "count": 200,
              "sheet": True})
    assert r["positions"] == sorted(set(r["positions"]))
    cues = parse_vtt(open(r["files"][1]).read())
    assert len(cues) == 75
    for a, b in zip(cues, cues[1:]):
        assert a[0] < a[1] == b[0]
    assert r["count"] == 75
    assert image_rgb(r["files"][0])


@pytest.mark.parametrize("width,fmt", [(320, "jpeg"), (320, "webp"),
                                       (None, "png")])
def test_absurd_aspect_keeps_its_shape(corpus, start, width, fmt):
    """A 4:711 display aspect: the height a width of 320 asks for (56,880)
    is over the limit, so both sides shrink together: 92x16383, not
    320x16383; by default the sliver is one pixel wide."""
    w = start("--format", fmt)
    payload = {"path": str(corpus / "sliver.mp4"), "position": 0.5}
    if width:
        payload["width"] = width
    r = w.ok(payload)
    info = probe(r["files"][0])["streams"][0]
    assert (info["width"], info["height"]) == (r["width"], r["height"])
    if width:
        assert (r["width"], r["height"]) == (92, 16383)
        assert "made 92x16383, the aspect kept" in r["notes"][0]
    else:
        assert (r["width"], r["height"]) == (1, 240)
        assert "notes" not in r


def test_audio_with_cover_art_gives_the_cover(corpus, start):
    """An MP3 whose only picture is its cover art: the thumbnail is the
    cover, whatever the position, and a sheet has one tile; audio without
    one is still no video."""
    path = str(corpus / "cover.mp3")
    w = start("--format", "png", "--width", 160)
    want = ffmpeg("-i", corpus / "still.png", "-vf", "scale=160:120", "-f",
                  "rawvideo", "-pix_fmt", "rgb24", "-")
    for pos in ("auto", 1.5, "100%"):
        r = w.ok({"path": path, "position": pos})
        assert r["cover_art"] is True and r["codec"] == "png"
        assert (r["width"], r["height"]) == (160, 120)
        assert r["position"] == 0 and r["clamped"] is False
        assert "cover art" in r["notes"][0]
        assert psnr(image_rgb(r["files"][0]), want) >= 40
    r = w.ok({"path": path, "count": 4, "sheet": True})
    assert r["count"] == 1
    info = probe(r["files"][0])["streams"][0]
    assert (info["width"], info["height"]) == (160, 120)
    msg, _ = w.call(str(corpus / "audio_only.m4a"))
    assert msg["error"].endswith("no video stream (audio only)"), msg


def test_dense_sheet_decodes_forward_once(corpus, start):
    """40 tiles of a 10 s clip with one keyframe: one pass from the
    keyframe, not one per tile (about 20 times the frames), and frames no
    tile shows or refers to are not decoded; each tile is the frame a
    single thumbnail at its spot gives, as the ffmpeg CLI extracts it."""
    video = corpus / "long_gop.mp4"
    assert len(keyframe_times(video)) == 1
    frames = 250
    w = start("--width", 64, "--format", "png")
    r = w.ok({"path": str(video), "count": 40, "sheet": True})
    assert r["count"] == 40
    assert r["frames_decoded"] < frames, r["frames_decoded"]
    tw, th = r["width"], r["height"]
    rgb = image_rgb(r["files"][0])
    for i, pos in enumerate(r["positions"]):
        tile = crop(rgb, 7 * tw, (i % 7) * tw, (i // 7) * th, tw, th)
        assert psnr(tile, cli_frame(video, pos, tw, th)) >= 30, (i, pos)
    one = w.ok({"path": str(video), "position": r["positions"][17] + 0.01})
    assert one["position"] == r["positions"][17]
    # Files rather than a sheet take the same path and the same frames.
    f = w.ok({"path": str(video), "count": 40})
    assert f["positions"] == r["positions"]
    assert f["frames_decoded"] < frames


@pytest.mark.parametrize("name", ["bframes.ts", "vfr.mkv"])
def test_sparse_tiles_still_seek_without_a_whole_index(corpus, start,
                                                       tmp_path, name):
    """MPEG-TS and Matroska without cues have no index of the whole file:
    decoding goes on at most as far as the longest keyframe interval seen,
    so tiles sparser than the keyframes (4 or 40 over a minute, GOPs of
    1.2 s at most) seek and decode well under a pass, and 100 tiles cost
    at most one pass."""
    video = tmp_path / ("long." + name.rsplit(".", 1)[1])
    ffmpeg("-stream_loop", 19, "-i", corpus / name, "-c", "copy", video)
    total = len(frame_times(video))
    w = start("--width", 16)
    for count, most in ((4, 0.2), (40, 0.7), (100, 1)):
        r = w.ok({"path": str(video), "count": count, "sheet": True})
        assert r["frames_decoded"] <= most * total, \
            (count, r["frames_decoded"], total)
