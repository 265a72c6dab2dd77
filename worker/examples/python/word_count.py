#!/usr/bin/env python3
"""A hopper worker in Python, stream mode: one JSON line in, one JSON line out.

The payload is a string (count its words), {"text": "..."} (count those) or
{"path": "..."} (count the words in that file); the result is {"words": N}.
Anything else is a permanent failure. Words are runs of anything but ASCII
whitespace, as in every example.
"""
import json
import re
import sys

WORD = re.compile(r"[^ \t\n\v\f\r]+")


def word_count(payload):
    obj = payload if isinstance(payload, dict) else {}
    if isinstance(payload, str):
        return len(WORD.findall(payload))
    if isinstance(obj.get("text"), str):
        return len(WORD.findall(obj["text"]))
    if isinstance(obj.get("path"), str):
        with open(obj["path"], encoding="utf-8", errors="replace") as f:
            return len(WORD.findall(f.read()))
    raise ValueError('payload must be a string, or an object with a "text" '
                     'or "path" string')


# Bytes, so lines end at \n only; the loop ends at EOF, which means "exit now".
for line in sys.stdin.buffer:
    item = json.loads(line)
    try:
        words = word_count(item.get("payload"))
        answer = {"ok": True, "result": {"words": words}}
    except (ValueError, OSError) as e:
        answer = {"ok": False, "error": str(e), "retry": False}
    print(json.dumps({"id": item["id"], **answer}), flush=True)
