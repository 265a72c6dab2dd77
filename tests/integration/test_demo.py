"""make demo, as a person sees it: the contact page opened in headless
Chromium, every thumbnail decoded, the broken files listed as dead."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, HOPPER, ROOT

CHROMIUM = shutil.which("chromium")


def test_demo_contact_page_loads_every_thumbnail(tmp):
    if not (BUILD / "hopper-thumbnail").exists():
        pytest.fail("hopper-thumbnail is not built: run make workers")
    assert CHROMIUM, "chromium is missing: tests/deps.sh installs it"
    out = tmp / "demo"
    env = dict(os.environ, HOPPER=HOPPER, HOPPER_BUILD=str(BUILD),
               DEMO_OUT=str(out))
    p = subprocess.run(["bash", "pipelines/demo.sh"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"finished: 9 done, 2 dead", p.stdout), p.stdout
    assert "corrupt.mp4" in p.stdout and "empty.mp4" in p.stdout

    page = out / "index.html"
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp / 'chrome'}", "--virtual-time-budget=5000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'data-images="(\d+)/(\d+)"', dom)
    assert m, dom[:2000]
    assert m[1] == m[2] and int(m[2]) == 9, m[0]
    for name in ("h264.mp4", "vp9.webm", "hevc10.mkv", "mpeg4.avi",
                 "rotated.mp4"):
        assert f"<b>{name}</b>" in dom
    dead = dom[dom.index("Dead items"):]
    assert "corrupt.mp4" in dead and "empty.mp4" in dead
