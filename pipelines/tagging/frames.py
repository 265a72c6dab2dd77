"""The splitter of the tagging pipeline: probes a video and picks the
frames worth describing, one output per frame.

A stream-mode worker (worker/PROTOCOL.md). For each video it
- probes it with ffprobe: codec, container, stored size, sample aspect,
  rotation, display size and duration, in readable names;
- finds its scene changes with FFmpeg's scene score (one decoding pass at
  a small size), and adds evenly spread times so that a clip without a cut
  still gets a few frames;
- emits one {"path", "name", "time", "index", "scene", "video"} per frame,
  then answers {"frames": N, "scenes": [...]}.

A file that is not a video is a permanent failure naming the file and the
reason, so that its item is dead-lettered at once.

usage: frames.py [--max N] [--threshold S]
"""
import argparse
import json
import os
import subprocess
import sys

# Readable names for what ffprobe calls codecs and containers.
CODECS = {"h264": "H.264", "hevc": "HEVC", "vp9": "VP9", "vp8": "VP8",
          "av1": "AV1", "mpeg4": "MPEG-4 Part 2", "mpeg2video": "MPEG-2",
          "mjpeg": "Motion JPEG", "prores": "ProRes"}
CONTAINERS = {"mov,mp4,m4a,3gp,3g2,mj2": "MP4", "avi": "AVI",
              "mpegts": "MPEG-TS", "flv": "FLV", "ogg": "Ogg"}

MIN_GAP = 0.4        # seconds between two picked frames at least
SCENE_SETTLE = 0.25  # a frame this long after a cut shows the new scene


class NotAVideo(Exception):
    """The file can never be handled: the item is dead at once."""


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True,
                          errors="replace", stdin=subprocess.DEVNULL,
                          timeout=60)


def container_name(fmt, path):
    """MP4, WebM, Matroska, AVI... from ffprobe's format and the name."""
    name = fmt.get("format_name", "")
    if name == "matroska,webm":
        return "WebM" if path.lower().endswith(".webm") else "Matroska"
    if name == "mov,mp4,m4a,3gp,3g2,mj2" and path.lower().endswith(".mov"):
        return "QuickTime"
    return CONTAINERS.get(name, fmt.get("format_long_name") or name or "?")


def rotation(stream):
    for sd in stream.get("side_data_list", []):
        if "rotation" in sd:
            return int(round(float(sd["rotation"]))) % 360
    return int(stream.get("tags", {}).get("rotate", 0)) % 360


def probe(path):
    """What a person wants to know of the video at path, or NotAVideo."""
    if os.path.getsize(path) == 0:
        raise NotAVideo(f"{path}: empty file (0 bytes)")
    p = run(["ffprobe", "-v", "error", "-print_format", "json",
             "-show_format", "-show_streams", "-select_streams", "v:0",
             "file:" + path])
    if p.returncode != 0:
        why = p.stderr.strip().splitlines()
        why = why[-1].split(": ", 1)[-1] if why else f"status {p.returncode}"
        raise NotAVideo(f"{path}: not a readable media file ({why})")
    info = json.loads(p.stdout)
    streams = info.get("streams", [])
    if not streams:
        raise NotAVideo(f"{path}: no video stream")
    st, fmt = streams[0], info.get("format", {})
    w, h = int(st.get("width", 0)), int(st.get("height", 0))
    if not w or not h:
        raise NotAVideo(f"{path}: a video stream without a size")
    num, _, den = (st.get("sample_aspect_ratio") or "1:1").partition(":")
    sar = int(num) / int(den) if num.isdigit() and den.isdigit() \
        and int(num) and int(den) else 1.0
    rot = rotation(st)
    dw, dh = round(w * sar), h
    if rot in (90, 270):
        dw, dh = dh, dw
    duration = float(fmt.get("duration") or st.get("duration") or 0)
    codec = st.get("codec_name", "?")
    return {"codec": CODECS.get(codec, codec.upper()), "codec_id": codec,
            "container": container_name(fmt, path),
            "container_long": fmt.get("format_long_name", "?"),
            "coded": f"{w}x{h}", "sar": f"{num}:{den}" if den else "1:1",
            "rotation": rot, "display": f"{dw}x{dh}",
            "display_width": dw, "display_height": dh,
            "orientation": "portrait" if dh > dw else "landscape",
            "duration": round(duration, 3)}


def scene_changes(path, threshold):
    """Times (s) of the frames whose scene score passes threshold."""
    p = run(["ffmpeg", "-nostdin", "-v", "error", "-i", "file:" + path,
             "-an", "-sn", "-dn", "-vf",
             f"scale=160:-2,select='gt(scene,{threshold})',"
             "metadata=print:file=-", "-f", "null", "-"])
    times = []
    for line in p.stdout.splitlines():
        for field in line.split():
            if field.startswith("pts_time:"):
                times.append(float(field[9:]))
    return times


def pick(duration, scenes, most):
    """The times to describe: just after each cut first, then spread
    ones, never two closer than MIN_GAP, at most `most`, in order."""
    end = max(duration - 0.05, 0)
    wanted = [(min(t + SCENE_SETTLE, end), True) for t in scenes]
    wanted += [(round(duration * f, 3), False) for f in (0.1, 0.37, 0.63, 0.9)]
    kept = []
    for t, scene in wanted:
        if len(kept) < most and all(abs(t - k) >= MIN_GAP for k, _ in kept):
            kept.append((t, scene))
    return sorted(kept) or [(0.0, False)]


def handle(env, args):
    payload = env.get("payload")
    if isinstance(payload, dict):
        path, name = payload.get("path"), payload.get("name")
    else:
        path, name = payload, None
    if not isinstance(path, str):
        raise NotAVideo(f"item {env['id']}: the payload must be a path, "
                        "or an object with a string \"path\"")
    name = name or os.path.basename(path)
    if not os.path.isfile(path):
        raise NotAVideo(f"{path}: no such file")
    video = probe(path)
    scenes = scene_changes(path, args.threshold)
    picked = pick(video["duration"], scenes, args.max)
    for i, (t, scene) in enumerate(picked):
        out({"id": env["id"], "emit": {
            "path": path, "name": name, "time": round(t, 3), "index": i,
            "scene": scene, "video": video}})
    return {"frames": len(picked), "scenes": [round(t, 3) for t in scenes]}


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max", type=int, default=6,
                    help="frames per video at most (6)")
    ap.add_argument("--threshold", type=float, default=0.15,
                    help="FFmpeg scene score that counts as a cut (0.15)")
    args = ap.parse_args()
    for line in sys.stdin:
        env = json.loads(line)
        try:
            out({"id": env["id"], "ok": True, "result": handle(env, args)})
        except NotAVideo as e:
            print(e, file=sys.stderr, flush=True)
            out({"id": env["id"], "ok": False, "error": str(e),
                 "retry": False})
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            print(f"item {env['id']}: {e}", file=sys.stderr, flush=True)
            out({"id": env["id"], "ok": False, "error": str(e)})


if __name__ == "__main__":
    main()
