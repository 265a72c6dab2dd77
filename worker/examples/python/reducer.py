#!/usr/bin/env python3
"""A reducer worker in Python, stream mode: the reduce stage of a pipeline
hands it a batch of items and the accumulator so far, and it answers the
new accumulator (worker/PROTOCOL.md, "A reducer worker").

Its accumulator is {"count": N, "total": T, "max": M, "largest": ID} over
the items' "size" (a number) and "name". An item without a number "size"
is a permanent failure of the batch, saying which. It merges two
accumulators too ({"merge": [a, b]}), so the stage may say "merge": true
and run its batches side by side.
"""
import json
import sys


def fold(acc, items):
    acc = dict(acc) if acc else {"count": 0, "total": 0, "max": None,
                                 "largest": None}
    for x in items:
        size = x.get("size") if isinstance(x, dict) else None
        if isinstance(size, bool) or not isinstance(size, (int, float)):
            raise ValueError(f"item {json.dumps(x)[:60]} has no number "
                             f"\"size\"")
        acc["count"] += 1
        acc["total"] += size
        if acc["max"] is None or size > acc["max"]:
            acc["max"], acc["largest"] = size, x.get("name")
    return acc


def merge(a, b):
    if a is None or b is None:
        return a if b is None else b
    bigger = a if b["max"] is None or (a["max"] is not None and
                                       a["max"] >= b["max"]) else b
    return {"count": a["count"] + b["count"],
            "total": a["total"] + b["total"],
            "max": bigger["max"], "largest": bigger["largest"]}


for line in sys.stdin.buffer:
    item = json.loads(line)
    p = item.get("payload") or {}
    try:
        if "merge" in p:
            result = merge(*p["merge"])
        else:
            result = fold(p.get("acc"), p.get("items", []))
        answer = {"ok": True, "result": result}
    except (ValueError, TypeError, KeyError) as e:
        answer = {"ok": False, "error": str(e), "retry": False}
    print(json.dumps({"id": item["id"], **answer}), flush=True)
