"""A stream-mode worker for the exactly-once tests.

The payload is {"n": N, "parts": K}: the worker emits K outputs,
{"n": N, "j": J} keyed "N-J", and answers ok. {"dead": true} fails for good
instead; {"wait": true} waits until the file named by GATE exists first;
{"big": true} pads its outputs with 2,000 bytes the first time only (the
file named by ONCE marks that it did).
Each item handled appends "N" to the file named by LEDGER (one write on an
O_APPEND descriptor). EOS_SLEEP_MAX makes each item take up to that many
seconds. A worker whose coordinator is gone exits rather than wait.
"""
import json
import os
import random
import sys
import time

ledger = os.environ.get("LEDGER")
gate = os.environ.get("GATE")
sleep_max = float(os.environ.get("EOS_SLEEP_MAX", "0"))
coordinator = os.getppid()
fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) \
    if ledger else None


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    item, p = msg["id"], msg["payload"]
    if p.get("wait") and gate:
        while not os.path.exists(gate):
            if os.getppid() != coordinator:
                sys.exit(0)
            time.sleep(0.05)
    pad = {}
    once = os.environ.get("ONCE")
    if p.get("big") and once and not os.path.exists(once):
        open(once, "w").close()
        pad = {"pad": "x" * 2000}
    if sleep_max:
        time.sleep(random.random() * sleep_max)
    if fd is not None:
        os.write(fd, f"{p['n']}\n".encode())
    if p.get("dead"):
        say({"id": item, "ok": False, "error": "dead on purpose",
             "retry": False})
        continue
    for j in range(p.get("parts", 1)):
        say({"id": item, "emit": {"n": p["n"], "j": j, **pad},
             "key": f"{p['n']}-{j}"})
    say({"id": item, "ok": True, "result": None})
