"""The web console (/ on --listen): the page in headless Chromium, driven
through chromedriver's WebDriver API (plain HTTP, no client library); its
actions and their refusals; dead letters a page at a time.

The runs here use the dir source with --watch and the console_worker: a
file whose text starts with "fail" fails for good until the FIXED file
exists, and no item is answered while the HOLD file exists."""
import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import (PY, WORKERS, assert_clean, start, stderr_of, stop,
                      wait_for)

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
WORKER = [PY, str(WORKERS / "console_worker.py")]
TOKEN = "s3cret-token-for-tests"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


# ---- a WebDriver client over http.client ----

class Browser:
    def __init__(self, tmp):
        assert CHROMIUM and CHROMEDRIVER, \
            "chromium and chromedriver are missing: tests/deps.sh installs them"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(tmp / "chromedriver.log", "w")
        self.proc = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self._up, timeout=60, what="chromedriver")
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--no-first-run",
                         "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         f"--user-data-dir={tmp / 'chrome'}",
                         "--window-size=1280,1600"]}}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _up(self):
        try:
            return self._call("GET", "/status")["ready"]
        except OSError:
            return False

    def _call(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        c.request(method, path, json.dumps(body) if body is not None else None,
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        data = json.loads(r.read() or b"{}")
        c.close()
        if r.status >= 400:
            raise AssertionError(f"webdriver {method} {path}: {data}")
        return data.get("value", data)

    def do(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def go(self, url):
        self.do("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.do("POST", "/execute/sync",
                       {"script": script, "args": list(args)})

    def find(self, css):
        return self.do("POST", "/element",
                       {"using": "css selector", "value": css})[ELEMENT]

    def click(self, css):
        """Clicks the element as a user would; the page redraws its lists
        as the run goes on, so an element found may be replaced before
        the click lands: find it again then."""
        for _ in range(20):
            try:
                self.do("POST", f"/element/{self.find(css)}/click", {})
                return
            except AssertionError as e:
                if "stale element" not in str(e):
                    raise
        raise AssertionError(f"{css} kept being replaced")

    def type(self, css, text):
        self.do("POST", f"/element/{self.find(css)}/value", {"text": text})

    def fill(self, css, text):
        """Puts text in place of a field's value, as a user would; the
        page may replace the field until it has the focus, so the first
        one may go stale: start again with the new one then."""
        for _ in range(20):
            try:
                e = self.find(css)
                self.do("POST", f"/element/{e}/clear", {})
                self.do("POST", f"/element/{e}/value", {"text": text})
                if self.js("const e = document.activeElement;"
                           "return e.matches(arguments[0]) &&"
                           " e.value === arguments[1]", css, text):
                    return
            except AssertionError as e:
                if "stale element" not in str(e):
                    raise
        raise AssertionError(f"{css} kept being replaced")

    def press(self, key):
        """Presses a key (a WebDriver key code) where the focus is."""
        self.do("POST", "/actions", {"actions": [{
            "type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key},
                {"type": "keyUp", "value": key}]}]})

    def text(self, css):
        return self.js("const e = document.querySelector(arguments[0]);"
                       "return e ? e.textContent : null;", css)

    def console_errors(self):
        logs = self.do("POST", "/se/log", {"type": "browser"})
        return [e for e in logs if e["level"] == "SEVERE"]

    def screenshot(self, path):
        path.write_bytes(base64.b64decode(self.do("GET", "/screenshot")))

    def close(self):
        try:
            self._call("DELETE", f"/session/{self.session}")
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.log.close()


@pytest.fixture
def browser(tmp):
    b = Browser(tmp)
    yield b
    b.close()


# ---- runs and requests ----

def run(tmp, *extra, token=True, workers=2, watch=True):
    inbox = tmp / "in"
    inbox.mkdir(exist_ok=True)
    args = ["run", "-s", f"dir:{inbox}", *(["--watch"] if watch else []),
            "-o", f"jsonl:{tmp / 'out.jsonl'}", "-j", str(workers),
            "--listen", "127.0.0.1:0"]
    if token:
        (tmp / "token").write_text(TOKEN + "\n")
        args += ["--admin-token-file", str(tmp / "token")]
    env = dict(os.environ, LOG=str(tmp / "log"), HOLD=str(tmp / "hold"),
               FIXED=str(tmp / "fixed"), WAIT=str(tmp / "wait"))
    p = start(*args, *extra, "--", *WORKER, env=env, cwd=tmp)
    return p, inbox


def port_of(p):
    found = []

    def named():
        assert p.poll() is None, stderr_of(p)
        text = stderr_of(p)
        at = text.find("the console on http://127.0.0.1:")
        if at >= 0:
            found.append(int(text[at:].split(":")[2].split("/")[0]))
        return bool(found)

    wait_for(named, timeout=30, what="the console")
    return found[0]


def request(port, method, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, body


def api(port, path):
    status, body = request(port, "GET", path)
    assert status == 200, body
    return json.loads(body)


def results(tmp):
    """The items the sink has a result of (a dead one is written too, as
    failed: left out)."""
    out = tmp / "out.jsonl"
    if not out.exists():
        return {}
    lines = [json.loads(line) for line in out.read_text().splitlines()
             if line.strip()]
    return {r["id"]: r for r in lines if r.get("ok")}


def started(tmp):
    log = tmp / "log"
    return log.read_text().split() if log.exists() else []


# A file's name cannot hold a slash, so no "</script>" in the id.
XSS_NAME = "x<script>window.__xss=1<img src=x onerror=window.__xss=3>\"q'.txt"
XSS_TEXT = "fail <script>window.__xss=2</script> \"quoted\" <b>bold</b>"


def test_page_loads_updates_live_and_retries_a_dead_item(tmp, browser):
    (tmp / "hold").touch()
    p, inbox = run(tmp)
    try:
        port = port_of(p)
        for i in range(6):
            (inbox / f"a{i}.txt").write_text(f"ok {i}")
        (inbox / XSS_NAME).write_text(XSS_TEXT)
        browser.go(f"http://127.0.0.1:{port}/")
        wait_for(lambda: browser.text("#sum-in-flight") not in (None, "–", "0"),
                 what="the page to show items in flight")
        assert browser.text("#sum-done") == "0"
        # The run goes on: the page's numbers follow without a reload.
        (tmp / "hold").unlink()
        wait_for(lambda: browser.text("#sum-done") == "6",
                 what="the page to count 6 done")
        wait_for(lambda: browser.text("#sum-dead") == "1", what="one dead")
        wait_for(lambda: XSS_NAME in (browser.text("#dead") or ""),
                 what="the dead letter listed")
        # One source: nothing to choose, no selector.
        assert browser.js("return document.querySelector("
                          "'#dead-source').offsetParent === null")

        # Ids, errors and payloads are shown as text, never run.
        assert browser.js("return window.__xss === undefined")
        assert browser.js("return document.querySelectorAll("
                          "'main script, main b, main img').length") == 0
        dead_text = browser.text("#dead")
        assert XSS_TEXT in dead_text, dead_text
        wait_for(lambda: XSS_TEXT in (browser.text("#failures") or ""),
                 what="the failure listed")
        assert "<b>bold</b>" in browser.text("#failures")

        # Retry from the page, with the token typed in (kept in
        # sessionStorage, never in a URL).
        browser.type("#token", TOKEN)
        browser.click("#token-form button[type=submit]")
        wait_for(lambda: browser.js(
            "return !document.querySelector('#dead button').disabled"),
            what="the retry button enabled")
        (tmp / "fixed").touch()
        browser.click("#dead button[data-action=retry]")
        wait_for(lambda: XSS_NAME in results(tmp), what="the retried item")
        assert results(tmp)[XSS_NAME]["result"]["text"] == XSS_TEXT
        assert not (inbox / "failed" / XSS_NAME).exists()
        assert not (inbox / "failed" / (XSS_NAME + ".error.json")).exists()
        # The report was removed, not taken as an item.
        assert not [i for i in started(tmp) if i.endswith(".error.json")]
        wait_for(lambda: browser.text("#dead-range") == "none",
                 what="the dead letters page to empty")
        assert browser.js("return sessionStorage.getItem('hopper-token')") \
            == TOKEN
        assert TOKEN not in browser.js(
            "return performance.getEntriesByType('resource')"
            ".map(e => e.name).join(' ')")
        errors = browser.console_errors()
        assert not errors, errors
        # A figure for the README, taken during a run.
        if os.environ.get("CONSOLE_SCREENSHOT"):
            browser.screenshot(tmp / "console.png")
    finally:
        stop(p)
        assert_clean(stderr_of(p))
    assert p.returncode == 0, stderr_of(p)


def test_pause_holds_a_stage_until_resumed(tmp, browser):
    p, inbox = run(tmp)
    try:
        port = port_of(p)
        browser.go(f"http://127.0.0.1:{port}/")
        browser.type("#token", TOKEN)
        browser.click("#token-form button[type=submit]")
        wait_for(lambda: browser.js(
            "const b = document.querySelector('#stages button');"
            "return b !== null && !b.disabled"), what="the pause button")
        browser.click("#stages button[data-action=pause]")
        wait_for(lambda: api(port, "/api/state")["stages"][0]["paused"],
                 what="the stage paused")
        for i in range(5):
            (inbox / f"p{i}.txt").write_text(f"ok {i}")
        wait_for(lambda: api(port, "/api/state")["stages"][0]["depth"] == 5,
                 what="five items waiting")
        # Several seconds of samples later, none of them has started.
        first = len(api(port, "/api/history")["at"])
        wait_for(lambda: len(api(port, "/api/history")["at"]) >= first + 3,
                 what="three more samples")
        assert started(tmp) == []
        assert results(tmp) == {}
        wait_for(lambda: browser.text("#stages .state") == "paused",
                 what="the page to say paused")
        # Resumed from the keyboard: the button takes the focus and Enter.
        browser.js("document.querySelector("
                   "'#stages button[data-action=resume]').focus()")
        browser.press("\ue007")
        wait_for(lambda: len(results(tmp)) == 5, what="the five done")
        assert not api(port, "/api/state")["stages"][0]["paused"]
        assert not browser.console_errors()
    finally:
        stop(p)
        assert_clean(stderr_of(p))
    assert p.returncode == 0, stderr_of(p)


def test_a_finite_folder_run_takes_back_what_is_retried(tmp):
    """A finite run looks at its folder once; a file retried from the
    console while it goes on is done by the same run."""
    inbox = tmp / "in"
    inbox.mkdir()
    (inbox / "bad.txt").write_text("fail at first")
    (inbox / "slow.txt").write_text("wait for the test")
    (tmp / "wait").touch()
    p, inbox = run(tmp, watch=False)
    try:
        port = port_of(p)
        wait_for(lambda: api(port, "/api/dead")["total"] == 1,
                 what="bad.txt dead")
        (tmp / "fixed").touch()
        status, body = request(port, "POST", "/api/dead/retry?id=bad.txt",
                               {"X-Hopper-Token": TOKEN})
        assert status == 200, body
        wait_for(lambda: "bad.txt" in results(tmp),
                 what="the retried file done by the same run")
        assert api(port, "/api/state")["total"] == 3
        (tmp / "wait").unlink()
        p.wait(timeout=120)
    finally:
        stop(p)
        assert_clean(stderr_of(p))
    # It died once in this run: finished with dead items, all done now.
    assert p.returncode == 3, stderr_of(p)
    assert sorted(results(tmp)) == ["bad.txt", "slow.txt"]
    assert sorted(os.listdir(inbox / "done")) == ["bad.txt", "slow.txt"]


def test_max_workers_from_the_console(tmp):
    p, inbox = run(tmp, workers=3)
    try:
        port = port_of(p)
        auth = {"X-Hopper-Token": TOKEN}
        wait_for(lambda: api(port, "/api/state")["workers"] == 3,
                 what="three workers")
        status, body = request(port, "POST",
                               "/api/stage/max?stage=main&workers=1", auth)
        assert status == 200, body
        wait_for(lambda: api(port, "/api/state")["workers"] == 1,
                 what="one worker")
        state = api(port, "/api/state")["stages"][0]
        assert (state["max"], state["slots"]) == (1, 3)
        status, body = request(port, "POST",
                               "/api/stage/max?stage=main&workers=5000", auth)
        assert status == 409 and "1 to 4096" in body, body
        status, body = request(port, "POST",
                               "/api/stage/max?stage=nope&workers=2", auth)
        assert status == 404 and "nope" in body, body
    finally:
        stop(p)
        assert_clean(stderr_of(p))


def busy(port):
    return api(port, "/api/state")["stages"][0]["busy"]


def test_max_workers_raised_past_the_starting_slots_from_the_page(
        tmp, browser):
    """A stage started with one worker runs three once the page sets its
    most to 3 (slots are added), and one again once it is set back."""
    (tmp / "hold").touch()
    p, inbox = run(tmp, "--prefetch", "1", workers=1)
    try:
        port = port_of(p)
        for i in range(12):
            (inbox / f"s{i:02}.txt").write_text(f"ok {i}")
        wait_for(lambda: busy(port) == 1, what="one worker busy")
        assert api(port, "/api/state")["stages"][0]["slots"] == 1
        browser.go(f"http://127.0.0.1:{port}/")
        browser.type("#token", TOKEN)
        browser.click("#token-form button[type=submit]")
        field = "#stages input[type=number]"
        wait_for(lambda: browser.js(
            "const e = document.querySelector(arguments[0]);"
            "return e !== null && !e.disabled", field),
            what="the most-workers field")
        browser.fill(field, "3")
        browser.press("\ue007")
        wait_for(lambda: api(port, "/api/state")["stages"][0]["max"] == 3,
                 what="the most set to 3")
        wait_for(lambda: busy(port) == 3, what="three workers busy")
        state = api(port, "/api/state")
        assert state["workers"] == 3
        assert (state["stages"][0]["max"], state["stages"][0]["slots"]) \
            == (3, 3)
        # Back down: the busy ones finish what they hold, then retire.
        status, body = request(port, "POST",
                               "/api/stage/max?stage=main&workers=1",
                               {"X-Hopper-Token": TOKEN})
        assert status == 200, body
        (tmp / "hold").unlink()
        wait_for(lambda: len(results(tmp)) == 12, what="the twelve done")
        wait_for(lambda: api(port, "/api/state")["workers"] == 1,
                 what="one worker again")
        assert not browser.console_errors()
    finally:
        stop(p)
        assert_clean(stderr_of(p))
    assert p.returncode == 0, stderr_of(p)


def test_dead_letters_of_each_source_chosen_from_the_keyboard(tmp, browser):
    """Two folders feed one stage: the page lists a source's dead letters
    at a time, the second chosen with the keyboard, and retries them
    there."""
    for name in ("first", "second"):
        (tmp / name).mkdir()
    pipeline = {
        "sources": {
            "first": {"type": "dir", "path": str(tmp / "first"),
                      "to": "main"},
            "second": {"type": "dir", "path": str(tmp / "second"),
                       "to": "main"}},
        "sinks": {"out": {"type": "jsonl", "path": str(tmp / "out.jsonl")}},
        "stages": {"main": {"command": WORKER, "to": "out"}}}
    (tmp / "p.json").write_text(json.dumps(pipeline))
    (tmp / "token").write_text(TOKEN + "\n")
    env = dict(os.environ, FIXED=str(tmp / "fixed"))
    p = start("run", "-f", tmp / "p.json", "--watch", "--listen",
              "127.0.0.1:0", "--admin-token-file", tmp / "token",
              env=env, cwd=tmp)
    try:
        port = port_of(p)
        (tmp / "first" / "one.txt").write_text("fail in the first")
        (tmp / "second" / "two.txt").write_text("fail in the second")
        wait_for(lambda: api(port, "/api/state")["dead"] == 2,
                 what="two dead")
        browser.go(f"http://127.0.0.1:{port}/")
        browser.type("#token", TOKEN)
        browser.click("#token-form button[type=submit]")
        wait_for(lambda: "one.txt" in (browser.text("#dead") or ""),
                 what="the first source's dead letter")
        assert "two.txt" not in browser.text("#dead")
        assert browser.js("return document.querySelector("
                          "'#dead-source').offsetParent !== null")
        # Tab to the selector and pick the next source with the arrow key.
        browser.js("document.querySelector('#dead-source').focus()")
        browser.press("\ue015")
        wait_for(lambda: "two.txt" in (browser.text("#dead") or ""),
                 what="the second source's dead letter")
        assert "one.txt" not in browser.text("#dead")
        wait_for(lambda: browser.js(
            "const b = document.querySelector('#dead button');"
            "return b !== null && !b.disabled"), what="the retry button")
        (tmp / "fixed").touch()
        browser.click("#dead button[data-action=retry]")
        wait_for(lambda: "two.txt" in results(tmp), what="two.txt retried")
        assert api(port, "/api/dead?source=first")["total"] == 1
        assert api(port, "/api/dead?source=second")["total"] == 0
        assert not browser.console_errors()
    finally:
        stop(p)
        assert_clean(stderr_of(p))
    assert p.returncode == 0, stderr_of(p)


def test_actions_refused_change_nothing(tmp):
    p, inbox = run(tmp)
    try:
        port = port_of(p)
        (inbox / "bad.txt").write_text("fail here")
        (inbox / "worse.txt").write_text("fail there")
        for name in ("bad.txt", "worse.txt"):
            wait_for(lambda: (inbox / "failed" / f"{name}.error.json")
                     .exists(), what=f"{name} dead")
        (tmp / "fixed").touch()
        retry = "/api/dead/retry?id=bad.txt"
        ok = {"X-Hopper-Token": TOKEN}
        cases = [
            ("POST", retry, {}, 403),
            ("POST", retry, {"X-Hopper-Token": "wrong-token-here"}, 403),
            ("POST", retry, {"Authorization": "Bearer wrong"}, 403),
            ("GET", retry, ok, 405),
            ("POST", retry, {**ok, "Origin": "http://evil.example"}, 403),
            ("POST", retry, {**ok, "Sec-Fetch-Site": "cross-site"}, 403),
            ("POST", "/api/dead/discard?id=bad.txt", {}, 403),
            ("GET", "/api/dead/discard?id=bad.txt", ok, 405),
            ("POST", "/api/stage/pause?stage=main", {}, 403),
            ("GET", "/api/stage/pause?stage=main", ok, 405),
            ("POST", "/api/stage/pause?stage=main",
             {**ok, "Origin": "http://127.0.0.1:1"}, 403),
            ("POST", "/api/stage/max?stage=main&workers=1",
             {"X-Hopper-Token": TOKEN[:-1]}, 403),
            # The token goes in a header, never in the query.
            ("POST", f"/api/stage/pause?stage=main&token={TOKEN}", {}, 403),
        ]
        for method, path, headers, want in cases:
            status, body = request(port, method, path, headers)
            assert status == want, (method, path, headers, status, body)
        assert (inbox / "failed" / "bad.txt").exists()
        assert (inbox / "failed" / "bad.txt.error.json").exists()
        state = api(port, "/api/state")["stages"][0]
        assert not state["paused"] and state["max"] == 2
        assert "bad.txt" not in results(tmp)
        # The same requests with the token, from the page's origin, act.
        status, body = request(
            port, "POST", retry,
            {"Authorization": f"Bearer {TOKEN}",
             "Origin": f"http://127.0.0.1:{port}",
             "Sec-Fetch-Site": "same-origin"})
        assert status == 200, body
        wait_for(lambda: "bad.txt" in results(tmp), what="the retried item")
        # Discard takes the file and its report away for good.
        status, body = request(port, "POST",
                               "/api/dead/discard?id=worse.txt", ok)
        assert status == 200, body
        assert not (inbox / "failed" / "worse.txt").exists()
        assert not (inbox / "failed" / "worse.txt.error.json").exists()
        assert api(port, "/api/dead")["total"] == 0
        status, body = request(port, "POST",
                               "/api/dead/discard?id=worse.txt", ok)
        assert status == 404 and "worse.txt" in body, body
    finally:
        stop(p)
        assert_clean(stderr_of(p))
    assert "worse.txt" not in results(tmp)


def test_actions_off_without_a_token_file(tmp):
    p, inbox = run(tmp, token=False)
    try:
        port = port_of(p)
        status, body = request(port, "POST", "/api/stage/pause?stage=main",
                               {"X-Hopper-Token": TOKEN})
        assert status == 403 and "--admin-token-file" in body, body
        assert not api(port, "/api/state")["stages"][0]["paused"]
        assert api(port, "/api/state")["admin"] is False
    finally:
        stop(p)
        assert_clean(stderr_of(p))


def test_private_reads_want_the_token_and_probes_stay_open(tmp):
    p, inbox = run(tmp, "--private")
    try:
        port = port_of(p)
        for path in ("/api/state", "/api/history", "/api/failures",
                     "/api/dead", "/status"):
            status, body = request(port, "GET", path)
            assert status == 403 and "no admin token" in body, (path, body)
            status, body = request(port, "GET", path,
                                   {"X-Hopper-Token": "wrong-token-x"})
            assert status == 403 and "wrong admin token" in body, body
            status, body = request(port, "GET", path,
                                   {"Authorization": f"Bearer {TOKEN}"})
            assert status == 200, (path, body)
        for path in ("/metrics", "/healthz", "/readyz", "/"):
            status, body = request(port, "GET", path)
            assert status == 200, (path, body)
    finally:
        stop(p)
        assert_clean(stderr_of(p))
    from conftest import hopper
    code, _, err = hopper("run", "-s", f"dir:{inbox}", "--listen",
                          "127.0.0.1:0", "--private", "--", *WORKER)
    assert code == 2 and "--admin-token-file" in err, err


def test_ten_thousand_dead_letters_page_while_the_loop_answers(tmp, browser):
    failed = tmp / "in" / "failed"
    failed.mkdir(parents=True)
    for i in range(10000):
        name = f"d{i:05d}.txt"
        (failed / name).write_text("x")
        (failed / (name + ".error.json")).write_text(json.dumps(
            {"id": name, "error": f"boom {i}", "attempts": 3,
             "stderr": "trace", "payload": "p" * (5000 if i == 7 else 10)}))
    p, inbox = run(tmp)
    try:
        port = port_of(p)
        page = api(port, "/api/dead?offset=9950&limit=50")
        assert page["total"] == 10000
        assert [d["id"] for d in page["letters"]] == \
            [f"d{i:05d}.txt" for i in range(9950, 10000)]
        big = api(port, "/api/dead?offset=7&limit=1")["letters"][0]
        assert big["payload_cut"] and big["payload_bytes"] == 5002
        assert len(big["payload"]) < 3000
        assert len(api(port, "/api/dead?limit=100000")["letters"]) == 200

        # Listings queued on the console's thread; the loop answers
        # /healthz meanwhile, as it could not if it read them itself: it
        # would answer a probe only between two listings, so hardly more
        # probes than listings, and most would wait for one.
        done = []

        def listing(offset):
            api(port, f"/api/dead?offset={offset}&limit=50")
            done.append(offset)

        threads = [threading.Thread(target=listing, args=(o * 500,))
                   for o in range(20)]
        for t in threads:
            t.start()
        # Once one is answered, the others wait on the thread, in turn.
        wait_for(lambda: done, what="a first listing")
        probes = []
        while len(done) < len(threads):
            t0 = time.monotonic()
            status, _ = request(port, "GET", "/healthz")
            probes.append(time.monotonic() - t0)
            assert status == 200
        for t in threads:
            t.join()
        probes.sort()
        assert len(probes) >= 50, probes
        median = probes[len(probes) // 2]
        assert median < 0.1, f"/healthz took {median:.3f} s during listings"

        browser.go(f"http://127.0.0.1:{port}/")
        wait_for(lambda: browser.text("#dead-range") == "1–50 of 10000",
                 what="the first page")
        browser.click("#dead-next")
        wait_for(lambda: browser.text("#dead-range") == "51–100 of 10000",
                 what="the second page")
        assert "d00050.txt" in browser.text("#dead")
        assert not browser.console_errors()
    finally:
        stop(p)
        assert_clean(stderr_of(p))


def test_a_bad_token_file_stops_the_run_before_it_starts(tmp):
    from conftest import hopper
    (tmp / "in").mkdir()
    (tmp / "short").write_text("abc\n")
    for path, why in ((tmp / "missing", "No such file"),
                      (tmp / "short", "at least 8 characters")):
        code, _, err = hopper("run", "-s", f"dir:{tmp / 'in'}",
                              "--listen", "127.0.0.1:0",
                              "--admin-token-file", path, "--", *WORKER)
        assert code == 1 and str(path) in err and why in err, err
    code, _, err = hopper("run", "-s", f"dir:{tmp / 'in'}",
                          "--admin-token-file", tmp / "short", "--", *WORKER)
    assert code == 2 and "--listen" in err, err


def test_postgres_dead_row_retried_while_the_run_goes_on(tmp, pg, queue):
    from conftest import pg_insert
    (tmp / "token").write_text(TOKEN)
    bad = tmp / "bad.txt"
    bad.write_text("fail <b>row</b>")
    env = dict(os.environ, FIXED=str(tmp / "fixed"))
    p = start("run", "-s", pg.url, "-S", f"table={queue}", "-S", "poll=0.2",
              "--watch", "-o", f"jsonl:{tmp / 'out.jsonl'}", "-j", "1",
              "--listen", "127.0.0.1:0",
              "--admin-token-file", str(tmp / "token"), "--", *WORKER,
              env=env, cwd=tmp)
    try:
        port = port_of(p)
        pg_insert(pg, queue, [str(bad)])
        wait_for(lambda: api(port, "/api/dead")["total"] == 1,
                 what="the row dead")
        letter = api(port, "/api/dead")["letters"][0]
        assert letter["error"] == "fail <b>row</b>", letter
        (tmp / "fixed").touch()
        status, body = request(port, "POST",
                               f"/api/dead/retry?id={letter['id']}",
                               {"X-Hopper-Token": TOKEN})
        assert status == 200, body
        wait_for(lambda: pg.psql(f"SELECT state FROM {queue}") == "done",
                 what="the retried row done by the same run")
        assert api(port, "/api/dead")["total"] == 0
    finally:
        stop(p)
        assert_clean(stderr_of(p))


def test_kafka_dead_letter_retried_from_the_page(tmp, kafka, browser):
    """A message that died goes to the dead-letter topic; retried from the
    page, it is published to its own topic again with its headers, and the
    worker, fixed meanwhile, finishes it in the same run."""
    from conftest import KAFKA_QUICK
    src = "console-in"
    kafka.create_topic(src)
    kafka.create_topic(f"{src}.dead")
    (tmp / "token").write_text(TOKEN)
    (tmp / "broken").touch()
    env = dict(os.environ, MARKER=str(tmp / "broken"))
    p = start("run", "-s", f"kafka://{kafka.bootstrap}/{src}",
              "-S", "group=console", "-S", f"config={KAFKA_QUICK}",
              "-S", "headers=true", "--watch", "--attempts", "1",
              "-o", f"jsonl:{tmp / 'out.jsonl'}", "-j", "1",
              "--listen", "127.0.0.1:0",
              "--admin-token-file", str(tmp / "token"), "--",
              PY, str(WORKERS / "marker_worker.py"), env=env, cwd=tmp)
    try:
        port = port_of(p)
        subprocess.run(["kcat", "-P", "-b", kafka.bootstrap, "-t", src,
                        "-H", "trace=abc", "-k", "k1"],
                       input='{"n": 1}\n', text=True, check=True)
        wait_for(lambda: api(port, "/api/dead")["total"] == 1,
                 what="the message dead")
        assert results(tmp) == {}
        browser.go(f"http://127.0.0.1:{port}/")
        wait_for(lambda: "broken while" in (browser.text("#dead") or ""),
                 what="the dead letter on the page")
        browser.type("#token", TOKEN)
        browser.click("#token-form button[type=submit]")
        wait_for(lambda: browser.js(
            "const b = document.querySelector('#dead button');"
            "return b !== null && !b.disabled"), what="the retry button")
        (tmp / "broken").unlink()
        browser.click("#dead button[data-action=retry]")
        wait_for(lambda: len(results(tmp)) == 1, what="the retried message")
        echo = next(iter(results(tmp).values()))["result"]["echo"]
        assert echo["value"] == {"n": 1} and echo["key"] == "k1", echo
        assert echo["headers"] == {"trace": "abc"}, echo
        # Published to its own topic again, after the first.
        assert echo["topic"] == src and echo["offset"] == 1, echo
        wait_for(lambda: api(port, "/api/dead")["total"] == 0,
                 what="the dead letter handled")
        wait_for(lambda: browser.text("#dead-range") == "none",
                 what="the page's dead letters empty")
        assert not browser.console_errors()
    finally:
        stop(p)
        assert_clean(stderr_of(p))
    assert p.returncode == 0, stderr_of(p)
