"""The HTTP endpoints: /metrics (checked by promtool), /healthz, /readyz,
/status, and requests that are wrong, hostile or slow."""
import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (FAKE, HOPPER, assert_clean, clean_env, hopper,
                      read_jsonl, stderr_of, wait_for)


def serve(tmp, *flags, source="jsonl:-", env=None):
    """Starts hopper with the endpoints on a free loopback port and returns
    (process, port). A jsonl:- source stays open until stdin is closed, so
    the server outlives the items written to it."""
    errf = open(tmp / f"hopper-{time.monotonic_ns()}.err", "w+")
    outf = open(tmp / f"hopper-{time.monotonic_ns()}.out", "w+")
    env = env or clean_env()
    listen = [] if "HOPPER_LISTEN" in env else ["--listen", "127.0.0.1:0"]
    args = [HOPPER, "run", "-s", source, *listen, *map(str, flags)]
    if "--" not in flags:
        args += ["--", *FAKE]
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=outf,
                         stderr=errf, text=True,
                         env=env, cwd=tmp)
    p.errf, p.outf = errf, outf
    found = []

    def listening():
        m = re.search(r"on http://127\.0\.0\.1:(\d+)", stderr_of(p))
        if m:
            found.append(int(m.group(1)))
        assert p.poll() is None, stderr_of(p)
        return bool(found)

    wait_for(listening, what="the http server")
    return p, found[0]


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    assert_clean(stderr_of(p))


