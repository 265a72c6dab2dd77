"""A stream-mode worker that misbehaves on request, for the tests.

The payload says what to do: {"do": "ok"} answers, and the other actions
(fail, perm, crash, boom, closeout, hang, noise, wrongid, bigline, exit0,
sleep, with "progress" or "emit" lines while it sleeps) break the contract
or fail in one particular way. An action ending in _once does so on
the first attempt only and answers on the next. FAKE_CRASH and FAKE_HANG give
probabilities of crashing or hanging on any item; FAKE_LOG names a file
that gets "start ID ATTEMPT PID" and "end ID" lines. With FAKE_READ_FILE set,
a payload that names a file (the dir source's) is that file's JSON.
"""
import json
import os
import random
import signal
import sys
import time

log_path = os.environ.get("FAKE_LOG")
crash_p = float(os.environ.get("FAKE_CRASH", "0"))
hang_p = float(os.environ.get("FAKE_HANG", "0"))
sleep_all = float(os.environ.get("FAKE_SLEEP", "0"))
if os.environ.get("FAKE_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def log(line):
    if log_path:
        with open(log_path, "a") as f:
            f.write(line + "\n")


def answer(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    item, attempt, payload = msg["id"], msg["attempt"], msg["payload"]
    if os.environ.get("FAKE_READ_FILE") and isinstance(payload, str):
        with open(payload) as f:
            payload = json.load(f)
    log(f"start {item} {attempt} {os.getpid()}")
    do = payload.get("do", "ok") if isinstance(payload, dict) else "ok"
    if do.endswith("_once"):
        do = do[:-5] if attempt == 1 else "ok"
    if sleep_all:
        time.sleep(sleep_all)
    if random.random() < crash_p:
        os._exit(3)
    if random.random() < hang_p:
        time.sleep(3600)
    if do == "fail":
        print(f"failing {item} on attempt {attempt}", file=sys.stderr, flush=True)
        answer({"id": item, "ok": False, "error": "asked to fail"})
    elif do == "perm":
        answer({"id": item, "ok": False, "error": "bad input", "retry": False})
    elif do == "crash":
        print("about to crash", file=sys.stderr, flush=True)
        os._exit(7)
    elif do == "boom":
        print("boom: bad frame", file=sys.stderr, flush=True)
        os._exit(1)
    elif do == "closeout":
        # Closes stdout and keeps running: it can never answer again.
        os.close(1)
        time.sleep(3600)
    elif do == "hang":
        time.sleep(3600)
    elif do == "noise":
        answer_line = "Loading model..."
        sys.stdout.write(answer_line + "\n")
        sys.stdout.flush()
        time.sleep(3600)
    elif do == "wrongid":
        answer({"id": "not-" + item, "ok": True, "result": 0})
        time.sleep(3600)
    elif do == "bigline":
        sys.stdout.write('{"id": "%s", "ok": true, "result": "' % item)
        chunk = "x" * (1 << 20)
        for _ in range(int(payload.get("mb", 100))):
            sys.stdout.write(chunk)
        sys.stdout.write('"}\n')
        sys.stdout.flush()
        time.sleep(3600)
    elif do == "sleep":
        secs = float(payload.get("secs", 1))
        end = time.time() + secs
        while time.time() < end:
            if payload.get("progress"):
                answer({"id": item, "progress": 0.5})
            if payload.get("emit"):
                answer({"id": item, "emit": {"t": time.time()}})
            time.sleep(min(0.2, max(0, end - time.time())))
        answer({"id": item, "ok": True, "result": {"slept": secs}})
    else:
        answer({"id": item, "ok": True, "result": {"echo": payload, "attempt": attempt}})
    log(f"end {item}")
