"""hopper enqueue: JSON lines into a queue table with COPY, against a real
PostgreSQL."""
import json
import sys

import pytest

from conftest import FAKE, ROOT, by_id, hopper, read_jsonl

sys.path.insert(0, str(ROOT / "tests"))
from harness.postgres import PostgresServer  # noqa: E402


@pytest.fixture(scope="module")
def pg():
    with PostgresServer() as server:
        yield server


@pytest.fixture
def queue(pg, request):
    name = "e_" + request.node.name.replace("test_", "")[:40]
    code, _, err = hopper("pg", "init", pg.url, "--table", name)
    assert code == 0, err
    return name


TRICKY = [
    {"s": "back\\slash, tab\t, quote\", newline\n, cr\r"},
    {"u": "日本語 ✓ é", "e": "\u00e9\u2603"},
    [1, 2.5, None, True, {"deep": [[]]}],
    "a bare string",
    42,
]


def test_payloads_arrive_exactly(pg, queue, tmp):
    text = "".join(json.dumps(p, ensure_ascii=i % 2 == 0) + "\n"
                   for i, p in enumerate(TRICKY))
    text += "\n   \n"  # blank lines are skipped
    text += '{"raw": "tab\there"}\r\n'  # a CRLF ending; a raw tab (invalid)
    code, _, err = hopper("enqueue", pg.url, "--table", queue, input=text)
    assert code == 65, err  # the raw tab inside a string is not JSON
    assert f"stdin:8: not JSON" in err and "nothing enqueued" in err
    assert pg.psql(f"SELECT count(*) FROM {queue}") == "0"

    text = text.replace("tab\there", "tab\\there")
    code, _, err = hopper("enqueue", pg.url, "--table", queue, input=text)
    assert code == 0, err
    assert f"enqueued 6 items into {queue}" in err
    got = [json.loads(line) for line in pg.psql(
        f"SELECT payload FROM {queue} ORDER BY id").splitlines()]
    assert got == TRICKY + [{"raw": "tab\there"}]
    assert pg.psql(f"SELECT DISTINCT state FROM {queue}") == "ready"


def test_bad_lines_are_named_and_skipped_on_request(pg, queue, tmp):
    f = tmp / "items.jsonl"
    f.write_text('{"n": 1}\n{"n": \n{"n": 3}\nnot json\n')
    code, _, err = hopper("enqueue", pg.url, "--table", queue, str(f))
    assert code == 65
    assert f"{f}:2: not JSON" in err and f"{f}:4: not JSON" in err
    assert pg.psql(f"SELECT count(*) FROM {queue}") == "0"
    code, _, err = hopper("enqueue", pg.url, "--table", queue, "--skip-bad",
                          str(f))
    assert code == 0, err
    assert "enqueued 2 items" in err and "2 bad lines skipped" in err
    assert pg.psql(f"SELECT string_agg(payload->>'n', ',' ORDER BY id) "
                   f"FROM {queue}") == "1,3"


def test_keys_make_a_second_load_a_no_op(pg, queue, tmp):
    a, b = tmp / "a.jsonl", tmp / "b.jsonl"
    a.write_text("".join(json.dumps({"video": f"v{i}.mp4", "i": i}) + "\n"
                         for i in range(100)))
    b.write_text("".join(json.dumps({"video": f"v{i}.mp4", "i": i}) + "\n"
                         for i in range(50, 150)))
    code, _, err = hopper("enqueue", pg.url, "--table", queue, "--key",
                          "video", str(a))
    assert code == 0 and "enqueued 100 items" in err, err
    code, _, err = hopper("enqueue", pg.url, "--table", queue, "--key",
                          "video", str(b), str(a))
    assert code == 0, err
    assert "enqueued 50 items" in err and "150 already queued" in err
    assert pg.psql(f"SELECT count(*), count(DISTINCT key) FROM {queue}") \
        == "150|150"
    f = tmp / "nokey.jsonl"
    f.write_text('{"other": 1}\n')
    code, _, err = hopper("enqueue", pg.url, "--table", queue, "--key",
                          "video", str(f))
    assert code == 65 and "no string or integer 'video' field" in err


def test_then_a_run_takes_them(pg, queue, tmp):
    items = "".join(json.dumps({"n": i}) + "\n" for i in range(500))
    code, _, err = hopper("enqueue", pg.url, "--table", queue, input=items)
    assert code == 0, err
    code, out, err = hopper("run", "-s", pg.url, "-S", f"table={queue}",
                            "--", *FAKE)
    assert code == 0, err
    res = by_id(read_jsonl(out))
    assert sorted(r["result"]["echo"]["n"] for r in res.values()) == \
        list(range(500))


def test_clear_errors(pg, queue):
    code, _, err = hopper("enqueue", pg.url, "--table", "x;drop", input="1\n")
    assert code == 2 and "'x;drop' is not a valid identifier" in err
    code, _, err = hopper("enqueue", pg.url, "--table", "nope", input="1\n")
    assert code == 1 and "queue table nope does not exist" in err
    assert "hopper pg init" in err
    bad = pg.url.replace("hopper-secret", "wrong-pw")
    code, _, err = hopper("enqueue", bad, "--table", queue, input="1\n")
    assert code == 1 and "password authentication failed" in err
    assert "wrong-pw" not in err and "hopper-secret" not in err
    code, _, err = hopper("enqueue", "postgres://hopper@127.0.0.1:1/x",
                          input="1\n")
    assert code == 1 and "cannot connect" in err
    code, _, err = hopper("enqueue", pg.url, "--table", queue,
                          "/no/such/file")
    assert code == 1 and "/no/such/file" in err
    assert pg.psql(f"SELECT count(*) FROM {queue}") == "0"
