"""Sprite sheets of long-GOP clips: the thumbnail worker against the ffmpeg
command line, both timed in the same run.

The clips are 1080p, 20 s at 25 fps, a keyframe every 10 s (x264's
default keyint of 250): H.264 with x264's usual B-frames, in MP4 and
copied into MPEG-TS (no index), and HEVC from x265, made once and kept in
build/bench-corpus. A 9-tile and a 40-tile sheet, 320 px tiles, accurate
seeking, as one item given to one worker process (start-up included),
against `ffmpeg -i clip -vf fps=N/20,scale=320:-1,tile=CxR -frames:v 1`
as people write it (its decoder's own threads), and the same with
`-threads 1` (one core, as the worker decodes). CPU time is user + system
of the process and its threads; wall time is the process's. Each round runs
all three back to back; the figures are medians of the rounds, and the
ratios are the peer's time over hopper's (above 1: hopper is faster).

The same sheets in keyframe mode (each tile the keyframe at or before its
spot, decoded alone) are timed too, against the same command lines: a
different picture per tile, so a figure of what the mode costs, not a
like-for-like race.

The floor: bench/decode_loop.c decoding, for the same tile positions, only
the frames some other frame refers to, from keyframe to tile, seeking only
where the next tile's keyframe lies past the last frame decoded; no
scaling, no image. Any exact sheet decodes at least that, so the CLI's
time over the floor's is the most an exact sheet could be faster by."""
import json
import math
import os
import resource
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FF = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
SECONDS = 20


# The encoders and their settings: x264's veryfast preset (B-frames in a
# pyramid, so a third of them are references) and x265's ultrafast (one
# temporal sub-layer), each with a keyframe every 10 s, and the H.264 one
# copied into MPEG-TS, which has no index: seeks land by bisection.
CLIPS = {
    "long_gop_1080p.mp4": ["-c:v", "libx264", "-preset", "veryfast",
                           "-g", "250"],
    "long_gop_1080p_hevc.mp4": ["-c:v", "libx265", "-preset", "ultrafast",
                                "-x265-params", "log-level=none:keyint=250"],
    "long_gop_1080p.ts": None,
}


def clip(name):
    base = os.path.join(ROOT, "build", "bench-corpus")
    os.makedirs(base, exist_ok=True)
    path = os.path.join(base, name)
    if not os.path.exists(path) and CLIPS[name] is None:
        mp4 = clip(name.replace(".ts", ".mp4"))
        subprocess.run(FF + ["-i", mp4, "-c", "copy", path + ".tmp.ts"],
                       check=True)
        os.rename(path + ".tmp.ts", path)
    if not os.path.exists(path):
        subprocess.run(FF + ["-f", "lavfi", "-i",
                             "testsrc2=size=1920x1080:rate=25", "-t",
                             str(SECONDS), *CLIPS[name], "-pix_fmt",
                             "yuv420p", path + ".tmp.mp4"], check=True)
        os.rename(path + ".tmp.mp4", path)
    return path


def timed(cmd, **kw):
    """Runs cmd; returns (cpu seconds, wall seconds, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + \
        (after.ru_stime - before.ru_stime)
    return cpu, wall, p.stdout


def hopper_sheet(thumb, video, n, out, seek="accurate"):
    item = json.dumps({"id": "1", "payload": {
        "path": video, "count": n, "sheet": True, "width": 320,
        "seek": seek}})
    cpu, wall, stdout = timed([thumb, "--out", out], input=item + "\n")
    answer = json.loads(stdout.strip().split("\n")[-1])
    assert answer["ok"], answer
    # Keyframe mode merges the spots that share a keyframe.
    assert seek != "accurate" or answer["result"]["count"] == n, answer
    return cpu, wall, answer["result"]["frames_decoded"], \
        answer["result"]["positions"]


def floor_sheet(decode, video, positions):
    """CPU seconds of bench/decode_loop.c's refs mode for tiles at
    positions: reference frames only, no scaling, no image; no exact
    sheet decodes less."""
    return timed([decode, "refs", ",".join(map(str, positions)),
                  video])[0]


def ffmpeg_sheet(video, n, out, threads=None):
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    cmd = FF + (["-threads", str(threads)] if threads else []) + [
        "-i", video, "-vf",
        f"fps={n}/{SECONDS},scale=320:-1,tile={cols}x{rows}",
        "-frames:v", "1", out]
    cpu, wall, _ = timed(cmd)
    assert os.path.getsize(out) > 0
    return cpu, wall


def run(hopper, build, rounds, tmp="/tmp"):
    thumb = os.path.join(build, "hopper-thumbnail")
    decode = os.path.join(build, "bench", "decode_loop")
    for name in CLIPS:
        run_clip(thumb, decode, clip(name), rounds, tmp)


def run_clip(thumb, decode, video, rounds, tmp):
    print(f"{os.path.basename(video)}:")
    out = os.path.join(tmp, "sheets-bench")
    os.makedirs(out, exist_ok=True)
    frames = SECONDS * 25
    for n in (9, 40):
        h, f, f1, hk, fl = [], [], [], [], []
        decoded = 0
        for _ in range(rounds):
            cpu, wall, decoded, spots = hopper_sheet(thumb, video, n, out)
            h.append((cpu, wall))
            fl.append(floor_sheet(decode, video, spots))
            hk.append(hopper_sheet(thumb, video, n, out, "keyframe")[:2])
            f.append(ffmpeg_sheet(video, n, os.path.join(out, "ff.jpg")))
            f1.append(ffmpeg_sheet(video, n, os.path.join(out, "ff1.jpg"),
                                   threads=1))

        def med(v, k):
            return statistics.median(x[k] for x in v)
        hc, hw = med(h, 0), med(h, 1)
        print(f"sheet of {n:>2}, accurate  hopper cpu {hc:5.2f} s wall "
              f"{hw:5.2f} s ({decoded} of {frames} frames decoded)")
        for name, v in (("ffmpeg CLI", f), ("ffmpeg CLI -threads 1", f1)):
            fc, fw = med(v, 0), med(v, 1)
            print(f"    {name:<22} cpu {fc:5.2f} s wall {fw:5.2f} s   "
                  f"hopper faster by: cpu {fc / hc:4.2f}x, wall "
                  f"{fw / hw:4.2f}x  (goal >= 2)")
        lc = statistics.median(fl)
        print(f"    the floor: reference frames only, cpu {lc:5.2f} s   "
              f"hopper / floor {hc / lc:4.2f}; at most: cpu "
              f"{med(f, 0) / lc:4.2f}x the CLI, {med(f1, 0) / lc:4.2f}x "
              f"-threads 1")
        kc, kw = med(hk, 0), med(hk, 1)
        fc, fw = med(f, 0), med(f, 1)
        print(f"sheet of {n:>2}, keyframe  hopper cpu {kc:5.2f} s wall "
              f"{kw:5.2f} s   against the ffmpeg CLI's accurate sheet: "
              f"cpu {fc / kc:4.2f}x, wall {fw / kw:4.2f}x")
