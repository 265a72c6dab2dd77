"""hopper enqueue: JSON lines into a queue table with COPY, against a real
PostgreSQL."""
import json
import re
import subprocess
import time

from conftest import FAKE, HOPPER, assert_clean, by_id, clean_env, \
    hopper, read_jsonl
from harness.postgres import PASSWORD

DONE = re.compile(r"^enqueued (\d+) items into (\S+) in [0-9.]+ s "
                  r"\(\d+ items/s\)(.*)$", re.M)


def count(pg, table):
    return int(pg.psql(f"SELECT count(*) FROM {table}"))


def payloads(pg, table):
    return [json.loads(line) for line in pg.psql(
        f"SELECT payload FROM {table} ORDER BY id").splitlines()]


def enqueued(err):
    """The count on the closing line, which must be there and well formed."""
    m = DONE.search(err)
    assert m, err
    return int(m.group(1))


TRICKY = [
    {"s": "back\\slash, tab\t, quote\", newline\n, cr\r, nul-ish \\u0000"},
    {"u": "日本語 ✓ é", "e": "\u00e9\u2603", "emoji": "😀 \U0001F680"},
    {"copy markers": ["\\.", "\\N", "\\\\N", "\\t", "C:\\new\\table"]},
    {"ctl": "\b\f\u0001\u001f\u007f", "slash": "a/b"},
    [1, 2.5, -0.0, 1.5e10, 12345678901234567890, None, True,
     {"deep": [[{}]]}],
    "a bare string",
    42,
]


def test_payloads_arrive_exactly(pg, queue, tmp):
    # Half the lines with raw UTF-8, half with \u escapes (surrogate pairs
    # included); blank lines of every kind are skipped; CRLF endings and a
    # last line without its newline are taken as they are in the jsonl
    # source.
    text = "".join(json.dumps(p, ensure_ascii=i % 2 == 0) + "\n"
                   for i, p in enumerate(TRICKY))
    text += "\n   \n\t\r\n\r\n"
    text += '{"crlf": "tab\\there"}\r\n'
    text += '  {"spaced" :\t[ 1 , 2 ] }  \n'
    text += '{"last": "no newline"}'
    code, _, err = hopper("enqueue", pg.url, "--table", queue, input=text)
    assert code == 0, err
    assert enqueued(err) == len(TRICKY) + 3
    want = TRICKY + [{"crlf": "tab\there"}, {"spaced": [1, 2]},
                     {"last": "no newline"}]
    assert payloads(pg, queue) == want
    # The same values, compared as jsonb by the server itself.
    for i, p in enumerate(want):
        lit = json.dumps(p)
        assert "$j$" not in lit
        assert pg.psql(f"SELECT payload = $j${lit}$j$::jsonb FROM {queue} "
                       f"ORDER BY id OFFSET {i} LIMIT 1") == "t", lit
    assert pg.psql(f"SELECT DISTINCT state || attempts FROM {queue}") == \
        "ready0"
    assert pg.psql(f"SELECT count(*) FROM {queue} WHERE key IS NULL") == \
        str(len(want))


def test_files_stdin_and_a_schema(pg, tmp):
    pg.psql("CREATE SCHEMA IF NOT EXISTS jobs AUTHORIZATION hopper")
    code, _, err = hopper("pg", "init", pg.url, "--table", "jobs.Video_Q")
    assert code == 0, err
    a, b = tmp / "a.jsonl", tmp / "b.jsonl"
    a.write_text('{"f": "a", "n": 1}\n{"f": "a", "n": 2}\n')
    b.write_text('{"f": "b", "n": 1}\n')
    code, _, err = hopper("enqueue", pg.url, "--table=jobs.Video_Q", a, "-",
                          b, input='{"f": "stdin"}\n')
    assert code == 0, err
    assert enqueued(err) == 4 and "into jobs.Video_Q in" in err
    assert [p["f"] for p in payloads(pg, 'jobs."Video_Q"')] == \
        ["a", "a", "stdin", "b"]


