"""A stream-mode worker that records who handled what and when.

For each item it appends one line to the file named by LEDGER:
"ID COORDINATOR_PID START_NS END_NS" (CLOCK_MONOTONIC, the same for every
process on the machine), with a single write on an O_APPEND descriptor so
that lines from many workers never interleave, then answers. LEDGER_SLEEP
and LEDGER_SLEEP_MAX make each item take that long plus up to that much more.
"""
import json
import os
import random
import sys
import time

fd = os.open(os.environ["LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT,
             0o644)
coordinator = os.getppid()
for line in sys.stdin:
    msg = json.loads(line)
    start = time.monotonic_ns()
    time.sleep(float(os.environ.get("LEDGER_SLEEP", "0")) +
               random.random() * float(os.environ.get("LEDGER_SLEEP_MAX",
                                                      "0")))
    end = time.monotonic_ns()
    os.write(fd, f"{msg['id']} {coordinator} {start} {end}\n".encode())
    sys.stdout.write(json.dumps({"id": msg["id"], "ok": True,
                                 "result": {"n": msg["payload"]["n"]}}) + "\n")
    sys.stdout.flush()
