"""A stream-mode worker that spends BURN_MS of CPU time on each item
(CPU-bound: workers beyond the cores only share them), or, with SLEEP_MS,
sleeps that long instead (I/O-bound)."""
import json
import os
import sys
import time

burn = float(os.environ.get("BURN_MS", "0")) / 1000
nap = float(os.environ.get("SLEEP_MS", "0")) / 1000

for line in sys.stdin:
    item = json.loads(line)
    if burn:
        end = time.process_time() + burn
        while time.process_time() < end:
            pass
    if nap:
        time.sleep(nap)
    sys.stdout.write(json.dumps({"id": item["id"], "ok": True,
                                 "result": os.getpid()}) + "\n")
    sys.stdout.flush()