def test_utf8_into_a_latin1_database(pg):
    # JSON is UTF-8 whatever the database's encoding: the server converts.
    pg.psql("CREATE DATABASE e_latin1 OWNER hopper ENCODING 'LATIN1' "
            "TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
    url = pg.url_for(dbname="e_latin1")
    code, _, err = hopper("pg", "init", url, "--table", "q")
    assert code == 0, err
    code, _, err = hopper("enqueue", url, "--table", "q",
                          input='{"s": "café"}\n{"s": "caf\\u00e9"}\n')
    assert code == 0 and enqueued(err) == 2, err
    assert pg.psql("SELECT bool_and(payload->>'s' = 'caf' || chr(233)) "
                   "FROM q", dbname="e_latin1") == "t"


def test_a_bad_line_is_named_and_loads_nothing(pg, queue, tmp):
    f, g = tmp / "items.jsonl", tmp / "more.jsonl"
    f.write_text('{"n": 1}\n{"n": \n{"n": 3}\n\nnot json\n'
                 '{"tab": "raw\there"}\n')
    g.write_text('{"nul": "\\u0000"}\n"\\ud800 alone"\n"\\udc00"\n'
                 '"\\ud83d\\ude00 is a pair"\n[1,]\n')
    code, out, err = hopper("enqueue", pg.url, "--table", queue, f, g)
    assert code == 65, err
    for where in (f"{f}:2: not JSON", f"{f}:5: not JSON", f"{f}:6: not JSON",
                  f"{g}:1: PostgreSQL's jsonb cannot hold \\u0000",
                  f"{g}:2: PostgreSQL's jsonb cannot hold \\ud800",
                  f"{g}:3: PostgreSQL's jsonb cannot hold \\udc00",
                  f"{g}:5: not JSON"):
        assert where in err
    assert f"{f}:1:" not in err and f"{f}:4:" not in err
    assert f"{g}:4:" not in err
    assert "7 bad lines: nothing enqueued" in err and "--skip-bad" in err
    assert not DONE.search(err) and out == ""
    assert count(pg, queue) == 0


def test_many_bad_lines_are_counted_after_twenty(pg, queue):
    text = "".join("{bad}\n" if i % 2 else '{"ok": 1}\n' for i in range(100))
    code, _, err = hopper("enqueue", pg.url, "--table", queue, input=text)
    assert code == 65
    assert len(re.findall(r"^stdin:\d+: not JSON", err, re.M)) == 20
    assert "stdin:40: not JSON" in err and "stdin:42:" not in err
    assert "... and 30 more bad lines" in err
    assert "50 bad lines: nothing enqueued" in err
    assert count(pg, queue) == 0


def test_an_overlong_line_is_refused_without_being_held(pg, queue, tmp):
    f = tmp / "long.jsonl"
    with open(f, "w") as out:
        out.write('{"n": 1}\n')
        out.write('{"s": "' + "x" * (16 << 20) + '"}\n')
        out.write('{"n": 3}\n')
    code, _, err = hopper("enqueue", pg.url, "--table", queue, f)
    assert code == 65
    assert f"{f}:2: line over the 16777216-byte limit" in err
    code, _, err = hopper("enqueue", pg.url, "--table", queue, "--skip-bad",
                          f)
    assert code == 0 and enqueued(err) == 2, err
    assert [p["n"] for p in payloads(pg, queue)] == [1, 3]


def test_skip_bad_loads_the_good_lines(pg, queue, tmp):
    f = tmp / "items.jsonl"
    f.write_text('{"n": 1}\n{"n": \n{"n": 3}\nnot json\n{"n": "\\u0000"}\n')
    code, _, err = hopper("enqueue", pg.url, "--table", queue, "--skip-bad",
                          f)
    assert code == 0, err
    assert f"{f}:2: not JSON" in err and f"{f}:4: not JSON" in err
    assert f"{f}:5: PostgreSQL's jsonb" in err
    assert enqueued(err) == 2 and "; 3 bad lines skipped" in err
    assert [p["n"] for p in payloads(pg, queue)] == [1, 3]
    # Nothing good at all is still a load that went fine.
    code, _, err = hopper("enqueue", pg.url, "--table", queue, "--skip-bad",
                          input="nope\n")
    assert code == 0 and enqueued(err) == 0 and "1 bad line skipped" in err


def test_keys_make_a_second_load_a_no_op(pg, queue, tmp):
    a, b = tmp / "a.jsonl", tmp / "b.jsonl"
    a.write_text("".join(json.dumps({"video": f"v{i}.mp4", "i": i}) + "\n"
                         for i in range(100)))
    b.write_text("".join(json.dumps({"video": f"v{i}.mp4", "i": i}) + "\n"
                         for i in range(50, 150)))
    code, _, err = hopper("enqueue", pg.url, "--table", queue, "--key",
                          "video", a)
    assert code == 0 and enqueued(err) == 100, err
    assert "already queued" not in err
    code, _, err = hopper("enqueue", pg.url, "--table", queue, "--key",
                          "video", b, a)
    assert code == 0, err
    assert enqueued(err) == 50 and "; 150 already queued (same key)" in err
    assert pg.psql(f"SELECT count(*), count(DISTINCT key) FROM {queue}") \
        == "150|150"
    assert pg.psql(f"SELECT count(*) FROM {queue} "
                   f"WHERE key <> payload->>'video'") == "0"
    # The new rows came in file order, after the first load's.
    assert [p["i"] for p in payloads(pg, queue)] == list(range(150))


def test_key_values(pg, queue):
    wide = {f"f{i}": i for i in range(100)}
    wide["id"] = "wide"
    lines = [
        '{"id": "plain"}',
        json.dumps({"id": "esc\"aped é \u2603 \\ tab\t"}),
        '{"id": 17}',
        '{"id": -2.5e3}',  # numbers are taken as written
        '{"id": 123456789012345678901234567890}',
        '{"id": "dup", "n": 1}',
        '{"id": "dup", "n": 2}',  # within one load, the first wins
        json.dumps(wide),  # wider than the scanner's array
        json.dumps({**wide, "id": 1.50}).replace("1.5", "1.50"),
        '{"id": "first", "id": "last"}',  # jsonb keeps the last
    ]
    text = "".join(line + "\n" for line in lines)
    code, _, err = hopper("enqueue", pg.url, "--table", queue, "--key", "id",
                          input=text)
    assert code == 0, err
    assert enqueued(err) == 9 and "; 1 already queued" in err
    assert pg.psql(f"SELECT key FROM {queue} ORDER BY id").splitlines() == [
        "plain", "esc\"aped é \u2603 \\ tab\t", "17", "-2.5e3",
        "123456789012345678901234567890", "dup", "wide", "1.50", "last"]
    assert pg.psql(f"SELECT payload->>'n' FROM {queue} WHERE key = 'dup'") \
        == "1"
    bad = '{"other": 1}\n{"id": null}\n{"id": [1]}\n["id"]\n{"id": true}\n'
    code, _, err = hopper("enqueue", pg.url, "--table", queue, "--key", "id",
                          input=bad)
    assert code == 65
    for n in range(1, 6):
        assert f'stdin:{n}: no string or number field "id" for the key' \
            in err


def test_key_needs_a_unique_index(pg):
    pg.psql("CREATE TABLE e_loose (id bigserial, key text, "
            "payload jsonb NOT NULL, state text NOT NULL DEFAULT 'ready')",
            url=pg.url)
    code, _, err = hopper("enqueue", pg.url, "--table", "e_loose", "--key",
                          "k", input='{"k": "a"}\n')
    assert code == 1
    assert "--key needs a unique index on e_loose (key)" in err
    # Without --key such a table takes payloads all the same.
    code, _, err = hopper("enqueue", pg.url, "--table", "e_loose",
                          input='{"k": "a"}\n')
    assert code == 0 and enqueued(err) == 1, err


def test_a_queue_named_like_the_staging_table(pg):
    # The --key load stages rows in a temporary table; a queue table of the
    # same plain name must not be shadowed by it.
    code, _, err = hopper("pg", "init", pg.url, "--table", "hopper_load")
    assert code == 0, err
    code, _, err = hopper("enqueue", pg.url, "--table", "hopper_load",
                          "--key", "k", input='{"k": "a"}\n')
    assert code == 0 and enqueued(err) == 1, err
    assert pg.psql("SELECT key FROM hopper_load") == "a"


def test_then_a_run_takes_them(pg, queue):
    items = "".join(json.dumps({"n": i}) + "\n" for i in range(500))
    code, _, err = hopper("enqueue", pg.url, "--table", queue, input=items)
    assert code == 0, err
    code, out, err = hopper("run", "-s", pg.url, "-S", f"table={queue}",
                            "-S", "poll=0.2", "--", *FAKE)
    assert code == 0, err
    res = by_id(read_jsonl(out))
    assert sorted(r["result"]["echo"]["n"] for r in res.values()) == \
        list(range(500))
    assert pg.psql(f"SELECT state, count(*) FROM {queue} GROUP BY 1") == \
        "done|500"


def test_connection_from_the_environment_or_settings(pg, queue):
    env = clean_env(PGHOST=pg.host, PGPORT=pg.port, PGUSER="hopper",
                    PGPASSWORD=PASSWORD, PGDATABASE="hopper")
    code, _, err = hopper("enqueue", "--table", queue, input="1\n", env=env)
    assert code == 0 and enqueued(err) == 1, err
    settings = f"host={pg.host} port={pg.port} user=hopper " \
               f"password={PASSWORD} dbname=hopper"
    code, _, err = hopper("enqueue", settings, "--table", queue, input="2\n")
    assert code == 0 and enqueued(err) == 1, err
    assert count(pg, queue) == 2


def test_hostile_table_names_are_refused(pg, queue):
    # Refused before connecting: the same answer with nothing listening.
    nowhere = "postgres://hopper@127.0.0.1:1/hopper"
    for name in ("x;drop", f'{queue}"; DROP TABLE {queue}; --',
                 f"{queue} ", "1abc", "a.b.c", "a" * 64, "é", "q\nx"):
        for url in (pg.url, nowhere):
            code, _, err = hopper("enqueue", url, "--table", name,
                                  input="1\n")
            assert code == 2, (name, err)
            assert f"table name '{name}' is not a valid identifier" in err
    code, _, err = hopper("enqueue", pg.url, "--table", "", input="1\n")
    assert code == 2 and "usage:" in err
    assert count(pg, queue) == 0


def test_missing_table_and_file(pg, queue):
    code, _, err = hopper("enqueue", pg.url, "--table", "nope", input="1\n")
    assert code == 1
    assert "queue table nope does not exist" in err
    assert "hopper pg init" in err
    code, _, err = hopper("enqueue", pg.url, "--table", queue,
                          "/no/such/file")
    assert code == 1 and "/no/such/file: No such file" in err
    code, _, err = hopper("enqueue", pg.url, "--table", queue, "-",
                          "/no/such/file", input="1\n2\n")
    assert code == 1 and "/no/such/file" in err
    assert count(pg, queue) == 0


def test_connection_errors_never_show_the_password(pg, queue, tmp):
    secret = "s3cret-Pw"
    code, _, err = hopper("enqueue", pg.url.replace(PASSWORD, secret),
                          "--table", queue, input="1\n")
    assert code == 1 and "password authentication failed" in err
    assert secret not in err and PASSWORD not in err
    # Nothing listens on port 1.
    code, _, err = hopper("enqueue", f"postgres://hopper:{secret}@127.0.0.1"
                          ":1/hopper", "--table", queue, input="1\n")
    assert code == 1 and "cannot connect to PostgreSQL" in err
    assert "127.0.0.1" in err and "port 1 failed" in err
    assert "Connection refused" in err and secret not in err
    # libpq quotes what it cannot parse, password and all.
    for url in (f"postgres://hopper:{secret}%zz@127.0.0.1:1/hopper",
                f"postgres://hopper:{secret}@[::1/hopper",
                f"postgresql://127.0.0.1:1/hopper?password={secret}&x=%zz",
                f"host=127.0.0.1 port=1 password={secret}=x junk",
                f"host=127.0.0.1 port=x password='{secret} two'"):
        code, _, err = hopper("enqueue", url, "--table", queue, input="1\n")
        assert code == 1 and "cannot connect to PostgreSQL" in err, url
        assert secret not in err, err
    # A second URL is refused without being echoed.
    code, _, err = hopper("enqueue", pg.url, "--table", queue,
                          f"postgres://u:{secret}@h/db")
    assert code == 2 and secret not in err


def test_usage(pg):
    code, out, _ = hopper("enqueue", "--help")
    assert code == 0 and "usage: hopper enqueue" in out
    code, _, err = hopper("enqueue", pg.url, "--frobnicate")
    assert code == 2 and "unknown option --frobnicate" in err
    code, _, err = hopper("enqueue", pg.url, "--table")
    assert code == 2 and "usage:" in err
    code, out, _ = hopper("--help")
    assert "hopper enqueue [URL]" in out


def high_water_kib(p):
    """The peak resident size of p, a running hopper, until it exits.
    (getrusage would count the copy of pytest that was forked to run it.)"""
    hwm = 0
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                status = f.read()
        except OSError:
            break
        if re.search(r"^Name:\s+hopper$", status, re.M):
            m = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
            hwm = max(hwm, int(m.group(1)) if m else 0)
        time.sleep(0.005)
    p.wait()
    return hwm


def test_a_large_input_is_streamed(pg, queue, tmp):
    # 128 MiB of payloads through a process that never holds much of it.
    f = tmp / "big.jsonl"
    with open(f, "w") as out:
        for i in range(128):
            out.write(json.dumps({"i": i, "s": chr(65 + i % 26) * (1 << 20)})
                      + "\n")
    with open(tmp / "err", "w+") as errf:
        p = subprocess.Popen([HOPPER, "enqueue", pg.url, "--table", queue,
                              str(f)], stderr=errf, env=clean_env())
        hwm = high_water_kib(p)
        errf.seek(0)
        err = errf.read()
    assert_clean(err)
    assert p.returncode == 0 and enqueued(err) == 128, err
    assert 0 < hwm < 64 * 1024, hwm
    assert pg.psql(f"SELECT sum(length(payload->>'s')) FROM {queue}") == \
        str(128 << 20)
