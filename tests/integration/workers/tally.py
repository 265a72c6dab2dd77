"""A stream-mode worker for the counted fault tests: it records who handled
which item, on which attempt, and when.

Each item's payload must be a JSON object with an integer "n"; an optional
"sleep" (seconds) makes the item take that long, and TALLY_SLEEP adds that
much to every item. For each item it appends one line to the file named by
TALLY_LOG:

    ID ATTEMPT COORDINATOR_PID START_NS END_NS HOW

with CLOCK_MONOTONIC times (one clock for every process on the machine) and
HOW one of ok, bad (the payload was not what it wants), crash, abandoned.
Each line is a single write(2) on an O_APPEND descriptor, so lines from many
workers never interleave. The coordinator is the parent: hopper spawns its
workers directly.

A payload of another shape gets a permanent failure naming what came
(TALLY_BAD=perm, the default), or kills the worker with a traceback
(TALLY_BAD=crash), as a worker that trusts its input would.

A coordinator killed with SIGKILL cannot take its workers along: while an
item sleeps the worker watches its parent, and when it is gone it logs the
interval so far as abandoned and exits, as if it had died with it; items
still waiting on its stdin are not started.
"""
import json
import os
import sys
import time

fd = os.open(os.environ["TALLY_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT,
             0o644)
coordinator = os.getppid()
extra = float(os.environ.get("TALLY_SLEEP", "0"))
on_bad = os.environ.get("TALLY_BAD", "perm")


def log(item, attempt, start, how):
    os.write(fd, (f"{item} {attempt} {coordinator} {start} "
                  f"{time.monotonic_ns()} {how}\n").encode())


def answer(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def nap(secs, item, attempt, start):
    end = time.monotonic() + secs
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        if os.getppid() != coordinator:
            log(item, attempt, start, "abandoned")
            os._exit(1)
        time.sleep(min(left, 0.02))


for line in sys.stdin:
    if os.getppid() != coordinator:
        os._exit(1)  # what is left on stdin was never started
    msg = json.loads(line)
    item, attempt, payload = msg["id"], msg["attempt"], msg["payload"]
    start = time.monotonic_ns()
    good = (isinstance(payload, dict) and isinstance(payload.get("n"), int)
            and not isinstance(payload.get("n"), bool))
    if not good:
        log(item, attempt, start, "crash" if on_bad == "crash" else "bad")
        what = type(payload).__name__ if not isinstance(payload, dict) \
            else "object without an integer n"
        if on_bad == "crash":
            payload["n"] + 1  # TypeError, traceback on stderr, exit 1
            sys.exit(1)  # an object whose n is not an integer
        answer({"id": item, "ok": False, "retry": False,
                "error": f"payload must be an object with an integer n, "
                         f"got {what}: {json.dumps(payload)[:60]}"})
        continue
    nap(extra + float(payload.get("sleep", 0)), item, attempt, start)
    log(item, attempt, start, "ok")
    answer({"id": item, "ok": True, "result": {"n": payload["n"]}})
