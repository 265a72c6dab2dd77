"""A stream-mode worker that fails every item for good while the file named
by MARKER exists, and answers {"echo": payload} once it is gone: a worker
that is broken, then fixed, without a restart."""
import json
import os
import sys

marker = os.environ["MARKER"]

for line in sys.stdin:
    msg = json.loads(line)
    if os.path.exists(marker):
        answer = {"id": msg["id"], "ok": False, "retry": False,
                  "error": "broken while " + os.path.basename(marker)
                  + " exists"}
    else:
        answer = {"id": msg["id"], "ok": True,
                  "result": {"echo": msg["payload"]}}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
