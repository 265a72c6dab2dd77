"""The tagging demo's workers on their own, chained by hand as the
pipeline chains them (pipelines/tagging.json): frames.py splits each
video of the demo corpus into frames, hopper-tag tags each frame, the
frames are grouped by video as the join groups them, gather.py makes each
video's result, and the batch's counts are made as the reduces make them.
Then the contact page over that folder, in headless Chromium."""
import collections
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import BUILD, ROOT

PY = sys.executable
CHROMIUM = shutil.which("chromium")


def stream(cmd, envelopes):
    """Runs a stream worker over envelopes; its answer lines, parsed."""
    text = "".join(json.dumps(e) + "\n" for e in envelopes)
    p = subprocess.run(cmd, input=text, capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def by_hand(corpus, out):
    """The pipeline's stages run one after another over corpus, into the
    demo folder layout out/ that contact_page.py reads."""
    failed = out / "videos" / "failed"
    failed.mkdir(parents=True)
    names = sorted(os.listdir(corpus))
    answers = stream([PY, "pipelines/tagging/frames.py"],
                     [{"id": n, "attempt": 1, "payload": str(corpus / n)}
                      for n in names])
    frames = collections.defaultdict(list)
    for a in answers:
        if "emit" in a:
            frames[a["id"]].append(a["emit"])
        elif not a["ok"]:
            # The dir source's dead letter: the file and NAME.error.json.
            shutil.copy(corpus / a["id"], failed / a["id"])
            (failed / f"{a['id']}.error.json").write_text(
                json.dumps({"error": a["error"], "attempts": 1}))
    tagged = stream([str(BUILD / "hopper-tag"), "--out", str(out / "frames")],
                    [{"id": f"{n}/{i}", "attempt": 1, "payload": e}
                     for n, es in frames.items() for i, e in enumerate(es)])
    parts = collections.defaultdict(list)
    for a in tagged:
        assert a["ok"], a
        parts[a["id"].split("/")[0]].append(a["result"])
    joined = stream(
        [PY, "pipelines/tagging/gather.py", "--thumbs", str(out / "thumbs"),
         "--sheets", str(out / "sheets"), "--thumbnail-worker",
         str(BUILD / "hopper-thumbnail")],
        [{"id": n, "attempt": 1,
          "payload": {"id": n, "root": str(corpus / n), "parts": ps,
                      "errors": []}} for n, ps in parts.items()])
    results = {}
    (out / "results").mkdir()
    for a in joined:
        if "progress" in a:
            continue
        assert a["ok"], a
        results[a["id"]] = a["result"]
        (out / "results" / f"{a['id']}.json").write_text(
            json.dumps(a["result"]))
    # The reduces, as the jsonl sink writes their results.
    batch = out / "batch"
    batch.mkdir()

    def write(name, rows):
        with open(batch / f"{name}.jsonl", "w") as fh:
            for i, r in enumerate(rows):
                fh.write(json.dumps({"id": str(i), "ok": True,
                                     "result": r}) + "\n")

    # In the form the reduces give: a histogram of values, counts by key,
    # a histogram over bucket edges (a count below the first edge, one per
    # bucket, one from the last edge on).
    fcol = collections.Counter(p["tags"]["colour"]
                               for ps in parts.values() for p in ps)
    vcol = collections.Counter(r["colour"] for r in results.values())
    write("frame_colours", [{"op": "histogram", "field": "/tags/colour",
                             "count": sum(fcol.values()),
                             "counts": dict(fcol)}])
    write("colours", [{"op": "histogram", "field": "/colour",
                       "count": len(results), "counts": dict(vcol)}])
    for name, field in (("codecs", "codec"), ("sizes", "display")):
        c = collections.Counter(r[field] for r in results.values())
        write(name, [{"key": k, "op": "count", "count": v, "value": v}
                     for k, v in sorted(c.items())])
    edges = [0, 1, 2, 3, 4, 5]
    counts = [0] * (len(edges) + 1)
    for r in results.values():
        counts[sum(1 for e in edges if r["duration"] >= e)] += 1
    write("durations", [{"op": "histogram", "field": "/duration",
                         "count": len(results), "buckets": edges,
                         "counts": counts}])
    return answers, tagged, results


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    for b in ("hopper-tag", "hopper-thumbnail"):
        if not (BUILD / b).exists():
            pytest.fail(f"{b} is not built: run make workers")
    base = tmp_path_factory.mktemp("tagging")
    corpus = base / "corpus"
    subprocess.run(["bash", "pipelines/demo_corpus.sh", str(corpus)],
                   cwd=ROOT, check=True, timeout=120)
    out = base / "demo"
    answers, tagged, results = by_hand(corpus, out)
    return corpus, out, answers, tagged, results


def test_splitter_picks_cuts_and_dead_letters_non_videos(demo):
    corpus, out, answers, _, _ = demo
    final = {a["id"]: a for a in answers if "ok" in a}
    assert final["empty.mp4"]["retry"] is False
    assert "empty file (0 bytes)" in final["empty.mp4"]["error"]
    assert "not a readable media file" in final["corrupt.mp4"]["error"]
    # The three scenes' two cuts (1.2 s and 2.4 s) and the bars' one (1.5 s).
    assert final["three_scenes.mkv"]["result"]["scenes"] == [1.2, 2.4]
    assert [round(t) for t in final["bars_to_pattern.avi"]["result"]
            ["scenes"]] == [2]
    emits = [a for a in answers if "emit" in a]
    after_cut = [e["emit"]["time"] for e in emits
                 if e["id"] == "three_scenes.mkv" and e["emit"]["scene"]]
    assert len(after_cut) == 2 and 1.2 < after_cut[0] < 2.4 < after_cut[1]
    for n in os.listdir(corpus):
        if n not in ("corrupt.mp4", "empty.mp4"):
            k = sum(1 for e in emits if e["id"] == n)
            assert 3 <= k <= 6, (n, k)


def test_display_size_container_and_codec_are_readable(demo):
    results = demo[4]
    assert results["portrait.mp4"]["display"] == "240x320"
    assert results["rotated_phone.mp4"]["display"] == "240x320"
    assert results["rotated_phone.mp4"]["coded"] == "320x240"
    assert results["anamorphic.mp4"]["display"] == "427x240"
    assert results["life.webm"]["container"] == "WebM"
    assert results["cellauto.mkv"]["container"] == "Matroska"
    assert results["bars_to_pattern.avi"]["container"] == "AVI"
    assert results["mandelbrot.mp4"]["codec"] == "H.264"
    assert results["cellauto.mkv"]["codec"] == "HEVC"


def test_tags_measure_what_the_clips_show(demo):
    _, _, _, tagged, results = demo
    frames = {(a["id"].split("/")[0], a["result"]["time"]): a["result"]
              for a in tagged}
    sky = [f for (n, t), f in frames.items()
           if n == "three_scenes.mkv" and t < 1.2]
    sunset = [f for (n, t), f in frames.items()
              if n == "three_scenes.mkv" and 1.2 < t < 2.4]
    night = [f for (n, t), f in frames.items()
             if n == "three_scenes.mkv" and t > 2.4]
    assert sky and all(f["tags"]["colour"] == "blue" for f in sky)
    assert sunset and all(f["tags"]["colour"] in ("orange", "red")
                          for f in sunset)
    assert night and all(f["tags"]["colour"] == "black" and
                         f["tags"]["brightness"] < 0.1 for f in night)
    # A flat colour has no edges and no motion; static has both.
    assert all(f["tags"]["sharpness"] < 1 for f in sky + night)
    noise = [f for (n, _), f in frames.items() if n == "static.mp4"]
    assert all(f["tags"]["sharpness"] > 1000 and f["tags"]["motion"] > 0.05
               for f in noise)
    assert results["life.webm"]["colour"] == "black"
    assert "green" in results["life.webm"]["tags"]
    assert results["moving_text.mkv"]["colour"] == "green"
    # The corpus looks varied: several dominant colours over its videos.
    assert len({r["colour"] for r in results.values()}) >= 5


def test_joined_result_has_thumbnail_sheet_and_vtt(demo):
    results = demo[4]
    assert len(results) == len(os.listdir(demo[0])) - 2
    for name, r in results.items():
        assert os.path.getsize(r["thumbnail"]) > 0, name
        assert os.path.getsize(r["sheet"]) > 0, name
        vtt = open(r["vtt"]).read()
        assert vtt.startswith("WEBVTT"), name
        cues = re.findall(r"#xywh=(\d+),(\d+),(\d+),(\d+)", vtt)
        assert len(cues) == r["tiles"] and r["tiles"] >= 8, name
        # The thumbnail is one of the video's tagged frames.
        assert r["thumbnail_time"] in [f["time"] for f in r["frames"]]


def test_contact_page_in_chromium(demo, tmp_path):
    assert CHROMIUM, "chromium is missing: tests/deps.sh installs it"
    out = demo[1]
    p = subprocess.run([PY, "pipelines/contact_page.py", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chrome'}", "--virtual-time-budget=5000",
         "--dump-dom", (out / "index.html").as_uri() + "#selftest"],
        capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'data-images="(\d+)/(\d+)"', dom)
    assert m, dom[:2000]
    n = len(demo[4])
    # Per video: its thumbnail, its sheet and each of its frames.
    frames = sum(len(r["frames"]) for r in demo[4].values())
    assert m[1] == m[2] and int(m[2]) == 2 * n + frames, m[0]
    m = re.search(r'data-charts="(\d+)/(\d+)"', dom)
    assert m and m[1] == m[2] == "5", m and m[0]
    # Hovering each thumbnail shows a tile of its sheet, found by its VTT.
    m = re.search(r'data-scrub="(\d+)/(\d+)"', dom)
    assert m and m[1] == m[2] and int(m[2]) == n, m and m[0]
    assert "427x240" in dom and "(stored 240x240, pixels 16:9)" in dom
    assert "WebM" in dom and "Matroska" in dom
    dead = dom[dom.index("Dead items"):]
    assert "videos/failed/corrupt.mp4" in dead
    assert "empty file (0 bytes)" in dead


def test_tagger_refuses_bad_input_and_goes_on(demo, tmp_path):
    """Each bad payload fails for good with an error naming the item or
    the file; the same process then tags a good frame."""
    corpus = demo[0]
    good = {"path": str(corpus / "mandelbrot.mp4"), "time": 1.0}
    cases = [
        ("a", "just a string", 'item a: the payload must be an object'),
        ("b", {"path": str(corpus / "mandelbrot.mp4")}, 'number "time"'),
        ("c", {"path": str(corpus / "mandelbrot.mp4"), "time": -1},
         "item c: time -1 is not a time in the video"),
        ("d", {"path": str(tmp_path / "missing.mp4"), "time": 0},
         f"{tmp_path / 'missing.mp4'}: No such file or directory"),
        ("e", {"path": str(corpus / "empty.mp4"), "time": 0},
         "empty file (0 bytes)"),
        ("f", {"path": str(corpus / "corrupt.mp4"), "time": 0},
         "not a readable media file"),
    ]
    answers = stream([str(BUILD / "hopper-tag"), "--out", str(tmp_path)],
                     [{"id": i, "attempt": 1, "payload": p}
                      for i, p, _ in cases] +
                     [{"id": "ok", "attempt": 1, "payload": good}])
    assert [a["id"] for a in answers] == [i for i, _, _ in cases] + ["ok"]
    for a, (_, _, words) in zip(answers, cases):
        assert a["ok"] is False and a["retry"] is False, a
        assert words in a["error"], a
    ok = answers[-1]
    assert ok["ok"] and ok["result"]["tags"]["colour"] == "pink"
    # Past the end: the last frame, at its own time.
    late = stream([str(BUILD / "hopper-tag"), "--out", str(tmp_path)],
                  [{"id": "late", "attempt": 1,
                    "payload": dict(good, time=60)}])[0]
    assert late["ok"] and 2.8 < late["result"]["at"] < 3.0, late


def test_gather_keeps_a_video_with_dead_frames_and_fails_one_with_none(
        demo, tmp_path):
    """on_part_dead collect: the join hands on the frames that were tagged
    and the errors of those that were not; the video's result keeps both.
    A video none of whose frames was tagged fails for good, quoting why."""
    _, _, _, tagged, _ = demo
    parts = [a["result"] for a in tagged
             if a["id"].startswith("life.webm/")]
    dead = [{"id": "life.webm/9", "stage": "tag",
             "error": "life.webm: cannot seek or read: I/O error"}]
    cmd = [PY, "pipelines/tagging/gather.py", "--thumbs",
           str(tmp_path / "thumbs"), "--sheets", str(tmp_path / "sheets"),
           "--thumbnail-worker", str(BUILD / "hopper-thumbnail")]
    root = parts[0]["path"]
    answers = [a for a in stream(cmd, [
        {"id": "life.webm", "attempt": 1, "payload": {
            "id": "life.webm", "root": root, "parts": parts[1:],
            "errors": dead}},
        {"id": "none", "attempt": 1, "payload": {
            "id": "none", "root": root, "parts": [], "errors": dead}},
    ]) if "ok" in a]
    kept, none = answers
    assert kept["ok"] and kept["result"]["errors"] == dead
    assert len(kept["result"]["frames"]) == len(parts) - 1
    assert none["ok"] is False and none["retry"] is False
    assert "no frame could be tagged: life.webm: cannot seek" in none["error"]
