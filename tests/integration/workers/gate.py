"""A stream-mode worker for the dir source's tests: it reads the file it is
given and answers with its text, once a gate is open.

The payload is a path, or {"path": ...}. For each item the worker appends
"ID COORDINATOR_PID" to the file named by LEDGER (when set; one write on an
O_APPEND descriptor, so lines from many workers never interleave), then
waits until the file named by GATE exists (when set), then opens the path
and answers {"text": ...}. A file that says "perm" gets a permanent failure
whose error names the path, as a worker that cannot read its input would.
A worker whose coordinator is gone (SIGKILL) exits rather than wait.
"""
import json
import os
import sys
import time

ledger = os.environ.get("LEDGER")
gate = os.environ.get("GATE")
coordinator = os.getppid()


def answer(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    item, payload = msg["id"], msg["payload"]
    path = payload["path"] if isinstance(payload, dict) else payload
    if ledger:
        fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, f"{item} {coordinator}\n".encode())
        os.close(fd)
    while gate and not os.path.exists(gate):
        if os.getppid() != coordinator:
            sys.exit(0)
        time.sleep(0.02)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text == "perm":
        answer({"id": item, "ok": False, "retry": False,
                "error": f"{path}: asked to fail"})
    else:
        answer({"id": item, "ok": True, "result": {"text": text}})
