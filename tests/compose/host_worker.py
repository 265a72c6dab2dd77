#!/usr/bin/env python3
"""host_worker.py: a stream worker that names the host it ran on.

Each item takes WORK_DELAY seconds (0.1) and answers
{"host": HOSTNAME, "payload": PAYLOAD}, so a test can count how the work
split over coordinators on several hosts.
"""
import json
import os
import socket
import sys
import time

DELAY = float(os.environ.get("WORK_DELAY", "0.1"))
HOST = socket.gethostname()

for line in sys.stdin:
    item = json.loads(line)
    time.sleep(DELAY)
    answer = {"id": item["id"], "ok": True, "result": {"host": HOST, "payload": item.get("payload")}}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