def get(port, path, method="GET", headers=None, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, dict(r.getheaders()), body


def raw(port, data, timeout=5):
    """Sends bytes as they are; returns the status line's code, or None
    when the server closed the connection without a word."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        reply = b""
        while b"\r\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    if not reply:
        return None
    m = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
    assert m, reply[:200]
    return int(m.group(1))


def metric(text, name, **labels):
    """The value of one sample, or None when absent."""
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items())
                   + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == want:
            return float(value)
    return None


def feed(p, payloads):
    for x in payloads:
        p.stdin.write(json.dumps(x) + "\n")
    p.stdin.flush()


def finished(port):
    _, _, text = get(port, "/metrics")
    return (metric(text, "hopper_items_total", outcome="done") +
            metric(text, "hopper_items_total", outcome="dead"))


def test_metrics_after_a_known_run(tmp):
    p, port = serve(tmp, "-j", "2")
    try:
        feed(p, [{"do": "perm"} if i in (4, 9, 14) else {"n": i}
                 for i in range(20)])
        wait_for(lambda: finished(port) == 20, what="20 items finished")
        status, headers, text = get(port, "/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        if shutil.which("promtool"):
            chk = subprocess.run(["promtool", "check", "metrics"], input=text,
                                 capture_output=True, text=True)
            assert chk.returncode == 0, chk.stdout + chk.stderr
        else:
            pytest.fail("promtool is missing (Debian's prometheus package)")
        assert metric(text, "hopper_items_total", outcome="done") == 17
        assert metric(text, "hopper_items_total", outcome="dead") == 3
        assert metric(text, "hopper_items_total", outcome="retried") == 0
        assert metric(text, "hopper_items_total", outcome="released") == 0
        assert metric(text, "hopper_dead_letters_total") == 3
        assert metric(text, "hopper_items_fetched_total") == 20
        count = metric(text, "hopper_item_duration_seconds_count")
        assert count >= 20
        assert metric(text, "hopper_item_duration_seconds_bucket",
                      le="+Inf") == count
        buckets = [float(v) for v in re.findall(
            r'^hopper_item_duration_seconds_bucket\{le="[^"]+"\} (\d+)$',
            text, re.M)]
        assert buckets == sorted(buckets) and len(buckets) == 13
        assert metric(text, "hopper_workers") == 2
        assert metric(text, "hopper_items_in_flight") == 0
        assert metric(text, "hopper_worker_starts_total") == 2
        assert metric(text, "hopper_worker_restarts_total") == 0
        assert metric(text, "hopper_source_errors_total") == 0
        assert metric(text, "hopper_sink_errors_total") == 0
        assert metric(text, "hopper_scale_events_total", direction="up") == 0
        for family in ("items_total", "item_duration_seconds", "queue_depth",
                       "items_in_flight", "workers", "workers_desired",
                       "worker_restarts_total", "retries_total",
                       "dead_letters_total", "source_errors_total",
                       "sink_errors_total", "scale_events_total"):
            assert f"# HELP hopper_{family} " in text, family
            assert f"# TYPE hopper_{family} " in text, family

        status, headers, body = get(port, "/status")
        assert status == 200 and headers["Content-Type"] == "application/json"
        st = json.loads(body)
        assert st["pipeline"]["source"] == "jsonl:-"
        assert st["pipeline"]["sink"] == "jsonl:-"
        assert st["pipeline"]["mode"] == "stream"
        assert st["pipeline"]["command"] == FAKE
        assert st["items"]["done"] == 17 and st["items"]["dead"] == 3
        assert st["workers"]["live"] == 2 and st["in_flight"] == 0
        assert st["ready"] is True and st["uptime_seconds"] > 0
        errors = [e["error"] for e in st["last_errors"]]
        assert len(errors) == 3
        assert all("dead after 1 attempt: bad input" in e for e in errors)
        assert {e.split()[1] for e in errors} == {"5", "10", "15"}

        p.stdin.close()
        assert p.wait(timeout=30) == 3  # a finite run with dead items
        p.outf.seek(0)
        assert len(read_jsonl(p.outf.read())) == 20
    finally:
        stop(p)


def test_health_and_readiness_while_draining(tmp):
    p, port = serve(tmp, "-j", "2", "--grace", "20",
                    env=clean_env(FAKE_SLEEP=1.5))
    try:
        feed(p, [{"n": i} for i in range(6)])
        assert get(port, "/healthz")[:1] == (200,)
        status, _, body = get(port, "/readyz")
        assert (status, body) == (200, "ready\n")
        wait_for(lambda: json.loads(get(port, "/status")[2])["in_flight"] > 0,
                 what="items in flight")
        p.send_signal(signal.SIGTERM)
        wait_for(lambda: get(port, "/readyz")[0] == 503, what="not ready")
        status, _, body = get(port, "/readyz")
        assert status == 503 and "draining" in body, body
        st = json.loads(get(port, "/status")[2])
        assert st["ready"] is False and "draining" in st["not_ready"]
        # The loop is alive and says so while it drains.
        assert get(port, "/healthz")[0] == 200
        assert p.wait(timeout=30) == 143  # finite, with items not done
    finally:
        stop(p)


def test_sink_errors_are_counted_and_shown(tmp):
    """A sink that cannot write: each failed try is counted, its error is
    among the last errors and in /readyz, and the result is held (not
    retried, not dead) until SIGTERM hands it back."""
    p, port = serve(tmp, "-j", "1", "-o", "jsonl:/dev/full", "--attempts",
                    "3", "--backoff", "0.1")
    try:
        feed(p, [{"n": 1}])
        wait_for(lambda: metric(get(port, "/metrics")[2],
                                "hopper_sink_errors_total") >= 3,
                 what="three failed tries")
        _, _, text = get(port, "/metrics")
        assert metric(text, "hopper_items_held") == 1
        assert metric(text, "hopper_items_total", outcome="retried") == 0
        assert metric(text, "hopper_items_total", outcome="done") == 0
        assert metric(text, "hopper_items_total", outcome="dead") == 0
        st = json.loads(get(port, "/status")[2])
        assert st["errors"]["sink"] >= 3 and st["errors"]["source"] == 0
        assert any("No space left on device" in e["error"]
                   for e in st["last_errors"]), st["last_errors"]
        status, _, body = get(port, "/readyz")
        assert status == 503 and "the sink is out" in body
        assert "No space left on device" in body
        p.stdin.close()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 143  # its one item handed back
        assert "0 done, 0 dead, 0 retried, 1 handed back" in stderr_of(p)
    finally:
        stop(p)


def test_wrong_and_hostile_requests(tmp):
    p, port = serve(tmp, "-j", "1")
    try:
        status, _, body = get(port, "/nope")
        assert status == 404 and "/metrics" in body
        status, headers, _ = get(port, "/metrics", method="POST")
        assert status == 405 and headers["Allow"] == "GET, HEAD"
        assert get(port, "/healthz", method="DELETE")[0] == 405
        status, headers, body = get(port, "/metrics", method="HEAD")
        assert status == 200 and body == ""
        assert raw(port, b"GARBAGE LINE\r\n\r\n") == 400
        assert raw(port, b"GET /healthz FOO/1.1\r\nHost: x\r\n\r\n") == 400
        assert raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: abc\r\n\r\n") == 400
        assert raw(port, b"NONSENSE\r\n\r\n") is None  # just closed
        big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + \
            b"a" * 100_000 + b"\r\n\r\n"
        assert raw(port, big) in (413, 431)
        assert get(port, "/healthz")[:1] == (200,)
        assert p.poll() is None
    finally:
        stop(p)


def closed_by_server(s):
    s.settimeout(3)
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_slow_clients_do_not_stall_the_loop(tmp):
    p, port = serve(tmp, "-j", "2")
    slow = []
    try:
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no end
            slow.append(s)
        t0 = time.monotonic()
        assert get(port, "/healthz", timeout=1)[:1] == (200,)
        assert time.monotonic() - t0 < 1
        # Items keep flowing while they hang.
        feed(p, [{"n": i} for i in range(30)])
        wait_for(lambda: finished(port) == 30, timeout=10,
                 what="30 items done beside 50 slow clients")
        # After the idle timeout (5 s) the server drops every slow one.
        time.sleep(5)
        assert all(closed_by_server(s) for s in slow)
        assert get(port, "/healthz")[0] == 200
    finally:
        for s in slow:
            s.close()
        stop(p)


class SlowClients:
    """count connections that each send a little of a request every
    second, never idle long enough to be dropped (a slowloris). One the
    server closes is opened again, at most most_opens in all; stop() closes
    every one."""

    CHUNKS = [b"GET /", b"healthz HTTP/1.1\r\n"]

    def __init__(self, port, count, most_opens):
        self.port, self.count, self.most_opens = port, count, most_opens
        self.opens = self.rounds = 0
        self.socks = [None] * count
        self.sent = [0] * count
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def open(self, i):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        self.socks[i], self.sent[i] = s, 0
        self.opens += 1

    def drip(self, i):
        s, n = self.socks[i], self.sent[i]
        chunk = self.CHUNKS[n] if n < len(self.CHUNKS) else b"X-Slow: 1\r\n"
        try:
            s.send(chunk)
            self.sent[i] += 1
        except BlockingIOError:
            pass  # still connecting, or waiting in the server's backlog
        except OSError:  # the server closed it: come back
            s.close()
            self.socks[i] = None

    def run(self):
        while not self.done.is_set():
            for i in range(self.count):
                if self.socks[i] is None and self.opens < self.most_opens:
                    self.open(i)
                elif self.socks[i] is not None:
                    self.drip(i)
            self.rounds += 1
            self.done.wait(1)

    def start(self):
        self.thread.start()

    def stop(self):
        self.done.set()
        self.thread.join(timeout=30)
        for s in self.socks:
            if s is not None:
                s.close()


def test_health_is_answered_beside_hundreds_of_slow_clients(tmp):
    """400 slow clients once took all 128 connections for as long as they
    liked: /healthz went unanswered while items flowed, and a liveness
    probe would have restarted a healthy coordinator."""
    p, port = serve(tmp, "-j", "2")
    attack = SlowClients(port, count=400, most_opens=4000)
    try:
        attack.start()
        wait_for(lambda: attack.rounds >= 3, what="400 slow clients")
        feed(p, [{"n": i} for i in range(30)])
        for _ in range(9):
            status, _, body = get(port, "/healthz", timeout=10)
            assert (status, body) == (200, "ok\n")
        wait_for(lambda: finished(port) == 30, timeout=60,
                 what="30 items done beside 400 slow clients")
        assert p.poll() is None
        # Every slot was taken: the server closed slow ones to make room.
        assert "http: all 128 connections taken: closed" in stderr_of(p)
    finally:
        attack.stop()
        stop(p)


def test_port_in_use_names_the_address(tmp):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        src = tmp / "in.jsonl"
        src.write_text('{"n": 1}\n')
        code, out, err = hopper("run", "-s", f"jsonl:{src}", "--listen",
                                f"127.0.0.1:{port}", "--", *FAKE)
    assert code == 1, err
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" \
        in err
    assert out == ""


def test_bad_listen_address_is_a_usage_error(tmp):
    code, _, err = hopper("run", "-s", "jsonl:x", "--listen", "nohost",
                          "--", *FAKE)
    assert code == 2
    assert "listen address 'nohost': expected HOST:PORT" in err
    code, _, err = hopper("run", "-s", "jsonl:x", "--", *FAKE,
                          env=clean_env(HOPPER_LISTEN="127.0.0.1:99999"))
    assert code == 2 and "'127.0.0.1:99999'" in err


def test_listen_from_the_environment(tmp):
    p, port = serve(tmp, "-j", "1",
                    env=clean_env(HOPPER_LISTEN="127.0.0.1:0"))
    try:
        assert get(port, "/healthz")[0] == 200
    finally:
        stop(p)


def test_no_server_unless_asked(tmp):
    src = tmp / "in.jsonl"
    src.write_text('{"n": 1}\n')
    code, _, err = hopper("run", "-s", f"jsonl:{src}", "--", *FAKE)
    assert code == 0 and "http:" not in err


def test_status_numbers_as_people_read_them(tmp):
    """/status while a file of known length is worked through: reals
    rounded to tenths, the depth counted down from the total, and the rate
    and time left as the progress line gives them."""
    src = tmp / "in.jsonl"
    src.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(40)))
    p, port = serve(tmp, "-j", "2", source=f"jsonl:{src}",
                    env=clean_env(FAKE_SLEEP=0.3))
    try:
        def finished():
            st = json.loads(get(port, "/status")[2])
            return st["items"]["done"] >= 2
        wait_for(finished, timeout=60, what="two items done")
        _, _, body = get(port, "/status")
        st = json.loads(body)
        # No 9.1340000000000003: every real has at most one decimal.
        assert not re.search(r": -?\d+\.\d{2,}\b", body), body
        assert re.search(r'"uptime_seconds": \d+(\.\d)?,', body), body
        items = st["items"]
        finished = items["done"] + items["dead"]
        assert items["total"] == 40
        assert st["depth"] == 40 - finished - st["in_flight"], st
        assert st["rate"] > 0
        assert re.fullmatch(r"\d+:\d\d", st["eta"]), st["eta"]
        assert st["eta_seconds"] >= 0
        m, s = st["eta"].split(":")
        assert abs(int(m) * 60 + int(s) - st["eta_seconds"]) <= 1
    finally:
        stop(p)
