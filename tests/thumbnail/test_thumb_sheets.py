"""Sheets and counts of long-GOP clips made here from lavfi sources: the
forward pass gives each tile the frame a seek per spot gives, keyframe
mode decodes each keyframe alone, and reduced-resolution decoding is used
only where no frame is predicted from a reduced one."""
import pytest

from thumbutil import out, start  # noqa: F401 (fixtures)
from thumbutil import (cli_frame, crop, ffmpeg, image_rgb, keyframe_times,
                       probe, psnr)
from test_thumb_content import frame_times

SRC = "testsrc2=size=320x180:rate=25"


def make(path, seconds, *codec):
    ffmpeg("-f", "lavfi", "-i", SRC, "-t", seconds, *codec, path)
    return path


CODECS = {
    # x264's B-frames with a B-pyramid (B-frames other frames refer to).
    "h264": ["-c:v", "libx264", "-preset", "veryfast", "-g", 250],
    # x265's, one temporal sub-layer: its non-reference frames are
    # dropped too.
    "hevc": ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params",
             "log-level=none:keyint=250"],
}


@pytest.fixture(scope="module", params=sorted(CODECS))
def long_gop(request, tmp_path_factory):
    """12 s with one keyframe every 10 s."""
    d = tmp_path_factory.mktemp("sheets")
    return make(d / f"long_gop_{request.param}.mp4", 12,
                *CODECS[request.param], "-pix_fmt", "yuv420p")


