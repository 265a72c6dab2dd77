"""The join stage's worker of the tagging pipeline: one video's tagged
frames in, the video's result out.

A stream-mode worker (worker/PROTOCOL.md) behind a join: its payload is
  {"id": ROOT_ID, "root": VIDEO_PATH, "parts": [TAGGED_FRAME...],
   "errors": [{"id", "stage", "error"}...]}
where each part is hopper-tag's answer for one frame frames.py picked. It
- picks the thumbnail: the frame with the most detail that is neither black
  nor flat (hopper-thumbnail's score), then the sharpest, and copies its
  JPEG to THUMBS/NAME.jpg;
- makes a sprite sheet and its WebVTT index with hopper-thumbnail, started
  once as this worker's own stream worker, into SHEETS/;
- sums the frames up into the video's tags: its dominant colour, how
  bright, sharp and busy it is, its cuts and its shape;
and answers all of that with the probe frames.py made. A video none of
whose frames could be tagged fails for good, quoting their errors.

usage: gather.py --thumbs DIR --sheets DIR --thumbnail-worker PATH [--tiles N]
"""
import argparse
import collections
import json
import os
import shutil
import subprocess
import sys


class Failed(Exception):
    def __init__(self, msg, retry=False):
        super().__init__(msg)
        self.retry = retry


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Sheets:
    """hopper-thumbnail as a stream worker of this one: one process for
    every video, restarted if it dies."""

    def __init__(self, cmd):
        self.cmd, self.proc, self.n = cmd, None, 0

    def make(self, item_id, payload):
        if not self.proc or self.proc.poll() is not None:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True)
        self.n += 1
        sid = f"sheet-{self.n}"
        self.proc.stdin.write(json.dumps({"id": sid, "attempt": 1,
                                          "payload": payload}) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            ans = json.loads(line)
            if "progress" in ans and "ok" not in ans:
                # Its progress is ours: it keeps the item's deadline away.
                out({"id": item_id, "progress": ans["progress"]})
                continue
            if ans.get("ok"):
                return ans["result"]
            raise Failed(f"sprite sheet: {ans.get('error', '?')}",
                         ans.get("retry", True))
        raise Failed(f"sprite sheet: {self.cmd[0]} exited", True)

    def close(self):
        """EOF to the thumbnail worker, which then exits; waits for it."""
        if self.proc:
            self.proc.stdin.close()
            self.proc.wait()


def best_frame(parts):
    """The part to show: most detail, then the sharpest."""
    return max(parts, key=lambda p: (p["tags"].get("detail", 0),
                                     p["tags"].get("sharpness", 0)))


def level(v, low, high, names):
    return names[0] if v < low else names[2] if v > high else names[1]


def summary_tags(parts, video):
    """The video's tags from its frames' measures."""
    colours = collections.Counter()
    for p in parts:
        for name, share in p["tags"].get("colours", {}).items():
            colours[name] += share
    n = len(parts)
    mean = {k: sum(p["tags"].get(k, 0) for p in parts) / n
            for k in ("brightness", "sharpness", "motion")}
    dominant = colours.most_common(1)[0][0] if colours else "?"
    tags = [dominant]
    tags += [c for c, share in colours.most_common(3)[1:]
             if share / n >= 0.2]
    tags.append(level(mean["brightness"], 0.25, 0.6,
                      ["dark", "mid-tone", "bright"]))
    tags.append(level(mean["sharpness"], 50, 5000,
                      ["flat", "detailed", "busy texture"]))
    tags.append(level(mean["motion"], 0.005, 0.08,
                      ["still", "moving", "fast motion"]))
    cuts = sum(1 for p in parts if p.get("scene"))
    if cuts:
        tags.append(f"{cuts} cut{'s' if cuts > 1 else ''}")
    tags.append(video.get("orientation", "?"))
    if video.get("sar", "1:1") not in ("1:1", "0:1"):
        tags.append("anamorphic")
    if video.get("rotation"):
        tags.append(f"rotated {video['rotation']}°")
    return dominant, tags, {k: round(v, 4) for k, v in mean.items()}


def copy_atomic(src, dst):
    tmp = os.path.join(os.path.dirname(dst), f".{os.path.basename(dst)}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def handle(item_id, payload, args, sheets):
    if not isinstance(payload, dict) or not isinstance(
            payload.get("parts"), list):
        raise Failed(f"item {item_id}: the payload is not a join's "
                     "{\"root\", \"parts\"} object")
    parts = [p for p in payload["parts"]
             if isinstance(p, dict) and isinstance(p.get("tags"), dict)]
    errors = payload.get("errors") or []
    if not parts:
        why = "; ".join(str(e.get("error", "?")) for e in errors) or \
            "no frame was tagged"
        raise Failed(f"item {item_id}: no frame could be tagged: {why}")
    parts.sort(key=lambda p: p.get("time", 0))
    first = parts[0]
    video, name = first.get("video", {}), first.get("name", item_id)
    path = payload.get("root") if isinstance(payload.get("root"), str) \
        else first["path"]
    stem = os.path.splitext(os.path.basename(name))[0]

    best = best_frame(parts)
    os.makedirs(args.thumbs, exist_ok=True)
    thumb = os.path.join(args.thumbs, stem + ".jpg")
    copy_atomic(best["frame"], thumb)
    sheet = sheets.make(item_id, {"path": path, "name": name, "sheet": True,
                                  "count": args.tiles, "width": 160,
                                  "out": args.sheets})
    files = sheet.get("files", [])
    dominant, tags, means = summary_tags(parts, video)
    return dict(video, **{
        "name": name, "thumbnail": thumb, "thumbnail_time": best["at"],
        "sheet": next((f for f in files if not f.endswith(".vtt")), None),
        "vtt": next((f for f in files if f.endswith(".vtt")), None),
        "tiles": sheet.get("count"), "tile_width": sheet.get("width"),
        "tile_height": sheet.get("height"),
        "colour": dominant, "tags": tags, "means": means,
        "frames": [{"time": p["at"], "image": p["frame"],
                    "scene": p.get("scene", False), **p["tags"]}
                   for p in parts],
        "errors": errors})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--thumbs", required=True)
    ap.add_argument("--sheets", required=True)
    ap.add_argument("--thumbnail-worker", required=True)
    ap.add_argument("--tiles", type=int, default=16)
    args = ap.parse_args()
    sheets = Sheets([args.thumbnail_worker, "--out", args.sheets])
    for line in sys.stdin:
        env = json.loads(line)
        try:
            res = handle(env["id"], env.get("payload"), args, sheets)
            out({"id": env["id"], "ok": True, "result": res})
        except Failed as e:
            print(e, file=sys.stderr, flush=True)
            out({"id": env["id"], "ok": False, "error": str(e),
                 "retry": e.retry})
        except (OSError, ValueError, KeyError) as e:
            print(f"item {env['id']}: {e!r}", file=sys.stderr, flush=True)
            out({"id": env["id"], "ok": False,
                 "error": f"item {env['id']}: {e}"})
    sheets.close()


if __name__ == "__main__":
    main()
