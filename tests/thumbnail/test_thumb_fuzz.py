"""Mutated videos (seeded byte flips, truncations, zeroed and repeated
chunks) fed to one worker process: every item gets an answer, and the worker
neither crashes nor reports a sanitizer error. With HOPPER_BUILD pointing at
build/san this runs under ASan and UBSan."""
import os
import random
import time

from thumbutil import corpus  # noqa: F401 (fixtures)
from thumbutil import Worker, sanitized

# A longer run: HOPPER_FUZZ_CASES=5000 HOPPER_FUZZ_SECONDS=600 (and another
# HOPPER_FUZZ_SEED) with the same test.
SEED = int(os.environ.get("HOPPER_FUZZ_SEED", 20261123))
CASES = int(os.environ.get("HOPPER_FUZZ_CASES", 200))
# Seconds of feeding; cases past it are skipped, not failed.
BUDGET = float(os.environ.get("HOPPER_FUZZ_SECONDS", 30))
SOURCES = ["h264.mp4", "vp9.webm", "hevc10.mkv", "mpeg4.avi",
           "interlaced.mp4", "rotated.mp4", "sar.mp4", "bframes.ts",
           "vfr.mkv", "odd.webm"]


def mutate(rng, data):
    data = bytearray(data)
    kind = rng.choice(["flip", "header", "truncate", "zero", "repeat",
                       "mixed"])
    if kind in ("flip", "mixed"):
        for _ in range(rng.randint(1, 64)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    if kind == "header":
        for _ in range(rng.randint(1, 16)):
            i = rng.randrange(min(len(data), 4096))
            data[i] = rng.randrange(256)
    if kind in ("zero", "mixed"):
        a = rng.randrange(len(data))
        n = rng.randint(1, 8192)
        data[a:a + n] = bytes(len(data[a:a + n]))
    if kind == "repeat":
        a = rng.randrange(len(data))
        data[a:a] = data[a:a + rng.randint(1, 4096)]
    if kind in ("truncate", "mixed"):
        del data[rng.randint(1, len(data)):]
    return kind, bytes(data)


def payload(rng, path):
    p = {"path": path}
    p["seek"] = rng.choice(["accurate", "keyframe"])
    p["position"] = rng.choice(["auto", "50%", 0, 1.3, 99, "100%"])
    p["format"] = rng.choice(["jpeg", "png", "webp"])
    p["width"] = rng.choice([32, 64, 97])
    if rng.random() < 0.3:
        p["count"] = rng.randint(2, 4)
        p["sheet"] = rng.random() < 0.5
    return p


def test_fuzz(corpus, tmp_path):
    rng = random.Random(SEED)
    originals = {n: (corpus / n).read_bytes() for n in SOURCES}
    cases = tmp_path / "cases"
    cases.mkdir()
    w = Worker("--out", tmp_path / "out", "--timeout", 20,
               errdir=tmp_path)
    start = time.monotonic()
    done = oks = 0
    for i in range(CASES):
        if time.monotonic() - start > BUDGET:
            break
        src = rng.choice(SOURCES)
        kind, data = mutate(rng, originals[src])
        path = cases / f"case{i:03d}-{kind}-{src}"
        path.write_bytes(data)
        msg, progress = w.call(payload(rng, str(path)),
                               timeout=60 if sanitized() else 30)
        assert all(0 < p < 1 for p in progress)
        if msg["ok"]:
            oks += 1
            for f in msg["result"]["files"]:
                assert os.path.getsize(f) > 0, (path, msg)
        else:
            assert msg["error"].startswith(str(path) + ": "), msg
            assert msg["retry"] is False, msg
        done += 1
    # The worker is still the same process, alive and answering.
    assert w.proc.poll() is None
    w.ok(str(corpus / "h264.mp4"))
    w.close()
    assert done >= min(CASES, 25 if sanitized() else 100), done
    print(f"fuzz: {done} cases, {oks} ok, {done - oks} failed cleanly, "
          f"{time.monotonic() - start:.1f} s")