def tiles(r, n_cols):
    rgb = image_rgb(r["files"][0])
    tw, th = r["width"], r["height"]
    for i in range(r["count"]):
        yield crop(rgb, n_cols * tw, (i % n_cols) * tw, (i // n_cols) * th,
                   tw, th)


@pytest.mark.parametrize("n,cols", [(9, 3), (40, 7)])
def test_forward_tiles_are_the_frames_a_seek_per_spot_gives(
        long_gop, start, n, cols):
    """Each tile of the one forward pass is, pixel for pixel, the single
    thumbnail that seeks from the keyframe to its spot (what every tile
    was before), and its time is the frame on screen at the middle of its
    stretch: the last frame that starts by then."""
    times = frame_times(long_gop)
    d = float(probe(long_gop, "format=duration")["format"]["duration"])
    w = start("--width", 64, "--format", "png")
    r = w.ok({"path": str(long_gop), "count": n, "sheet": True})
    assert r["count"] == n and "notes" not in r
    # Frames no tile shows and none refers to are not decoded.
    assert r["frames_decoded"] < 0.8 * len(times), r["frames_decoded"]
    assert "decode_scale" not in r  # H.264 has no reduced decoding
    for i, (pos, tile) in enumerate(zip(r["positions"], tiles(r, cols))):
        spot = d * (i + 0.5) / n
        assert pos == pytest.approx(
            max(t for t in times if t <= spot + 1e-6), abs=1e-3), i
        one = w.ok({"path": str(long_gop), "position": spot})
        assert one["position"] == pos, i
        assert image_rgb(one["files"][0]) == tile, (i, spot)


def test_keyframe_tiles_are_the_keyframes_before_the_spots(tmp_path, start):
    """Keyframe mode decodes the keyframe a seek lands on alone: each tile
    is the keyframe at or before its spot, the frame the CLI decodes
    there, for H.264 with B-frames and MPEG-2 in MPEG-TS."""
    for name, codec in (("kf.mp4", ["-c:v", "libx264", "-preset",
                                    "veryfast", "-g", 50]),
                        ("kf.ts", ["-c:v", "mpeg2video", "-q:v", 4,
                                   "-g", 25, "-bf", 2])):
        video = make(tmp_path / name, 8, *codec)
        t0 = float(probe(video, "stream=start_time")["streams"][0]
                   ["start_time"])
        keys = [k - t0 for k in keyframe_times(video)]
        d = float(probe(video, "format=duration")["format"]["duration"])
        w = start("--width", 80, "--format", "png")
        r = w.ok({"path": str(video), "count": 4, "sheet": True,
                  "seek": "keyframe"})
        assert r["count"] == 4
        for i, (pos, tile) in enumerate(zip(r["positions"], tiles(r, 2))):
            spot = d * (i + 0.5) / 4
            assert pos == pytest.approx(
                max(k for k in keys if k <= spot + 1e-6), abs=1e-3), (name, i)
            want = cli_frame(video, pos, r["width"], r["height"])
            assert psnr(tile, want) >= 30, (name, i)


def test_interlaced_keyframe_is_whole(start, tmp_path):
    """An interlaced keyframe is not taken from its first packet alone
    (a field may come in a packet of its own): it decodes whole."""
    video = make(tmp_path / "il.ts", 2, "-vf",
                 "tinterlace=interleave_top,setfield=tff", "-c:v",
                 "libx264", "-preset", "ultrafast", "-flags",
                 "+ildct+ilme", "-x264-params", "interlaced=1", "-g", 12)
    w = start("--width", 160, "--format", "png")
    r = w.ok({"path": str(video), "position": 1.1, "seek": "keyframe"})
    want = cli_frame(video, r["position"], r["width"], r["height"],
                     pre="field=top")
    assert psnr(image_rgb(r["files"][0]), want) >= 30


def test_reduced_decoding_only_where_nothing_is_predicted(tmp_path, start):
    """MJPEG (every frame a keyframe) decodes at a quarter a side for a
    160 px thumbnail of 1280x720 (twice the thumbnail), in accurate mode
    too, with the same frames; MPEG-4 does so in keyframe mode only, its
    accurate frames being predicted from others; a size near the
    source's is decoded whole."""
    src = "testsrc2=size=1280x720:rate=25"
    mjpeg = tmp_path / "intra.avi"
    ffmpeg("-f", "lavfi", "-i", src, "-t", 2, "-c:v", "mjpeg", "-q:v", 3,
           mjpeg)
    mpeg4 = tmp_path / "inter.avi"
    ffmpeg("-f", "lavfi", "-i", src, "-t", 4, "-c:v", "mpeg4", "-q:v", 3,
           "-g", 25, mpeg4)
    w = start("--width", 160, "--format", "png")
    r = w.ok({"path": str(mjpeg), "count": 4, "sheet": True})
    assert r["decode_scale"] == 0.25
    assert (r["source_width"], r["source_height"]) == (1280, 720)
    assert (r["width"], r["height"]) == (160, 90)
    times = frame_times(mjpeg)
    for i, (pos, tile) in enumerate(zip(r["positions"], tiles(r, 2))):
        # The time base is a frame (1/25 s): a spot rounds to the
        # nearest frame's time.
        spot = r["duration"] * (i + 0.5) / 4
        assert pos == min(times, key=lambda t: abs(t - spot)), i
        assert psnr(tile, cli_frame(mjpeg, pos, 160, 90)) >= 30, i
    r = w.ok({"path": str(mpeg4), "position": 2.5})
    assert "decode_scale" not in r
    assert psnr(image_rgb(r["files"][0]),
                cli_frame(mpeg4, r["position"], 160, 90)) >= 30
    r = w.ok({"path": str(mpeg4), "position": 2.5, "seek": "keyframe"})
    assert r["decode_scale"] == 0.25 and r["position"] == 2.0
    assert (r["width"], r["height"]) == (160, 90)
    assert psnr(image_rgb(r["files"][0]),
                cli_frame(mpeg4, 2.0, 160, 90)) >= 30
    # auto picks among keyframes: reduced too.
    r = w.ok({"path": str(mpeg4)})
    assert r["decode_scale"] == 0.25
    r = w.ok({"path": str(mpeg4), "width": 1000, "seek": "keyframe",
              "position": 1})
    assert "decode_scale" not in r and r["width"] == 1000


def test_mpegts_decodes_from_a_keyframe(tmp_path, start):
    """MPEG-TS has no index: a seek lands where bisection puts it, often
    past the keyframe. HEVC decoded from there paints what it lacks grey
    (the ffmpeg CLI's -ss does so too); the worker starts decoding at a
    keyframe packet, going back as far as one is, so the sheet and a single
    thumbnail of the TS copy are those of the MP4."""
    mp4 = make(tmp_path / "g.mp4", 8, *CODECS["hevc"], "-pix_fmt",
               "yuv420p")
    ts = tmp_path / "g.ts"
    ffmpeg("-i", mp4, "-c", "copy", ts)
    w = start("--width", 64, "--format", "png")
    got = {}
    for name in (mp4, ts):
        r = w.ok({"path": str(name), "count": 9, "sheet": True,
                  "out": str(tmp_path / name.suffix[1:])})
        one = w.ok({"path": str(name), "position": 5.5,
                    "out": str(tmp_path / name.suffix[1:])})
        got[name] = (r["positions"], image_rgb(r["files"][0]),
                     one["position"], image_rgb(one["files"][0]))
    assert got[ts][0] == got[mp4][0]
    assert got[ts][2] == got[mp4][2]
    assert psnr(got[ts][1], got[mp4][1]) >= 40
    assert psnr(got[ts][3], got[mp4][3]) >= 40
    # Keyframe mode: the clip's one keyframe, not pictures decoded from
    # where the seeks landed.
    r = w.ok({"path": str(ts), "count": 4, "sheet": True,
              "seek": "keyframe"})
    assert r["positions"] == [0.0]


def test_hevc_with_temporal_layers_drops_nothing(tmp_path, start):
    """With a temporal enhancement layer, an HEVC _N picture may be a
    reference of a higher layer: nothing is dropped, so the sheet decodes
    more than the single-layer clip's, and its tiles are still the frames
    the CLI decodes at their times."""
    n = 10
    got = {}
    for layers in (0, 1):
        video = make(tmp_path / f"tl{layers}.mp4", 6, "-c:v", "libx265",
                     "-preset", "ultrafast", "-x265-params",
                     f"log-level=none:keyint=250:temporal-layers={layers}",
                     "-pix_fmt", "yuv420p")
        w = start("--width", 64, "--format", "png")
        r = w.ok({"path": str(video), "count": n, "sheet": True,
                  "out": str(tmp_path / f"out{layers}")})
        got[layers] = r["frames_decoded"]
        for i, (pos, tile) in enumerate(zip(r["positions"], tiles(r, 4))):
            want = cli_frame(video, pos, r["width"], r["height"])
            assert psnr(tile, want) >= 30, (layers, i)
    assert got[1] > got[0] * 1.3, got
