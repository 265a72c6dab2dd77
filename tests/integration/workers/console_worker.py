"""A stream-mode worker for the console's tests, over the dir source.

The payload is a file's path. For each item the worker appends "start ID"
to the file named by LOG (when set), waits while the file named by HOLD
exists, then reads the file: text starting with "wait" waits while the
file named by WAIT exists; text starting with "fail" fails for good (its
error is the text, and the text goes to stderr too) unless the file named
by FIXED exists; anything else is answered {"text": ...}.
"""
import json
import os
import sys
import time

log_path = os.environ.get("LOG")
hold = os.environ.get("HOLD")
fixed = os.environ.get("FIXED")
wait = os.environ.get("WAIT")


def answer(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    item, path = msg["id"], msg["payload"]
    if log_path:
        with open(log_path, "a") as f:
            f.write(f"start {item}\n")
    while hold and os.path.exists(hold):
        time.sleep(0.02)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    while text.startswith("wait") and wait and os.path.exists(wait):
        time.sleep(0.02)
    if text.startswith("fail") and not (fixed and os.path.exists(fixed)):
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
        answer({"id": item, "ok": False, "error": text, "retry": False})
    else:
        answer({"id": item, "ok": True, "result": {"text": text}})
