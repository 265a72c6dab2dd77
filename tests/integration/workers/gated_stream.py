"""Runs a stream-mode worker behind a gate: the first GATE_AFTER items go
through at once, each later one only once the file named by GATE exists.
The worker's lines (progress, emits, answers) are passed on as they come.
A test uses it to stop a pipeline's stage after a known number of items
and kill the coordinator there. When the coordinator is gone (SIGKILL) the
proxy exits rather than wait, and the worker with it (its stdin closes).

usage: GATE=FILE GATE_AFTER=N gated_stream.py CMD [ARGS...]
"""
import json
import os
import subprocess
import sys
import time

gate = os.environ["GATE"]
after = int(os.environ.get("GATE_AFTER", "0"))
coordinator = os.getppid()
worker = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True)

for n, line in enumerate(sys.stdin):
    while n >= after and not os.path.exists(gate):
        if os.getppid() != coordinator:
            sys.exit(0)
        time.sleep(0.05)
    worker.stdin.write(line)
    worker.stdin.flush()
    for out in worker.stdout:
        sys.stdout.write(out)
        sys.stdout.flush()
        if "ok" in json.loads(out):
            break
    else:
        sys.exit(f"gated_stream: {sys.argv[1]} exited")
worker.stdin.close()
sys.exit(worker.wait())
