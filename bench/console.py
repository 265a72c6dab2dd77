"""The console's dead letters.

10,000 dead files in a dir source's failed/ folder, each with its report,
and a watched run on that folder with --listen. Two figures, medians of
the rounds:

- one page (the last 50) through GET /api/dead, against the peer
  `hopper dead list --json` reading the same folder whole in the same
  round: the page costs a listing of the place, as the command does, and
  no more;
- /healthz while eight such pages wait for the console's thread: the
  slowest of its answers against the time the eight pages took. The loop
  never reads dead letters itself, so the probe stays at a few
  milliseconds however long the listings take.
"""
import http.client
import json
import os
import re
import statistics
import subprocess
import threading
import time

N = 10_000


def fill(folder):
    failed = folder / "failed"
    failed.mkdir(parents=True)
    for i in range(N):
        name = f"d{i:05d}.txt"
        (failed / name).write_text("x")
        (failed / (name + ".error.json")).write_text(json.dumps(
            {"id": name, "error": f"boom {i}", "attempts": 3,
             "stderr": "trace", "payload": f"/in/{name}"}))


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t0 = time.monotonic()
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status == 200, body
    return time.monotonic() - t0, body


def start(hopper, inbox, log):
    p = subprocess.Popen([hopper, "run", "-s", f"dir:{inbox}", "--watch",
                          "-o", "jsonl:/dev/null", "-j", "1",
                          "--listen", "127.0.0.1:0", "--", "cat"],
                         stderr=log)
    for _ in range(600):
        text = open(log.name).read()
        m = re.search(r"console on http://127\.0\.0\.1:(\d+)", text)
        if m:
            return p, int(m.group(1))
        time.sleep(0.05)
    p.terminate()
    raise RuntimeError("hopper did not serve: " + text)


def round_once(hopper, inbox, port):
    t0 = time.monotonic()
    out = subprocess.run([hopper, "dead", "list", "--json",
                          "-s", f"dir:{inbox}"], capture_output=True,
                         text=True, check=True).stdout
    cli = time.monotonic() - t0
    assert len(out.splitlines()) == N
    page, body = get(port, f"/api/dead?offset={N - 50}&limit=50")
    assert json.loads(body)["total"] == N

    done = []
    threads = [threading.Thread(
        target=lambda o=o: done.append(get(port, f"/api/dead?offset={o}")))
        for o in range(0, 8000, 1000)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    probes = []
    while len(done) < len(threads):
        probes.append(get(port, "/healthz")[0])
    for t in threads:
        t.join()
    return (cli, page, statistics.median(probes), max(probes),
            time.monotonic() - t0, len(probes))


def run(hopper, build, rounds, tmp):
    inbox = tmp / "console-in"
    fill(inbox)
    with open(tmp / "console.log", "w") as log:
        p, port = start(hopper, inbox, log)
        try:
            got = [round_once(hopper, inbox, port) for _ in range(rounds)]
        finally:
            p.terminate()
            p.wait()
    cli, page, probe, worst, pages, n = (
        statistics.median(g[i] for g in got) for i in range(6))
    print(f"console: a page of {N} dead letters {page * 1000:.0f} ms, "
          f"hopper dead list --json {cli * 1000:.0f} ms: {page / cli:.2f} "
          f"of it")
    print(f"console: /healthz {probe * 1000:.1f} ms (median of {n:.0f}; "
          f"slowest {worst * 1000:.1f} ms) while 8 pages took "
          f"{pages * 1000:.0f} ms: {probe / pages:.4f} of it")


if __name__ == "__main__":
    import sys
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        run(os.environ.get("HOPPER", "build/hopper"), "build",
            int(os.environ.get("BENCH_ROUNDS", "3")), Path(d))
        sys.exit(0)
