#!/usr/bin/env python3
"""announce.py: the ingest pipeline's worker (stream mode).

For each new video that the dir source hands over ({"path", "name"}, the
path in the source's processing/ folder), it links the file into VIDEOS
(/data/videos by default) under its own name and answers
{"path": VIDEOS/NAME, "name": NAME}, which the kafka sink
publishes as the event (pipelines/ingest.json), or which goes on to the
frames stage of pipelines/tagging_staged.json. VIDEOS is `--videos DIR`,
else the environment's VIDEOS. The link is made before the answer, so the file is
in place before any consumer can read the event, whatever the dir source
does with its own copy afterwards.
"""
import argparse
import json
import os
import sys

VIDEOS = os.environ.get("VIDEOS", "/data/videos")


def announce(payload):
    if isinstance(payload, str):
        payload = {"path": payload, "name": os.path.basename(payload)}
    src, name = payload["path"], payload.get("name") or os.path.basename(payload["path"])
    os.makedirs(VIDEOS, exist_ok=True)
    dst = os.path.join(VIDEOS, name)
    tmp = os.path.join(VIDEOS, ".%s.%d" % (name, os.getpid()))
    try:
        os.link(src, tmp)
    except OSError:  # another filesystem: copy instead
        with open(src, "rb") as i, open(tmp, "wb") as o:
            while chunk := i.read(1 << 20):
                o.write(chunk)
            o.flush()
            os.fsync(o.fileno())
    os.replace(tmp, dst)
    return {"path": dst, "name": name}


def main():
    global VIDEOS
    ap = argparse.ArgumentParser(description="link each new video into VIDEOS and announce it")
    ap.add_argument("--videos", default=VIDEOS, help="the shared videos folder (%(default)s)")
    VIDEOS = ap.parse_args().videos
    for line in sys.stdin:
        item = json.loads(line)
        try:
            out = {"id": item["id"], "ok": True, "result": announce(item.get("payload"))}
        except FileNotFoundError as e:
            out = {"id": item["id"], "ok": False, "error": str(e), "retry": False}
        except (OSError, KeyError, TypeError) as e:
            out = {"id": item["id"], "ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
