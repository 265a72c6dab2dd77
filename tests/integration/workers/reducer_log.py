"""A reducer worker for tests: its accumulator is {"n": items, "sum": the
sum of their "size"}; it merges two as well. Each payload it gets is
appended to REDUCER_LOG, one JSON line, after REDUCER_SLEEP seconds."""
import json
import os
import sys
import time

log = os.environ.get("REDUCER_LOG")
nap = float(os.environ.get("REDUCER_SLEEP", "0"))

for line in sys.stdin:
    msg = json.loads(line)
    p = msg["payload"]
    if nap:
        time.sleep(nap)
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"id": msg["id"], "payload": p}) + "\n")
    if "merge" in p:
        a, b = p["merge"]
        acc = {"n": a["n"] + b["n"], "sum": a["sum"] + b["sum"]}
    else:
        acc = dict(p["acc"] or {"n": 0, "sum": 0})
        for x in p["items"]:
            acc["n"] += 1
            acc["sum"] += x["size"]
    sys.stdout.write(json.dumps({"id": msg["id"], "ok": True,
                                 "result": acc}) + "\n")
    sys.stdout.flush()
