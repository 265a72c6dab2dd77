#!/usr/bin/env python3
"""A source container over a folder of JSON files: the API that hopper's
http source reads (Burns, Designing Distributed Systems, 10.1.1).

    python3 sources/http/http_items.py FOLDER [--port 8080]

Each FOLDER/NAME.json is an item whose id is NAME and whose payload is the
file's JSON. The server answers, under /items:

    GET    /items            {"items": [ids...]} (sorted; --limit N: the first N)
    GET    /items/ID         the file's JSON; 404 when there is no such item
    DELETE /items/ID         done: the file moves to FOLDER/done/ (204; 404)
    POST   /items/ID/dead    dead: the file moves to FOLDER/dead/ID.json and
                             the body (the dead letter) to dead/ID.error.json

With --token-file FILE every request must carry "Authorization: Bearer
TOKEN" (TOKEN: the file's text), or it is answered 401. --log FILE appends
one JSON line per request: {"method", "path", "status"}. It listens on
127.0.0.1 unless told otherwise, and prints its URL once it does.

The server is also a module: make_server() returns it unstarted, and its
`before` attribute may hold a function(handler) that answers a request
instead (returning True), which is how the tests break it on purpose.
"""
import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


def valid_id(item):
    return bool(item) and "/" not in item and not item.startswith(".") \
        and "\0" not in item


class Handler(BaseHTTPRequestHandler):
    server_version = "http_items/1"

    def log_message(self, fmt, *args):
        pass  # --log is the record; stderr stays quiet

    def answer(self, status, body=None):
        data = b"" if body is None else (
            body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)
        self.server.record(self.command, self.path, status)

    def route(self):
        """(id, rest) for /items/ID[/rest], ("", "") for /items, or None."""
        parts = urlsplit(self.path).path.split("/")
        if len(parts) < 2 or parts[1] != "items":
            return None
        if len(parts) == 2 or (len(parts) == 3 and parts[2] == ""):
            return "", ""
        item = unquote(parts[2])
        if not valid_id(item):
            return None
        return item, "/".join(parts[3:])

    def allowed(self):
        token = self.server.token
        if token is None:
            return True
        return self.headers.get("Authorization") == f"Bearer {token}"

    def handle_any(self):
        if self.command in ("POST", "PUT"):
            length = int(self.headers.get("Content-Length") or 0)
            self.body = self.rfile.read(length)
        if self.server.before and self.server.before(self):
            return
        if not self.allowed():
            return self.answer(401, {"error": "unauthorized"})
        route = self.route()
        if route is None:
            return self.answer(404, {"error": "no such path"})
        item, rest = route
        with self.server.lock:
            self.dispatch(item, rest)

    def dispatch(self, item, rest):
        folder = self.server.folder
        path = folder / f"{item}.json"
        if self.command == "GET" and not item:
            ids = sorted(p.name[:-5] for p in folder.iterdir()
                         if p.is_file() and p.name.endswith(".json"))
            if self.server.limit:
                ids = ids[:self.server.limit]
            return self.answer(200, {"items": ids})
        if self.command == "GET" and not rest:
            if not path.is_file():
                return self.answer(404, {"error": f"no item {item}"})
            return self.answer(200, path.read_bytes())
        if self.command == "DELETE" and not rest:
            if not path.is_file():
                return self.answer(404, {"error": f"no item {item}"})
            (folder / "done").mkdir(exist_ok=True)
            os.replace(path, folder / "done" / path.name)
            return self.answer(204)
        if self.command == "POST" and rest == "dead":
            if not path.is_file():
                return self.answer(404, {"error": f"no item {item}"})
            try:
                record = json.loads(self.body)
            except ValueError:
                return self.answer(400, {"error": "the dead letter is not "
                                                  "JSON"})
            dead = folder / "dead"
            dead.mkdir(exist_ok=True)
            (dead / f"{item}.error.json").write_text(json.dumps(record))
            os.replace(path, dead / path.name)
            return self.answer(204)
        return self.answer(405, {"error": "not allowed"})

    do_GET = do_DELETE = do_POST = do_PUT = handle_any


class ItemServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder, host="127.0.0.1", port=0, token=None,
                 log=None, limit=0):
        super().__init__((host, port), Handler)
        self.folder = Path(folder)
        self.token = token
        self.log = log
        self.limit = limit
        self.before = None
        self.lock = threading.Lock()
        self.log_lock = threading.Lock()

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/items"

    def record(self, method, path, status):
        if not self.log:
            return
        with self.log_lock, open(self.log, "a") as f:
            f.write(json.dumps({"method": method, "path": path,
                                "status": status}) + "\n")


def make_server(folder, host="127.0.0.1", port=0, token=None, log=None,
                limit=0):
    """Returns an ItemServer bound to host:port (0: a free port), not yet
    serving: call serve_forever() (in a thread, say) and shutdown()."""
    return ItemServer(folder, host, port, token, log, limit)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--token-file")
    ap.add_argument("--log")
    ap.add_argument("--limit", type=int, default=0,
                    help="list at most this many ids at a time")
    a = ap.parse_args()
    token = Path(a.token_file).read_text().strip() if a.token_file else None
    server = make_server(a.folder, a.host, a.port, token, a.log, a.limit)
    print(f"serving {a.folder} on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()


if __name__ == "__main__":
    sys.exit(main())
