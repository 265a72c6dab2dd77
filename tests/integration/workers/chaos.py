"""A stream-mode worker for the chaos tests (test_chaos.py).

Each answer's result names the item and the run: {"id": ID, "run": PID of
the coordinator (the worker's parent), "pad": "xxx..."}, with CHAOS_PAD
bytes of padding (a range "LOW-HIGH" picks a size per item, the same for
every attempt), so that a reader can tell a whole result from a torn one.
A payload {"do": "perm"} fails for good; a payload that is the path of a
file (as the dir source gives it) stands for the JSON in that file.
CHAOS_SLEEP seconds pass before each answer. After an answer is written,
"ID COORDINATOR_PID" is appended to CHAOS_LEDGER in a single write, so
lines from many workers never interleave.
"""
import json
import os
import sys
import time
import zlib

pad = os.environ.get("CHAOS_PAD", "0")
low, _, high = pad.partition("-")
low, high = int(low), int(high or low)
nap = float(os.environ.get("CHAOS_SLEEP", "0"))
ledger = os.open(os.environ["CHAOS_LEDGER"],
                 os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
run = os.getppid()


def size(item):
    return low + zlib.crc32(item.encode()) % (high - low + 1)


for line in sys.stdin:
    msg = json.loads(line)
    item, payload = msg["id"], msg["payload"]
    if isinstance(payload, str) and os.path.isfile(payload):
        try:
            with open(payload) as f:
                payload = json.load(f)
        except (OSError, ValueError):
            pass
    if nap:
        time.sleep(nap)
    if isinstance(payload, dict) and payload.get("do") == "perm":
        answer = {"id": item, "ok": False, "error": "bad input",
                  "retry": False}
    else:
        answer = {"id": item, "ok": True,
                  "result": {"id": item, "run": run, "pad": "x" * size(item)}}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    os.write(ledger, f"{item} {run}\n".encode())
