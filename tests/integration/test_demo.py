"""make demo, as a person sees it, and as a crash leaves it.

The demo is pipelines/tagging.json over pipelines/demo_corpus.sh's clips:
frames picked per video, each tagged, joined back per video, the batch
reduced. Its contact page is opened in headless Chromium: every image
decodes and every chart is drawn. Then the coordinator is killed with
SIGKILL in the middle of the pipeline and run again: every video ends
with its joined result or in the dead letters, and the batch's counts are
those of a run left alone."""
import json
import os
import re
import shutil
import signal
import subprocess

import pytest

from conftest import BUILD, HOPPER, PY, ROOT, WORKERS, clean_env, wait_for

CHROMIUM = shutil.which("chromium")
DEAD = {"corrupt.mp4", "empty.mp4"}


def chromium(tmp, *args):
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         f"--user-data-dir={tmp / 'chrome'}", "--virtual-time-budget=5000",
         *args], capture_output=True, text=True, timeout=120)


def needs_built():
    for b in ("hopper-tag", "hopper-thumbnail"):
        if not (BUILD / b).exists():
            pytest.fail(f"{b} is not built: run make workers")


def test_demo_contact_page_shows_every_video_and_chart(tmp):
    needs_built()
    assert CHROMIUM, "chromium is missing: tests/deps.sh installs it"
    out = tmp / "demo"
    env = dict(os.environ, HOPPER=HOPPER, HOPPER_BUILD=str(BUILD),
               DEMO_OUT=str(out))
    p = subprocess.run(["bash", "pipelines/demo.sh"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    videos = [n for n in os.listdir(out / "videos" / "done")]
    results = {f[:-5]: json.loads((out / "results" / f).read_text())
               for f in os.listdir(out / "results")}
    assert sorted(results) == sorted(videos) and len(videos) >= 10, videos
    assert DEAD <= set(os.listdir(out / "videos" / "failed"))
    assert "corrupt.mp4" in p.stdout and "empty file (0 bytes)" in p.stdout
    for r in results.values():
        assert len(r["frames"]) >= 3 and os.path.exists(r["thumbnail"])
        assert os.path.exists(r["sheet"]) and os.path.exists(r["vtt"])

    page = (out / "index.html").as_uri()
    dom = chromium(tmp, "--dump-dom", page + "#selftest").stdout
    m = re.search(r'data-images="(\d+)/(\d+)"', dom)
    assert m, dom[:2000]
    frames = sum(len(r["frames"]) for r in results.values())
    assert m[1] == m[2] and int(m[2]) == 2 * len(results) + frames, m[0]
    m = re.search(r'data-charts="(\d+)/(\d+)"', dom)
    assert m and m[1] == m[2] == "5", m and m[0]
    # Hovering each thumbnail shows a tile of its sheet, found by its VTT.
    m = re.search(r'data-scrub="(\d+)/(\d+)"', dom)
    assert m and m[1] == m[2] and int(m[2]) == len(results), m and m[0]
    for name in results:
        assert f"<b>{name}</b>" in dom
    assert "240x320 (stored 320x240, turned 90°)" in dom
    dead = dom[dom.index("Dead items"):]
    assert "videos/failed/corrupt.mp4" in dead
    assert "videos/failed/empty.mp4" in dead

    # The screenshot the README shows (HOPPER_DEMO_SCREENSHOT=docs/demo.png
    # writes it there).
    shot = tmp / "demo.png"
    chromium(tmp, "--window-size=1280,1500", f"--screenshot={shot}",
             (out / "index.html").as_uri())
    assert shot.stat().st_size > 50_000
    if os.environ.get("HOPPER_DEMO_SCREENSHOT"):
        shutil.copy(shot, ROOT / os.environ["HOPPER_DEMO_SCREENSHOT"])


def pipeline_env(out):
    # The reduces' jsonl sinks write into batch/, which must exist.
    (out / "batch").mkdir(exist_ok=True)
    return clean_env(VIDEOS=out / "videos", OUT=out, PYTHON=PY,
                     TAG_WORKER=BUILD / "hopper-tag",
                     THUMBNAIL_WORKER=BUILD / "hopper-thumbnail")


def batch_counts(out):
    """Each reduce's results, in a form two runs can be compared by."""
    counts = {}
    for f in sorted(os.listdir(out / "batch")):
        with open(out / "batch" / f) as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        counts[f] = sorted(json.dumps(r.get("result", r), sort_keys=True)
                           for r in rows)
    return counts


def outcome(out, corpus):
    """Each video of the corpus: its joined result's tags, or its dead
    letter's error. Fails if a video has neither or both."""
    seen = {}
    for name in os.listdir(corpus):
        res = out / "results" / f"{name}.json"
        err = out / "videos" / "failed" / f"{name}.error.json"
        assert res.exists() != err.exists(), name
        seen[name] = (json.loads(res.read_text())["tags"] if res.exists()
                      else json.loads(err.read_text())["error"].replace(
                          str(out), "OUT"))
    return seen


def test_demo_pipeline_survives_sigkill(tmp):
    needs_built()
    corpus = tmp / "corpus"
    subprocess.run(["bash", "pipelines/demo_corpus.sh", str(corpus)],
                   cwd=ROOT, check=True, timeout=120)
    n = len(os.listdir(corpus))

    # Left alone.
    calm = tmp / "calm"
    shutil.copytree(corpus, calm / "videos")
    p = subprocess.run([HOPPER, "run", "-f", "pipelines/tagging.json"],
                       cwd=ROOT, env=pipeline_env(calm), capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 3, p.stderr[-3000:]

    # Killed once three videos are joined and written, the rest held at
    # the join's worker by a gate, then run again without the gate.
    hit = tmp / "hit"
    shutil.copytree(corpus, hit / "videos")
    spec = json.loads((ROOT / "pipelines/tagging.json").read_text())
    gather = spec["stages"]["gather"]
    gather["command"] = [PY, str(WORKERS / "gated_stream.py"),
                         *gather["command"]]
    gather["workers"] = 1
    gated = tmp / "gated.json"
    gated.write_text(json.dumps(spec))
    env = pipeline_env(hit)
    env.update(GATE=str(tmp / "never"), GATE_AFTER="3")
    with open(tmp / "first.err", "w") as err:
        first = subprocess.Popen([HOPPER, "run", "-f", str(gated)], cwd=ROOT,
                                 env=env, stdout=subprocess.DEVNULL,
                                 stderr=err)
        try:
            wait_for(lambda: (hit / "results").is_dir() and
                     len(os.listdir(hit / "results")) >= 3, timeout=300,
                     what="three joined results")
            assert first.poll() is None, "the run ended before the kill"
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=60)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
    assert len(os.listdir(hit / "results")) < n - len(DEAD)

    p = subprocess.run([HOPPER, "run", "-f", "pipelines/tagging.json"],
                       cwd=ROOT, env=pipeline_env(hit), capture_output=True,
                       text=True, timeout=600)
    # 3 when the broken files were left for this run to dead-letter, 0 when
    # the first run did it before the kill.
    assert p.returncode in (0, 3), p.stderr[-3000:]
    assert outcome(hit, corpus) == outcome(calm, corpus)
    assert {k for k, v in outcome(hit, corpus).items()
            if isinstance(v, str)} == DEAD
    calm_counts, hit_counts = batch_counts(calm), batch_counts(hit)
    assert len(calm_counts) == 6 and all(calm_counts.values()), calm_counts
    assert hit_counts == calm_counts
