"""The http source against a source container: the reference server of
sources/http/http_items.py, in a thread of the test (broken on purpose
through its `before` hook) or as a process that the test kills."""
import importlib.util
import json
import os
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections import Counter

import pytest

from conftest import (FAKE, PY, ROOT, by_id, hopper, http_port, read_jsonl,
                      start, stderr_of, stop, wait_for)

EXAMPLE = ROOT / "sources" / "http" / "http_items.py"
_spec = importlib.util.spec_from_file_location("http_items", EXAMPLE)
http_items = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(http_items)


def fill(folder, n, payload=None, prefix="item"):
    folder.mkdir(exist_ok=True)
    ids = []
    for i in range(n):
        name = f"{prefix}{i:03d}"
        body = payload if payload is not None else {"do": "ok", "n": i}
        (folder / f"{name}.json").write_text(json.dumps(body))
        ids.append(name)
    return ids


def requests(log, method=None):
    if not log.exists():
        return []
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return [r for r in rows if method is None or r["method"] == method]


def deleted(log):
    """Ids answered 204 to a DELETE, counted."""
    return Counter(r["path"].rsplit("/", 1)[1]
                   for r in requests(log, "DELETE") if r["status"] == 204)


class Served:
    """The example server in a thread of the test."""

    def __init__(self, folder, **kw):
        self.server = http_items.make_server(folder, **kw)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()
        self.url = self.server.url

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def served(tmp):
    made = []

    def make(n=0, **kw):
        fill(tmp / "q", n)
        s = Served(tmp / "q", log=str(tmp / "requests.jsonl"), **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def test_all_items_done_and_deleted_once_after_their_result(tmp, served):
    out = tmp / "out.jsonl"
    s = served(40)
    early = []

    def check_sink(h):
        # A DELETE must come after the item's result is in the sink.
        if h.command == "DELETE":
            item = h.path.rsplit("/", 1)[1]
            text = out.read_text() if out.exists() else ""
            if f'"id":"{item}"' not in text:
                early.append(item)
        return False

    s.server.before = check_sink
    code, _, err = hopper("run", "-s", s.url, "-o", f"jsonl:{out}", "-j", 4,
                          "--", *FAKE)
    assert code == 0, err
    done = {r["id"] for r in read_jsonl(out.read_text())}
    assert done == {f"item{i:03d}" for i in range(40)}
    assert deleted(tmp / "requests.jsonl") == Counter(done)
    assert not early, f"deleted before the result was written: {early}"
    assert not list((tmp / "q").glob("*.json"))


def test_listed_again_while_in_flight_is_not_taken_twice(tmp, served):
    # The server lists 3 ids at a time and the source lists every 20 ms:
    # each listing names items already at work.
    s = served(12, limit=3)
    log = tmp / "fake.log"
    out = tmp / "out.jsonl"
    code, _, err = hopper("run", "-s", s.url, "-S", "poll=20ms",
                          "-o", f"jsonl:{out}", "-j", 3, "--", *FAKE,
                          env=dict(os.environ, FAKE_LOG=log,
                                   FAKE_SLEEP="0.1"))
    assert code == 0, err
    starts = Counter(line.split()[1] for line in log.read_text().splitlines()
                     if line.startswith("start"))
    assert starts == Counter({f"item{i:03d}": 1 for i in range(12)})
    gets = Counter(r["path"] for r in requests(tmp / "requests.jsonl", "GET")
                   if r["path"] != "/items")
    assert set(gets.values()) == {1}, gets
    assert len(requests(tmp / "requests.jsonl", "GET")) > len(gets) + 4


def test_dead_letter_is_posted_and_not_deleted(tmp, served):
    s = served(3)
    (tmp / "q" / "poison.json").write_text('{"do": "perm"}')
    out = tmp / "out.jsonl"
    code, _, err = hopper("run", "-s", s.url, "-o", f"jsonl:{out}", "-j", 2,
                          "--", *FAKE)
    assert code == 3, err  # something died
    record = json.loads((tmp / "q" / "dead" / "poison.error.json").read_text())
    assert record["id"] == "poison" and record["error"] == "bad input"
    assert record["payload"] == {"do": "perm"}
    assert (tmp / "q" / "dead" / "poison.json").exists()
    assert "poison" not in deleted(tmp / "requests.jsonl")
    assert sorted(deleted(tmp / "requests.jsonl")) == [
        "item000", "item001", "item002"]


def test_dead_letter_to_a_file_then_deleted(tmp, served):
    s = served(2)
    (tmp / "q" / "poison.json").write_text('{"do": "perm"}')
    dead = tmp / "dead.jsonl"
    code, _, err = hopper("run", "-s", s.url, "-S", f"dead={dead}",
                          "-o", f"jsonl:{tmp / 'out.jsonl'}", "--", *FAKE)
    assert code == 3, err
    (record,) = read_jsonl(dead.read_text())
    assert record["id"] == "poison" and record["error"] == "bad input"
    assert deleted(tmp / "requests.jsonl")["poison"] == 1
    assert not requests(tmp / "requests.jsonl", "POST")
    # hopper dead reads the file, as for the jsonl source.
    code, listing, err = hopper("dead", "list", "-s", s.url, "-S",
                                f"dead={dead}")
    assert code == 0, err
    assert "poison" in listing and "bad input" in listing


def test_bad_json_item_is_dead_naming_url_and_id(tmp, served):
    s = served(2)
    (tmp / "q" / "broken.json").write_text("{not json")
    code, _, err = hopper("run", "-s", s.url, "-o",
                          f"jsonl:{tmp / 'out.jsonl'}", "--", *FAKE)
    assert code == 3, err
    line = next(li for li in err.splitlines() if "broken" in li)
    assert f"GET {s.url}/broken (item broken): the body is not JSON" in line
    record = json.loads((tmp / "q" / "dead" / "broken.error.json")
                        .read_text())
    assert "not JSON" in record["error"]
    assert sorted(deleted(tmp / "requests.jsonl")) == ["item000", "item001"]


def test_item_gone_before_its_get_is_skipped(tmp, served):
    s = served(3)

    def vanish(h):
        if h.command == "GET" and h.path.endswith("/item001"):
            (tmp / "q" / "item001.json").unlink(missing_ok=True)
        return False

    s.server.before = vanish
    out = tmp / "out.jsonl"
    code, _, err = hopper("run", "-s", s.url, "-o", f"jsonl:{out}", "--",
                          *FAKE)
    assert code == 0, err
    assert {r["id"] for r in read_jsonl(out.read_text())} == {
        "item000", "item002"}
    assert "item001" in err and "gone" in err


def test_server_errors_for_a_while_lose_nothing(tmp, served):
    """500s and a list that is not JSON, until the test lets the server
    recover: logged once, not ready meanwhile, and every item done."""
    s = served(30)
    state = {"broken": False, "deletes": 0}
    broken = threading.Event()

    def flaky(h):
        if h.command == "DELETE":
            state["deletes"] += 1
            if state["deletes"] == 5:
                broken.set()
        if not broken.is_set() or state.get("healed"):
            return False
        if h.path == "/items" and h.command == "GET":
            h.answer(200, b"[not json")
        else:
            h.answer(500, {"error": "down for maintenance"})
        return True

    s.server.before = flaky
    out = tmp / "out.jsonl"
    p = start("run", "-s", s.url, "-o", f"jsonl:{out}", "-j", 2,
              "--listen", "127.0.0.1:0", "--", *FAKE,
              env=dict(os.environ, FAKE_SLEEP="0.05"),
              cwd=tmp)
    try:
        port = http_port(p)
        wait_for(lambda: "retrying with backoff" in stderr_of(p),
                 what="the outage in the log")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz")
        assert e.value.code == 503
        assert b"http source" in e.value.read()
        state["healed"] = True
        assert p.wait(timeout=120) == 0, stderr_of(p)
    finally:
        stop(p)
    err = stderr_of(p)
    assert err.count("retrying with backoff") == 1, err
    assert "answers again" in err
    done = [r["id"] for r in read_jsonl(out.read_text())]
    assert sorted(set(done)) == [f"item{i:03d}" for i in range(30)]
    assert sorted(deleted(tmp / "requests.jsonl").elements()) == sorted(
        set(done))


def test_server_killed_and_restarted_loses_nothing(tmp):
    fill(tmp / "q", 30)
    log = tmp / "requests.jsonl"

    def serve(port=0):
        proc = subprocess.Popen(
            [PY, str(EXAMPLE), str(tmp / "q"), "--port", str(port),
             "--log", str(log)], stdout=subprocess.PIPE, text=True)
        url = proc.stdout.readline().split(" on ", 1)[1].strip()
        return proc, url

    server, url = serve()
    port = int(url.split(":")[2].split("/")[0])
    out = tmp / "out.jsonl"
    # Slow enough that the run is far from done when the server dies.
    p = start("run", "-s", url, "-o", f"jsonl:{out}", "-j", 2, "--", *FAKE,
              env=dict(os.environ, FAKE_SLEEP="0.3"),
              cwd=tmp)
    try:
        wait_for(lambda: sum(deleted(log).values()) >= 5,
                 what="some items done")
        server.send_signal(signal.SIGKILL)
        server.wait()
        wait_for(lambda: "retrying with backoff" in stderr_of(p),
                 what="the outage in the log")
        server, _ = serve(port)
        assert p.wait(timeout=120) == 0, stderr_of(p)
    finally:
        stop(p)
        server.send_signal(signal.SIGTERM)
        server.wait()
    err = stderr_of(p)
    assert err.count("retrying with backoff") == 1, err
    # The outage names the request that met it.
    assert f" {url}" in err.split("retrying with backoff")[0].splitlines()[-1]
    done = {r["id"] for r in read_jsonl(out.read_text())}
    assert done == {f"item{i:03d}" for i in range(30)}
    assert set(deleted(log)) == done
    assert not list((tmp / "q").glob("*.json"))


def test_authorization_header_from_a_file(tmp, served):
    s = served(3, token="s3cret-token")
    headers = tmp / "headers"
    headers.write_text("# the queue's key\nAuthorization: Bearer s3cret-token\n")
    out = tmp / "out.jsonl"
    code, _, err = hopper("run", "-s", s.url, "-S", f"headers={headers}",
                          "-o", f"jsonl:{out}", "--", *FAKE)
    assert code == 0, err
    assert len(read_jsonl(out.read_text())) == 3
    assert "s3cret" not in err
    assert {r["status"] for r in requests(tmp / "requests.jsonl")} <= {
        200, 204}


def test_headers_file_errors_name_the_line_not_its_text(tmp, served):
    s = served(1)
    headers = tmp / "headers"
    headers.write_text("Authorization: Bearer ok\nsecret-without-colon\n")
    code, _, err = hopper("run", "-s", s.url, "-S", f"headers={headers}",
                          "--", *FAKE)
    assert code == 1, err
    assert f"{headers}:2: not a 'Name: value' line" in err
    assert "secret-without-colon" not in err


def test_a_wrong_list_url_stops_the_run_naming_it(tmp, served):
    s = served(1)
    url = s.url.replace("/items", "/nothing")
    code, _, err = hopper("run", "-s", url, "--", *FAKE)
    assert code == 1, err
    assert f"GET {url}: HTTP 404: no list of items there" in err


def test_watch_takes_items_as_they_come(tmp, served):
    s = served(2)
    out = tmp / "out.jsonl"
    p = start("run", "-s", s.url, "-S", "poll=50ms", "--watch",
              "-o", f"jsonl:{out}", "--", *FAKE, cwd=tmp)
    try:
        wait_for(lambda: sum(deleted(tmp / "requests.jsonl").values()) == 2,
                 what="the first items")
        fill(tmp / "q", 3, prefix="late")
        wait_for(lambda: sum(deleted(tmp / "requests.jsonl").values()) == 5,
                 what="the items that came later")
    finally:
        stop(p)
    assert p.returncode == 0, stderr_of(p)
    assert len(read_jsonl(out.read_text())) == 5


def test_pipeline_file_and_checks(tmp, served):
    s = served(2)
    pipe = tmp / "p.json"
    pipe.write_text(json.dumps({
        "source": {"type": "http", "url": s.url, "concurrency": 2},
        "sink": {"type": "jsonl", "path": str(tmp / "out.jsonl")},
        "command": FAKE}))
    code, out, err = hopper("validate", pipe)
    assert code == 0, err
    code, _, err = hopper("run", "-f", pipe)
    assert code == 0, err
    assert len(read_jsonl((tmp / "out.jsonl").read_text())) == 2
    pipe.write_text(json.dumps({
        "source": {"type": "http", "url": "ftp://x/items"},
        "command": FAKE}))
    code, _, err = hopper("validate", pipe)
    assert code == 2, err
    assert "not an http:// or https:// URL" in err


def test_a_plain_array_of_ids_integers_and_escaped_names(tmp, served):
    s = served(0)
    for name in ("1", "2", "two words%"):
        (tmp / "q" / f"{name}.json").write_text('{"do": "ok"}')

    def plain(h):
        if h.command == "GET" and h.path == "/items":
            ids = sorted(p.name[:-5] for p in (tmp / "q").glob("*.json"))
            h.answer(200, [int(i) if i.isdigit() else i for i in ids])
            return True
        return False

    s.server.before = plain
    out = tmp / "out.jsonl"
    code, _, err = hopper("run", "-s", s.url, "-o", f"jsonl:{out}", "--",
                          *FAKE)
    assert code == 0, err
    assert {r["id"] for r in read_jsonl(out.read_text())} == {
        "1", "2", "two words%"}
    paths = {r["path"] for r in requests(tmp / "requests.jsonl", "DELETE")}
    assert paths == {"/items/1", "/items/2", "/items/two%20words%25"}


def test_an_id_listed_but_never_there_does_not_spin(tmp, served):
    s = served(2)

    def ghost(h):
        if h.command == "GET" and h.path == "/items":
            ids = sorted(p.name[:-5] for p in (tmp / "q").glob("*.json"))
            h.answer(200, {"items": ids + ["ghost"]})
            return True
        return False

    s.server.before = ghost
    code, _, err = hopper("run", "-s", s.url, "-o",
                          f"jsonl:{tmp / 'out.jsonl'}", "--", *FAKE)
    assert code == 0, err
    asked = [r for r in requests(tmp / "requests.jsonl", "GET")
             if r["path"] == "/items/ghost"]
    assert 1 <= len(asked) <= 3, asked
    assert "ghost" in err and "gone" in err


def test_a_dead_letter_the_server_refuses_is_not_dead(tmp, served):
    s = served(1)
    (tmp / "q" / "poison.json").write_text('{"do": "perm"}')

    def no_dead_place(h):
        if h.command == "POST":
            h.answer(405, {"error": "no dead letters here"})
            return True
        return False

    s.server.before = no_dead_place
    code, _, err = hopper("run", "-s", s.url, "-o",
                          f"jsonl:{tmp / 'out.jsonl'}", "--", *FAKE)
    assert code == 1, err
    assert f"POST {s.url}/poison/dead (item poison): HTTP 405" in err
    assert (tmp / "q" / "poison.json").exists()
    assert "poison" not in deleted(tmp / "requests.jsonl")


def test_sigterm_deletes_what_is_done_and_leaves_the_rest(tmp, served):
    s = served(20)
    out = tmp / "out.jsonl"
    hold = threading.Event()
    dels = []

    def stall(h):
        # After 3 DELETEs, item GETs wait: the run cannot end by itself.
        if h.command == "DELETE":
            dels.append(h.path)
        elif h.command == "GET" and h.path != "/items" and len(dels) >= 3:
            hold.wait(60)
        return False

    s.server.before = stall
    p = start("run", "-s", s.url, "-o", f"jsonl:{out}", "-j", 2, "--",
              *FAKE, env=dict(os.environ, FAKE_SLEEP="0.1"), cwd=tmp)
    try:
        wait_for(lambda: sum(deleted(tmp / "requests.jsonl").values()) >= 3,
                 what="some items done")
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
    finally:
        stop(p)
        hold.set()
    s.server.before = None
    assert p.returncode == 128 + signal.SIGTERM, stderr_of(p)
    first = {r["id"] for r in read_jsonl(out.read_text())}
    # What reached the sink is deleted, once; the rest is still served.
    assert deleted(tmp / "requests.jsonl") == Counter(first)
    left = {f.name[:-5] for f in (tmp / "q").glob("*.json")}
    assert left == {f"item{i:03d}" for i in range(20)} - first
    code, _, err = hopper("run", "-s", s.url, "-o", f"jsonl:{out}", "-j", 4,
                          "--", *FAKE)
    assert code == 0, err
    # Each once: by_id refuses an id written twice.
    assert set(by_id(read_jsonl(out.read_text()))) == {
        f"item{i:03d}" for i in range(20)}
    assert not list((tmp / "q").glob("*.json"))


def test_a_server_down_at_the_start_is_waited_for(tmp):
    fill(tmp / "q", 5)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/items"
    out = tmp / "out.jsonl"
    p = start("run", "-s", url, "-o", f"jsonl:{out}", "--listen",
              "127.0.0.1:0", "--", *FAKE, cwd=tmp)
    server = None
    try:
        hport = http_port(p)
        wait_for(lambda: "retrying with backoff" in stderr_of(p),
                 what="the outage in the log")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{hport}/readyz")
        assert url.encode() in e.value.read()
        server = subprocess.Popen([PY, str(EXAMPLE), str(tmp / "q"),
                                   "--port", str(port)],
                                  stdout=subprocess.DEVNULL)
        assert p.wait(timeout=120) == 0, stderr_of(p)
    finally:
        stop(p)
        if server:
            server.send_signal(signal.SIGTERM)
            server.wait()
    assert len(read_jsonl(out.read_text())) == 5
    assert stderr_of(p).count("retrying with backoff") == 1


def test_deletes_the_server_refuses_at_the_end_are_done_again(tmp, served):
    """DELETEs that fail until the run is stopped: the run still ends, names
    the items, and the next run does them again; nothing is lost."""
    s = served(6)
    state = {"healed": False}

    def no_deletes(h):
        if h.command == "DELETE" and not state["healed"]:
            h.answer(503, {"error": "read-only for now"})
            return True
        return False

    s.server.before = no_deletes
    out = tmp / "out.jsonl"
    p = start("run", "-s", s.url, "-o", f"jsonl:{out}", "--", *FAKE,
              cwd=tmp)
    try:
        wait_for(lambda: out.exists() and
                 len(read_jsonl(out.read_text())) == 6,
                 what="every result in the sink")
        wait_for(lambda: "retrying with backoff" in stderr_of(p),
                 what="the outage in the log")
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
    finally:
        stop(p)
    err = stderr_of(p)
    assert "the next run does it again" in err or \
        "the next run does the item again" in err, err
    assert not deleted(tmp / "requests.jsonl")
    state["healed"] = True
    code, _, err = hopper("run", "-s", s.url, "-o", f"jsonl:{out}", "--",
                          *FAKE)
    assert code == 0, err
    assert {r["id"] for r in read_jsonl(out.read_text())} == {
        f"item{i:03d}" for i in range(6)}
    assert sorted(deleted(tmp / "requests.jsonl")) == [
        f"item{i:03d}" for i in range(6)]


def test_an_item_the_server_keeps_failing_ends_dead(tmp, served):
    """A GET that fails while the server answers the rest: the item is
    dead after five tries, named with the status; the run ends."""
    s = served(3)
    (tmp / "q" / "sick.json").write_text('{"do": "ok"}')

    def sick(h):
        if h.command == "GET" and h.path == "/items/sick":
            h.answer(500, {"error": "cannot read it"})
            return True
        return False

    s.server.before = sick
    code, _, err = hopper("run", "-s", s.url, "-o",
                          f"jsonl:{tmp / 'out.jsonl'}", "--", *FAKE)
    assert code == 3, err
    record = json.loads((tmp / "q" / "dead" / "sick.error.json").read_text())
    assert record["error"] == (f"http source: GET {s.url}/sick (item sick): "
                               "HTTP 500, 5 times while the server answered "
                               "other requests"), record
    assert err.count("retrying with backoff") == 1, err
    assert sorted(deleted(tmp / "requests.jsonl")) == [
        "item000", "item001", "item002"]
